// libFuzzer target for segments (wire version 3): SegmentCutter at the
// ingress, SegmentAssembler at the egress, and what reaches the TUN device.
//
// Input: a short TCP stream derived from the fuzz bytes — one to four
// packets of one connection, each a TCP super-packet (MSS != 0, as TSO hands
// it over) or a plain packet (MSS 0), with consecutive sequence numbers and a
// payload whose every byte is a hash of its stream offset. The IPv4 and TCP
// headers are built from the bytes so that they are well-formed, unless the
// first byte asks for raw ones (version, IHL, fragment bits, protocol and
// data offset as the input has them). Each packet is cut with SegmentCutter
// at a part size from the input (576 to 1500 minus 68); each part is then
// delivered, dropped, or delivered after an EXPRESS packet, as two bits of
// the loss pattern say (the input's bytes, then pseudo-random ones). Between
// packets the input may add extras: raw parts (any flags and size, headers
// not of our connection), a packet of another connection cut and lost the
// same way, an EXPRESS packet, or a gap in the part sequence. lost() is
// called at every gap when the first byte says so (as the ResequencingBuffer
// does), and at the end.
//
// Every write to TUN passes checkTunWrite(), and TsoSplitter (Cut mode, as
// the kernel or the egress would cut it) accepts it. Of our connection:
//   - a plain packet comes out exactly as it went in, once, and only when
//     all its parts arrived;
//   - every segment cut from a super-packet's output has valid IP and TCP
//     checksums, the original's IP and TCP headers (but for total length,
//     id, seq and the flags below), a payload of at most the MSS that lies
//     within one original packet, and every payload byte equals the stream
//     byte at its TCP sequence number — no byte ever lands at a wrong
//     sequence number — and came from a part that was delivered; bytes come
//     out in stream order, none twice; FIN and PSH only at the end of the
//     original, CWR only at its start, each exactly when the original has it;
//   - with well-formed headers, every delivered byte of a super-packet whose
//     first part arrived comes out (what arrived is salvaged).
#include "offload_checks.hh"
#include "osr/segment_assembler.hpp"
#include "osr/segment_cutter.hpp"
#include "osr/tso_splitter.hpp"
#include "osr/wire.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace {

using namespace nvbox::osr;
using fuzz::be16;
using fuzz::be32;
using fuzz::check;
using fuzz::put16;
using fuzz::put32;
using fuzz::sum16;

constexpr std::size_t kMaxPackets = 4;
constexpr std::size_t kMaxPacket = 0xFFFF;
constexpr std::size_t kMaxStream = kMaxPackets * kMaxPacket;
constexpr std::size_t kMinPart = 576 - 68;
constexpr std::size_t kMaxPart = 1500 - 68;
constexpr std::uint32_t kOurSrc = 0xC0000201;     // 192.0.2.1
constexpr std::uint32_t kOurDst = 0xC6336407;     // 198.51.100.7
constexpr std::uint32_t kForeignSrc = 0xCB007109; // 203.0.113.9
constexpr std::uint8_t kFin = 0x01;
constexpr std::uint8_t kPsh = 0x08;
constexpr std::uint8_t kCwr = 0x80;

// The fuzz bytes, then a pseudo-random tail seeded by them (so that a short
// input still makes large packets and losses).
class Reader {
public:
  explicit Reader(std::span<const std::uint8_t> in) : in_(in) {
    for (const std::uint8_t b : in) {
      state_ = (state_ ^ b) * 0x100000001B3ULL;
    }
  }
  std::uint8_t u8() {
    if (at_ < in_.size()) {
      return in_[at_++];
    }
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return static_cast<std::uint8_t>((z ^ (z >> 31)) >> 56);
  }
  std::uint16_t u16() {
    const std::uint8_t hi = u8();
    return static_cast<std::uint16_t>((hi << 8) | u8());
  }
  std::uint32_t u32() {
    const std::uint16_t hi = u16();
    return (std::uint32_t{hi} << 16) | u16();
  }
  unsigned bits2() {
    if (nbits_ == 0) {
      bits_ = u8();
      nbits_ = 8;
    }
    const unsigned v = bits_ & 3U;
    bits_ >>= 2;
    nbits_ -= 2;
    return v;
  }

private:
  std::span<const std::uint8_t> in_;
  std::size_t at_ = 0;
  std::uint64_t state_ = 0xCBF29CE484222325ULL;
  unsigned bits_ = 0;
  unsigned nbits_ = 0;
};

