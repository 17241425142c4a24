#include "egress.hpp"

#include "ingress.hpp"

#include <sodium.h>

#include <algorithm>
#include <cstring>

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

struct Egress::Flow final : ResequencingSink {
  struct PathStats {
    std::uint64_t parts = 0;
    std::uint64_t bytes = 0;
    std::uint64_t windowBytes = 0;      // since the last resize()
    std::optional<std::int64_t> owdMin; // min transit, this window
    std::optional<std::int64_t> owdMax; // max transit, this window
    double rate = 0;                    // bytes/s over the last window
    double peakRate = 0;                // decaying maximum of `rate`
    std::int64_t owd = 0;               // relative one-way delay, ns
  };

  Flow(Egress &e, Nanos silence) noexcept
      : egress(e), meter(randombytes_random(), silence),
        playout(PlayoutClock::kDefaultMinSpread, silence) {}

  void deliver(const Part &part) override { assembler->deliver(part, egress); }
  void lost(std::uint32_t /*first*/, std::uint32_t /*count*/, LossCause /*cause*/) override {
    assembler->lost(egress); // TCP above recovers the packets
  }

  Egress &egress;
  FeedbackMeter meter;
  PlayoutClock playout;
  std::uint32_t feedbackSeq = 0;
  // From the flow's first part on.
  std::unique_ptr<ResequencingBuffer> buffer;
  std::unique_ptr<SegmentAssembler> assembler;
  std::array<PathStats, kMaxPaths> paths{};
  Nanos windowStart{};
  Nanos gapTimeout{};
  std::uint64_t overflowSeen = 0; // lost_overflow already acted on
  std::uint64_t tooOldSeen = 0;   // too_old already acted on
  std::uint64_t timeoutSeen = 0;  // lost_timeout at the last gap growth
  Nanos holdUntil{};              // no shrinking before this
  bool autoSized = true;
};

Egress::Egress(TunWriter &tun, std::optional<std::size_t> buffer, std::optional<Nanos> gapTimeout,
               std::size_t maxPartBytes, bool playout, Nanos pathSilence)
    : tun_(tun), buffer_(buffer), gapTimeout_(gapTimeout), maxPartBytes_(maxPartBytes),
      playout_(playout), pathSilence_(pathSilence) {
  if (tun_.tso()) {
    gro_ = std::make_unique<GroCoalescer>();
  } else {
    scratch_.resize(SegmentAssembler::kMaxSegment);
  }
}

Egress::~Egress() = default;

void Egress::TunOut::write(const VirtioNetHdr &hdr, std::span<const std::uint8_t> packet) noexcept {
  if (!egress_.tun_.write(hdr, packet)) {
    ++egress_.tunWriteErrors_;
  }
}

void Egress::TunOut::segment(std::span<const std::uint8_t> packet, std::uint16_t /*mss*/) noexcept {
  write(VirtioNetHdr{}, packet);
}

void Egress::write(const VirtioNetHdr &hdr, std::span<const std::uint8_t> packet) noexcept {
  if (hdr == VirtioNetHdr{}) {
    // A plain packet: consecutive TCP segments may join a super-packet.
    if (gro_) {
      gro_->add(packet, tunOut_);
    } else {
      tunOut_.write(hdr, packet);
    }
    return;
  }
  if (gro_) {
    gro_->flush(tunOut_); // the order of the flow's packets is kept
    tunOut_.write(hdr, packet);
    return;
  }
  // The device takes no super-packets: cut it here (in a copy: the splitter
  // writes headers over the payload).
  const std::size_t n = std::min(packet.size(), scratch_.size());
  std::memcpy(scratch_.data(), packet.data(), n);
  splitter_.split(hdr, std::span(scratch_.data(), n), tunOut_);
}

void Egress::flush() noexcept {
  if (gro_) {
    gro_->flush(tunOut_);
  }
}

Egress::Flow *Egress::flow(std::uint32_t flowId, Nanos now) noexcept {
  const auto it = flows_.find(flowId);
  if (it != flows_.end()) {
    return it->second.get();
  }
  if (flows_.size() >= kMaxFlows) {
    ++flowsRefused_;
    return nullptr;
  }
  try {
    auto flow = std::make_unique<Flow>(*this, pathSilence_);
    flow->windowStart = now;
    return flows_.emplace(flowId, std::move(flow)).first->second.get();
  } catch (...) {
    ++flowsRefused_; // out of memory: refuse the flow, keep running
    return nullptr;
  }
}

