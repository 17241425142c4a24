// OracleServer — the path oracle daemon (`nvbox oracle serve`).
//
// What it does: one UDP socket (epoll, plus an eventfd for stop()) on which
// OSRs REPORT their peer measurements and ask QUERYs; it keeps the
// measurements in an osr::OneHopTable and answers each QUERY with the best k
// relays (ANSWER), and each MAP_REQUEST with the ALTO-style network and cost
// map as JSON (MAP_REPLY chunks). Every message must authenticate with the
// overlay key (osr::oracle::parse) and be fresh and newer than the sender's
// previous one (osr::ReplayGuard, one per message kind); anything else is
// dropped and counted, and no input can stop the server.
//
// Parameters: listen endpoint, overlay key, MAX_AGE (older measurements are
// ignored), freshness window of messages (30 s).
// Counters: reports, queries, map requests, rejected per parse status,
// refused per freshness verdict (status()).
// Threading: run() on one thread; stop() from any thread or a signal handler.
#pragma once

#include "osr/endpoint.hpp"
#include "osr/one_hop_table.hpp"
#include "osr/oracle_wire.hpp"
#include "osr/overlay_key.hpp"
#include "osr/replay_guard.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace nvbox {

class OracleServer {
public:
  struct Config {
    osr::Endpoint listen{0, 7500};
    osr::OverlayKey key;
    osr::Nanos maxAge = std::chrono::seconds(10);
    osr::Nanos window = std::chrono::seconds(30);
  };
  struct Reply {
    std::vector<std::uint8_t> bytes;
  };

  // Binds the socket; throws nvbox::Error "cannot listen on 'IP:PORT': …".
  explicit OracleServer(const Config &config);
  ~OracleServer();
  OracleServer(const OracleServer &) = delete;
  OracleServer &operator=(const OracleServer &) = delete;

  [[nodiscard]] osr::Endpoint local() const;
  // Serves until stop().
  void run();
  void stop() noexcept;

  // One datagram in, the replies to send back out (the socket-free core,
  // also what tests drive). mono: CLOCK_MONOTONIC, wall: CLOCK_REALTIME.
  std::vector<Reply> handle(std::span<const std::uint8_t> datagram, osr::Nanos mono,
                            osr::Nanos wall);

  // The ALTO-style maps (docs/oracle.md).
  [[nodiscard]] nlohmann::json map(osr::Nanos mono) const;
  [[nodiscard]] nlohmann::json status() const;
  [[nodiscard]] osr::OneHopTable &table() { return table_; }

private:
  osr::Endpoint self() const;

  Config config_;
  int fd_ = -1;
  int epoll_ = -1;
  int wake_ = -1;
  osr::OneHopTable table_;
  osr::ReplayGuard reportGuard_;
  osr::ReplayGuard queryGuard_;
  std::uint64_t reports_ = 0;
  std::uint64_t queries_ = 0;
  std::uint64_t mapRequests_ = 0;
  std::map<std::string, std::uint64_t> rejected_;
  std::map<std::string, std::uint64_t> refused_;
};

// The maps as an OneHopTable holds them (used by map() and by tests).
nlohmann::json altoMap(const osr::OneHopTable &table, osr::Nanos now);

} // namespace nvbox