std::uint8_t hashByte(std::uint32_t seed, std::uint32_t at) {
  std::uint32_t h = (at + seed) * 0x9E3779B1U;
  h ^= h >> 15;
  h *= 0x85EBCA77U;
  h ^= h >> 13;
  return static_cast<std::uint8_t>(h >> 24);
}

// One packet of the stream, as built.
struct Original {
  std::array<std::uint8_t, kMaxPacket> bytes;
  std::size_t size = 0;
  std::size_t ipLen = 0;  // as laid out (what the assembler reads when it accepts)
  std::size_t hdrLen = 0; // IP + TCP
  std::uint16_t mss = 0;
  std::size_t start = 0; // stream offset of the payload
  std::size_t len = 0;   // payload bytes
  std::size_t firstPart = 0;
  bool firstDelivered = false;
  bool allDelivered = true;
  std::size_t emitted = 0; // plain: times it came out
  [[nodiscard]] std::span<const std::uint8_t> view() const { return {bytes.data(), size}; }
};

// Headers shared by the stream's packets.
struct Shape {
  bool raw = false;
  std::uint8_t verIhl = 0x45;
  std::size_t ipLen = 20;
  std::uint8_t tos = 0;
  std::uint8_t ttl = 64;
  std::uint16_t id = 0;
  std::uint16_t frag = 0;
  std::uint8_t proto = 6;
  std::uint8_t doffByte = 0x50;
  std::size_t tcpLen = 20;
  std::uint32_t seq0 = 0;
  std::uint32_t ack = 0;
  std::uint8_t flags = 0x10;
  std::uint16_t window = 0;
  std::uint16_t urg = 0;
  std::uint32_t seed = 0;
};

std::array<Original, kMaxPackets> g_packets;
std::size_t g_count = 0;
std::array<std::uint8_t, kMaxPacket> g_foreign;
std::array<std::uint8_t, kMaxPacket> g_cut;
std::array<std::uint8_t, kMaxPart> g_part;
// Per stream offset: the generation of the input that delivered / emitted it.
std::array<std::uint32_t, kMaxStream> g_delivered;
std::array<std::uint32_t, kMaxStream> g_seen;
std::uint32_t g_generation = 0;
Shape g_shape;

// Writes an IPv4/TCP packet into `out`; returns its size.
std::size_t build(const Shape &s, std::uint32_t src, std::uint32_t seq, std::uint8_t flags,
                  std::size_t len, std::uint32_t seed, bool partialCsum, std::uint8_t *out) {
  const std::size_t hdrLen = s.ipLen + s.tcpLen;
  const std::size_t size = hdrLen + len;
  std::uint8_t *ip = out;
  std::uint8_t *tcp = out + s.ipLen;
  ip[0] = s.verIhl;
  ip[1] = s.tos;
  put16(ip + 2, static_cast<std::uint32_t>(size));
  put16(ip + 4, s.id);
  put16(ip + 6, s.frag);
  ip[8] = s.ttl;
  ip[9] = s.proto;
  put16(ip + 10, 0);
  put32(ip + 12, src);
  put32(ip + 16, kOurDst);
  for (std::size_t i = 20; i < s.ipLen; ++i) {
    ip[i] = hashByte(s.seed ^ 0x1111U, static_cast<std::uint32_t>(i));
  }
  put16(ip + 10, ~sum16(ip, s.ipLen) & 0xFFFFU);
  put16(tcp, 40000);
  put16(tcp + 2, 5201);
  put32(tcp + 4, seq);
  put32(tcp + 8, s.ack);
  tcp[12] = s.doffByte;
  tcp[13] = flags;
  put16(tcp + 14, s.window);
  put16(tcp + 16, 0);
  put16(tcp + 18, s.urg);
  for (std::size_t i = 20; i < s.tcpLen; ++i) {
    tcp[i] = hashByte(s.seed ^ 0x2222U, static_cast<std::uint32_t>(i));
  }
  for (std::size_t i = 0; i < len; ++i) {
    out[hdrLen + i] = hashByte(seed, seq - s.seq0 + static_cast<std::uint32_t>(i));
  }
  const std::uint32_t pseudo = fuzz::pseudoSum(std::span(out, size), 6, size - s.ipLen);
  put16(tcp + 16, partialCsum ? pseudo : ~sum16(tcp, size - s.ipLen, pseudo) & 0xFFFFU);
  return size;
}