void Egress::onProbe(const wire::Header &header, const wire::ProbeInfo &info, const Endpoint &from,
                     Nanos now) noexcept {
  Flow *f = flow(header.flow_id, now);
  if (f == nullptr) {
    return;
  }
  const Nanos transit = f->meter.transit(header.send_us, now);
  f->meter.onProbe(header, info, transit, from, now);
  if (playout_) {
    f->playout.observe(header.path_id, transit, now);
  }
  // A probe may prove the gap the buffer waits on lost (FeedbackMeter).
  if (f->buffer) {
    if (const auto end = f->meter.lostBefore(now)) {
      f->buffer->releaseLost(*end, now, *f);
    }
  }
}

void Egress::onData(const wire::Header &header, std::span<const std::uint8_t> payload,
                    const Endpoint &from, Nanos now) noexcept {
  Flow *f = flow(header.flow_id, now);
  if (f == nullptr) {
    return;
  }
  const Nanos transit = f->meter.transit(header.send_us, now);
  f->meter.onData(header, payload.size(), transit, from, now);
  if (playout_) {
    f->playout.observe(header.path_id, transit, now);
  }
  if ((header.flags & wire::kFlagExpress) != 0) {
    if (!f->assembler) {
      try {
        f->assembler = std::make_unique<SegmentAssembler>();
      } catch (...) {
        return;
      }
    }
    f->assembler->whole(payload, *this);
    ++express_;
    return;
  }
  if (!f->buffer) {
    ResequencingBuffer::Config config;
    config.capacity = buffer_.value_or(kInitialBuffer);
    config.gap_timeout = gapTimeout_.value_or(kInitialTimeout);
    config.max_part_bytes = maxPartBytes_;
    config.first_seq = header.seq;
    try {
      f->buffer = std::make_unique<ResequencingBuffer>(config);
      if (!f->assembler) {
        f->assembler = std::make_unique<SegmentAssembler>();
      }
    } catch (...) {
      f->buffer.reset();
      ++flowsRefused_; // out of memory: drop the part, keep running
      return;
    }
    f->windowStart = now;
    f->gapTimeout = config.gap_timeout;
    f->autoSized = !buffer_ || !gapTimeout_;
  }
  Flow::PathStats &path = f->paths[header.path_id];
  ++path.parts;
  path.bytes += payload.size();
  path.windowBytes += payload.size();
  const std::int64_t owd = transit.count();
  path.owdMin = path.owdMin ? std::min(*path.owdMin, owd) : owd;
  path.owdMax = path.owdMax ? std::max(*path.owdMax, owd) : owd;
  Part part;
  part.seq = header.seq;
  part.flags = header.flags;
  part.path_id = header.path_id;
  part.payload = payload;
  if (playout_) {
    if (const Nanos hold = f->playout.hold(transit, now); hold > Nanos(0)) {
      part.due = now + hold;
    }
  }
  f->buffer->push(part, now, *f);
  if (const auto end = f->meter.lostBefore(now)) {
    f->buffer->releaseLost(*end, now, *f);
  }
  if (f->autoSized) {
    adapt(*f, now);
  }
}

void Egress::sendFeedback(Nanos now, PacketAuthenticator &auth, PacketBatch &out) noexcept {
  for (auto &[id, f] : flows_) {
    if (!f->meter.due(now)) {
      continue;
    }
    const auto routes = f->meter.routes(now);
    if (!routes[0].valid() || PacketBatch::kBatch - out.size() < 2) {
      continue; // the next batch, or the next tick
    }
    const wire::Feedback feedback = f->meter.take(now);
    std::array<std::uint8_t, wire::kMaxFeedbackSize> payload{};
    const std::size_t size = wire::encodeFeedback(feedback, payload);
    wire::Header h;
    h.type = wire::PacketType::Feedback;
    h.flow_id = id;
    h.seq = ++f->feedbackSeq;
    h.send_us = wireMicros(now);
    h.dst = *f->meter.ingress();
    const std::size_t n = wire::encode(h, std::span(payload.data(), size), auth, out.slot());
    if (n == 0) {
      continue;
    }
    const auto bytes = out.slot().first(n);
    out.commit(n, routes[0]);
    if (routes[1].valid()) {
      // The same datagram by a second relay: one dead path does not silence it.
      out.push(std::span<const std::uint8_t>(bytes.data(), n), routes[1]);
    }
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
            std::min(current + current / 2 + 1, ResequencingBuffer::kMaxSizedCapacity), flow);
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
  for (auto &[id, f] : flows_) {
    if (f->buffer) {
      f->buffer->expire(now, *f);
    }
  }
}

