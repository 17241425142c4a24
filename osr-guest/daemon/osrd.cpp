#include "osrd.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <cstring>
#include <ctime>
#include <ifaddrs.h>
#include <netinet/in.h>

namespace nvbox::osr {
namespace {

constexpr auto kTick = std::chrono::milliseconds(5);
// With a delay line the tick is its release granularity.
constexpr auto kDelayTick = std::chrono::milliseconds(1);
constexpr std::size_t kDelayLineCapacity = 16384;
// The largest packet a TUN device with TSO hands over: an IPv4 total length
// (GSO_LEGACY_MAX_SIZE is 64 KiB), with a little room to spare.
constexpr std::size_t kTunSuperPacket = 65536 + 256;

} // namespace

Nanos monotonicNow() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return Nanos(static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec);
}

Nanos realtimeNow() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return Nanos(static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec);
}

Osrd::Osrd(const OsrdConfig &config)
    : config_(config), auth_(config.key), started_(monotonicNow()),
      socket_(config.listen, 4 << 20, config.offload),
      tun_(config.tunName, config.mtu, config.tunAddress, config.offload),
      ingress_(config.key, config.listen,
               PathMonitor::Config{.probe_interval = config.probeInterval,
                                   .down_after = config.downAfter,
                                   .reply_timeout = config.downAfter},
               static_cast<std::size_t>(config.pathMtu) - wire::kIpUdpOverhead),
      egress_(tun_, config.buffer, config.gapTimeout, PacketBatch::kBufferSize, config.playout,
              // An idle path is heard only through the ingress's probes; the
              // overlay's OSRs normally share one probe interval (PlayoutClock).
              std::max<Nanos>(PlayoutClock::kDefaultSilence, 3 * config.probeInterval)),
      hello_(config.key, [this](const Endpoint &ep) { return isLocal(ep); }),
      tunBuf_(tun_.vnetHdr() ? kTunSuperPacket : PacketBatch::kBufferSize),
      splitter_(SegmentAssembler::kMaxSegment, TsoSplitter::Mode::Whole) {
  refreshLocalAddresses();
  const Nanos now = monotonicNow();
  for (const auto &stripe : config_.stripes) {
    ingress_.addStripe(stripe, now);
    if (config_.tunRoutes) {
      tun_.addRoute(stripe.dst);
    }
  }
  control_ = std::make_unique<ControlServer>(
      loop_, config_.controlPath, [this](const nlohmann::json &r) { return control(r); });
  loop_.watch(socket_.fd(), [this] { onTunnel(); });
  loop_.watch(tun_.fd(), [this] { onTun(); });
  if (config_.relayDelay.count() > 0) {
    delayLine_ = std::make_unique<DelayLine>(kDelayLineCapacity, config_.relayDelay);
  }
  if (config_.oracle) {
    // The control channel: its own socket on this router's address.
    oracleSocket_ = std::make_unique<UdpSocket>(Endpoint{config_.listen.addr, 0}, 1 << 20);
    prober_ = std::make_unique<PeerProber>(config_.key, config_.listen, config_.peers,
                                           config_.reportInterval, config_.group);
    signaling_ = std::make_unique<OracleSignaling>(
        config_.key,
        OracleSignaling::Config{.oracle = *config_.oracle,
                                .self = config_.listen,
                                .requery = config_.requeryInterval,
                                .threshold = config_.requeryThreshold},
        *oracleSocket_, ingress_, config_.stripes);
    loop_.watch(oracleSocket_->fd(),
                [this] { signaling_->onReadable(monotonicNow(), realtimeNow()); });
  }
  loop_.every(delayLine_ ? Nanos(kDelayTick) : Nanos(kTick), [this] { onTick(); });
  // Held parts are due at arbitrary times; the tick would add up to 5 ms.
  playoutAlarm_ = loop_.alarm([this] { onPlayout(); });
  holdAlarm_ = loop_.alarm([this] { onHoldEnd(); });
}

void Osrd::armPlayout() noexcept {
  const auto due = egress_.nextRelease();
  if (due && (!playoutArmed_ || *due < *playoutArmed_)) {
    loop_.armAt(playoutAlarm_, *due);
    playoutArmed_ = due;
  }
}

void Osrd::onPlayout() noexcept {
  playoutArmed_.reset();
  egress_.expire(monotonicNow());
  egress_.flush();
  armPlayout();
}

