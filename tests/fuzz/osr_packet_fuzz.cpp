// libFuzzer target for the OSR wire format (version 3) and what the daemon
// does with the packets that parse: the egress's re-sequencing, playout,
// segment rebuilding and measurements, and the ingress's path estimates.
//
// Each input is used three ways, with a fixed key:
//  1. parsed as is — every pre-authentication check and the tag comparison
//     on arbitrary bytes;
//  2. parsed with a valid tag appended (computed over the whole input), so
//     the fuzzer reaches the field checks behind authentication;
//  3. cut into records [ctrl:1][op:1][len:1][bytes:len]. ctrl advances the
//     clock and can stamp, over the record, valid magic and version, a type
//     with flags valid for it, a payload of the type's shape (segment
//     header, PROBE info, FEEDBACK size and reserved bytes) and sequence
//     numbers and send times that follow on from the previous records (a
//     flow as a sender makes it); the record is then tagged and parsed.
//     Without that help the fuzzer rarely finds the magic and hardly ever a
//     part the buffer would take. op drives the timers and the ingress side:
//     expire(), FeedbackMeter::lostBefore() -> releaseLost(), resize(),
//     PathEstimator::onSent()/tick()/setMinRtt()/onProbeReply(), estimate()
//     checks and taking a FEEDBACK from the meter.
// What parses goes where osrd sends it (daemon/egress.cpp, ingress.cpp):
//   - DATA: FeedbackMeter (transit(), onData()), PlayoutClock (observe(),
//     hold()), then EXPRESS parts to SegmentAssembler::whole() and the others
//     into a ResequencingBuffer whose sink feeds the assembler (deliver(),
//     lost()). The sent bytes are also counted by the PathEstimator, as the
//     ingress that sent them would.
//   - PROBE: wire::parseProbeInfo, then the meter and the playout clock.
//   - PROBE_REPLY: PathEstimator::onProbeReply.
//   - FEEDBACK: wire::parseFeedback, then PathEstimator::onFeedback.
//   The meter's own FEEDBACK (take(), when due or op says so) is encoded,
//   parsed back and given to the estimator too.
// Traps on a broken promise:
//   - parse(): an accepted packet has a path id < 16, flags valid for its
//     type, a payload viewing the datagram, and encodes back to the very
//     same bytes; a rejected one is rejected for the first reason that
//     applies (size, magic, version);
//   - PROBE info and FEEDBACK payloads that parse encode back to the same
//     bytes; a FEEDBACK has count <= 16 and distinct path ids < 16; a failed
//     parse leaves its output untouched;
//   - the buffer releases every sequence number once, in order, parts no
//     larger than its slots, and is empty after a final expire();
//   - the playout hold is within [0, kMaxHold];
//   - every packet the assembler writes passes checkTunWrite() (size, GSO
//     header, IP total length and header checksum, pseudo-header sum) and is
//     accepted by TsoSplitter as the egress cuts it for a TUN device without
//     offloads;
//   - estimate(): rate >= 1, share in [0, 1], backlog >= 0.
#include "offload_checks.hh"
#include "osr/feedback_meter.hpp"
#include "osr/path_estimator.hpp"
#include "osr/playout_clock.hpp"
#include "osr/resequencing_buffer.hpp"
#include "osr/segment_assembler.hpp"
#include "osr/tso_splitter.hpp"
#include "osr/wire.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>