std::optional<Nanos> Egress::nextRelease() const noexcept {
  std::optional<Nanos> next;
  for (const auto &[id, f] : flows_) {
    if (!f->buffer) {
      continue;
    }
    if (const auto due = f->buffer->nextRelease(); due && (!next || *due < *next)) {
      next = due;
    }
  }
  return next;
}

void Egress::resize(Nanos now) {
  for (auto &[id, f] : flows_) {
    Flow &flow = *f;
    const double seconds = std::chrono::duration<double>(now - flow.windowStart).count();
    if (seconds <= 0 || !flow.buffer) {
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
      flow.buffer->resize(target, flow);
    }
    if (!gapTimeout_) {
      // A flow of a few parts a second (a stripe of ACKs) reads as a path
      // taking seconds per part; no gap is worth waiting on that long, and
      // the paths' sequence numbers declare most losses sooner anyway.
      const Nanos gap =
          std::min(std::max(sizing.gap_timeout,
                            hold ? flow.gapTimeout : flow.gapTimeout - flow.gapTimeout / 16),
                   kMaxGapTimeout);
      flow.buffer->setGapTimeout(gap);
      flow.gapTimeout = gap;
    }
  }
  flush(); // resizing may have released packets
}

void Egress::setBuffer(std::optional<std::size_t> buffer, std::optional<Nanos> gapTimeout) {
  buffer_ = buffer;
  gapTimeout_ = gapTimeout;
  for (auto &[id, f] : flows_) {
    if (!f->buffer) {
      continue;
    }
    f->autoSized = !buffer || !gapTimeout;
    if (buffer) {
      f->buffer->resize(*buffer, *f);
    }
    if (gapTimeout) {
      f->buffer->setGapTimeout(*gapTimeout);
      f->gapTimeout = *gapTimeout;
    }
  }
  flush();
}

nlohmann::json Egress::status(Nanos now) const {
  nlohmann::json flows = nlohmann::json::array();
  for (const auto &[id, f] : flows_) {
    if (!f->buffer) {
      continue;
    }
    const Flow &flow = *f;
    const ResequencingCounters &c = flow.buffer->counters();
    const SegmentCounters &sc = flow.assembler->counters();
    nlohmann::json paths = nlohmann::json::array();
    for (std::size_t p = 0; p < kMaxPaths; ++p) {
      const Flow::PathStats &s = flow.paths[p];
      if (s.parts == 0) {
        continue;
      }
      const auto pid = static_cast<PathId>(p);
      const auto hold = playout_ ? flow.playout.pathHold(pid, now) : std::nullopt;
      const FeedbackMeter::PathView view = flow.meter.path(pid, now);
      paths.push_back({{"id", p},
                       {"parts", s.parts},
                       {"bytes", s.bytes},
                       {"rate_bytes_per_s", s.rate},
                       {"relative_delay_us", s.owd / 1000},
                       {"queue_us", view.queue.count() / 1000},
                       {"lost", view.lost},
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
                     {"playout_active", playout_ && flow.playout.active(now)},
                     {"peak_occupancy", c.peak_occupancy},
                     {"lost_overflow", c.lost_overflow},
                     {"lost_timeout", c.lost_timeout},
                     {"lost_inferred", c.lost_inferred},
                     {"duplicates", c.duplicates},
                     {"too_old", c.too_old},
                     {"segments", sc.segments},
                     {"segment_runs", sc.runs},
                     {"segments_malformed", sc.malformed},
                     {"parts_orphaned", sc.orphans},
                     {"parts_dropped", sc.dropped_parts},
                     {"feedback_sent", flow.meter.feedbackSent()},
                     {"paths", paths}});
  }
  return {{"flows", flows},
          {"playout", playout_},
          {"express", express_},
          {"tun_write_errors", tunWriteErrors_},
          {"flows_refused", flowsRefused_}};
}

} // namespace nvbox::osr
