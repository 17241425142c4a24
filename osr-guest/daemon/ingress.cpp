#include "ingress.hpp"

#include "osr/pure_ack.hpp"
#include "osr/segment_assembler.hpp"
#include "osr/segment_cutter.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace nvbox::osr {
namespace {

// The IPv4 destination of an application packet; nothing for non-IPv4.
std::optional<std::uint32_t> ipv4Destination(std::span<const std::uint8_t> packet) noexcept {
  if (packet.size() < 20 || (packet[0] >> 4) != 4) {
    return std::nullopt;
  }
  return (std::uint32_t{packet[16]} << 24) | (std::uint32_t{packet[17]} << 16) |
         (std::uint32_t{packet[18]} << 8) | std::uint32_t{packet[19]};
}

constexpr std::size_t kSegmentHeader = SegmentCutter::kSegmentHeader;

} // namespace

Ingress::Ingress(const OverlayKey &key, Endpoint self, const PathMonitor::Config &probing,
                 std::size_t partSize)
    : auth_(key), self_(self), probing_(probing), partSize_(partSize) {}

Ingress::Stripe *Ingress::find(const std::string &name) {
  for (auto &s : stripes_) {
    if (s->spec.name == name) {
      return s.get();
    }
  }
  return nullptr;
}

Ingress::Stripe *Ingress::byFlow(std::uint32_t flow) noexcept {
  for (auto &s : stripes_) {
    if (s->spec.flow == flow) {
      return s.get();
    }
  }
  return nullptr;
}

void Ingress::addStripe(const StripeSpec &spec, Nanos now) {
  if (find(spec.name) != nullptr || byFlow(spec.flow) != nullptr) {
    throw std::invalid_argument("stripe '" + spec.name + "' or flow " + std::to_string(spec.flow) +
                                " exists already");
  }
  auto stripe = std::make_unique<Stripe>();
  stripe->spec = spec;
  stripe->scheduler = StripeScheduler(spec.policy);
  stripe->monitor = PathMonitor(probing_);
  stripes_.push_back(std::move(stripe));
  Stripe &s = *stripes_.back();
  s.spec.relays.clear();
  s.spec.rates.clear();
  for (std::size_t i = 0; i < spec.relays.size(); ++i) {
    addPath(spec.name, spec.relays[i], spec.rates.empty() ? 0 : spec.rates[i], now);
  }
}

PathId Ingress::addPath(const std::string &stripe, const Endpoint &relay, std::uint64_t rate,
                        Nanos now) {
  Stripe *s = find(stripe);
  if (s == nullptr) {
    throw std::invalid_argument("cannot find stripe '" + stripe + "'");
  }
  for (std::size_t id = 0; id < kMaxPaths; ++id) {
    if (!s->paths[id]) {
      const auto pid = static_cast<PathId>(id);
      s->estimator.addPath(pid, rate);
      // Until a rate is known every path weighs the same (the estimator's
      // stand-in for the adaptive scheduler).
      s->scheduler.addPath(pid, s->estimator.estimate(pid, now).rate, Nanos{0});
      s->scheduler.setPathUp(pid, false); // up once probes answer
      s->monitor.addPath(pid, now);
      s->monitor.setUrgent(pid, true);
      s->paths[id] = Path{relay, rate, 0, 0};
      return pid;
    }
  }
  throw std::invalid_argument("stripe '" + stripe + "' has " + std::to_string(kMaxPaths) +
                              " paths already");
}

void Ingress::removePath(const std::string &stripe, PathId path) {
  Stripe *s = find(stripe);
  if (s == nullptr) {
    throw std::invalid_argument("cannot find stripe '" + stripe + "'");
  }
  if (path >= kMaxPaths || !s->paths[path]) {
    throw std::invalid_argument("stripe '" + stripe + "' has no path " + std::to_string(path));
  }
  s->scheduler.removePath(path);
  s->monitor.removePath(path);
  s->estimator.removePath(path);
  s->paths[path].reset();
}

