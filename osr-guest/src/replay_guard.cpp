#include "osr/replay_guard.hpp"

#include <iterator>

namespace nvbox::osr {

ReplayGuard::Verdict ReplayGuard::accept(const Endpoint &sender, std::int64_t timestamp,
                                         Nanos now) {
  const std::int64_t t = now.count();
  const std::int64_t w = window_.count();
  if (timestamp < t - w) {
    ++counters_.stale;
    return Verdict::Stale;
  }
  if (timestamp > t + w) {
    ++counters_.future;
    return Verdict::Future;
  }
  const std::uint64_t key = keyOf(sender);
  auto it = last_.find(key);
  if (it != last_.end()) {
    if (timestamp <= it->second) {
      ++counters_.replayed;
      return Verdict::Replayed;
    }
    it->second = timestamp;
    ++counters_.accepted;
    return Verdict::Accepted;
  }
  if (last_.size() >= maxSenders_) {
    for (auto e = last_.begin(); e != last_.end();) {
      e = e->second < t - w ? last_.erase(e) : std::next(e);
    }
    if (last_.size() >= maxSenders_) {
      ++counters_.full;
      return Verdict::Full;
    }
  }
  last_.emplace(key, timestamp);
  ++counters_.accepted;
  return Verdict::Accepted;
}

const char *toString(ReplayGuard::Verdict verdict) noexcept {
  switch (verdict) {
  case ReplayGuard::Verdict::Accepted:
    return "accepted";
  case ReplayGuard::Verdict::Stale:
    return "stale";
  case ReplayGuard::Verdict::Future:
    return "from the future";
  case ReplayGuard::Verdict::Replayed:
    return "replayed";
  case ReplayGuard::Verdict::Full:
    return "sender table full";
  }
  return "unknown";
}

} // namespace nvbox::osr
