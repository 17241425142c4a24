// SegmentCutter and SegmentAssembler: a packet cut into parts comes out as
// it went in; parts lost on the way cost only their own bytes (the rest of a
// TCP super-packet is salvaged as valid TCP packets); malformed or orphaned
// parts are dropped and counted. Every packet the assembler emits is cut
// again with the kernel's rules (TsoSplitter, Cut mode) and checked with
// tcp_packets.hh's independent checksum.
#include "osr/segment_assembler.hpp"
#include "osr/segment_cutter.hpp"
#include "osr/tso_splitter.hpp"
#include "osr/wire.hpp"
#include "tcp_packets.hh"

#include <gtest/gtest.h>

#include <map>
#include <set>

namespace nvbox::osr {
namespace {

using namespace testing;

constexpr std::size_t kPart = 1432;

struct Cut {
  std::vector<Bytes> payloads;
  std::vector<std::uint8_t> flags;
};

Cut cut(const Bytes &packet, std::uint16_t mss, std::size_t partSize = kPart) {
  const SegmentCutter cutter(packet, mss, partSize);
  Cut c;
  for (std::size_t i = 0; i < cutter.parts(); ++i) {
    Bytes b(cutter.size(i));
    cutter.write(i, b);
    c.payloads.push_back(std::move(b));
    c.flags.push_back(cutter.flags(i));
  }
  return c;
}

// What the assembler writes, as the kernel would segment it for the wire.
struct Out final : GroSink, TsoSink {
  std::vector<VirtioNetHdr> hdrs;
  std::vector<Bytes> written;
  std::vector<Bytes> segments; // after the kernel's segmentation
  void write(const VirtioNetHdr &h, std::span<const std::uint8_t> p) noexcept override {
    hdrs.push_back(h);
    written.emplace_back(p.begin(), p.end());
    Bytes copy(p.begin(), p.end());
    TsoSplitter splitter(0xFFFF);
    if (splitter.split(h, copy, *this) != TsoReject::None) {
      ADD_FAILURE() << "the kernel would refuse a packet the assembler wrote";
    }
  }
  void segment(std::span<const std::uint8_t> p, std::uint16_t /*mss*/) noexcept override {
    segments.emplace_back(p.begin(), p.end());
  }
  // TCP payload bytes by sequence number, from every segment; checks each.
  std::map<std::uint32_t, std::uint8_t> stream() const {
    std::map<std::uint32_t, std::uint8_t> bytes;
    for (const Bytes &s : segments) {
      EXPECT_TRUE(ipChecksumOk(s));
      EXPECT_TRUE(l4ChecksumOk(s, 6));
      EXPECT_LE(payloadOf(s).size(), kMss);
      const std::uint32_t seq = get32(s, kIpLen + 4);
      const Bytes p = payloadOf(s);
      for (std::size_t i = 0; i < p.size(); ++i) {
        EXPECT_TRUE(bytes.emplace(seq + static_cast<std::uint32_t>(i), p[i]).second)
            << "a byte came out twice";
      }
    }
    return bytes;
  }
};

void deliver(SegmentAssembler &a, const Cut &c, std::uint32_t firstSeq, Out &out,
             const std::set<std::size_t> &lost = {}) {
  for (std::size_t i = 0; i < c.payloads.size(); ++i) {
    if (lost.contains(i)) {
      continue;
    }
    a.deliver(Part{.seq = firstSeq + static_cast<std::uint32_t>(i),
                   .flags = c.flags[i],
                   .payload = c.payloads[i]},
              out);
  }
}

TEST(OsrSegments, CutterFillsEveryPartButTheLast) {
  VirtioNetHdr hdr;
  const Bytes super = superPacket(Tcp{}, 30 * kMss, hdr);
  const Cut c = cut(super, kMss);
  ASSERT_EQ(c.payloads.size(), (super.size() + 4 + kPart - 1) / kPart);
  for (std::size_t i = 0; i + 1 < c.payloads.size(); ++i) {
    EXPECT_EQ(c.payloads[i].size(), kPart);
  }
  EXPECT_EQ(c.flags.front(), wire::kFlagFirst);
  EXPECT_EQ(c.flags.back(), wire::kFlagLast);
  EXPECT_EQ(c.flags[1], 0);
  // The segment header: the MSS, then two zero bytes.
  EXPECT_EQ(get16(c.payloads[0], 0), kMss);
  EXPECT_EQ(get16(c.payloads[0], 2), super.size());
  // A small packet is one part, FIRST and LAST.
  const Cut one = cut(tcpPacket(Tcp{}, 10), 0);
  ASSERT_EQ(one.payloads.size(), 1U);
  EXPECT_EQ(one.flags[0], wire::kFlagFirst | wire::kFlagLast);
}

TEST(OsrSegments, SuperPacketComesOutWholeAsTheKernelWouldSendIt) {
  Tcp t;
  t.seq = 0xFFFFF000; // the TCP sequence wraps inside
  t.flags = kAck | kPsh;
  VirtioNetHdr hdr;
  const Bytes super = superPacket(t, 30 * kMss + 17, hdr);
  SegmentAssembler a;
  Out out;
  deliver(a, cut(super, kMss), 0xFFFFFFF0, out); // and so do the part numbers
  ASSERT_EQ(out.written.size(), 1U);
  EXPECT_EQ(out.hdrs[0].gso_type, VirtioNetHdr::kGsoTcpV4);
  EXPECT_EQ(out.hdrs[0].gso_size, kMss);
  EXPECT_EQ(out.hdrs[0].flags, VirtioNetHdr::kNeedsCsum);
  // The kernel's cut of what came out equals its cut of what went in.
  Bytes copy = super;
  Out original;
  TsoSplitter splitter(0xFFFF);
  ASSERT_EQ(splitter.split(hdr, copy, original), TsoReject::None);
  EXPECT_EQ(out.segments, original.segments);
  EXPECT_EQ(a.counters().segments, 1U);
  EXPECT_EQ(a.counters().runs, 0U);
}

TEST(OsrSegments, PlainPacketComesOutUnchanged) {
  const Bytes packet = tcpPacket(Tcp{}, 3000); // larger than a part: three of them
  SegmentAssembler a;
  Out out;
  deliver(a, cut(packet, 0), 7, out);
  ASSERT_EQ(out.written.size(), 1U);
  EXPECT_EQ(out.written[0], packet);
  EXPECT_EQ(out.hdrs[0], VirtioNetHdr{});
}

TEST(OsrSegments, LostMiddlePartsCostOnlyTheirOwnBytes) {
  Tcp t;
  t.flags = kAck | kPsh | kFin | kCwr;
  VirtioNetHdr hdr;
  const Bytes super = superPacket(t, 30 * kMss, hdr);
  const Cut c = cut(super, kMss);
  ASSERT_GE(c.payloads.size(), 10U);
  SegmentAssembler a;
  Out out;
  const std::set<std::size_t> lost{3, 4, 7};
  deliver(a, c, 100, out, lost);
  // Runs: parts 0-2, 5-6 and 8-end.
  EXPECT_EQ(out.written.size(), 3U);
  EXPECT_EQ(a.counters().runs, 3U);
  const auto stream = out.stream();
  // Every byte that arrived is there, at its own TCP sequence number.
  const Bytes payload = payloadOf(super);
  std::size_t expected = 0;
  for (std::size_t i = 0; i < payload.size(); ++i) {
    const std::size_t part = (i + kHdrLen + 4) / kPart;
    if (lost.contains(part)) {
      EXPECT_FALSE(stream.contains(t.seq + static_cast<std::uint32_t>(i)));
      continue;
    }
    ++expected;
    const auto it = stream.find(t.seq + static_cast<std::uint32_t>(i));
    ASSERT_NE(it, stream.end()) << "byte " << i;
    EXPECT_EQ(it->second, payload[i]);
  }
  EXPECT_EQ(stream.size(), expected);
  // FIN and PSH only where the segment ends, CWR only where it starts.
  const auto flagsOf = [](const Bytes &p) { return p[kIpLen + 13]; };
  EXPECT_EQ(flagsOf(out.written[0]) & (kFin | kPsh | kCwr), kCwr);
  EXPECT_EQ(flagsOf(out.written[1]) & (kFin | kPsh | kCwr), 0);
  EXPECT_EQ(flagsOf(out.written[2]) & (kFin | kPsh | kCwr), kFin | kPsh);
}

TEST(OsrSegments, LossReportedBeforeTheLastPartEmitsWhatArrived) {
  VirtioNetHdr hdr;
  const Bytes super = superPacket(Tcp{}, 10 * kMss, hdr);
  const Cut c = cut(super, kMss);
  SegmentAssembler a;
  Out out;
  for (std::size_t i = 0; i + 1 < c.payloads.size(); ++i) {
    a.deliver(
        Part{.seq = static_cast<std::uint32_t>(i), .flags = c.flags[i], .payload = c.payloads[i]},
        out);
  }
  EXPECT_TRUE(out.written.empty()); // waiting for the last part
  a.lost(out);                      // the buffer gave it up
  ASSERT_EQ(out.written.size(), 1U);
  EXPECT_EQ(out.stream().size(), (c.payloads.size() - 1) * kPart - 4 - kHdrLen);
}

TEST(OsrSegments, APartOfTheNextSegmentIsNeverTakenForAContinuation) {
  // The last part of one segment and the first of the next are both lost:
  // the next one's parts follow the first one's in sequence, but its length
  // says where it ended.
  Tcp t;
  VirtioNetHdr hdr;
  const Bytes one = superPacket(t, 10 * kMss + 100, hdr);
  t.seq += 10 * kMss + 100;
  const Bytes two = superPacket(t, 10 * kMss, hdr);
  const Cut a1 = cut(one, kMss);
  const Cut a2 = cut(two, kMss);
  SegmentAssembler a;
  Out out;
  deliver(a, a1, 0, out, {a1.payloads.size() - 1});
  deliver(a, a2, static_cast<std::uint32_t>(a1.payloads.size()), out, {0});
  // Only the first segment's salvaged run came out, with its own bytes.
  ASSERT_EQ(out.written.size(), 1U);
  EXPECT_EQ(a.counters().orphans, a2.payloads.size() - 1);
  const auto stream = out.stream();
  const Bytes payload = payloadOf(one);
  for (const auto &[seq, byte] : stream) {
    ASSERT_LT(seq - Tcp{}.seq, payload.size());
    EXPECT_EQ(byte, payload[seq - Tcp{}.seq]);
  }
}

TEST(OsrSegments, WithoutTheFirstPartTheRestIsDropped) {
  VirtioNetHdr hdr;
  const Bytes super = superPacket(Tcp{}, 10 * kMss, hdr);
  const Cut c = cut(super, kMss);
  SegmentAssembler a;
  Out out;
  deliver(a, c, 0, out, {0});
  EXPECT_TRUE(out.written.empty());
  EXPECT_EQ(a.counters().orphans, c.payloads.size() - 1);
  // The next segment is whole again.
  deliver(a, c, 100, out);
  EXPECT_EQ(out.written.size(), 1U);
}

TEST(OsrSegments, PlainPacketWithAHoleIsDropped) {
  const Bytes packet = tcpPacket(Tcp{}, 3000);
  SegmentAssembler a;
  Out out;
  deliver(a, cut(packet, 0), 0, out, {1});
  EXPECT_TRUE(out.written.empty());
  EXPECT_EQ(a.counters().dropped_parts, 1U);
}

TEST(OsrSegments, MalformedSegmentsAreDroppedAndCounted) {
  SegmentAssembler a;
  Out out;
  const auto first = [&](const Bytes &payload) {
    a.deliver(Part{.seq = 0, .flags = wire::kFlagFirst | wire::kFlagLast, .payload = payload}, out);
  };
  const auto framed = [](std::uint16_t mss, std::uint16_t length, const Bytes &packet) {
    Bytes b(SegmentCutter::kSegmentHeader);
    SegmentCutter::writeHeader(mss, length, std::span(b).first<SegmentCutter::kSegmentHeader>());
    b.insert(b.end(), packet.begin(), packet.end());
    return b;
  };
  first(framed(0, 2, Bytes{0x45}));          // the length says 2 bytes, the part has 1
  first(Bytes{0, 0, 0});                     // shorter than the segment header
  first(framed(1448, 3, Bytes{0x60, 0, 0})); // an MSS, but no IPv4 TCP header
  Bytes udp = tcpPacket(Tcp{}, 100);
  udp[9] = 17;
  first(framed(1448, static_cast<std::uint16_t>(udp.size()), udp)); // an MSS on UDP
  EXPECT_TRUE(out.written.empty());
  EXPECT_EQ(a.counters().malformed, 4U);
  EXPECT_EQ(a.counters().segments, 0U);
  // A middle part of the wrong size, or the last one without LAST: the
  // segment ends there.
  VirtioNetHdr hdr;
  const Cut c = cut(superPacket(Tcp{}, 10 * kMss, hdr), kMss);
  a.deliver(Part{.seq = 10, .flags = c.flags[0], .payload = c.payloads[0]}, out);
  const Bytes shortPart(100, 0);
  a.deliver(Part{.seq = 11, .flags = 0, .payload = shortPart}, out);
  EXPECT_EQ(a.counters().malformed, 5U);
  const std::uint32_t lastIndex = static_cast<std::uint32_t>(c.payloads.size() - 1);
  a.deliver(Part{.seq = 20, .flags = c.flags[0], .payload = c.payloads[0]}, out);
  a.deliver(Part{.seq = 20 + lastIndex, .flags = 0, .payload = c.payloads.back()}, out);
  EXPECT_EQ(a.counters().malformed, 6U);
  // Whatever was emitted on the way is valid (the same first part went twice).
  ASSERT_EQ(out.written.size(), 2U);
  for (const Bytes &segment : out.segments) {
    EXPECT_TRUE(ipChecksumOk(segment));
    EXPECT_TRUE(l4ChecksumOk(segment, 6));
  }
}

TEST(OsrSegments, ExpressPartsPassOutsideThePendingSegment) {
  VirtioNetHdr hdr;
  const Cut c = cut(superPacket(Tcp{}, 10 * kMss, hdr), kMss);
  SegmentAssembler a;
  Out out;
  a.deliver(Part{.seq = 0, .flags = c.flags[0], .payload = c.payloads[0]}, out);
  const Bytes ack = tcpPacket(Tcp{}, 0);
  const Cut express = cut(ack, 0);
  a.whole(express.payloads[0], out);
  ASSERT_EQ(out.written.size(), 1U);
  EXPECT_EQ(out.written[0], ack);
  for (std::size_t i = 1; i < c.payloads.size(); ++i) {
    a.deliver(
        Part{.seq = static_cast<std::uint32_t>(i), .flags = c.flags[i], .payload = c.payloads[i]},
        out);
  }
  EXPECT_EQ(out.written.size(), 2U);
  EXPECT_EQ(a.counters().segments, 1U);
  // A super-packet is never EXPRESS.
  const Cut super = cut(superPacket(Tcp{}, 2, hdr), kMss);
  a.whole(super.payloads[0], out);
  EXPECT_EQ(a.counters().malformed, 1U);
}

} // namespace
} // namespace nvbox::osr
