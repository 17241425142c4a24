#include "osr/playout_clock.hpp"

#include <algorithm>

namespace nvbox::osr {

namespace {

// a - b, saturated: transits of one sender are close together, but a peer
// that sends absurd timestamps must not make the subtraction overflow.
Nanos difference(std::int64_t a, std::int64_t b) noexcept {
  std::int64_t d = 0;
  if (__builtin_sub_overflow(a, b, &d)) {
    return a > b ? Nanos::max() : Nanos::min();
  }
  return Nanos(d);
}

} // namespace

void PlayoutClock::observe(PathId path, Nanos transit, Nanos now) noexcept {
  if (path >= kMaxPaths) {
    return;
  }
  PathBase &p = paths_[path];
  if (now - p.bucketStart >= kWindow) {
    // A bucket older than two windows says nothing about the present.
    p.previous = now - p.bucketStart >= 2 * kWindow ? std::nullopt : p.current;
    p.current.reset();
    p.bucketStart = now;
  }
  const std::int64_t t = transit.count();
  p.current = p.current ? std::min(*p.current, t) : t;
  p.lastHeard = now;
}

bool PlayoutClock::live(const PathBase &p, Nanos now) const noexcept {
  return p.current && now - p.lastHeard < silence_;
}

std::optional<std::int64_t> PlayoutClock::base(const PathBase &p) noexcept {
  if (!p.current) {
    return std::nullopt;
  }
  return p.previous ? std::min(*p.current, *p.previous) : *p.current;
}

std::optional<std::pair<std::int64_t, std::int64_t>>
PlayoutClock::bounds(Nanos now) const noexcept {
  std::optional<std::pair<std::int64_t, std::int64_t>> b;
  for (const PathBase &p : paths_) {
    if (!live(p, now)) {
      continue;
    }
    const std::int64_t v = *base(p);
    b = b ? std::pair{std::max(b->first, v), std::min(b->second, v)} : std::pair{v, v};
  }
  return b;
}

Nanos PlayoutClock::spread(Nanos now) const noexcept {
  const auto b = bounds(now);
  return b ? difference(b->first, b->second) : Nanos(0);
}

Nanos PlayoutClock::hold(Nanos transit, Nanos now) const noexcept {
  const auto b = bounds(now);
  if (!b || difference(b->first, b->second) < minSpread_) {
    return Nanos(0);
  }
  const Nanos ahead = difference(b->first, transit.count());
  return ahead > Nanos(0) ? std::min(ahead, kMaxHold) : Nanos(0);
}

std::optional<Nanos> PlayoutClock::pathHold(PathId path, Nanos now) const noexcept {
  if (path >= kMaxPaths || !live(paths_[path], now)) {
    return std::nullopt;
  }
  const auto b = bounds(now);
  if (difference(b->first, b->second) < minSpread_) {
    return Nanos(0);
  }
  return std::min(difference(b->first, *base(paths_[path])), kMaxHold);
}

} // namespace nvbox::osr
