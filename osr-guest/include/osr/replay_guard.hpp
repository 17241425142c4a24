// ReplayGuard(WINDOW, MAX_SENDERS) — freshness and replay check of
// authenticated control messages (oracle REPORT/QUERY, tunnel HELLO).
//
// What it does: a message carries its sender (a member's tunnel endpoint)
// and the sender's CLOCK_REALTIME timestamp, both covered by the overlay MAC.
// accept() admits it only if the timestamp lies within WINDOW of `now` (not
// stale, not from the future) and is strictly later than the last timestamp
// admitted from that sender — so a captured message can be replayed neither
// later (stale) nor at once (not newer). Per sender one timestamp is kept;
// entries older than WINDOW are dropped when the table is full, since any
// message that old would be refused as stale anyway. When the table is full
// of live senders, new senders are refused (Full) rather than evicting one.
//
// Parameters: WINDOW (clock skew + delay allowed), MAX_SENDERS.
// Counters: accepted, stale, future, replayed, full.
// Threading: not thread-safe; one owner. Allocates only when a new sender is
// first seen (control path, never the data path).
#pragma once

#include "osr/endpoint.hpp"
#include "osr/types.hpp"

#include <cstddef>
#include <cstdint>
#include <unordered_map>

namespace nvbox::osr {

class ReplayGuard {
public:
  enum class Verdict : std::uint8_t { Accepted, Stale, Future, Replayed, Full };
  struct Counters {
    std::uint64_t accepted = 0;
    std::uint64_t stale = 0;
    std::uint64_t future = 0;
    std::uint64_t replayed = 0;
    std::uint64_t full = 0;
  };

  explicit ReplayGuard(Nanos window = std::chrono::seconds(30), std::size_t maxSenders = 65536)
      : window_(window), maxSenders_(maxSenders) {}

  // `timestamp` and `now` on the same (wall) clock, ns since the epoch.
  Verdict accept(const Endpoint &sender, std::int64_t timestamp, Nanos now);
  [[nodiscard]] const Counters &counters() const { return counters_; }
  [[nodiscard]] std::size_t senders() const { return last_.size(); }

private:
  static std::uint64_t keyOf(const Endpoint &ep) {
    return (std::uint64_t{ep.addr} << 16) | ep.port;
  }
  Nanos window_;
  std::size_t maxSenders_;
  std::unordered_map<std::uint64_t, std::int64_t> last_;
  Counters counters_;
};

[[nodiscard]] const char *toString(ReplayGuard::Verdict verdict) noexcept;

} // namespace nvbox::osr