void Osrd::refreshLocalAddresses() {
  ifaddrs *list = nullptr;
  if (::getifaddrs(&list) != 0) {
    return;
  }
  std::set<std::uint32_t> addrs;
  for (const ifaddrs *ifa = list; ifa != nullptr; ifa = ifa->ifa_next) {
    if (ifa->ifa_addr != nullptr && ifa->ifa_addr->sa_family == AF_INET) {
      sockaddr_in sin{};
      std::memcpy(&sin, ifa->ifa_addr, sizeof sin);
      addrs.insert(ntohl(sin.sin_addr.s_addr));
    }
  }
  ::freeifaddrs(list);
  localAddrs_ = std::move(addrs);
}

bool Osrd::isLocal(const Endpoint &ep) const noexcept {
  if (ep.port != config_.listen.port) {
    return false;
  }
  return (config_.listen.addr != 0 && ep.addr == config_.listen.addr) ||
         localAddrs_.contains(ep.addr);
}

void Osrd::flush() noexcept {
  const std::size_t n = tx_->size();
  if (n == 0) {
    return;
  }
  const std::size_t dropped = socket_.send(*tx_);
  counters_.tx += n - dropped;
  counters_.sendDrops += dropped;
}

void Osrd::onTunnel() noexcept {
  const Nanos now = monotonicNow();
  const std::size_t n = socket_.receive(*rx_);
  for (std::size_t i = 0; i < n; ++i) {
    ++counters_.rx;
    const auto bytes = rx_->data(i);
    if (bytes.size() >= 2 && bytes[0] == (oracle::kMagic >> 8) &&
        bytes[1] == (oracle::kMagic & 0xFF)) {
      // A tunnel handshake (HELLO), not a tunnel packet.
      if (tx_->full()) {
        flush();
      }
      hello_.onDatagram(bytes, rx_->from(i), realtimeNow(), *tx_);
      continue;
    }
    const wire::ParseResult r = wire::parse(bytes, auth_);
    if (!r.ok()) {
      ++counters_.rejected[static_cast<std::size_t>(r.status) % counters_.rejected.size()];
      continue;
    }
    if (tx_->full()) {
      flush();
    }
    if (!isLocal(r.header.dst)) {
      // The one intermediate hop: forward as is, authenticated end to end.
      if (delayLine_ ? delayLine_->push(bytes, r.header.dst, now)
                     : tx_->push(bytes, r.header.dst)) {
        ++counters_.relayed;
      }
      continue;
    }
    switch (r.header.type) {
    case wire::PacketType::Data:
      egress_.onData(r.header, r.payload, rx_->from(i), now);
      break;
    case wire::PacketType::Probe: {
      if (r.header.flow_id == kMeasureFlow) {
        // Our own loop probe, relayed back by the peer it measures.
        if (prober_) {
          prober_->onReturn(r.header, bytes.size(), now);
        }
        break;
      }
      const auto info = wire::parseProbeInfo(r.payload);
      if (!info) {
        ++counters_.badProbes;
        break;
      }
      egress_.onProbe(r.header, *info, rx_->from(i), now);
      wire::Header reply = r.header;
      reply.type = wire::PacketType::ProbeReply;
      reply.dst = info->back;
      // Back through the relay it came by, so the RTT covers the whole path.
      const std::size_t len = wire::encode(reply, {}, auth_, tx_->slot());
      if (len != 0) {
        tx_->commit(len, rx_->from(i));
      }
      break;
    }
    case wire::PacketType::ProbeReply:
      ingress_.onProbeReply(r.header, now);
      break;
    case wire::PacketType::Feedback:
      ingress_.onFeedback(r.header, r.payload, now);
      break;
    }
  }
  egress_.flush(); // nothing waits for a next batch that may not come
  if (PacketBatch::kBatch - tx_->size() < 2) {
    flush();
  }
  egress_.sendFeedback(now, auth_, *tx_);
  flush();
  armPlayout();
}

void Osrd::TunSegments::segment(std::span<const std::uint8_t> packet, std::uint16_t mss) noexcept {
  if (PacketBatch::kBatch - osrd_.tx_->size() < osrd_.ingress_.partsFor(packet.size())) {
    osrd_.flush();
  }
  if (!osrd_.ingress_.send(packet, mss, now, *osrd_.tx_)) {
    ++osrd_.counters_.tunUnrouted;
  }
}

