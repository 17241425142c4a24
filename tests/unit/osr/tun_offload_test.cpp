// TsoSplitter and GroCoalescer: the TUN offloads' packet surgery. Checksums
// are verified with tcp_packets.hh's own RFC 1071 loop.
#include "osr/gro_coalescer.hpp"
#include "osr/tso_splitter.hpp"
#include "tcp_packets.hh"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <numeric>
#include <vector>

namespace nvbox::osr {
namespace {

using namespace testing;

struct Collect final : TsoSink {
  std::vector<Bytes> out;
  std::vector<std::uint16_t> mss;
  void segment(std::span<const std::uint8_t> p, std::uint16_t m) noexcept override {
    out.emplace_back(p.begin(), p.end());
    mss.push_back(m);
  }
};

struct Write {
  VirtioNetHdr hdr;
  Bytes bytes;
};
struct Writes final : GroSink {
  std::vector<Write> out;
  void write(const VirtioNetHdr &h, std::span<const std::uint8_t> p) noexcept override {
    out.push_back({h, Bytes(p.begin(), p.end())});
  }
};

TEST(TsoSplitter, SplitsIntoValidSegmentsWithFlagsOnTheRightOnes) {
  Tcp t;
  t.seq = 0xFFFFF000; // wraps during the super-packet
  t.id = 0xFFF0;      // so does the IP id
  t.flags = kAck | kPsh | kFin | kCwr;
  const std::size_t payload = 44 * kMss + 700; // 45 segments, the last short
  VirtioNetHdr hdr;
  Bytes super = superPacket(t, payload, hdr);
  hdr.gso_type |= VirtioNetHdr::kGsoEcn;
  const Bytes original = super;
  TsoSplitter splitter(1500);
  Collect sink;
  ASSERT_EQ(splitter.split(hdr, super, sink), TsoReject::None);
  ASSERT_EQ(sink.out.size(), 45U);
  Bytes joined;
  for (std::size_t i = 0; i < sink.out.size(); ++i) {
    const Bytes &s = sink.out[i];
    const bool last = i + 1 == sink.out.size();
    SCOPED_TRACE(i);
    EXPECT_EQ(s.size(), kHdrLen + (last ? 700 : kMss));
    EXPECT_EQ(get16(s, 2), s.size());
    EXPECT_EQ(get16(s, 4), static_cast<std::uint16_t>(0xFFF0 + i));
    EXPECT_TRUE(ipChecksumOk(s));
    EXPECT_TRUE(l4ChecksumOk(s, 6));
    EXPECT_EQ(get32(s, kIpLen + 4), static_cast<std::uint32_t>(0xFFFFF000 + i * kMss));
    EXPECT_EQ(get32(s, kIpLen + 8), t.ack);
    const std::uint8_t f = s[kIpLen + 13];
    EXPECT_EQ((f & kFin) != 0, last);
    EXPECT_EQ((f & kPsh) != 0, last);
    EXPECT_EQ((f & kCwr) != 0, i == 0);
    EXPECT_NE(f & kAck, 0);
    // Options and everything else in the headers are the original's.
    EXPECT_TRUE(std::equal(s.begin() + kIpLen + 14, s.begin() + kIpLen + 16,
                           original.begin() + kIpLen + 14));
    EXPECT_TRUE(
        std::equal(s.begin() + kIpLen + 20, s.begin() + kHdrLen, original.begin() + kIpLen + 20));
    const Bytes p = payloadOf(s);
    joined.insert(joined.end(), p.begin(), p.end());
  }
  EXPECT_EQ(joined, payloadOf(original));
  const TsoCounters &c = splitter.counters();
  EXPECT_EQ(c.packets, 1U);
  EXPECT_EQ(c.super_packets, 1U);
  EXPECT_EQ(c.segments, 45U);
  EXPECT_EQ(c.emitted, 45U);
  EXPECT_EQ(c.bytes_in, original.size());
  EXPECT_EQ(c.bytes_out, original.size() + 44 * kHdrLen);
  EXPECT_EQ(std::accumulate(c.rejected.begin(), c.rejected.end(), std::uint64_t{0}), 0U);
}

TEST(TsoSplitter, ExactMultipleAndSingleSegment) {
  for (const std::size_t payload : {kMss, 3 * kMss, std::size_t{1}}) {
    SCOPED_TRACE(payload);
    VirtioNetHdr hdr;
    Bytes super = superPacket(Tcp{}, payload, hdr);
    TsoSplitter splitter(1500);
    Collect sink;
    ASSERT_EQ(splitter.split(hdr, super, sink), TsoReject::None);
    ASSERT_EQ(sink.out.size(), (payload + kMss - 1) / kMss);
    for (const Bytes &s : sink.out) {
      EXPECT_TRUE(ipChecksumOk(s));
      EXPECT_TRUE(l4ChecksumOk(s, 6));
    }
    EXPECT_EQ(sink.out.back().size(), kHdrLen + (payload % kMss == 0 ? kMss : payload % kMss));
  }
}

TEST(TsoSplitter, WholeModeEmitsSuperPacketsWithTheirMss) {
  VirtioNetHdr hdr;
  Bytes super = superPacket(Tcp{}, 10 * kMss + 5, hdr);
  const Bytes original = super;
  // MAX_SEGMENT does not apply: the stripe cuts the super-packet itself.
  TsoSplitter splitter(600, TsoSplitter::Mode::Whole);
  Collect sink;
  ASSERT_EQ(splitter.split(hdr, super, sink), TsoReject::None);
  ASSERT_EQ(sink.out.size(), 1U);
  EXPECT_EQ(sink.out[0], original);
  EXPECT_EQ(sink.mss[0], kMss);
  EXPECT_EQ(splitter.counters().super_packets, 1U);
  EXPECT_EQ(splitter.counters().segments, 0U);
  // Still checked: a super-packet without an MSS is refused.
  hdr.gso_size = 0;
  EXPECT_EQ(splitter.split(hdr, super, sink), TsoReject::ZeroGsoSize);
  EXPECT_EQ(sink.out.size(), 1U);
  // A plain packet keeps MSS 0.
  Bytes plain = tcpPacket(Tcp{}, 100);
  ASSERT_EQ(splitter.split(VirtioNetHdr{}, plain, sink), TsoReject::None);
  EXPECT_EQ(sink.mss.back(), 0U);
}

TEST(TsoSplitter, PassesPlainPacketsUntouched) {
  const Bytes pkt = tcpPacket(Tcp{}, 100);
  Bytes copy = pkt;
  TsoSplitter splitter(1500);
  Collect sink;
  ASSERT_EQ(splitter.split(VirtioNetHdr{}, copy, sink), TsoReject::None);
  ASSERT_EQ(sink.out.size(), 1U);
  EXPECT_EQ(sink.out[0], pkt);
  EXPECT_EQ(splitter.counters().super_packets, 0U);
  EXPECT_EQ(splitter.counters().csum_completed, 0U);
}

TEST(TsoSplitter, CompletesAPartialUdpChecksum) {
  for (const std::size_t payload : {std::size_t{0}, std::size_t{1}, std::size_t{333}}) {
    SCOPED_TRACE(payload);
    Bytes b(kIpLen + 8 + payload);
    b[0] = 0x45;
    set16(b, 2, static_cast<std::uint32_t>(b.size()));
    b[8] = 64;
    b[9] = 17;
    set32(b, 12, 0xC0A80001);
    set32(b, 16, 0xC0A80002);
    set16(b, 10, ~sum16(b.data(), kIpLen) & 0xFFFF);
    set16(b, 20, 5353);
    set16(b, 22, 9999);
    set16(b, 24, static_cast<std::uint32_t>(8 + payload));
    for (std::size_t i = 0; i < payload; ++i) {
      b[28 + i] = static_cast<std::uint8_t>(i * 13 + 1);
    }
    set16(b, 26, pseudo(b, 17, 8 + payload)); // what the kernel leaves
    VirtioNetHdr hdr{};
    hdr.flags = VirtioNetHdr::kNeedsCsum;
    hdr.csum_start = kIpLen;
    hdr.csum_offset = 6;
    ASSERT_FALSE(l4ChecksumOk(b, 17));
    TsoSplitter splitter(1500);
    Collect sink;
    ASSERT_EQ(splitter.split(hdr, b, sink), TsoReject::None);
    ASSERT_EQ(sink.out.size(), 1U);
    EXPECT_TRUE(l4ChecksumOk(sink.out[0], 17));
    EXPECT_NE(get16(sink.out[0], 26), 0); // 0 would mean "no checksum"
    EXPECT_EQ(splitter.counters().csum_completed, 1U);
  }
}

struct BadCase {
  const char *name;
  TsoReject expected;
  void (*mutate)(Bytes &, VirtioNetHdr &);
};

TEST(TsoSplitter, RejectsMalformedInputAndCountsIt) {
  const BadCase cases[] = {
      {"truncated ip", TsoReject::Truncated,
       [](Bytes &b, VirtioNetHdr &h) {
         b.resize(12);
         h.hdr_len = 0;
       }},
      {"truncated tcp", TsoReject::Truncated,
       [](Bytes &b, VirtioNetHdr &h) {
         b.resize(kIpLen + 10);
         h.hdr_len = 0;
       }},
      {"options cut", TsoReject::Truncated,
       [](Bytes &b, VirtioNetHdr &h) {
         b.resize(kIpLen + 24);
         h.hdr_len = 0;
       }},
      {"no payload", TsoReject::Truncated, [](Bytes &b, VirtioNetHdr &) { b.resize(kHdrLen); }},
      {"empty", TsoReject::Truncated,
       [](Bytes &b, VirtioNetHdr &h) {
         b.clear();
         h.hdr_len = 0;
       }},
      {"version 6", TsoReject::NotIpv4, [](Bytes &b, VirtioNetHdr &) { b[0] = 0x65; }},
      {"ihl 4", TsoReject::BadIhl, [](Bytes &b, VirtioNetHdr &) { b[0] = 0x44; }},
      {"ihl 0", TsoReject::BadIhl, [](Bytes &b, VirtioNetHdr &) { b[0] = 0x40; }},
      {"ihl 15 > packet", TsoReject::Truncated,
       [](Bytes &b, VirtioNetHdr &h) {
         b[0] = 0x4F;
         b.resize(64);
         h.hdr_len = 0;
       }},
      {"doff 4", TsoReject::BadTcpOffset, [](Bytes &b, VirtioNetHdr &) { b[kIpLen + 12] = 0x40; }},
      {"doff 15 > packet", TsoReject::Truncated,
       [](Bytes &b, VirtioNetHdr &h) {
         b[kIpLen + 12] = 0xF0;
         b.resize(kIpLen + 50);
         h.hdr_len = 0;
       }},
      {"udp", TsoReject::NotTcp, [](Bytes &b, VirtioNetHdr &) { b[9] = 17; }},
      {"fragment", TsoReject::NotTcp, [](Bytes &b, VirtioNetHdr &) { b[6] = 0x20; }},
      {"gso 0", TsoReject::ZeroGsoSize, [](Bytes &, VirtioNetHdr &h) { h.gso_size = 0; }},
      {"hdr_len beyond", TsoReject::BadHdrLen,
       [](Bytes &b, VirtioNetHdr &h) { h.hdr_len = static_cast<std::uint16_t>(b.size() + 1); }},
      {"csum_start beyond", TsoReject::BadCsum,
       [](Bytes &b, VirtioNetHdr &h) { h.csum_start = static_cast<std::uint16_t>(b.size() + 1); }},
      {"csum_start not tcp", TsoReject::BadCsum,
       [](Bytes &, VirtioNetHdr &h) { h.csum_start = 24; }},
      {"csum_offset not tcp", TsoReject::BadCsum,
       [](Bytes &, VirtioNetHdr &h) { h.csum_offset = 6; }},
      {"partial csum beyond", TsoReject::BadCsum,
       [](Bytes &b, VirtioNetHdr &h) {
         h.gso_type = VirtioNetHdr::kGsoNone;
         h.csum_start = static_cast<std::uint16_t>(b.size() - 1);
         h.csum_offset = 0;
       }},
      {"partial csum offset beyond", TsoReject::BadCsum,
       [](Bytes &b, VirtioNetHdr &h) {
         h.gso_type = VirtioNetHdr::kGsoNone;
         h.csum_start = kIpLen;
         h.csum_offset = static_cast<std::uint16_t>(b.size() - kIpLen - 1);
       }},
      {"tcpv6", TsoReject::BadGsoType,
       [](Bytes &, VirtioNetHdr &h) { h.gso_type = VirtioNetHdr::kGsoTcpV6; }},
      {"udp ufo", TsoReject::BadGsoType,
       [](Bytes &, VirtioNetHdr &h) { h.gso_type = VirtioNetHdr::kGsoUdp; }},
      {"udp_l4", TsoReject::BadGsoType,
       [](Bytes &, VirtioNetHdr &h) { h.gso_type = VirtioNetHdr::kGsoUdpL4; }},
      {"unknown gso", TsoReject::BadGsoType, [](Bytes &, VirtioNetHdr &h) { h.gso_type = 0x7F; }},
      {"too big", TsoReject::TooBig, [](Bytes &, VirtioNetHdr &h) { h.gso_size = 1449; }},
  };
  std::array<std::uint64_t, kTsoRejectCount> expected{};
  TsoSplitter splitter(1500); // kHdrLen + 1448 = 1500 exactly: fits
  for (const BadCase &c : cases) {
    SCOPED_TRACE(c.name);
    VirtioNetHdr hdr;
    Bytes b = superPacket(Tcp{}, 5000, hdr);
    c.mutate(b, hdr);
    // Exactly sized heap copy, so a sanitizer build sees any overrun.
    std::unique_ptr<std::uint8_t[]> exact(new std::uint8_t[b.size() + 1]);
    std::memcpy(exact.get(), b.data(), b.size());
    Collect sink;
    EXPECT_EQ(splitter.split(hdr, std::span(exact.get(), b.size()), sink), c.expected);
    EXPECT_TRUE(sink.out.empty());
    ++expected[static_cast<std::size_t>(c.expected)];
    EXPECT_EQ(splitter.counters().rejected, expected);
    EXPECT_NE(toString(c.expected), "unknown");
  }
  EXPECT_EQ(splitter.counters().emitted, 0U);
  EXPECT_EQ(splitter.counters().packets, std::size(cases));
}

// ---- GroCoalescer ----

std::vector<Bytes> segments(Tcp t, std::size_t count, std::size_t size = kMss) {
  std::vector<Bytes> out;
  for (std::size_t i = 0; i < count; ++i) {
    out.push_back(tcpPacket(t, size));
    t.seq += static_cast<std::uint32_t>(size);
    ++t.id;
  }
  return out;
}

// The super-packet as the kernel would complete and cut it: checks the
// header and the CHECKSUM_PARTIAL convention, returns the payload.
Bytes checkSuper(const Write &w, std::size_t segments, std::size_t gsoSize) {
  const Bytes &b = w.bytes;
  EXPECT_EQ(w.hdr.flags, VirtioNetHdr::kNeedsCsum);
  EXPECT_EQ(w.hdr.gso_type, VirtioNetHdr::kGsoTcpV4);
  EXPECT_EQ(w.hdr.hdr_len, kHdrLen);
  EXPECT_EQ(w.hdr.gso_size, gsoSize);
  EXPECT_EQ(w.hdr.csum_start, kIpLen);
  EXPECT_EQ(w.hdr.csum_offset, 16);
  EXPECT_EQ(get16(b, 2), b.size());
  EXPECT_TRUE(ipChecksumOk(b));
  EXPECT_EQ(get16(b, kIpLen + 16), pseudo(b, 6, b.size() - kIpLen));
  // Completing it as the kernel does gives a valid checksum.
  Bytes done = b;
  set16(done, kIpLen + 16, ~sum16(done.data() + kIpLen, done.size() - kIpLen) & 0xFFFF);
  EXPECT_TRUE(l4ChecksumOk(done, 6));
  EXPECT_GT(b.size(), kHdrLen + (segments - 1) * gsoSize);
  EXPECT_LE(b.size(), kHdrLen + segments * gsoSize);
  return payloadOf(b);
}

bool zero(const VirtioNetHdr &h) {
  return h == VirtioNetHdr{};
}

TEST(GroCoalescer, RoundTripOfASplitSuperPacket) {
  Tcp t;
  t.flags = kAck | kPsh;
  const std::size_t payload = 44 * kMss + 700;
  VirtioNetHdr hdr;
  Bytes super = superPacket(t, payload, hdr);
  const Bytes original = payloadOf(super);
  TsoSplitter splitter(1500);
  Collect segs;
  ASSERT_EQ(splitter.split(hdr, super, segs), TsoReject::None);
  GroCoalescer gro;
  Writes w;
  for (const Bytes &s : segs.out) {
    gro.add(s, w);
  }
  // The short last segment with PSH ended the run: written without flush().
  ASSERT_EQ(w.out.size(), 1U);
  EXPECT_FALSE(gro.pending());
  EXPECT_EQ(checkSuper(w.out[0], 45, kMss), original);
  EXPECT_NE(w.out[0].bytes[kIpLen + 13] & kPsh, 0);
  EXPECT_EQ(get32(w.out[0].bytes, kIpLen + 4), t.seq);
  EXPECT_EQ(get16(w.out[0].bytes, 4), t.id);
  const GroCounters &c = gro.counters();
  EXPECT_EQ(c.packets, 45U);
  EXPECT_EQ(c.super_packets, 1U);
  EXPECT_EQ(c.coalesced, 45U);
  EXPECT_EQ(c.writes, 1U);
  EXPECT_EQ(c.bytes_out, kHdrLen + payload);
  EXPECT_EQ(c.ended[static_cast<std::size_t>(GroEnd::Psh)], 1U);
}

TEST(GroCoalescer, SingleSegmentIsWrittenUntouchedWithAZeroHeader) {
  GroCoalescer gro;
  Writes w;
  const Bytes s = tcpPacket(Tcp{}, 500);
  gro.add(s, w);
  EXPECT_TRUE(w.out.empty());
  EXPECT_TRUE(gro.pending());
  gro.flush(w);
  ASSERT_EQ(w.out.size(), 1U);
  EXPECT_TRUE(zero(w.out[0].hdr));
  EXPECT_EQ(w.out[0].bytes, s);
  EXPECT_EQ(gro.counters().singles, 1U);
  gro.flush(w); // nothing pending: nothing written
  EXPECT_EQ(w.out.size(), 1U);
}

TEST(GroCoalescer, FlowChangeEndsTheRun) {
  Tcp a;
  Tcp b;
  b.dport = 5202;
  GroCoalescer gro;
  Writes w;
  for (const auto &s : segments(a, 2)) {
    gro.add(s, w);
  }
  for (const auto &s : segments(b, 3)) {
    gro.add(s, w);
  }
  gro.flush(w);
  ASSERT_EQ(w.out.size(), 2U);
  checkSuper(w.out[0], 2, kMss);
  checkSuper(w.out[1], 3, kMss);
  EXPECT_EQ(get16(w.out[1].bytes, kIpLen + 2), 5202);
  EXPECT_EQ(gro.counters().ended[static_cast<std::size_t>(GroEnd::Mismatch)], 1U);

  // Other address, other TOS (ECN CE), other ack, other window: the same.
  for (auto change : {+[](Tcp &t, Bytes &) { t.ack += 1; }, +[](Tcp &t, Bytes &) { t.window = 7; },
                      +[](Tcp &t, Bytes &) { t.tos = 3; },
                      +[](Tcp &, Bytes &p) {
                        p[19] ^= 1; // destination address, checksums then stale
                      }}) {
    GroCoalescer g;
    Writes ww;
    Tcp t;
    auto segs = segments(t, 2);
    t.seq += 2 * kMss;
    Bytes dummy(kHdrLen); // the Tcp-only changes ignore it
    change(t, dummy);
    Bytes third = tcpPacket(t, kMss);
    change(t, third);
    g.add(segs[0], ww);
    g.add(segs[1], ww);
    g.add(third, ww);
    g.flush(ww);
    ASSERT_EQ(ww.out.size(), 2U);
    EXPECT_EQ(ww.out[1].bytes, third);
    EXPECT_TRUE(zero(ww.out[1].hdr));
  }
}

TEST(GroCoalescer, SeqGapEndsTheRun) {
  auto segs = segments(Tcp{}, 4);
  GroCoalescer gro;
  Writes w;
  gro.add(segs[0], w);
  gro.add(segs[1], w);
  gro.add(segs[3], w); // segs[2] missing
  gro.flush(w);
  ASSERT_EQ(w.out.size(), 2U);
  checkSuper(w.out[0], 2, kMss);
  EXPECT_EQ(w.out[1].bytes, segs[3]);
  EXPECT_EQ(gro.counters().ended[static_cast<std::size_t>(GroEnd::SeqGap)], 1U);
  // A retransmission (seq going back) does not merge either.
  Writes w2;
  gro.add(segs[0], w2);
  gro.add(segs[0], w2);
  gro.flush(w2);
  EXPECT_EQ(w2.out.size(), 2U);
}

TEST(GroCoalescer, PshEndsTheRunAfterBeingMerged) {
  Tcp t;
  auto segs = segments(t, 4);
  segs[1][kIpLen + 13] |= kPsh; // checksum stale: not verified here, by design
  GroCoalescer gro;
  Writes w;
  for (const auto &s : segs) {
    gro.add(s, w);
  }
  ASSERT_EQ(w.out.size(), 1U); // the first two, at once
  EXPECT_NE(w.out[0].bytes[kIpLen + 13] & kPsh, 0);
  checkSuper(w.out[0], 2, kMss);
  gro.flush(w);
  ASSERT_EQ(w.out.size(), 2U);
  EXPECT_EQ(w.out[1].bytes[kIpLen + 13] & kPsh, 0);
  EXPECT_EQ(get32(w.out[1].bytes, kIpLen + 4), t.seq + 2 * kMss);
  checkSuper(w.out[1], 2, kMss);
}

TEST(GroCoalescer, NeverExceeds65535Bytes) {
  auto segs = segments(Tcp{}, 50);
  GroCoalescer gro;
  Writes w;
  for (const auto &s : segs) {
    gro.add(s, w);
  }
  gro.flush(w);
  ASSERT_EQ(w.out.size(), 2U);
  // 52 + 45 * 1448 = 65212; one more would be 66660.
  const Bytes p0 = checkSuper(w.out[0], 45, kMss);
  EXPECT_EQ(w.out[0].bytes.size(), kHdrLen + 45 * kMss);
  EXPECT_LE(w.out[0].bytes.size(), 65535U);
  const Bytes p1 = checkSuper(w.out[1], 5, kMss);
  EXPECT_EQ(p0.size() + p1.size(), 50 * kMss);
  EXPECT_EQ(gro.counters().ended[static_cast<std::size_t>(GroEnd::Size)], 1U);
}

TEST(GroCoalescer, DifferingOptionsEndTheRun) {
  Tcp t;
  auto segs = segments(t, 2);
  t.seq += 2 * kMss;
  t.tsval += 1;
  const Bytes next = tcpPacket(t, kMss);
  GroCoalescer gro;
  Writes w;
  gro.add(segs[0], w);
  gro.add(segs[1], w);
  gro.add(next, w);
  gro.flush(w);
  ASSERT_EQ(w.out.size(), 2U);
  checkSuper(w.out[0], 2, kMss);
  EXPECT_EQ(w.out[1].bytes, next);
}

TEST(GroCoalescer, ControlFlagsPassThroughInOrder) {
  for (const std::uint8_t flag : {kSyn, kFin, kRst, kUrg, kCwr}) {
    SCOPED_TRACE(int{flag});
    Tcp t;
    auto segs = segments(t, 3);
    Tcp f = t;
    f.seq += 3 * kMss;
    f.flags = static_cast<std::uint8_t>(kAck | flag);
    const Bytes special = tcpPacket(f, 100);
    GroCoalescer gro;
    Writes w;
    for (const auto &s : segs) {
      gro.add(s, w);
    }
    gro.add(special, w);
    EXPECT_FALSE(gro.pending());
    ASSERT_EQ(w.out.size(), 2U);
    checkSuper(w.out[0], 3, kMss);
    EXPECT_TRUE(zero(w.out[1].hdr));
    EXPECT_EQ(w.out[1].bytes, special);
    EXPECT_EQ(gro.counters().passthrough[static_cast<std::size_t>(GroPass::Flags)], 1U);
  }
}

TEST(GroCoalescer, NonTcpPassesThroughAndKeepsOrder) {
  Tcp t;
  auto segs = segments(t, 4);
  Bytes udp(40, 0);
  udp[0] = 0x45;
  udp[3] = 40;
  udp[9] = 17;
  Bytes ipv6(60, 0);
  ipv6[0] = 0x60;
  Bytes ack = tcpPacket(Tcp{}, 0);
  Bytes runt{0x45, 0, 0};
  GroCoalescer gro;
  Writes w;
  gro.add(segs[0], w);
  gro.add(segs[1], w);
  gro.add(udp, w);
  gro.add(segs[2], w);
  gro.add(segs[3], w);
  gro.add(ack, w);
  gro.add(ipv6, w);
  gro.add(runt, w);
  ASSERT_EQ(w.out.size(), 6U);
  checkSuper(w.out[0], 2, kMss);
  EXPECT_EQ(w.out[1].bytes, udp);
  EXPECT_EQ(get32(w.out[2].bytes, kIpLen + 4), t.seq + 2 * kMss);
  checkSuper(w.out[2], 2, kMss);
  EXPECT_EQ(w.out[3].bytes, ack);
  EXPECT_EQ(w.out[4].bytes, ipv6);
  EXPECT_EQ(w.out[5].bytes, runt);
  for (const std::size_t i : {1U, 3U, 4U, 5U}) {
    EXPECT_TRUE(zero(w.out[i].hdr));
  }
  const GroCounters &c = gro.counters();
  EXPECT_EQ(c.passthrough[static_cast<std::size_t>(GroPass::NotTcp)], 1U);
  EXPECT_EQ(c.passthrough[static_cast<std::size_t>(GroPass::NoPayload)], 1U);
  EXPECT_EQ(c.passthrough[static_cast<std::size_t>(GroPass::NotIpv4)], 1U);
  EXPECT_EQ(c.passthrough[static_cast<std::size_t>(GroPass::Malformed)], 1U);
  EXPECT_EQ(c.ended[static_cast<std::size_t>(GroEnd::Passthrough)], 2U);
}

TEST(GroCoalescer, ShortSegmentEndsTheRun) {
  Tcp t;
  auto segs = segments(t, 1);
  Tcp s = t;
  s.seq += kMss;
  const Bytes shortSeg = tcpPacket(s, 500);
  s.seq += 500;
  const Bytes after = tcpPacket(s, kMss);
  GroCoalescer gro;
  Writes w;
  gro.add(segs[0], w);
  gro.add(shortSeg, w);
  ASSERT_EQ(w.out.size(), 1U); // written at once: nothing can follow it
  checkSuper(w.out[0], 2, kMss);
  EXPECT_EQ(w.out[0].bytes.size(), kHdrLen + kMss + 500);
  gro.add(after, w);
  gro.flush(w);
  ASSERT_EQ(w.out.size(), 2U);
  EXPECT_EQ(w.out[1].bytes, after);
  EXPECT_EQ(gro.counters().ended[static_cast<std::size_t>(GroEnd::Short)], 1U);
  // A larger payload than gso_size starts a new run instead.
  Tcp u;
  auto small = segments(u, 1, 1000);
  u.seq += 1000;
  const Bytes larger = tcpPacket(u, kMss);
  Writes w2;
  GroCoalescer g2;
  g2.add(small[0], w2);
  g2.add(larger, w2);
  g2.flush(w2);
  ASSERT_EQ(w2.out.size(), 2U);
  EXPECT_EQ(w2.out[0].bytes, small[0]);
  EXPECT_EQ(w2.out[1].bytes, larger);
}

TEST(GroCoalescer, TotalLengthMismatchIsNotMerged) {
  auto segs = segments(Tcp{}, 2);
  Bytes padded = segs[1];
  padded.push_back(0); // trailing byte beyond the IP total length
  GroCoalescer gro;
  Writes w;
  gro.add(segs[0], w);
  gro.add(padded, w);
  ASSERT_EQ(w.out.size(), 2U);
  EXPECT_EQ(w.out[0].bytes, segs[0]);
  EXPECT_EQ(w.out[1].bytes, padded);
}

} // namespace
} // namespace nvbox::osr