// The packet of the stream holding stream offset `off`.
const Original *holding(std::size_t off) {
  for (std::size_t k = 0; k < g_count; ++k) {
    if (off >= g_packets[k].start && off < g_packets[k].start + g_packets[k].len) {
      return &g_packets[k];
    }
  }
  return nullptr;
}

bool ours(std::span<const std::uint8_t> p) {
  return p.size() >= 20 && be32(p.data() + 12) == kOurSrc;
}

// TUN writes, and what they are cut into.
class Out final : public GroSink, public TsoSink {
public:
  std::size_t streamAt = 0; // stream offset past the last byte that came out
  std::uint64_t bytes = 0;

  void write(const VirtioNetHdr &hdr, std::span<const std::uint8_t> p) noexcept override {
    bytes += p.size();
    fuzz::checkTunWrite(hdr, p);
    if (hdr == VirtioNetHdr{}) {
      if (ours(p)) {
        plain(p);
      }
      return;
    }
    std::memcpy(g_cut.data(), p.data(), p.size());
    cutting_ = ours(p);
    TsoSplitter splitter(kMaxPacket);
    check(splitter.split(hdr, std::span(g_cut.data(), p.size()), *this) == TsoReject::None);
  }

  void segment(std::span<const std::uint8_t> s, std::uint16_t /*mss*/) noexcept override {
    if (cutting_) {
      tcpSegment(s);
    }
  }

private:
  // A plain packet of ours: one of the originals, whole, that arrived whole
  // (two may be alike: packets without payload), the first time.
  void plain(std::span<const std::uint8_t> p) {
    for (std::size_t k = 0; k < g_count; ++k) {
      Original &o = g_packets[k];
      if (o.mss == 0 && o.emitted == 0 && o.allDelivered && o.size == p.size() &&
          std::memcmp(o.bytes.data(), p.data(), p.size()) == 0) {
        ++o.emitted;
        for (std::size_t i = 0; i < o.len; ++i) {
          check(g_delivered[o.start + i] == g_generation && g_seen[o.start + i] != g_generation);
          g_seen[o.start + i] = g_generation;
        }
        check(o.len == 0 || o.start >= streamAt);
        streamAt = std::max(streamAt, o.start + o.len);
        return;
      }
    }
    fuzz::fail(); // bytes of ours that are no packet of ours
  }

