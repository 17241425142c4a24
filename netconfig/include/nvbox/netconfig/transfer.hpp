// Transfer — a real TCP (or MPTCP) transfer between two network
// namespaces: pseudo-random bytes (fixed seed) over one connection, with the
// SHA-256 of what was sent and of what arrived, and the time until the
// receiver had it all. nvbox measures overlays with it (`nvbox transfer`);
// the osrd tests and benchmarks use it too.
//
// Threading: transfer() blocks; it runs the receiver on a thread of its own
// inside the server namespace and the sender on one inside the client's.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace nvbox::netconfig {

struct Transfer {
  std::size_t bytes = 0;
  std::string digest; // SHA-256, hex
  double seconds = 0;
  // The receiver's side, when TransferOptions::sampleEvery is set: the bytes
  // arrived so far, at most once per period (steady_clock).
  std::vector<std::pair<std::chrono::steady_clock::time_point, std::size_t>> timeline;
  [[nodiscard]] double mbps() const { return static_cast<double>(bytes) * 8 / seconds / 1e6; }
};

struct TransferOptions {
  std::string clientNs;
  std::string serverNs;
  std::string serverAddress; // IPv4
  std::string clientAddress; // bind the client here; empty: any
  std::uint16_t port = 5001;
  std::size_t bytes = 0;
  // When set, the client sends until this much time has passed (and at most
  // `bytes`, unless that is 0), then closes: a stream for an experiment.
  std::chrono::milliseconds duration{0};
  // When set, the receiver records its progress this often (Transfer::timeline).
  std::chrono::milliseconds sampleEvery{0};
  bool mptcp = false;
  // No progress for this long fails the transfer (nvbox::Error).
  std::chrono::seconds timeout{60};
  // Called once, from the sending thread, after a third of the bytes.
  std::function<void()> midway;
};

// Sends `bytes` over one connection; returns what the client sent (timed
// until the server closed) and what the server got. Throws nvbox::Error.
std::pair<Transfer, Transfer> transfer(const TransferOptions &options);

} // namespace nvbox::netconfig