namespace {

using namespace nvbox::osr;
using fuzz::check;

const OverlayKey &fuzzKey() {
  static const OverlayKey key = [] {
    std::array<std::uint8_t, OverlayKey::kSize> bytes{};
    bytes.fill(0x5A);
    return OverlayKey::fromBytes(bytes);
  }();
  return key;
}

PacketAuthenticator &fuzzAuth() {
  static PacketAuthenticator auth(fuzzKey());
  return auth;
}

std::uint32_t wireMicros(Nanos t) {
  return static_cast<std::uint32_t>(static_cast<std::uint64_t>(t.count()) / 1000);
}

std::array<std::uint8_t, wire::kMaxPacket + 1> g_scratch;
std::array<std::uint8_t, wire::kMaxPacket + 1> g_reencode;
std::array<std::uint8_t, SegmentAssembler::kMaxSegment> g_cut;

// What the assembler writes to TUN: checked, then cut as the egress cuts it
// for a device without offloads.
class TunOut final : public GroSink, public TsoSink {
public:
  void write(const VirtioNetHdr &hdr, std::span<const std::uint8_t> packet) noexcept override {
    fuzz::checkTunWrite(hdr, packet);
    if (hdr == VirtioNetHdr{}) {
      return;
    }
    std::memcpy(g_cut.data(), packet.data(), packet.size());
    TsoSplitter splitter(SegmentAssembler::kMaxSegment);
    check(splitter.split(hdr, std::span(g_cut.data(), packet.size()), *this) == TsoReject::None);
  }
  void segment(std::span<const std::uint8_t> packet, std::uint16_t /*mss*/) noexcept override {
    check(!packet.empty() && packet.size() <= SegmentAssembler::kMaxSegment);
  }
};

// The buffer's sink: checks its contract, then hands on to the assembler as
// the egress's flow does.
class CheckingSink final : public ResequencingSink {
public:
  static constexpr std::size_t kMaxPartBytes = 192;

  CheckingSink(SegmentAssembler &assembler, TunOut &out) : assembler_(assembler), out_(out) {}

  void deliver(const Part &part) override {
    expect(part.seq, 1);
    check(part.payload.size() <= kMaxPartBytes);
    check((part.flags & ~(wire::kFlagFirst | wire::kFlagLast)) == 0);
    assembler_.deliver(part, out_);
  }
  void lost(std::uint32_t first_seq, std::uint32_t count, LossCause) override {
    check(count != 0);
    expect(first_seq, count);
    assembler_.lost(out_);
  }

private:
  void expect(std::uint32_t first, std::uint32_t count) {
    check(!next_ || *next_ == first);
    next_ = first + count;
  }
  SegmentAssembler &assembler_;
  TunOut &out_;
  std::optional<std::uint32_t> next_;
};

// Parses `packet` and checks what parse() promises.
wire::ParseResult checkedParse(std::span<const std::uint8_t> packet) {
  const wire::ParseResult r = wire::parse(packet, fuzzAuth());
  if (packet.size() < wire::kOverhead) {
    check(r.status == wire::ParseStatus::TooShort);
  } else if (packet.size() > wire::kMaxPacket) {
    check(r.status == wire::ParseStatus::TooLong);
  } else if (packet[wire::offset::kMagic] != wire::kMagic) {
    check(r.status == wire::ParseStatus::BadMagic);
  } else if (packet[wire::offset::kVersion] != wire::kVersion) {
    check(r.status == wire::ParseStatus::BadVersion);
  }
  if (!r.ok()) {
    return r;
  }
  const wire::Header &h = r.header;
  const auto type = static_cast<std::uint8_t>(h.type);
  check(h.path_id < kMaxPaths && type >= 1 && type <= 4);
  check((h.flags & ~wire::kKnownFlags) == 0);
  check(h.type == wire::PacketType::Data || h.flags == 0);
  constexpr std::uint8_t whole = wire::kFlagFirst | wire::kFlagLast;
  check((h.flags & wire::kFlagExpress) == 0 || (h.flags & whole) == whole);
  check(r.payload.size() + wire::kOverhead == packet.size() &&
        r.payload.data() == packet.data() + wire::kHeaderSize);
  // Every byte is a field: the header and payload encode back to the packet.
  const std::size_t n = wire::encode(h, r.payload, fuzzAuth(), g_reencode);
  check(n == packet.size() && std::memcmp(g_reencode.data(), packet.data(), n) == 0);
  return r;
}

// Copies `body` into g_scratch (truncated to fit); the caller may then patch it.
std::span<std::uint8_t> stage(std::span<const std::uint8_t> body) {
  const std::size_t size = std::min(body.size(), g_scratch.size() - wire::kTagSize);
  std::copy_n(body.begin(), size, g_scratch.begin());
  return std::span(g_scratch).first(size);
}

// Appends a valid tag to the staged body; returns the whole datagram.
std::span<const std::uint8_t> seal(std::span<std::uint8_t> body) {
  check(fuzzAuth().computeTag(body,
                              std::span(g_scratch).subspan(body.size()).first<wire::kTagSize>()));
  return std::span(g_scratch).first(body.size() + wire::kTagSize);
}

void put16(std::span<std::uint8_t> b, std::size_t at, std::uint32_t v) {
  fuzz::put16(b.data() + at, v);
}
void put32(std::span<std::uint8_t> b, std::size_t at, std::uint32_t v) {
  fuzz::put32(b.data() + at, v);
}

enum Ctrl : std::uint8_t {
  kClockMask = 0x07,  // advance the clock by kSteps[ctrl & 7]
  kStampMagic = 0x08, // valid magic and version
  kStampType = 0x30,  // 1 DATA, 2 PROBE or PROBE_REPLY, 3 FEEDBACK; flags made valid
  kStampShape = 0x40, // the payload shaped for its type
  kStampSeq = 0x80,   // sequence numbers and send time following on
  kTypeShift = 4,
};

enum Op : std::uint8_t {
  kExpire = 0x01,      // buffer.expire()
  kReleaseLost = 0x02, // after the record: meter.lostBefore() -> releaseLost()
  kResize = 0x04,      // buffer.resize(1 + 3 * (op >> 5))
  kSent = 0x08,        // estimator.onSent(op >> 4, ...)
  kTick = 0x10,        // estimator.tick()
  kEstimate = 0x20,    // check estimator.estimate() of every path
  kTake = 0x40,        // take the meter's FEEDBACK even when not due
  kRtt = 0x80,         // estimator.setMinRtt() and onProbeReply() on path op >> 4
  kPathShift = 4,
};

constexpr std::array<Nanos, 8> kSteps{
    Nanos(0),
    std::chrono::microseconds(50),
    std::chrono::milliseconds(1),
    std::chrono::milliseconds(3),
    std::chrono::milliseconds(10),
    std::chrono::milliseconds(40),
    std::chrono::milliseconds(300),
    std::chrono::milliseconds(1200),
};

// Both ends of one flow, as osrd's Egress and Ingress hold them.
struct Flow {
  // The 32-bit µs wire clock wraps about a second in.
  static constexpr Nanos kStart = std::chrono::microseconds(std::int64_t{0xFFFFFFFF} - 1'000'000);

