// OracleClient — asks a path oracle (OracleServer) from the command line:
// QUERY → ANSWER, MAP_REQUEST → MAP_REPLY chunks.
//
// What it does: one UDP socket connected to the oracle; each request carries
// a fresh random nonce and the current wall-clock time, is authenticated
// with the overlay key, and is sent up to ATTEMPTS times, waiting TIMEOUT
// for a reply with the same nonce that authenticates (anything else is
// ignored). The client's identity (sender) is its own socket address.
//
// Parameters: oracle endpoint, overlay key, TIMEOUT (1 s), ATTEMPTS (3).
// Counters: none. Threading: one thread per client.
// Errors: nvbox::Error "cannot reach oracle at 'IP:PORT'" when nothing answers.
#pragma once

#include "osr/endpoint.hpp"
#include "osr/oracle_wire.hpp"
#include "osr/overlay_key.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

namespace nvbox {

class OracleClient {
public:
  OracleClient(const osr::Endpoint &oracle, const osr::OverlayKey &key,
               std::chrono::milliseconds timeout = std::chrono::milliseconds(1000),
               int attempts = 3);
  ~OracleClient();
  OracleClient(const OracleClient &) = delete;
  OracleClient &operator=(const OracleClient &) = delete;

  osr::oracle::Answer query(const osr::Endpoint &src, const osr::Endpoint &dst, std::uint8_t k,
                            osr::oracle::Objective objective);
  nlohmann::json map();

private:
  // Sends `request` (built for `nonce`) until replies of `type` with that
  // nonce are complete (`done` says when); throws when none come.
  void exchange(const std::function<std::vector<std::uint8_t>()> &build, std::uint64_t nonce,
                osr::oracle::MessageType type,
                const std::function<bool(const osr::oracle::Message &)> &done);
  osr::Endpoint self() const;

  osr::Endpoint oracle_;
  osr::OverlayKey key_;
  std::chrono::milliseconds timeout_;
  int attempts_;
  int fd_ = -1;
};

// CLOCK_REALTIME as ns since the epoch.
std::int64_t wallClockNs();

} // namespace nvbox