void Ingress::setRate(const std::string &stripe, PathId path, std::uint64_t rate) {
  Stripe *s = find(stripe);
  if (s == nullptr) {
    throw std::invalid_argument("cannot find stripe '" + stripe + "'");
  }
  if (path >= kMaxPaths || !s->paths[path]) {
    throw std::invalid_argument("stripe '" + stripe + "' has no path " + std::to_string(path));
  }
  s->paths[path]->rate = rate;
  s->estimator.setHint(path, rate);
  if (s->spec.policy != StripePolicy::Adaptive) {
    s->scheduler.setRate(path, rate == 0 ? PathEstimator::kDefaultRate : rate);
  }
}

void Ingress::setPolicy(const std::string &stripe, StripePolicy policy, Nanos now) {
  Stripe *s = find(stripe);
  if (s == nullptr) {
    throw std::invalid_argument("cannot find stripe '" + stripe + "'");
  }
  s->scheduler.setPolicy(policy);
  s->spec.policy = policy;
  for (std::size_t id = 0; id < kMaxPaths; ++id) {
    if (s->paths[id]) {
      const auto pid = static_cast<PathId>(id);
      const std::uint64_t declared = s->paths[id]->rate;
      if (policy == StripePolicy::Adaptive) {
        syncMeasured(*s, pid, now);
      } else {
        s->scheduler.setRate(pid, declared == 0 ? PathEstimator::kDefaultRate : declared);
      }
    }
  }
}

std::optional<PathId> Ingress::fastestPath(const Stripe &s, Nanos now) const noexcept {
  struct Best {
    std::optional<PathId> id;
    std::optional<Nanos> rtt;
    void offer(PathId pid, const std::optional<Nanos> &minRtt) noexcept {
      if (!id || (minRtt && (!rtt || *minRtt < *rtt))) {
        id = pid;
        rtt = minRtt;
      }
    }
  };
  Best fresh;
  Best up;
  for (std::size_t id = 0; id < kMaxPaths; ++id) {
    if (!s.paths[id]) {
      continue;
    }
    const auto pid = static_cast<PathId>(id);
    if (!s.scheduler.isUp(pid)) {
      continue; // down, or stalled
    }
    const PathHealth h = s.monitor.health(pid);
    // The minimum, not the smoothed RTT: a stable choice, so that ACKs do not
    // flap between paths of about equal delay and overtake one another.
    up.offer(pid, h.min_rtt);
    const Nanos due = kFreshProbes * probing_.probe_interval + h.srtt.value_or(Nanos{0});
    if (h.last_reply && now - *h.last_reply <= due) {
      fresh.offer(pid, h.min_rtt);
    }
  }
  return fresh.id ? fresh.id : up.id;
}

wire::Header Ingress::dataHeader(Stripe &s, PathId path, Nanos now) noexcept {
  wire::Header h;
  h.type = wire::PacketType::Data;
  h.flow_id = s.spec.flow;
  h.path_id = path;
  h.path_seq = s.paths[path]->nextPathSeq++;
  h.send_us = wireMicros(now);
  h.dst = s.spec.egress;
  return h;
}

bool Ingress::sendExpress(Stripe &s, std::span<const std::uint8_t> packet, Nanos now,
                          PacketBatch &out) noexcept {
  // Adaptive: the path where it arrives first (lowest delay, unless queued),
  // as the scheduler measures them; else the lowest minimum RTT.
  std::optional<PathId> path;
  if (s.spec.policy == StripePolicy::Adaptive) {
    if (const auto choice = s.scheduler.pick(0, packet.size() + kSegmentHeader, now)) {
      path = choice->path;
    }
  } else {
    path = fastestPath(s, now);
  }
  if (!path) {
    ++s.noPath;
    return false;
  }
  const auto slot = out.slot();
  if (packet.size() + kSegmentHeader > wire::kMaxPayload ||
      slot.size() < wire::packetSize(packet.size() + kSegmentHeader)) {
    return false;
  }
  wire::Header h = dataHeader(s, *path, now);
  h.flags = wire::kFlagFirst | wire::kFlagLast | wire::kFlagExpress;
  // Not a number of the sequence: the next one, so that the egress knows
  // the path is past everything before it (FeedbackMeter).
  h.seq = s.nextSeq;
  const SegmentCutter cutter(packet, 0, packet.size() + kSegmentHeader);
  const auto payload = slot.subspan(wire::kHeaderSize, cutter.size(0));
  cutter.write(0, payload);
  const std::size_t n = wire::encode(h, payload, auth_, slot);
  if (n == 0) {
    return false;
  }
  out.commit(n, s.paths[*path]->relay);
  s.estimator.onSent(*path, payload.size(), now);
  ++s.paths[*path]->express;
  ++s.express;
  ++s.packets;
  s.bytes += packet.size();
  return true;
}

