// Real TCP (or MPTCP) transfers between two network namespaces, with
// SHA-256 of what was sent and what arrived, and a tiny client for osrd's
// control socket. Shared by the osrd integration tests and benchmarks.
#pragma once

#include <cstddef>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

namespace nvbox::test {

struct Transfer {
  std::size_t bytes = 0;
  std::string digest; // SHA-256, hex
  double seconds = 0;
  [[nodiscard]] double mbps() const { return static_cast<double>(bytes) * 8 / seconds / 1e6; }
};

struct TransferOptions {
  std::string clientNs;
  std::string serverNs;
  std::string serverAddress; // IPv4
  std::string clientAddress; // bind the client here; empty: any
  std::uint16_t port = 5001;
  std::size_t bytes = 0;
  bool mptcp = false;
  // Called once, from the sending thread, after a third of the bytes.
  std::function<void()> midway;
};

// Sends `bytes` pseudo-random bytes (fixed seed) over one connection; returns
// what the client sent (timed until the server closed) and what the server got.
std::pair<Transfer, Transfer> transfer(const TransferOptions &options);

// One request/reply on an osrd control socket.
nlohmann::json osrdControl(const std::string &socketPath, const nlohmann::json &request);

} // namespace nvbox::test