  // A segment the kernel would send, cut from a super-packet of ours.
  void tcpSegment(std::span<const std::uint8_t> s) {
    const std::size_t ihl = std::size_t{s[0] & 0x0FU} * 4;
    check(s.size() >= ihl + 20 && be16(s.data() + 2) == s.size() && sum16(s.data(), ihl) == 0xFFFF);
    const std::size_t l4 = s.size() - ihl;
    check(sum16(s.data() + ihl, l4, fuzz::pseudoSum(s, 6, l4)) == 0xFFFF);
    const std::uint8_t *tcp = s.data() + ihl;
    const std::size_t doff = std::size_t{tcp[12]} / 16 * 4;
    check(doff >= 20 && ihl + doff <= s.size());
    const std::size_t n = s.size() - ihl - doff;
    const std::size_t off = be32(tcp + 4) - g_shape.seq0; // mod 2^32
    check(n != 0);
    const Original *o = holding(off);
    check(o != nullptr && o->mss != 0 && ihl == o->ipLen && ihl + doff == o->hdrLen);
    check(off + n <= o->start + o->len && n <= o->mss);
    const std::uint8_t *ip0 = o->bytes.data();
    const std::uint8_t *tcp0 = ip0 + ihl;
    // IP: all but total length, id and checksum; TCP: all but seq, the
    // flags below and the checksum.
    check(std::memcmp(s.data(), ip0, 2) == 0 && std::memcmp(s.data() + 6, ip0 + 6, 4) == 0 &&
          std::memcmp(s.data() + 12, ip0 + 12, ihl - 12) == 0);
    check(std::memcmp(tcp, tcp0, 4) == 0 && std::memcmp(tcp + 8, tcp0 + 8, 5) == 0 &&
          std::memcmp(tcp + 14, tcp0 + 14, 2) == 0 &&
          std::memcmp(tcp + 18, tcp0 + 18, doff - 18) == 0);
    const std::uint8_t fl = tcp[13];
    const std::uint8_t fl0 = tcp0[13];
    constexpr std::uint8_t kEnds = kFin | kPsh;
    check((fl & ~(kEnds | kCwr)) == (fl0 & ~(kEnds | kCwr)));
    const bool atEnd = off + n == o->start + o->len;
    check((fl & kEnds) == (atEnd ? fl0 & kEnds : 0));
    check((fl & kCwr) == (off == o->start ? fl0 & kCwr : 0));
    // The payload: the stream's bytes at their sequence numbers.
    const std::uint8_t *payload = tcp + doff;
    check(off >= streamAt);
    for (std::size_t i = 0; i < n; ++i) {
      check(payload[i] == hashByte(g_shape.seed, static_cast<std::uint32_t>(off + i)));
      check(g_delivered[off + i] == g_generation && g_seen[off + i] != g_generation);
      g_seen[off + i] = g_generation;
    }
    streamAt = off + n;
  }

  bool cutting_ = false;
};

// Feeds parts to the assembler in sequence order, with gaps and extras.
class Feeder {
public:
  Feeder(Reader &r, SegmentAssembler &a, Out &out, bool lostAtGaps, std::size_t partSize,
         std::uint32_t seq)
      : r_(r), a_(a), out_(out), lostAtGaps_(lostAtGaps), partSize_(partSize), seq_(seq) {}

  // Part `payload` with `flags` at the next sequence number, delivered or
  // not; `arrives()` is called before it is delivered.
  template <typename F>
  void part(std::span<const std::uint8_t> payload, std::uint8_t flags, unsigned fate, F &&arrives) {
    const std::uint32_t seq = seq_++;
    if ((fate & 1U) != 0) {
      gap_ = true;
      return;
    }
    if ((fate & 2U) != 0) {
      express();
    }
    if (gap_ && lostAtGaps_) {
      a_.lost(out_);
    }
    gap_ = false;
    arrives();
    a_.deliver(Part{.seq = seq, .flags = flags, .path_id = 0, .payload = payload}, out_);
  }

  // Cuts `packet` and feeds its parts; `arrives(index)` before each is delivered.
  template <typename F>
  void packet(std::span<const std::uint8_t> packet, std::uint16_t mss, F &&arrives) {
    const SegmentCutter cutter(packet, mss, partSize_);
    for (std::size_t i = 0; i < cutter.parts(); ++i) {
      const auto buf = std::span(g_part).first(cutter.size(i));
      cutter.write(i, buf);
      part(buf, cutter.flags(i), r_.bits2(), [&] { arrives(i); });
    }
  }