std::size_t Ingress::partsFor(std::size_t bytes) const noexcept {
  return SegmentCutter::partsFor(bytes, partSize_);
}

bool Ingress::send(std::span<const std::uint8_t> packet, std::uint16_t mss, Nanos now,
                   PacketBatch &out) noexcept {
  const auto dst = ipv4Destination(packet);
  const std::size_t parts = partsFor(packet.size());
  if (!dst || PacketBatch::kBatch - out.size() < parts ||
      packet.size() > SegmentAssembler::kMaxSegment) {
    return false;
  }
  for (auto &ptr : stripes_) {
    Stripe &s = *ptr;
    if (!s.spec.dst.contains(*dst)) {
      continue;
    }
    if (mss == 0 && s.spec.expressAcks && isPureTcpAck(packet)) {
      return sendExpress(s, packet, now, out);
    }
    if (s.scheduler.activeCount() == 0) {
      ++s.noPath;
      return false;
    }
    const SegmentCutter cutter(packet, mss, partSize_);
    for (std::size_t i = 0; i < parts; ++i) {
      const std::size_t size = cutter.size(i);
      // The equal policy deals parts round robin (part_index mod k).
      const auto choice =
          s.scheduler.pick(static_cast<std::uint8_t>(s.parts % kMaxPaths), size, now);
      if (!choice) {
        ++s.noPath; // cannot happen: the active count was checked
        return false;
      }
      wire::Header h = dataHeader(s, choice->path, now);
      h.flags = cutter.flags(i);
      h.seq = s.nextSeq++;
      const auto slot = out.slot();
      const auto payload = slot.subspan(wire::kHeaderSize, size);
      cutter.write(i, payload);
      const std::size_t n = wire::encode(h, payload, auth_, slot);
      if (n == 0) {
        return false; // a part size beyond the batch's buffers: a configuration error
      }
      out.commit(n, s.paths[choice->path]->relay);
      s.estimator.onSent(choice->path, size, now);
      ++s.parts;
    }
    ++s.packets;
    s.bytes += packet.size();
    return true;
  }
  return false;
}

std::optional<Nanos> Ingress::holdUntil(Nanos now) const noexcept {
  std::optional<Nanos> until;
  for (const auto &ptr : stripes_) {
    const Stripe &s = *ptr;
    if (s.spec.policy != StripePolicy::Adaptive) {
      continue;
    }
    std::optional<Nanos> least;
    for (std::size_t id = 0; id < kMaxPaths; ++id) {
      const auto pid = static_cast<PathId>(id);
      if (!s.paths[id] || !s.scheduler.isUp(pid)) {
        continue;
      }
      // Only on measurements: before the egress reports, the model holds
      // nothing but a guess at the rate.
      const Nanos b = s.estimator.fresh(pid, now) ? s.scheduler.backlog(pid, now) : Nanos(0);
      least = least ? std::min(*least, b) : b;
    }
    if (least && *least > kHoldBacklog) {
      const Nanos room = now + (*least - kHoldBacklog);
      until = until ? std::min(*until, room) : room;
    }
  }
  return until;
}

