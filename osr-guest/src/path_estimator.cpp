#include "osr/path_estimator.hpp"

#include <algorithm>
#include <cmath>

namespace nvbox::osr {
namespace {

constexpr std::int64_t kNsPerMs = 1'000'000;
constexpr Nanos kShareTau = std::chrono::seconds(1);

// The history slot of millisecond `ms` (a monotonic clock: never negative).
std::size_t slot(std::int64_t ms) noexcept {
  return static_cast<std::size_t>(ms % static_cast<std::int64_t>(PathEstimator::kHistoryMs));
}

double seconds(Nanos t) noexcept {
  return std::chrono::duration<double>(t).count();
}

Nanos fromSeconds(double s) noexcept {
  return Nanos(static_cast<Nanos::rep>(std::clamp(s, 0.0, 3600.0) * 1e9));
}

} // namespace

bool PathEstimator::addPath(PathId id, std::uint64_t hint) noexcept {
  if (id >= kMaxPaths || paths_[id].present) {
    return false;
  }
  paths_[id] = Path{};
  paths_[id].present = true;
  paths_[id].hint = std::min(hint, kMaxRate);
  return true;
}

bool PathEstimator::removePath(PathId id) noexcept {
  if (!present(id)) {
    return false;
  }
  paths_[id] = Path{};
  return true;
}

void PathEstimator::setHint(PathId id, std::uint64_t hint) noexcept {
  if (present(id)) {
    paths_[id].hint = std::min(hint, kMaxRate);
  }
}

void PathEstimator::setMinRtt(PathId id, Nanos rtt) noexcept {
  if (present(id)) {
    paths_[id].minRtt = rtt;
  }
}

void PathEstimator::onSent(PathId id, std::size_t bytes, Nanos now) noexcept {
  if (!present(id)) {
    return;
  }
  Path &p = paths_[id];
  const std::int64_t ms = now.count() / kNsPerMs;
  if (ms > p.historyMs) {
    // Zero the milliseconds skipped since the last send (at most the ring).
    const std::int64_t gap =
        std::min<std::int64_t>(ms - p.historyMs, static_cast<std::int64_t>(kHistoryMs));
    for (std::int64_t i = 1; i <= gap; ++i) {
      p.history[slot(p.historyMs + i)] = 0;
    }
    p.historyMs = ms;
  }
  if (ms > p.historyMs - static_cast<std::int64_t>(kHistoryMs)) {
    auto &bucket = p.history[slot(ms)];
    bucket = static_cast<std::uint32_t>(
        std::min<std::uint64_t>(bucket + std::uint64_t{bytes}, UINT32_MAX));
  }
  p.sentTotal += bytes;
  p.sinceTick += bytes;
  if (!p.pendingSince) {
    p.pendingSince = now;
  }
}

std::uint64_t PathEstimator::sentWithin(const Path &path, Nanos span, Nanos end) const noexcept {
  const std::int64_t nowMs = end.count() / kNsPerMs;
  const std::int64_t spanMs = std::clamp<std::int64_t>(span.count() / kNsPerMs + 1, 1,
                                                       static_cast<std::int64_t>(kHistoryMs));
  std::uint64_t sum = 0;
  for (std::int64_t ms = nowMs - spanMs + 1; ms <= nowMs; ++ms) {
    if (ms <= path.historyMs && ms > path.historyMs - static_cast<std::int64_t>(kHistoryMs)) {
      sum += path.history[slot(ms)];
    }
  }
  return sum;
}

void PathEstimator::onProbeReply(PathId id, Nanos sentAt) noexcept {
  if (present(id) && paths_[id].stalled && sentAt >= paths_[id].stallStart) {
    paths_[id].stalled = false;
    paths_[id].pendingSince.reset();
  }
}

FeedbackResult PathEstimator::onFeedback(std::uint32_t seq, std::uint32_t egressUs,
                                         const wire::Feedback &f, std::uint32_t nowUs,
                                         Nanos now) noexcept {
  const bool future = wire::before(nowUs, f.echo_us);
  bool fresh = false;
  if (!haveFeedback_) {
    fresh = !future;
  } else if (f.epoch == epoch_) {
    fresh = !future && wire::before(lastSeq_, seq) && !wire::before(f.echo_us, lastEcho_);
  } else {
    fresh = !future && wire::before(lastEcho_, f.echo_us);
  }
  if (!fresh) {
    ++counters_.stale;
    return FeedbackResult::Stale;
  }
  if (!haveFeedback_ || f.epoch != epoch_) {
    // A new egress state: its counters start over.
    for (Path &p : paths_) {
      p.haveFeedback = false;
      p.pointCount = 0;
    }
    egressUs_ = egressUs;
  } else {
    interval_ = (interval_ * 7 + (now - lastAccepted_)) / 8;
    egressUs_ += static_cast<std::int32_t>(egressUs - static_cast<std::uint32_t>(egressUs_));
  }
  haveFeedback_ = true;
  epoch_ = f.epoch;
  lastSeq_ = seq;
  lastEcho_ = f.echo_us;
  lastAccepted_ = now;
  ++counters_.accepted;
  for (std::size_t i = 0; i < f.count; ++i) {
    if (present(f.paths[i].path)) {
      apply(paths_[f.paths[i].path], f.paths[i], egressUs_, now);
    }
  }
  growUnqueued(now);
  return FeedbackResult::Accepted;
}

void PathEstimator::apply(Path &p, const wire::PathFeedback &f, std::int64_t egressUs,
                          Nanos now) noexcept {
  if (f.queue_last_us != wire::PathFeedback::kUnknownQueue) {
    p.queue = std::chrono::microseconds(f.queue_last_us);
  }
  p.queueMin = f.queue_min_us != wire::PathFeedback::kUnknownQueue
                   ? Nanos(std::chrono::microseconds(f.queue_min_us))
                   : Nanos(0);
  p.delay = std::chrono::microseconds(f.base_us);
  p.lastFeedback = now;
  if (!p.haveFeedback) {
    p.haveFeedback = true;
    p.lastBytes = f.bytes;
    p.lastLost = f.lost;
    p.delivered = 0;
    p.sentAtFirst = p.sentTotal;
    p.points[0] = Point{egressUs, 0};
    p.pointCount = 1;
    return;
  }
  std::uint64_t bytes = f.bytes - p.lastBytes; // mod 2^32
  const std::uint32_t lost = f.lost - p.lastLost;
  p.lastBytes = f.bytes;
  p.lastLost = f.lost;
  // Nothing can arrive that was not sent since the egress's first report.
  const std::uint64_t sent = p.sentTotal - p.sentAtFirst;
  if (p.delivered + bytes > sent) {
    ++counters_.clamped;
    bytes = sent - std::min(sent, p.delivered);
  }
  p.delivered += bytes;
  p.lost += lost;
  if (bytes > 0 || lost > 0) {
    // It delivers (a loss is counted when a later part or probe arrived).
    p.pendingSince.reset();
    p.stalled = false;
  }
  // The delivery-rate sample: over the newest points spanning kSampleSpan.
  if (p.pointCount == p.points.size()) {
    std::rotate(p.points.begin(), p.points.begin() + 1, p.points.end());
    --p.pointCount;
  }
  p.points[p.pointCount++] = Point{egressUs, p.delivered};
  // Since when (the egress's clock) every FEEDBACK found the path queued:
  // a span within that time is one in which the path never idled, so what
  // it delivered then is what it can.
  if (p.queueMin <= cutFor(p)) {
    p.queuedSince.reset();
  } else if (!p.queuedSince) {
    p.queuedSince = p.points[p.pointCount - 2].egressUs; // since the last report
  }
  std::optional<double> sample;
  std::int64_t spanStart = 0;
  for (std::size_t i = p.pointCount - 1; i-- > 0;) {
    const std::int64_t spanUs = egressUs - p.points[i].egressUs;
    if (spanUs >= std::chrono::duration_cast<std::chrono::microseconds>(kSampleSpan).count()) {
      // A few parts in a span say how the sender paced them, not what the
      // path can: too little to sample.
      if (p.delivered - p.points[i].delivered >= kSampleBytes) {
        spanStart = p.points[i].egressUs;
        sample = static_cast<double>(p.delivered - p.points[i].delivered) * 1e6 /
                 static_cast<double>(spanUs);
      }
      break;
    }
  }
  if (!sample) {
    return;
  }
  const auto measured =
      static_cast<std::uint64_t>(std::min(*sample, static_cast<double>(kMaxRate)));
  if (p.queuedSince && *p.queuedSince <= spanStart) {
    // Busy for the whole span: the sample is the path's rate, up or down
    // (a rate drop, or a burst the shaper's bucket let through earlier).
    if (measured > 0) {
      p.rate = measured;
      p.lastCut = now;
    }
  } else if (measured > p.rate) {
    // Not always busy: what it delivered is a lower bound.
    p.rate = measured;
  }
}

Nanos PathEstimator::cutFor(const Path & /*path*/) noexcept {
  return kQueueCut;
}

void PathEstimator::growUnqueued(Nanos now) noexcept {
  // A path that was sent about all its estimate allows and still has no
  // queue could take more: the estimate is low (a sample from a sender still
  // starting, or a cut at a bad moment), and the scheduler, which believes
  // it, would never show otherwise. Raise it by a quarter an interval until
  // the path queues (which cuts it to what it delivers) — while another path
  // is queued: then the stripe is full, and more of it belongs here.
  bool anyQueued = false;
  for (const Path &p : paths_) {
    anyQueued = anyQueued || (p.present && p.haveFeedback && p.queueMin > cutFor(p));
  }
  if (!anyQueued) {
    return;
  }
  for (Path &p : paths_) {
    if (!p.present || !p.haveFeedback || p.rate == 0 || p.stalled || p.queueMin >= kQueueEmpty ||
        now - p.lastCut < interval_ + p.minRtt || now - p.lastGrow < interval_ + p.minRtt) {
      continue;
    }
    const Nanos span = 2 * interval_;
    const double sentRate =
        static_cast<double>(sentWithin(p, span, now)) / std::max(seconds(span), 1e-6);
    if (sentRate >= kUsed * static_cast<double>(p.rate)) {
      p.rate = std::min(p.rate + p.rate / 4, kMaxRate);
      p.lastGrow = now;
    }
  }
}

std::uint16_t PathEstimator::tick(Nanos now) noexcept {
  const double dt = seconds(now - lastTick_);
  lastTick_ = now;
  const double keep = dt > 0 ? std::exp(-dt / seconds(kShareTau)) : 1;
  std::uint16_t stalled = 0;
  const bool fresh = haveFeedback_ && now - lastAccepted_ <= 3 * interval_ + kStallMargin;
  for (std::size_t id = 0; id < kMaxPaths; ++id) {
    Path &p = paths_[id];
    if (!p.present) {
      continue;
    }
    if (dt > 0) {
      p.shareRate = keep * p.shareRate + (1 - keep) * static_cast<double>(p.sinceTick) / dt;
    }
    p.sinceTick = 0;
    if (!p.stalled && fresh && p.haveFeedback && p.pendingSince &&
        now - *p.pendingSince > p.minRtt + 3 * interval_ + kStallMargin) {
      p.stalled = true;
      p.stallStart = now;
      ++p.stalls;
      stalled = static_cast<std::uint16_t>(stalled | (1U << id));
    }
  }
  return stalled;
}

std::uint64_t PathEstimator::standIn(const Path &path) const noexcept {
  if (path.hint != 0) {
    return path.hint;
  }
  std::uint64_t sum = 0;
  std::uint64_t count = 0;
  for (const Path &p : paths_) {
    if (p.present && p.rate != 0) {
      sum += p.rate;
      ++count;
    }
  }
  // The others' mean, when it says more than the default: early samples are
  // of a sender still starting, far below what the paths can.
  return std::max(count != 0 ? sum / count : 0, kDefaultRate);
}

PathEstimate PathEstimator::estimate(PathId id, Nanos now) const noexcept {
  if (!present(id)) {
    return {};
  }
  const Path &p = paths_[id];
  PathEstimate e;
  e.measured = p.rate;
  e.rate = std::max(p.rate != 0 ? p.rate : standIn(p), kMinRate);
  e.fresh = fresh(id, now);
  e.stalled = p.stalled;
  e.queue = p.queue;
  e.lost = p.lost;
  e.stalls = p.stalls;
  if (e.fresh) {
    e.delay = p.delay;
    // The measured part was sent about min RTT + its queueing before the
    // FEEDBACK got here; what was sent since queues behind it, less what the
    // path drained in the time. A path that was not queued delivered all it
    // was sent: the estimate may be low (never tried harder), and must not
    // turn what it carries with ease into a phantom queue.
    const Nanos lag = p.minRtt + p.queue + (now - p.lastFeedback);
    const double sent = static_cast<double>(sentWithin(p, lag, now));
    const double drains = p.queue < kQueueEmpty ? std::max(static_cast<double>(e.rate),
                                                           sent / std::max(seconds(lag), 1e-6))
                                                : static_cast<double>(e.rate);
    e.backlog = fromSeconds(seconds(p.queue) + sent / drains - seconds(lag));
  }
  double total = 0;
  for (const Path &other : paths_) {
    total += other.present ? other.shareRate : 0;
  }
  e.share = total > 0 ? p.shareRate / total : 0;
  return e;
}

} // namespace nvbox::osr