  // An EXPRESS packet of another connection: whole() must leave the pending
  // segment alone.
  void express() {
    std::array<std::uint8_t, 4 + 64> b{};
    const std::size_t n = 4 + r_.u8() % 61;
    for (std::size_t i = 4; i < n; ++i) {
      b[i] = r_.u8();
    }
    const std::uint8_t how = r_.u8();
    put16(b.data(), (how & 1U) != 0 ? how : 0);
    put16(b.data() + 2, static_cast<std::uint32_t>((how & 2U) != 0 ? n - 4 : n + how));
    if (n >= 4 + 16) {
      put32(b.data() + 4 + 12, kForeignSrc);
    }
    a_.whole(std::span(b.data(), n), out_);
  }

  // Something between two packets of ours.
  void extra(const Shape &shape) {
    const std::uint8_t kind = r_.u8();
    switch (kind % 4) {
    case 0: { // a raw part
      auto flags = static_cast<std::uint8_t>((kind >> 2) & (wire::kFlagFirst | wire::kFlagLast));
      const std::uint8_t sel = r_.u8();
      std::size_t n = 0;
      switch (sel % 4) {
      case 0:
        n = partSize_;
        break;
      case 1:
        n = partSize_ - 1 - r_.u8() % 8;
        break;
      case 2:
        n = r_.u8();
        break;
      default:
        n = r_.u16() % (kMaxPart + 1);
        break;
      }
      for (std::size_t i = 0; i < n; ++i) {
        g_part[i] = i < 48 ? r_.u8() : hashByte(sel, static_cast<std::uint32_t>(i));
      }
      if ((flags & wire::kFlagFirst) != 0) {
        if (n >= 4 + 16) {
          put32(g_part.data() + 4 + 12, kForeignSrc); // not of our connection
        } else {
          flags |= wire::kFlagLast; // too short to hold its headers: no continuation
        }
      }
      part(std::span(g_part).first(n), flags, 0, [] {});
      break;
    }
    case 1: { // a packet of another connection
      Shape other = shape;
      const std::uint8_t how = r_.u8();
      const std::size_t len = 1 + r_.u16() % 3000;
      const std::size_t size = build(other, kForeignSrc, r_.u32(), other.flags, len, 77,
                                     (how & 1U) != 0, g_foreign.data());
      packet(std::span(g_foreign.data(), size), (how & 1U) != 0 ? 536 : 0, [](std::size_t) {});
      break;
    }
    case 2:
      express();
      break;
    default: // sequence numbers lost on the way
      seq_ += 1 + r_.u8() % 8U;
      gap_ = true;
      break;
    }
  }

  void finish() { a_.lost(out_); }

private:
  Reader &r_;
  SegmentAssembler &a_;
  Out &out_;
  bool lostAtGaps_;
  std::size_t partSize_;
  std::uint32_t seq_;
  bool gap_ = false;
};

enum Cfg : std::uint8_t {
  kRaw = 0x01,        // headers as the input has them
  kLostAtGaps = 0x02, // lost() before a part that follows a gap
  kCountShift = 2,    // (cfg >> 2) % 4 + 1 packets
  kExtras = 0x10,     // extras between packets
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  Reader r(std::span(data, size));
  ++g_generation;
  const std::uint8_t cfg = r.u8();
  const std::size_t partSize = kMinPart + r.u16() % (kMaxPart - kMinPart + 1);
  const std::uint32_t firstSeq = r.u32();
  Shape &s = g_shape;
  s = Shape{};
  s.raw = (cfg & kRaw) != 0;
  s.seed = r.u32();
  s.seq0 = r.u32();
  s.ack = r.u32();
  s.flags = r.u8();
  s.window = r.u16();
  s.urg = r.u16();
  s.tos = r.u8();
  s.ttl = r.u8();
  s.id = r.u16();
  const std::uint8_t ipOpt = r.u8();
  const std::uint8_t tcpOpt = r.u8();
  if (s.raw) {
    s.verIhl = r.u8();
    s.frag = r.u16();
    s.proto = r.u8();
    s.doffByte = r.u8();
    s.ipLen = std::max<std::size_t>(20, std::size_t{s.verIhl & 0x0FU} * 4);
    s.tcpLen = std::max<std::size_t>(20, std::size_t{s.doffByte} / 16 * 4);
  } else {
    s.ipLen = 20 + ((ipOpt & 0x80U) != 0 ? ipOpt % 11U * 4 : 0);
    s.tcpLen = 20 + ((tcpOpt & 0x80U) != 0 ? tcpOpt % 11U * 4 : 0);
    s.verIhl = static_cast<std::uint8_t>(0x40 | s.ipLen / 4);
    s.frag = (ipOpt & 0x40U) != 0 ? 0x4000 : 0; // DF or nothing
    s.doffByte = static_cast<std::uint8_t>(s.tcpLen / 4 << 4);
  }
  const std::size_t hdrLen = s.ipLen + s.tcpLen;