void Ingress::sendProbe(Stripe &s, PathId id, Nanos now, PacketBatch &out) noexcept {
  if (out.full()) {
    return;
  }
  const auto seq = s.monitor.onProbeSent(id, now);
  if (!seq) {
    return;
  }
  // The probe goes to the egress through the relay; the egress sends the
  // reply back the same way, addressed to this router (named in the payload).
  const PathHealth health = s.monitor.health(id);
  const auto minRttUs = health.min_rtt ? health.min_rtt->count() / 1000 : 0;
  std::array<std::uint8_t, wire::kProbeInfoSize> info{};
  wire::encodeProbeInfo(wire::ProbeInfo{.back = self_,
                                        .next_path_seq = s.paths[id]->nextPathSeq,
                                        .next_seq = s.nextSeq,
                                        .min_rtt_us = static_cast<std::uint32_t>(
                                            std::min<std::int64_t>(minRttUs, UINT32_MAX))},
                        info);
  wire::Header h;
  h.type = wire::PacketType::Probe;
  h.flow_id = s.spec.flow;
  h.seq = *seq;
  h.path_id = id;
  h.send_us = wireMicros(now);
  h.dst = s.spec.egress;
  const std::size_t n = wire::encode(h, info, auth_, out.slot());
  if (n != 0) {
    out.commit(n, s.paths[id]->relay);
  }
}

void Ingress::syncUp(Stripe &s, PathId id) noexcept {
  const PathHealth health = s.monitor.health(id);
  const bool stalled = s.estimator.stalled(id);
  s.scheduler.setPathUp(id, health.up && !stalled);
  s.monitor.setUrgent(id, !health.up || stalled);
  if (health.min_rtt) {
    s.estimator.setMinRtt(id, *health.min_rtt);
    // The minimum RTT: the scheduler models queueing itself (bytes sent /
    // rate), so a smoothed RTT, which already holds the queue, would count
    // it twice. The egress's measured one-way delays replace it once they
    // come (syncMeasured).
    if (s.spec.policy != StripePolicy::Adaptive || !s.estimator.measuredDelay(id)) {
      s.scheduler.setDelay(id, *health.min_rtt / 2);
    }
  }
}

void Ingress::syncMeasured(Stripe &s, PathId id, Nanos now) noexcept {
  const PathEstimate e = s.estimator.estimate(id, now);
  s.scheduler.setRate(id, e.rate);
  const PathHealth health = s.monitor.health(id);
  if (e.delay) {
    s.scheduler.setDelay(id, *e.delay);
  } else if (health.min_rtt) {
    s.scheduler.setDelay(id, *health.min_rtt / 2);
  }
  if (e.fresh) {
    s.scheduler.setBacklog(id, e.backlog, now);
  }
}

void Ingress::tick(Nanos now, PacketBatch &out) noexcept {
  for (auto &ptr : stripes_) {
    Stripe &s = *ptr;
    const std::uint16_t down = s.monitor.tick(now);
    const std::uint16_t stalled = s.estimator.tick(now);
    for (std::size_t id = 0; id < kMaxPaths; ++id) {
      if (!s.paths[id]) {
        continue;
      }
      const auto pid = static_cast<PathId>(id);
      if ((((down | stalled) >> id) & 1U) != 0) {
        ++s.failovers;
        syncUp(s, pid);
      }
      if (s.monitor.probeDue(pid, now)) {
        sendProbe(s, pid, now, out);
      }
    }
  }
}

void Ingress::onProbeReply(const wire::Header &header, Nanos now) noexcept {
  Stripe *s = byFlow(header.flow_id);
  if (s == nullptr || !s->paths[header.path_id]) {
    return;
  }
  if (s->monitor.onReply(header.path_id, header.seq, now) != ReplyResult::Stray) {
    // The reply echoes our send time: how long ago the probe left.
    const Nanos age = std::chrono::microseconds(wireMicros(now) - header.send_us);
    s->estimator.onProbeReply(header.path_id, now - age);
  }
  syncUp(*s, header.path_id);
}

