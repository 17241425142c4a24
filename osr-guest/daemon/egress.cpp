#include "egress.hpp"

#include <algorithm>

namespace nvbox::osr {
namespace {

// Used until measurements exist: enough for a few ms of reordering at
// gigabit rates, and a timeout well under TCP's minimum RTO.
constexpr std::size_t kInitialBuffer = 512;
constexpr Nanos kInitialTimeout = std::chrono::milliseconds(50);
constexpr double kPeakDecay = 0.9;
constexpr Nanos kHoldAfterLoss = std::chrono::seconds(10);
constexpr Nanos kMaxGapTimeout = std::chrono::seconds(2);

} // namespace

Egress::Egress(TunDevice &tun, std::optional<std::size_t> buffer, std::optional<Nanos> gapTimeout,
               std::size_t maxPartBytes, bool playout, Nanos pathSilence)
    : tun_(tun), buffer_(buffer), gapTimeout_(gapTimeout), maxPartBytes_(maxPartBytes),
      playout_(playout), pathSilence_(pathSilence) {
  if (tun_.tso()) {
    gro_ = std::make_unique<GroCoalescer>();
  }
}

void Egress::deliver(const Part &part) {
  if (gro_) {
    gro_->add(part.payload, *this);
  } else if (!tun_.write(part.payload)) {
    ++tunWriteErrors_;
  }
}

void Egress::write(const VirtioNetHdr &hdr, std::span<const std::uint8_t> packet) noexcept {
  if (!tun_.write(hdr, packet)) {
    ++tunWriteErrors_;
  }
}

void Egress::flush() noexcept {
  if (gro_) {
    gro_->flush(*this);
  }
}

void Egress::lost(std::uint32_t /*firstSeq*/, std::uint32_t /*count*/, LossCause /*cause*/) {
  // Counted by the buffer; TCP above recovers the packets.
}

PlayoutClock *Egress::clock(std::uint32_t flowId) noexcept {
  if (!playout_) {
    return nullptr;
  }
  auto it = clocks_.find(flowId);
  if (it == clocks_.end()) {
    if (clocks_.size() >= kMaxFlows) {
      return nullptr;
    }
    try {
      it = clocks_.emplace(flowId, PlayoutClock(PlayoutClock::kDefaultMinSpread, pathSilence_))
               .first;
    } catch (...) {
      return nullptr; // out of memory: this flow goes without playout
    }
  }
  return &it->second;
}

void Egress::onProbe(const wire::Header &header, Nanos now) noexcept {
  if (PlayoutClock *c = clock(header.flow_id)) {
    c->observe(header.path_id, header.send_ns, now);
  }
}

void Egress::onData(const wire::Header &header, std::span<const std::uint8_t> payload,
                    Nanos now) noexcept {
  if ((header.flags & wire::kFlagExpress) != 0) {
    onProbe(header, now); // a transit sample like any other
    Part part;
    part.path_id = header.path_id;
    part.payload = payload;
    deliver(part);
    ++express_;
    return;
  }
  auto it = flows_.find(header.flow_id);
  if (it == flows_.end()) {
    if (flows_.size() >= kMaxFlows) {
      ++flowsRefused_;
      return;
    }
    ResequencingBuffer::Config config;
    config.capacity = buffer_.value_or(kInitialBuffer);
    config.gap_timeout = gapTimeout_.value_or(kInitialTimeout);
    config.max_part_bytes = maxPartBytes_;
    config.first_seq = header.seq;
    Flow flow;
    try {
      flow.buffer = std::make_unique<ResequencingBuffer>(config);
    } catch (...) {
      ++flowsRefused_; // out of memory: refuse the flow, keep running
      return;
    }
    flow.windowStart = now;
    flow.gapTimeout = config.gap_timeout;
    flow.autoSized = !buffer_ || !gapTimeout_;
    flow.playout = clock(header.flow_id);
    it = flows_.emplace(header.flow_id, std::move(flow)).first;
  }
  Flow &flow = it->second;
  PathStats &path = flow.paths[header.path_id];
  ++path.parts;
  path.bytes += payload.size();
  path.windowBytes += payload.size();
  const std::int64_t owd = now.count() - static_cast<std::int64_t>(header.send_ns);
  path.owdMin = path.owdMin ? std::min(*path.owdMin, owd) : owd;
  path.owdMax = path.owdMax ? std::max(*path.owdMax, owd) : owd;
  Part part;
  part.seq = header.seq;
  part.segment = header.segment;
  part.part_index = header.part_index;
  part.k = header.k;
  part.path_id = header.path_id;
  part.payload = payload;
  if (PlayoutClock *c = flow.playout) {
    c->observe(header.path_id, header.send_ns, now);
    if (const Nanos hold = c->hold(header.send_ns, now); hold > Nanos(0)) {
      part.due = now + hold;
    }
  }
  flow.buffer->push(part, now, *this);
  if (flow.autoSized) {
    adapt(flow, now);
  }
}

void Egress::adapt(Flow &flow, Nanos now) noexcept {
  const ResequencingCounters &c = flow.buffer->counters();
  if (c.lost_overflow != flow.overflowSeen) {
    flow.overflowSeen = c.lost_overflow;
    flow.holdUntil = now + kHoldAfterLoss;
    const std::size_t current = flow.buffer->capacity();
    if (!buffer_ && current < ResequencingBuffer::kMaxSizedCapacity) {
      try {
        flow.buffer->resize(
            std::min(current + current / 2 + 1, ResequencingBuffer::kMaxSizedCapacity), *this);
      } catch (...) {
        // Out of memory: keep the size; the next overflow tries again.
      }
    }
  }
  if (c.too_old != flow.tooOldSeen) {
    flow.tooOldSeen = c.too_old;
    // Late, not lost, if the timeout declared anything lost since the last
    // growth; too_old after an overflow alone says nothing about the timeout.
    if (c.lost_timeout != flow.timeoutSeen && !gapTimeout_) {
      flow.timeoutSeen = c.lost_timeout;
      flow.holdUntil = now + kHoldAfterLoss;
      // Evidence alone grows it up to kMaxGapTimeout; the estimate may go beyond.
      flow.gapTimeout = std::max(flow.gapTimeout,
                                 std::min(flow.gapTimeout + flow.gapTimeout / 2, kMaxGapTimeout));
      flow.buffer->setGapTimeout(flow.gapTimeout);
    }
  }
}

void Egress::expire(Nanos now) noexcept {
  for (auto &[id, flow] : flows_) {
    flow.buffer->expire(now, *this);
  }
}

std::optional<Nanos> Egress::nextRelease() const noexcept {
  std::optional<Nanos> next;
  for (const auto &[id, flow] : flows_) {
    if (const auto due = flow.buffer->nextRelease(); due && (!next || *due < *next)) {
      next = due;
    }
  }
  return next;
}

void Egress::resize(Nanos now) {
  for (auto &[id, flow] : flows_) {
    const double seconds = std::chrono::duration<double>(now - flow.windowStart).count();
    if (seconds <= 0) {
      continue;
    }
    std::array<PathModel, kMaxPaths> models{};
    std::size_t n = 0;
    std::optional<std::int64_t> fastest;
    for (auto &p : flow.paths) {
      p.rate = static_cast<double>(p.windowBytes) / seconds;
      p.peakRate = std::max(p.rate, p.peakRate * kPeakDecay);
      if (p.owdMin) {
        fastest = fastest ? std::min(*fastest, *p.owdMin) : *p.owdMin;
      }
    }
    for (auto &p : flow.paths) {
      if (p.owdMax && fastest) {
        p.owd = *p.owdMax - *fastest;
      }
      if (p.peakRate > 0) {
        models[n++] = PathModel{p.peakRate, Nanos(p.owd)};
      }
      p.windowBytes = 0;
      p.owdMin.reset();
      p.owdMax.reset();
    }
    flow.windowStart = now;
    if (!flow.autoSized || n == 0) {
      continue;
    }
    const Sizing sizing = ResequencingBuffer::sizeFor(std::span(models.data(), n), maxPartBytes_);
    const bool hold = now < flow.holdUntil;
    const std::size_t current = flow.buffer->capacity();
    const std::size_t target =
        std::min(std::max(sizing.capacity, hold ? current : current - current / 16),
                 ResequencingBuffer::kMaxSizedCapacity);
    if (!buffer_ && target != current) {
      flow.buffer->resize(target, *this);
    }
    if (!gapTimeout_) {
      const Nanos gap = std::max(sizing.gap_timeout,
                                 hold ? flow.gapTimeout : flow.gapTimeout - flow.gapTimeout / 16);
      flow.buffer->setGapTimeout(gap);
      flow.gapTimeout = gap;
    }
  }
  flush(); // resizing may have released packets
}

void Egress::setBuffer(std::optional<std::size_t> buffer, std::optional<Nanos> gapTimeout) {
  buffer_ = buffer;
  gapTimeout_ = gapTimeout;
  for (auto &[id, flow] : flows_) {
    flow.autoSized = !buffer || !gapTimeout;
    if (buffer) {
      flow.buffer->resize(*buffer, *this);
    }
    if (gapTimeout) {
      flow.buffer->setGapTimeout(*gapTimeout);
      flow.gapTimeout = *gapTimeout;
    }
  }
  flush();
}

nlohmann::json Egress::status(Nanos now) const {
  nlohmann::json flows = nlohmann::json::array();
  for (const auto &[id, flow] : flows_) {
    const ResequencingCounters &c = flow.buffer->counters();
    const PlayoutClock *playout = flow.playout;
    nlohmann::json paths = nlohmann::json::array();
    for (std::size_t p = 0; p < kMaxPaths; ++p) {
      const PathStats &s = flow.paths[p];
      if (s.parts == 0) {
        continue;
      }
      const auto hold = playout ? playout->pathHold(static_cast<PathId>(p), now) : std::nullopt;
      paths.push_back({{"id", p},
                       {"parts", s.parts},
                       {"bytes", s.bytes},
                       {"rate_bytes_per_s", s.rate},
                       {"relative_delay_us", s.owd / 1000},
                       {"playout_hold_us", hold ? hold->count() / 1000 : 0}});
    }
    flows.push_back({{"flow", id},
                     {"buffer", flow.buffer->capacity()},
                     {"buffer_auto", !buffer_.has_value()},
                     {"gap_timeout_ms", static_cast<double>(flow.gapTimeout.count()) / 1e6},
                     {"gap_timeout_auto", !gapTimeout_.has_value()},
                     {"occupancy", flow.buffer->occupancy()},
                     {"delivered", c.delivered},
                     {"reordered", c.reordered},
                     {"held", c.held},
                     {"playout_active", playout != nullptr && playout->active(now)},
                     {"peak_occupancy", c.peak_occupancy},
                     {"lost_overflow", c.lost_overflow},
                     {"lost_timeout", c.lost_timeout},
                     {"duplicates", c.duplicates},
                     {"too_old", c.too_old},
                     {"paths", paths}});
  }
  return {{"flows", flows},
          {"playout", playout_},
          {"express", express_},
          {"tun_write_errors", tunWriteErrors_},
          {"flows_refused", flowsRefused_}};
}

} // namespace nvbox::osr
