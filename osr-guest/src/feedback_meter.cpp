#include "osr/feedback_meter.hpp"

#include <algorithm>
#include <limits>

namespace nvbox::osr {
namespace {

constexpr std::int64_t kNsPerUs = 1000;

std::uint32_t toUs(std::int64_t ns) noexcept {
  const std::int64_t us = std::max<std::int64_t>(ns, 0) / kNsPerUs;
  return static_cast<std::uint32_t>(
      std::min<std::int64_t>(us, wire::PathFeedback::kUnknownQueue - 1));
}

} // namespace

FeedbackMeter::FeedbackMeter(std::uint32_t epoch, Nanos silence) noexcept
    : epoch_(epoch), silence_(silence) {}

Nanos FeedbackMeter::transit(std::uint32_t sendUs, Nanos now) noexcept {
  const auto nowUs = static_cast<std::uint32_t>(static_cast<std::uint64_t>(now.count()) / 1000);
  const std::uint32_t raw = nowUs - sendUs; // offset + transit, mod 2^32
  if (!transitRef_) {
    transitRef_ = raw;
  }
  // The transits of one sender lie close together: unwrap around the last.
  const std::int64_t t =
      *transitRef_ + static_cast<std::int32_t>(raw - static_cast<std::uint32_t>(*transitRef_));
  transitRef_ = t;
  if (!haveEcho_ || wire::before(echo_, sendUs)) {
    echo_ = sendUs;
    haveEcho_ = true;
  }
  return Nanos(t * kNsPerUs);
}

bool FeedbackMeter::live(const Path &path, Nanos now) const noexcept {
  return path.heard && now - path.lastHeard < silence_;
}

void FeedbackMeter::heard(Path &path, const Endpoint &from, Nanos now) noexcept {
  path.heard = true;
  path.lastHeard = now;
  path.from = from;
}

void FeedbackMeter::sampleQueue(Path &path, Nanos transit, Nanos now) noexcept {
  path.base.update(transit.count(), now);
  const std::int64_t queue = transit.count() - path.base.get(now).value_or(transit.count());
  path.queueMin = path.queueMin ? std::min(*path.queueMin, queue) : queue;
  path.queueLast = queue;
}

void FeedbackMeter::pastSeq(Path &path, std::uint32_t seq) noexcept {
  if (!path.delivered || wire::before(*path.delivered, seq)) {
    path.delivered = seq;
  }
}

void FeedbackMeter::pathSeq(Path &path, std::uint16_t seq, bool arrived) noexcept {
  if (!path.haveSeq) {
    path.haveSeq = true;
    path.nextPathSeq = seq;
    path.highestPathSeq = static_cast<std::uint16_t>(seq - 1);
  }
  const auto ahead = static_cast<std::int16_t>(seq - path.nextPathSeq);
  if (ahead > 0) {
    path.lost += static_cast<std::uint32_t>(ahead);
    path.lostTotal += static_cast<std::uint64_t>(ahead);
    lossSince_ = true;
    path.nextPathSeq = seq;
  } else if (ahead < 0 && arrived && path.lostTotal > 0) {
    // Counted lost when a later one came, but it was only late.
    --path.lost;
    --path.lostTotal;
  }
  if (arrived && ahead >= 0) {
    path.highestPathSeq = seq;
    path.nextPathSeq = static_cast<std::uint16_t>(seq + 1);
  }
}

void FeedbackMeter::onData(const wire::Header &header, std::size_t bytes, Nanos transit,
                           const Endpoint &from, Nanos now) noexcept {
  Path &path = paths_[header.path_id % kMaxPaths];
  heard(path, from, now);
  sampleQueue(path, transit, now);
  pathSeq(path, header.path_seq, true);
  path.bytes += static_cast<std::uint32_t>(bytes);
  ++path.parts;
  // An EXPRESS part carries the flow's next sequence number: the path is
  // past the one before it.
  pastSeq(path, (header.flags & wire::kFlagExpress) != 0 ? header.seq - 1 : header.seq);
  dataSince_ = true;
}

void FeedbackMeter::onProbe(const wire::Header &header, const wire::ProbeInfo &info, Nanos transit,
                            const Endpoint &from, Nanos now) noexcept {
  Path &path = paths_[header.path_id % kMaxPaths];
  heard(path, from, now);
  path.base.update(transit.count(), now);
  pathSeq(path, info.next_path_seq, false);
  pastSeq(path, info.next_seq - 1);
  path.minRtt = Nanos(std::int64_t{info.min_rtt_us} * kNsPerUs);
  ingress_ = info.back;
}

std::optional<std::uint32_t> FeedbackMeter::lostBefore(Nanos now) const noexcept {
  std::optional<std::uint32_t> least;
  for (const Path &path : paths_) {
    if (!live(path, now)) {
      continue;
    }
    if (!path.delivered) {
      return std::nullopt;
    }
    if (!least || wire::before(*path.delivered, *least)) {
      least = *path.delivered;
    }
  }
  if (!least) {
    return std::nullopt;
  }
  return *least + 1;
}

Nanos FeedbackMeter::interval() const noexcept {
  std::optional<Nanos> least;
  for (const Path &path : paths_) {
    if (path.heard && path.minRtt > Nanos(0) && (!least || path.minRtt < *least)) {
      least = path.minRtt;
    }
  }
  return std::clamp(least.value_or(kMaxInterval / 5), kMinInterval, kMaxInterval);
}

bool FeedbackMeter::due(Nanos now) const noexcept {
  if (!ingress_ || !dataSince_) {
    return false;
  }
  return now - last_ >= (lossSince_ ? kLossInterval : interval());
}

wire::Feedback FeedbackMeter::take(Nanos now) noexcept {
  wire::Feedback f;
  f.echo_us = echo_;
  f.epoch = epoch_;
  const std::optional<std::int64_t> fastest = fastestBase(now);
  for (std::size_t id = 0; id < kMaxPaths; ++id) {
    Path &path = paths_[id];
    if (!live(path, now) || !path.haveSeq) {
      continue;
    }
    const auto base = path.base.get(now);
    f.paths[f.count++] = wire::PathFeedback{
        .path = static_cast<PathId>(id),
        .path_seq = path.highestPathSeq,
        .bytes = path.bytes,
        .parts = path.parts,
        .lost = path.lost,
        .queue_min_us = path.queueMin ? toUs(*path.queueMin) : wire::PathFeedback::kUnknownQueue,
        .queue_last_us =
            path.queueLast >= 0 ? toUs(path.queueLast) : wire::PathFeedback::kUnknownQueue,
        .base_us = base && fastest ? toUs(*base - *fastest) : 0};
    path.queueMin.reset();
  }
  dataSince_ = false;
  lossSince_ = false;
  last_ = now;
  ++sent_;
  return f;
}

std::optional<std::int64_t> FeedbackMeter::fastestBase(Nanos now) const noexcept {
  std::optional<std::int64_t> fastest;
  for (const Path &path : paths_) {
    if (live(path, now)) {
      if (const auto b = path.base.get(now); b && (!fastest || *b < *fastest)) {
        fastest = b;
      }
    }
  }
  return fastest;
}

std::array<Endpoint, 2> FeedbackMeter::routes(Nanos now) const noexcept {
  std::array<Endpoint, 2> out{};
  std::array<std::int64_t, 2> bases{std::numeric_limits<std::int64_t>::max(),
                                    std::numeric_limits<std::int64_t>::max()};
  for (const Path &path : paths_) {
    if (!live(path, now) || !path.from.valid()) {
      continue;
    }
    const std::int64_t base = path.base.get(now).value_or(std::numeric_limits<std::int64_t>::max());
    if (path.from == out[0] || path.from == out[1]) {
      continue; // one relay, one copy
    }
    if (base < bases[0]) {
      out[1] = out[0];
      bases[1] = bases[0];
      out[0] = path.from;
      bases[0] = base;
    } else if (base < bases[1]) {
      out[1] = path.from;
      bases[1] = base;
    }
  }
  return out;
}

FeedbackMeter::PathView FeedbackMeter::path(PathId id, Nanos now) const noexcept {
  if (id >= kMaxPaths || !paths_[id].heard) {
    return {};
  }
  const Path &p = paths_[id];
  const auto fastest = fastestBase(now);
  const auto base = p.base.get(now);
  return PathView{.heard = live(p, now),
                  .queue = Nanos(std::max<std::int64_t>(p.queueLast, 0)),
                  .base = base && fastest ? Nanos(*base - *fastest) : Nanos(0),
                  .lost = p.lostTotal};
}

} // namespace nvbox::osr