void Osrd::onTun() noexcept {
  const Nanos now = monotonicNow();
  tunSegments_.now = now;
  // Bounded, so that tunnel traffic is served between TUN bursts (a read
  // is up to 64 KiB with offloads, up to ~45 segments).
  for (std::size_t i = 0; i < PacketBatch::kBatch; ++i) {
    if (const auto until = ingress_.holdUntil(now)) {
      // The stripe is full: leave the sender's packets in the device's queue.
      ++counters_.tunHolds;
      tunHeld_ = true;
      loop_.setReadable(tun_.fd(), false);
      loop_.armAt(holdAlarm_, *until);
      break;
    }
    VirtioNetHdr hdr{};
    const std::size_t len = tun_.read(hdr, tunBuf_);
    if (len == 0) {
      break;
    }
    ++counters_.tunPackets;
    if (tun_.vnetHdr()) {
      // Rejects are counted by the splitter.
      splitter_.split(hdr, std::span(tunBuf_.data(), len), tunSegments_);
    } else {
      tunSegments_.segment(std::span(tunBuf_.data(), len), 0);
    }
  }
  flush();
}

void Osrd::onHoldEnd() noexcept {
  const Nanos now = monotonicNow();
  if (const auto until = ingress_.holdUntil(now)) {
    loop_.armAt(holdAlarm_, *until);
    return;
  }
  tunHeld_ = false;
  loop_.setReadable(tun_.fd(), true);
}

void Osrd::onOracleTick(Nanos now) noexcept {
  if (prober_->due(now)) {
    // The round that just ended is reported, then the next one starts.
    prober_->report(*config_.oracle, realtimeNow().count(), signaling_->out());
    signaling_->flush();
  }
  while (prober_->send(now, *tx_)) {
    flush();
  }
  flush();
  if (now - lastSignal_ >= std::chrono::milliseconds(50)) {
    lastSignal_ = now;
    signaling_->tick(now, realtimeNow());
  }
}

void Osrd::onTick() noexcept {
  const Nanos now = monotonicNow();
  if (prober_) {
    onOracleTick(now);
  }
  egress_.expire(now);
  egress_.flush();
  armPlayout();
  ingress_.tick(now, *tx_);
  if (PacketBatch::kBatch - tx_->size() < 2) {
    flush();
  }
  egress_.sendFeedback(now, auth_, *tx_);
  flush();
  if (delayLine_) {
    while (delayLine_->size() > 0) {
      delayLine_->release(now, *tx_);
      if (tx_->size() == 0) {
        break; // nothing due yet
      }
      flush();
    }
  }
  if (now - lastResize_ >= std::chrono::seconds(1)) {
    lastResize_ = now;
    try {
      egress_.resize(now);
    } catch (...) {
      // Out of memory while growing a buffer: keep the old size.
    }
    egress_.flush(); // resizing may release packets
  }
  if (now - lastAddrRefresh_ >= std::chrono::seconds(2)) {
    lastAddrRefresh_ = now;
    try {
      refreshLocalAddresses();
    } catch (...) {
    }
  }
}

nlohmann::json Osrd::status() const {
  nlohmann::json rejected = nlohmann::json::object();
  for (std::size_t i = 1; i < counters_.rejected.size(); ++i) {
    if (counters_.rejected[i] != 0) {
      rejected[std::string(wire::toString(static_cast<wire::ParseStatus>(i)))] =
          counters_.rejected[i];
    }
  }
  return {{"name", config_.name},
          {"version", NVBOX_VERSION},
          {"uptime_s", std::chrono::duration<double>(monotonicNow() - started_).count()},
          {"listen", config_.listen.toString()},
          {"tun", tun_.name()},
          {"counters",
           {{"rx", counters_.rx},
            {"tx", counters_.tx},
            {"relayed", counters_.relayed},
            {"send_drops", counters_.sendDrops},
            {"tun_packets", counters_.tunPackets},
            {"tun_unrouted", counters_.tunUnrouted},
            {"bad_probes", counters_.badProbes},
            {"tun_holds", counters_.tunHolds},
            {"tun_held", tunHeld_},
            {"udp_gso", socket_.gso()},
            {"udp_gro", socket_.gro()},
            {"gso_messages", socket_.counters().gsoMessages},
            {"gso_datagrams", socket_.counters().gsoDatagrams},
            {"gro_datagrams", socket_.counters().groDatagrams},
            {"relay_delay_ms", config_.relayDelay.count() / 1'000'000},
            {"relay_delay_dropped", delayLine_ ? delayLine_->dropped() : 0},
            {"rejected", rejected}}},
          {"stripes", ingress_.status(monotonicNow())},
          {"hello", hello_.status()},
          {"oracle", signaling_ ? nlohmann::json{{"signaling", signaling_->status()},
                                                 {"peers", prober_->status()}}
                                : nlohmann::json()},
          {"egress", egress_.status(monotonicNow())},
          {"offload", offloadStatus()}};
}

