#include "ingress.hpp"

#include "osr/pure_ack.hpp"

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

std::uint64_t nanosOf(Nanos t) {
  return static_cast<std::uint64_t>(t.count());
}

} // namespace

Ingress::Ingress(const OverlayKey &key, Endpoint self, const PathMonitor::Config &probing)
    : auth_(key), self_(self), probing_(probing) {}

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
  auto stripe = std::make_unique<Stripe>(Stripe{
      spec, StripeScheduler(spec.policy), PathMonitor(probing_), {}, 0, 0, 0, 0, 0, 0, 0, 0, 0});
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
      // Until a rate is known every path weighs the same.
      s->scheduler.addPath(pid, rate == 0 ? 1'000'000 : rate, Nanos{0});
      s->scheduler.setPathUp(pid, false); // up once probes answer
      s->monitor.addPath(pid, now);
      s->paths[id] = Path{relay, rate, 0};
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
  s->scheduler.setRate(path, rate == 0 ? 1'000'000 : rate);
  s->paths[path]->rate = rate;
}

void Ingress::setPolicy(const std::string &stripe, StripePolicy policy) {
  Stripe *s = find(stripe);
  if (s == nullptr) {
    throw std::invalid_argument("cannot find stripe '" + stripe + "'");
  }
  s->scheduler.setPolicy(policy);
  s->spec.policy = policy;
}

std::uint8_t Ingress::activePaths(const Stripe &s) noexcept {
  return s.scheduler.activeCount();
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
    const PathHealth h = s.monitor.health(pid);
    if (!h.up) {
      continue;
    }
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

bool Ingress::sendExpress(Stripe &s, std::span<const std::uint8_t> packet, Nanos now,
                          PacketBatch &out) noexcept {
  const auto path = fastestPath(s, now);
  if (!path) {
    ++s.noPath;
    return false;
  }
  wire::Header h;
  h.type = wire::PacketType::Data;
  h.flags = wire::kFlagExpress;
  h.flow_id = s.spec.flow;
  h.path_id = *path;
  h.send_ns = nanosOf(now);
  h.dst = s.spec.egress;
  const std::size_t n = wire::encode(h, packet, auth_, out.slot());
  if (n == 0) {
    return false;
  }
  out.commit(n, s.paths[*path]->relay);
  ++s.paths[*path]->express;
  ++s.express;
  ++s.packets;
  s.bytes += packet.size();
  return true;
}

bool Ingress::send(std::span<const std::uint8_t> packet, Nanos now, PacketBatch &out) noexcept {
  const auto dst = ipv4Destination(packet);
  if (!dst || out.full() || packet.size() > wire::kMaxPayload) {
    return false;
  }
  for (auto &ptr : stripes_) {
    Stripe &s = *ptr;
    if (!s.spec.dst.contains(*dst)) {
      continue;
    }
    if (s.spec.expressAcks && isPureTcpAck(packet)) {
      return sendExpress(s, packet, now, out);
    }
    if (s.partIndex == 0 || s.partIndex >= s.k) {
      // A new segment: k is fixed for all of its parts.
      s.partIndex = 0;
      s.k = activePaths(s);
    }
    if (s.k == 0) {
      ++s.noPath;
      return false;
    }
    const auto choice = s.scheduler.pick(s.partIndex, packet.size(), now);
    if (!choice) {
      ++s.noPath;
      return false;
    }
    wire::Header h;
    h.type = wire::PacketType::Data;
    h.flow_id = s.spec.flow;
    h.seq = s.nextSeq;
    h.segment = s.segment;
    h.part_index = s.partIndex;
    h.k = s.k;
    h.path_id = choice->path;
    h.send_ns = nanosOf(now);
    h.dst = s.spec.egress;
    const std::size_t n = wire::encode(h, packet, auth_, out.slot());
    if (n == 0) {
      return false;
    }
    out.commit(n, s.paths[choice->path]->relay);
    ++s.nextSeq;
    ++s.packets;
    s.bytes += packet.size();
    if (++s.partIndex >= s.k) {
      s.partIndex = 0;
      ++s.segment;
    }
    return true;
  }
  return false;
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
  std::array<std::uint8_t, 6> back{};
  back[0] = static_cast<std::uint8_t>(self_.addr >> 24);
  back[1] = static_cast<std::uint8_t>(self_.addr >> 16);
  back[2] = static_cast<std::uint8_t>(self_.addr >> 8);
  back[3] = static_cast<std::uint8_t>(self_.addr);
  back[4] = static_cast<std::uint8_t>(self_.port >> 8);
  back[5] = static_cast<std::uint8_t>(self_.port);
  wire::Header h;
  h.type = wire::PacketType::Probe;
  h.flow_id = s.spec.flow;
  h.seq = *seq;
  h.path_id = id;
  h.send_ns = nanosOf(now);
  h.dst = s.spec.egress;
  const std::size_t n = wire::encode(h, back, auth_, out.slot());
  if (n != 0) {
    out.commit(n, s.paths[id]->relay);
  }
}

void Ingress::syncUp(Stripe &s, PathId id) noexcept {
  const PathHealth health = s.monitor.health(id);
  s.scheduler.setPathUp(id, health.up);
  // The minimum RTT: the scheduler models queueing itself (bytes sent / rate),
  // so a smoothed RTT, which already holds the queue, would count it twice.
  if (health.min_rtt) {
    s.scheduler.setDelay(id, *health.min_rtt / 2);
  }
}

void Ingress::tick(Nanos now, PacketBatch &out) noexcept {
  for (auto &ptr : stripes_) {
    Stripe &s = *ptr;
    const std::uint16_t down = s.monitor.tick(now);
    for (std::size_t id = 0; id < kMaxPaths; ++id) {
      if (!s.paths[id]) {
        continue;
      }
      const auto pid = static_cast<PathId>(id);
      if ((down >> id) & 1U) {
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
  if (s == nullptr || header.path_id >= kMaxPaths || !s->paths[header.path_id]) {
    return;
  }
  s->monitor.onReply(header.path_id, header.seq, now);
  syncUp(*s, header.path_id);
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
      const auto loss = s.monitor.lossRate(pid, now);
      paths.push_back({{"id", id},
                       {"relay", s.paths[id]->relay.toString()},
                       {"rate", s.paths[id]->rate},
                       {"up", h.up},
                       {"rtt_us", h.srtt ? h.srtt->count() / 1000 : -1},
                       {"min_rtt_us", h.min_rtt ? h.min_rtt->count() / 1000 : -1},
                       {"loss", loss ? *loss : 0.0},
                       {"parts", c.parts},
                       {"bytes", c.bytes},
                       {"express", s.paths[id]->express},
                       {"probes_sent", h.probes_sent},
                       {"probe_replies", h.replies},
                       {"went_down", h.went_down},
                       {"went_up", h.went_up}});
    }
    stripes.push_back({{"name", s.spec.name},
                       {"flow", s.spec.flow},
                       {"dst", s.spec.dst.toString()},
                       {"egress", s.spec.egress.toString()},
                       {"scheduler", toString(s.spec.policy)},
                       {"acks", s.spec.expressAcks ? "express" : "striped"},
                       {"k", activePaths(s)},
                       {"packets", s.packets},
                       {"bytes", s.bytes},
                       {"no_path", s.noPath},
                       {"express", s.express},
                       {"paths_went_down", s.failovers},
                       {"paths", paths}});
  }
  return stripes;
}

} // namespace nvbox::osr