  Nanos now = kStart;
  TunOut out;
  SegmentAssembler assembler;
  CheckingSink sink{assembler, out};
  std::optional<ResequencingBuffer> buffer;
  FeedbackMeter meter{0x12345678, PlayoutClock::kDefaultSilence};
  PlayoutClock playout;
  PathEstimator estimator;
  std::uint32_t meterFeedbackSeq = 0;
  // What kStampSeq stamps: a sender's counters.
  std::optional<std::uint32_t> nextSeq;
  std::array<std::uint16_t, kMaxPaths> nextPathSeq{};
  std::uint32_t probeSeq = 0;
  std::uint32_t feedbackSeq = 0;

  Flow() {
    for (PathId id = 0; id < kMaxPaths; ++id) {
      estimator.addPath(id, id % 4 == 0 ? 0 : std::uint64_t{id} * 100'000);
    }
  }

  static Endpoint relay(PathId path) { return Endpoint{0x0A000001U + path, 4789}; }

  void checkEstimates() {
    for (PathId id = 0; id < kMaxPaths; ++id) {
      const PathEstimate e = estimator.estimate(id, now);
      check(e.rate >= 1 && e.share >= 0 && e.share <= 1 && e.backlog >= Nanos(0));
    }
  }

  void releaseLost() {
    if (buffer) {
      if (const auto end = meter.lostBefore(now)) {
        buffer->releaseLost(*end, now, sink);
      }
    }
  }

  void takeFeedback() {
    const wire::Feedback f = meter.take(now);
    check(f.count <= kMaxPaths);
    for (std::size_t i = 0; i < f.count; ++i) {
      check(f.paths[i].path < kMaxPaths && (i == 0 || f.paths[i - 1].path < f.paths[i].path));
    }
    std::array<std::uint8_t, wire::kMaxFeedbackSize> bytes{};
    const std::size_t n = wire::encodeFeedback(f, bytes);
    check(n == wire::kFeedbackHeaderSize + f.count * wire::kPathFeedbackSize);
    wire::Feedback back;
    check(wire::parseFeedback(std::span(bytes.data(), n), back) == wire::FeedbackStatus::Ok &&
          back == f);
    const auto routes = meter.routes(now);
    check(!routes[1].valid() || (routes[0].valid() && routes[0] != routes[1]));
    estimator.onFeedback(++meterFeedbackSeq, wireMicros(now), f, wireMicros(now), now);
  }

  void onData(const wire::Header &h, std::span<const std::uint8_t> payload) {
    estimator.onSent(h.path_id, payload.size(), now);
    const Nanos transit = meter.transit(h.send_us, now);
    meter.onData(h, payload.size(), transit, relay(h.path_id), now);
    playout.observe(h.path_id, transit, now);
    if ((h.flags & wire::kFlagExpress) != 0) {
      assembler.whole(payload, out);
      return;
    }
    if (!buffer) {
      buffer.emplace(ResequencingBuffer::Config{.capacity = 8,
                                                .max_part_bytes = CheckingSink::kMaxPartBytes,
                                                .gap_timeout = std::chrono::milliseconds(5),
                                                .first_seq = h.seq});
    }
    const Nanos hold = playout.hold(transit, now);
    check(hold >= Nanos(0) && hold <= PlayoutClock::kMaxHold);
    buffer->push(Part{.seq = h.seq,
                      .flags = h.flags,
                      .path_id = h.path_id,
                      .payload = payload,
                      .due = hold > Nanos(0) ? now + hold : Nanos(0)},
                 now, sink);
    check(buffer->occupancy() <= buffer->capacity());
  }

  void onProbe(const wire::Header &h, std::span<const std::uint8_t> payload) {
    const auto info = wire::parseProbeInfo(payload);
    if (!info) {
      return;
    }
    check(payload.size() == wire::kProbeInfoSize && info->back.addr != 0 && info->back.valid());
    std::array<std::uint8_t, wire::kProbeInfoSize> again{};
    wire::encodeProbeInfo(*info, again);
    check(std::equal(again.begin(), again.end(), payload.begin()));
    const Nanos transit = meter.transit(h.send_us, now);
    meter.onProbe(h, *info, transit, relay(h.path_id), now);
    playout.observe(h.path_id, transit, now);
    check(meter.ingress() == info->back);
  }

  void onFeedback(const wire::Header &h, std::span<const std::uint8_t> payload) {
    wire::Feedback f;
    f.echo_us = 0xDEADBEEF;
    const wire::Feedback untouched = f;
    if (wire::parseFeedback(payload, f) != wire::FeedbackStatus::Ok) {
      check(f == untouched);
      return;
    }
    check(f.count <= kMaxPaths);
    std::uint32_t seen = 0;
    for (std::size_t i = 0; i < f.count; ++i) {
      check(f.paths[i].path < kMaxPaths && ((seen >> f.paths[i].path) & 1U) == 0);
      seen |= 1U << f.paths[i].path;
    }
    std::array<std::uint8_t, wire::kMaxFeedbackSize> again{};
    const std::size_t n = wire::encodeFeedback(f, again);
    check(n == payload.size() && std::equal(payload.begin(), payload.end(), again.begin()));
    estimator.onFeedback(h.seq, h.send_us, f, wireMicros(now), now);
  }

  // Stamps what ctrl says over a record of at least a header.
  void stamp(std::uint8_t ctrl, std::span<std::uint8_t> &body) {
    if ((ctrl & kStampMagic) != 0) {
      body[wire::offset::kMagic] = wire::kMagic;
      body[wire::offset::kVersion] = wire::kVersion;
    }
    std::uint8_t &type = body[wire::offset::kType];
    std::uint8_t &pathFlags = body[wire::offset::kPathFlags];
    switch ((ctrl & kStampType) >> kTypeShift) {
    case 1: {
      type = static_cast<std::uint8_t>(wire::PacketType::Data);
      auto flags = static_cast<std::uint8_t>(pathFlags & wire::kKnownFlags);
      if ((flags & wire::kFlagExpress) != 0) {
        flags |= wire::kFlagFirst | wire::kFlagLast;
      }
      pathFlags = static_cast<std::uint8_t>((pathFlags & 0xF0) | flags);
      break;
    }
    case 2:
      type = static_cast<std::uint8_t>((type & 1) != 0 ? wire::PacketType::ProbeReply
                                                       : wire::PacketType::Probe);
      pathFlags &= 0xF0;
      break;
    case 3:
      type = static_cast<std::uint8_t>(wire::PacketType::Feedback);
      pathFlags &= 0xF0;
      break;
    default:
      break;
    }
    const auto path = static_cast<PathId>(pathFlags >> 4);
    const std::uint8_t flags = pathFlags & 0x0F;
    auto payload = body.subspan(wire::kHeaderSize);
    if ((ctrl & kStampShape) != 0) {
      if (type == static_cast<std::uint8_t>(wire::PacketType::Data) &&
          (flags & wire::kFlagFirst) != 0 && payload.size() >= SegmentAssembler::kSegmentHeader) {
        const auto length =
            static_cast<std::uint32_t>(payload.size() - SegmentAssembler::kSegmentHeader);
        if ((flags & wire::kFlagExpress) != 0) {
          put16(payload, 0, 0);
        } else if (fuzz::be16(payload.data()) != 0 && payload.size() >= 4 + 40) {
          // A super-packet (MSS != 0): IPv4 without options or fragments,
          // TCP with a data offset of 5 to 8 words.
          const auto ip = payload.subspan(SegmentAssembler::kSegmentHeader);
          ip[0] = 0x45;
          ip[6] &= 0x40;
          ip[7] = 0;
          ip[9] = 6;
          ip[20 + 12] = static_cast<std::uint8_t>((5 + (ip[20 + 12] >> 4) % 4) << 4);
        }
        // A segment of this part alone, or of it and more parts of its size.
        put16(payload, 2,
              (flags & wire::kFlagLast) != 0 ? length : length + 1 + payload[3] % 0x400U);
      } else if (type == static_cast<std::uint8_t>(wire::PacketType::Probe) &&
                 payload.size() >= wire::kProbeInfoSize) {
        payload = payload.first(wire::kProbeInfoSize);
        payload[3] |= 1; // a non-zero address
        payload[5] |= 1; // and port
      } else if (type == static_cast<std::uint8_t>(wire::PacketType::ProbeReply)) {
        payload = payload.first(0);
      } else if (type == static_cast<std::uint8_t>(wire::PacketType::Feedback) &&
                 payload.size() >= wire::kFeedbackHeaderSize) {
        const std::size_t fit =
            (payload.size() - wire::kFeedbackHeaderSize) / wire::kPathFeedbackSize;
        const std::size_t count = std::min<std::size_t>(payload[8] % (kMaxPaths + 1), fit);
        payload[8] = static_cast<std::uint8_t>(count);
        payload[9] = payload[10] = payload[11] = 0;
        for (std::size_t i = 0; i < count; ++i) {
          const std::size_t at = wire::kFeedbackHeaderSize + i * wire::kPathFeedbackSize;
          payload[at] %= kMaxPaths;
          payload[at + 1] = 0;
        }
        payload = payload.first(wire::kFeedbackHeaderSize + count * wire::kPathFeedbackSize);
      }
      body = body.first(wire::kHeaderSize + payload.size());
    }
    if ((ctrl & kStampSeq) != 0) {
      // Sent a little before now (the send-time byte's low bits, 50 µs each),
      // by a sender whose counters follow on from the last record's.
      const std::uint32_t nowUs = wireMicros(now);
      const std::uint32_t sent = nowUs - 50U * body[wire::offset::kSendUs + 3];
      if (!nextSeq) {
        nextSeq = fuzz::be32(body.data() + wire::offset::kSeq);
      }
      switch (static_cast<wire::PacketType>(type)) {
      case wire::PacketType::Data:
        put32(body, wire::offset::kSeq,
              (flags & wire::kFlagExpress) != 0 ? *nextSeq : (*nextSeq)++);
        put16(body, wire::offset::kPathSeq, nextPathSeq[path % kMaxPaths]++);
        put32(body, wire::offset::kSendUs, sent);
        break;
      case wire::PacketType::Probe:
        put32(body, wire::offset::kSeq, probeSeq++);
        put32(body, wire::offset::kSendUs, sent);
        if (payload.size() == wire::kProbeInfoSize) {
          put16(payload, 6, nextPathSeq[path % kMaxPaths]);
          put32(payload, 8, *nextSeq);
        }
        break;
      case wire::PacketType::ProbeReply:
        put32(body, wire::offset::kSendUs, sent);
        break;
      case wire::PacketType::Feedback:
        put32(body, wire::offset::kSeq, ++feedbackSeq);
        put32(body, wire::offset::kSendUs, nowUs);
        if (payload.size() >= 4) {
          put32(payload, 0, sent); // the echo
        }
        break;
      default:
        break;
      }
    }
  }

  void record(std::uint8_t ctrl, std::uint8_t op, std::span<const std::uint8_t> bytes) {
    now += kSteps[ctrl & kClockMask];
    const auto path = static_cast<PathId>(op >> kPathShift);
    if (buffer && (op & kExpire) != 0) {
      buffer->expire(now, sink);
    }
    if (buffer && (op & kResize) != 0) {
      buffer->resize(1 + 3U * (op >> 5), sink);
      check(buffer->occupancy() <= buffer->capacity());
    }
    if ((op & kSent) != 0) {
      estimator.onSent(path, bytes.size() * 8 + 1, now);
    }
    if ((op & kRtt) != 0) {
      estimator.setMinRtt(path, std::chrono::microseconds(100 * std::int64_t{ctrl}));
      estimator.onProbeReply(
          path, now - std::chrono::microseconds(50 * static_cast<std::int64_t>(bytes.size())));
    }
    if ((op & kTick) != 0) {
      estimator.tick(now);
    }
    auto body = stage(bytes);
    if (body.size() >= wire::kHeaderSize) {
      stamp(ctrl, body);
    }
    const wire::ParseResult r = checkedParse(seal(body));
    if (r.ok()) {
      switch (r.header.type) {
      case wire::PacketType::Data:
        onData(r.header, r.payload);
        break;
      case wire::PacketType::Probe:
        onProbe(r.header, r.payload);
        break;
      case wire::PacketType::ProbeReply:
        estimator.onProbeReply(r.header.path_id,
                               now - std::chrono::microseconds(wireMicros(now) - r.header.send_us));
        break;
      case wire::PacketType::Feedback:
        onFeedback(r.header, r.payload);
        break;
      }
    }
    if ((op & kReleaseLost) != 0) {
      releaseLost();
    }
    if (meter.ingress() && ((op & kTake) != 0 || meter.due(now))) {
      takeFeedback();
    }
    for (PathId id = 0; id < kMaxPaths; ++id) {
      check(meter.path(id, now).queue >= Nanos(0));
    }
    if ((op & kEstimate) != 0) {
      checkEstimates();
    }
  }

  void finish() {
    checkEstimates();
    if (buffer) {
      buffer->expire(now + std::chrono::hours(1), sink);
      check(buffer->occupancy() == 0);
    }
    assembler.lost(out);
  }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  const std::span<const std::uint8_t> input(data, size);
  checkedParse(input);
  checkedParse(seal(stage(input)));

  Flow flow;
  std::size_t at = 0;
  while (at + 3 <= input.size()) {
    const std::uint8_t ctrl = input[at];
    const std::uint8_t op = input[at + 1];
    const std::size_t len = std::min<std::size_t>(input[at + 2], input.size() - at - 3);
    flow.record(ctrl, op, input.subspan(at + 3, len));
    at += 3 + len;
  }
  flow.finish();
  return 0;
}