  SegmentAssembler assembler;
  Out out;
  Feeder feed(r, assembler, out, (cfg & kLostAtGaps) != 0, partSize, firstSeq);
  g_count = 1 + (cfg >> kCountShift) % kMaxPackets;
  std::size_t streamLen = 0;
  for (std::size_t k = 0; k < g_count; ++k) {
    Original &o = g_packets[k];
    const std::uint8_t how = r.u8();
    const bool plain = (how & 1U) != 0;
    o.mss = plain ? 0 : static_cast<std::uint16_t>(64 + r.u16() % 1437);
    const std::size_t most = kMaxPacket - hdrLen;
    o.len = r.u16() % ((how & 2U) != 0 ? 4097 : most + 1);
    if (!plain && !s.raw) {
      o.len = std::max<std::size_t>(o.len, 1); // TSO hands over no empty super-packet
    }
    o.start = streamLen;
    streamLen += o.len;
    // FIN, PSH and CWR differ from packet to packet.
    const auto flags = static_cast<std::uint8_t>(s.flags ^ ((how >> 2) & (kFin | kPsh)) ^
                                                 ((how & 0x10U) != 0 ? kCwr : 0));
    o.size = build(s, kOurSrc, s.seq0 + static_cast<std::uint32_t>(o.start), flags, o.len, s.seed,
                   !plain, o.bytes.data());
    o.ipLen = s.ipLen;
    o.hdrLen = hdrLen;
    o.firstDelivered = false;
    o.allDelivered = true;
    o.emitted = 0;
    std::size_t delivered = 0;
    feed.packet(o.view(), o.mss, [&](std::size_t i) {
      ++delivered;
      o.firstDelivered = o.firstDelivered || i == 0;
      // The part's packet bytes [i * P - 4, ...) that are payload.
      const std::size_t from = i == 0 ? 0 : i * partSize - SegmentCutter::kSegmentHeader;
      const std::size_t to = std::min(o.size, (i + 1) * partSize - SegmentCutter::kSegmentHeader);
      for (std::size_t b = std::max(from, hdrLen); b < to; ++b) {
        g_delivered[o.start + b - hdrLen] = g_generation;
      }
    });
    o.allDelivered = delivered == SegmentCutter::partsFor(o.size, partSize);
    if ((cfg & kExtras) != 0) {
      for (unsigned n = r.u8() % 4U; n > 0; --n) {
        feed.extra(s);
      }
    }
  }
  feed.finish();

  check(assembler.counters().bytes_out == out.bytes);
  for (std::size_t k = 0; k < g_count; ++k) {
    const Original &o = g_packets[k];
    if (o.mss == 0) {
      check(o.emitted == (o.allDelivered ? 1U : 0U));
    } else if (!s.raw && o.firstDelivered) {
      // What arrived of a super-packet whose headers arrived is salvaged.
      for (std::size_t i = 0; i < o.len; ++i) {
        check(g_delivered[o.start + i] != g_generation || g_seen[o.start + i] == g_generation);
      }
    }
  }
  return 0;
}