nlohmann::json Osrd::offloadStatus() const {
  const TsoCounters &tso = splitter_.counters();
  nlohmann::json rejected = nlohmann::json::object();
  for (std::size_t i = 1; i < kTsoRejectCount; ++i) {
    if (tso.rejected[i] != 0) {
      rejected[std::string(toString(static_cast<TsoReject>(i)))] = tso.rejected[i];
    }
  }
  nlohmann::json out = {{"tun_vnet_hdr", tun_.vnetHdr()}, {"tso", tun_.tso()},
                        {"tun_reads", tso.packets},       {"super_packets_in", tso.super_packets},
                        {"segments_out", tso.segments},   {"csum_completed", tso.csum_completed},
                        {"bytes_in", tso.bytes_in},       {"rejected", rejected}};
  if (const GroCoalescer *gro = egress_.coalescer()) {
    const GroCounters &c = gro->counters();
    nlohmann::json passthrough = nlohmann::json::object();
    for (std::size_t i = 0; i < kGroPassCount; ++i) {
      passthrough[std::string(toString(static_cast<GroPass>(i)))] = c.passthrough[i];
    }
    nlohmann::json ended = nlohmann::json::object();
    for (std::size_t i = 0; i < kGroEndCount; ++i) {
      ended[std::string(toString(static_cast<GroEnd>(i)))] = c.ended[i];
    }
    out["gro"] = {{"packets_in", c.packets},
                  {"coalesced_writes", c.super_packets},
                  {"coalesced_segments", c.coalesced},
                  {"single_writes", c.singles},
                  {"writes", c.writes},
                  {"bytes_out", c.bytes_out},
                  {"passthrough", passthrough},
                  {"runs_ended", ended}};
  }
  return out;
}

nlohmann::json Osrd::control(const nlohmann::json &request) {
  const std::string cmd = request["cmd"];
  const Nanos now = monotonicNow();
  if (cmd == "status") {
    return {{"ok", true}, {"status", status()}};
  }
  if (cmd == "add_path") {
    const auto relay = Endpoint::parse(request.value("relay", ""));
    if (!relay) {
      return {{"ok", false}, {"error", "add_path needs 'relay' as IPv4:PORT"}};
    }
    const PathId id = ingress_.addPath(request.value("stripe", ""), *relay,
                                       request.value("rate", std::uint64_t{0}), now);
    return {{"ok", true}, {"path", id}};
  }
  if (cmd == "remove_path") {
    ingress_.removePath(request.value("stripe", ""), request.value("path", PathId{255}));
    return {{"ok", true}};
  }
  if (cmd == "set_rate") {
    const auto &rate = request.contains("rate") ? request["rate"] : nlohmann::json();
    if (!rate.is_number_unsigned()) {
      return {{"ok", false}, {"error", "set_rate needs 'rate' in bytes/s (0: unknown)"}};
    }
    ingress_.setRate(request.value("stripe", ""), request.value("path", PathId{255}),
                     rate.get<std::uint64_t>());
    return {{"ok", true}};
  }
  if (cmd == "set_scheduler") {
    const auto policy = parsePolicy(request.value("scheduler", ""));
    if (!policy) {
      return {{"ok", false}, {"error", "scheduler must be adaptive, equal, weighted or delay"}};
    }
    ingress_.setPolicy(request.value("stripe", ""), *policy, now);
    return {{"ok", true}};
  }
  if (cmd == "set_buffer") {
    std::optional<std::size_t> n;
    std::optional<Nanos> timeout;
    if (request.contains("n") && request["n"].is_number_unsigned()) {
      n = request["n"].get<std::size_t>();
      if (*n == 0 || *n > (std::size_t{1} << 20)) {
        return {{"ok", false}, {"error", "n must be from 1 to 1048576"}};
      }
    }
    if (request.contains("timeout_ms") && request["timeout_ms"].is_number()) {
      timeout = std::chrono::milliseconds(request["timeout_ms"].get<unsigned>());
    }
    egress_.setBuffer(n, timeout);
    return {{"ok", true}};
  }
  return {{"ok", false}, {"error", "unknown command '" + cmd + "'"}};
}

} // namespace nvbox::osr