void Ingress::onFeedback(const wire::Header &header, std::span<const std::uint8_t> payload,
                         Nanos now) noexcept {
  Stripe *s = byFlow(header.flow_id);
  if (s == nullptr) {
    return;
  }
  wire::Feedback f;
  if (wire::parseFeedback(payload, f) != wire::FeedbackStatus::Ok) {
    ++s->feedbackMalformed;
    return;
  }
  if (s->estimator.onFeedback(header.seq, header.send_us, f, wireMicros(now), now) !=
      FeedbackResult::Accepted) {
    return;
  }
  for (std::size_t id = 0; id < kMaxPaths; ++id) {
    if (!s->paths[id]) {
      continue;
    }
    const auto pid = static_cast<PathId>(id);
    if (s->spec.policy == StripePolicy::Adaptive) {
      syncMeasured(*s, pid, now);
    }
    syncUp(*s, pid); // a stalled path that delivers again is back
  }
}

std::vector<Ingress::PathView> Ingress::paths(const std::string &stripe) const {
  std::vector<PathView> out;
  for (const auto &ptr : stripes_) {
    if (ptr->spec.name != stripe) {
      continue;
    }
    for (std::size_t id = 0; id < kMaxPaths; ++id) {
      if (ptr->paths[id]) {
        const auto pid = static_cast<PathId>(id);
        const PathHealth h = ptr->monitor.health(pid);
        out.push_back(PathView{pid, ptr->paths[id]->relay, h.up, h.went_down});
      }
    }
  }
  return out;
}

nlohmann::json Ingress::status(Nanos now) const {
  nlohmann::json stripes = nlohmann::json::array();
  for (const auto &ptr : stripes_) {
    const Stripe &s = *ptr;
    nlohmann::json paths = nlohmann::json::array();
    for (std::size_t id = 0; id < kMaxPaths; ++id) {
      if (!s.paths[id]) {
        continue;
      }
      const auto pid = static_cast<PathId>(id);
      const PathHealth h = s.monitor.health(pid);
      const PathCounters c = s.scheduler.counters(pid);
      const PathEstimate e = s.estimator.estimate(pid, now);
      const auto loss = s.monitor.lossRate(pid, now);
      paths.push_back({{"id", id},
                       {"relay", s.paths[id]->relay.toString()},
                       {"rate", s.paths[id]->rate},
                       {"up", h.up && !e.stalled},
                       {"probes_up", h.up},
                       {"stalled", e.stalled},
                       {"rtt_us", h.srtt ? h.srtt->count() / 1000 : -1},
                       {"min_rtt_us", h.min_rtt ? h.min_rtt->count() / 1000 : -1},
                       {"loss", loss ? *loss : 0.0},
                       {"measured_rate", e.measured},
                       {"queue_us", e.fresh ? e.queue.count() / 1000 : -1},
                       {"delay_us", e.delay ? e.delay->count() / 1000 : -1},
                       {"share", e.share},
                       {"lost", e.lost},
                       {"feedback", e.fresh},
                       {"stalls", e.stalls},
                       {"parts", c.parts},
                       {"bytes", c.bytes},
                       {"express", s.paths[id]->express},
                       {"probes_sent", h.probes_sent},
                       {"probe_replies", h.replies},
                       {"went_down", h.went_down},
                       {"went_up", h.went_up}});
    }
    const FeedbackCounters &fb = s.estimator.counters();
    stripes.push_back({{"name", s.spec.name},
                       {"flow", s.spec.flow},
                       {"dst", s.spec.dst.toString()},
                       {"egress", s.spec.egress.toString()},
                       {"scheduler", toString(s.spec.policy)},
                       {"acks", s.spec.expressAcks ? "express" : "striped"},
                       {"k", s.scheduler.activeCount()},
                       {"packets", s.packets},
                       {"bytes", s.bytes},
                       {"parts", s.parts},
                       {"no_path", s.noPath},
                       {"express", s.express},
                       {"paths_went_down", s.failovers},
                       {"feedback",
                        {{"accepted", fb.accepted},
                         {"stale", fb.stale},
                         {"clamped", fb.clamped},
                         {"malformed", s.feedbackMalformed}}},
                       {"paths", paths}});
  }
  return stripes;
}

} // namespace nvbox::osr
