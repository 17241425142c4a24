#include "osr/stripe_scheduler.hpp"

#include <algorithm>

namespace nvbox::osr {

namespace {

// Serialisation time of `bytes` at `rate` bytes/s. Bytes are capped at 2^32
// so that bytes * 1e9 fits in 64 bits; a real part is below 64 KiB anyway.
Nanos transmitTime(std::size_t bytes, std::uint64_t rate) noexcept {
  const std::uint64_t capped = std::min<std::uint64_t>(bytes, std::uint64_t{1} << 32);
  return Nanos(static_cast<Nanos::rep>(capped * 1'000'000'000ULL / rate));
}

} // namespace

StripeScheduler::StripeScheduler(StripePolicy policy) noexcept : policy_(policy) {}

bool StripeScheduler::addPath(PathId id, std::uint64_t rate_bytes_per_s,
                              Nanos one_way_delay) noexcept {
  if (id >= kMaxPaths || paths_[id].present || rate_bytes_per_s == 0) {
    return false;
  }
  paths_[id] = Path{.present = true,
                    .up = true,
                    .rate = std::min(rate_bytes_per_s, kMaxRate),
                    .delay = one_way_delay};
  resetWeights();
  return true;
}

bool StripeScheduler::removePath(PathId id) noexcept {
  if (!hasPath(id)) {
    return false;
  }
  paths_[id] = Path{};
  resetWeights();
  return true;
}

bool StripeScheduler::setPathUp(PathId id, bool up) noexcept {
  if (!hasPath(id)) {
    return false;
  }
  if (paths_[id].up != up) {
    paths_[id].up = up;
    resetWeights();
  }
  return true;
}

bool StripeScheduler::setRate(PathId id, std::uint64_t rate_bytes_per_s) noexcept {
  if (!hasPath(id) || rate_bytes_per_s == 0) {
    return false;
  }
  paths_[id].rate = std::min(rate_bytes_per_s, kMaxRate);
  resetWeights();
  return true;
}

bool StripeScheduler::setDelay(PathId id, Nanos one_way_delay) noexcept {
  if (!hasPath(id)) {
    return false;
  }
  paths_[id].delay = one_way_delay;
  return true;
}

bool StripeScheduler::setBacklog(PathId id, Nanos backlog, Nanos now) noexcept {
  if (!hasPath(id)) {
    return false;
  }
  paths_[id].busy_until = now + std::max(backlog, Nanos(0));
  return true;
}

void StripeScheduler::setPolicy(StripePolicy policy) noexcept {
  policy_ = policy;
  resetWeights();
}

bool StripeScheduler::hasPath(PathId id) const noexcept {
  return id < kMaxPaths && paths_[id].present;
}

Nanos StripeScheduler::backlog(PathId id, Nanos now) const noexcept {
  return hasPath(id) ? std::max(Nanos(0), paths_[id].busy_until - now) : Nanos(0);
}

bool StripeScheduler::isUp(PathId id) const noexcept {
  return hasPath(id) && paths_[id].up;
}

bool StripeScheduler::active(std::size_t index) const noexcept {
  return paths_[index].present && paths_[index].up;
}

std::uint8_t StripeScheduler::activeCount() const noexcept {
  std::uint8_t count = 0;
  for (std::size_t i = 0; i < kMaxPaths; ++i) {
    count = static_cast<std::uint8_t>(count + (active(i) ? 1 : 0));
  }
  return count;
}

PathCounters StripeScheduler::counters(PathId id) const noexcept {
  return hasPath(id) ? paths_[id].counters : PathCounters{};
}

// A change of the active set or of a weight restarts the smooth round robin:
// stale credit from the old weights would otherwise skew the next period.
void StripeScheduler::resetWeights() noexcept {
  for (Path &path : paths_) {
    path.swrr_current = 0;
  }
}

std::optional<std::size_t> StripeScheduler::nthActive(std::size_t n) const noexcept {
  for (std::size_t i = 0; i < kMaxPaths; ++i) {
    if (active(i) && n-- == 0) {
      return i;
    }
  }
  return std::nullopt;
}

std::optional<std::size_t> StripeScheduler::pickWeighted() noexcept {
  std::int64_t total = 0;
  std::optional<std::size_t> best;
  for (std::size_t i = 0; i < kMaxPaths; ++i) {
    if (!active(i)) {
      continue;
    }
    const auto weight = static_cast<std::int64_t>(paths_[i].rate);
    total += weight;
    paths_[i].swrr_current += weight;
    if (!best || paths_[i].swrr_current > paths_[*best].swrr_current) {
      best = i;
    }
  }
  if (best) {
    paths_[*best].swrr_current -= total;
  }
  return best;
}

Nanos StripeScheduler::eta(const Path &path, std::size_t bytes, Nanos now) const noexcept {
  return std::max(now, path.busy_until) + transmitTime(bytes, path.rate) + path.delay;
}

std::optional<std::size_t> StripeScheduler::pickEarliest(std::size_t bytes,
                                                         Nanos now) const noexcept {
  std::optional<std::size_t> best;
  Nanos best_eta{};
  for (std::size_t i = 0; i < kMaxPaths; ++i) {
    if (!active(i)) {
      continue;
    }
    const Nanos candidate = eta(paths_[i], bytes, now);
    if (!best || candidate < best_eta) {
      best = i;
      best_eta = candidate;
    }
  }
  return best;
}

std::optional<std::size_t> StripeScheduler::pickAdaptive(std::size_t bytes,
                                                         Nanos now) const noexcept {
  // Earliest arrival among the paths with room in their queue budget; when
  // none has room, the earliest departure (equal queues).
  std::optional<std::size_t> arrival;
  Nanos arrivalEta{};
  std::optional<std::size_t> departure;
  Nanos departureEta{};
  for (std::size_t i = 0; i < kMaxPaths; ++i) {
    if (!active(i)) {
      continue;
    }
    const Path &path = paths_[i];
    const Nanos leaves = std::max(now, path.busy_until) + transmitTime(bytes, path.rate);
    if (leaves - now <= kQueueBudget && (!arrival || leaves + path.delay < arrivalEta)) {
      arrival = i;
      arrivalEta = leaves + path.delay;
    }
    if (!departure || leaves < departureEta) {
      departure = i;
      departureEta = leaves;
    }
  }
  return arrival ? arrival : departure;
}

std::optional<StripeScheduler::Choice>
StripeScheduler::pick(std::uint8_t part_index, std::size_t bytes, Nanos now) noexcept {
  std::optional<std::size_t> chosen;
  switch (policy_) {
  case StripePolicy::Equal: {
    const std::uint8_t k = activeCount();
    if (k > 0) {
      chosen = nthActive(part_index % k);
    }
    break;
  }
  case StripePolicy::Weighted:
    chosen = pickWeighted();
    break;
  case StripePolicy::DelayAware:
    chosen = pickEarliest(bytes, now);
    break;
  case StripePolicy::Adaptive:
    chosen = pickAdaptive(bytes, now);
    break;
  }
  if (!chosen) {
    return std::nullopt;
  }
  Path &path = paths_[*chosen];
  const Nanos arrival = eta(path, bytes, now);
  path.busy_until = arrival - path.delay;
  ++path.counters.parts;
  path.counters.bytes += bytes;
  return Choice{.path = static_cast<PathId>(*chosen), .eta = arrival};
}

} // namespace nvbox::osr
