// IPv4/TCP packets for the tests of the TUN offloads and of segments:
// building them, and checking their checksums with a plain RFC 1071 loop over
// big-endian words — not with osr/internet_checksum.hpp, so that a bug there
// cannot hide itself. Header-only; test code.
#pragma once

#include "osr/virtio_net_hdr.hpp"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace nvbox::osr::testing {

using Bytes = std::vector<std::uint8_t>;

inline constexpr std::uint8_t kFin = 0x01;
inline constexpr std::uint8_t kSyn = 0x02;
inline constexpr std::uint8_t kRst = 0x04;
inline constexpr std::uint8_t kPsh = 0x08;
inline constexpr std::uint8_t kAck = 0x10;
inline constexpr std::uint8_t kUrg = 0x20;
inline constexpr std::uint8_t kCwr = 0x80;
inline constexpr std::size_t kMss = 1448;
inline constexpr std::size_t kIpLen = 20;
inline constexpr std::size_t kTcpLen = 32; // with a 12-byte timestamp option
inline constexpr std::size_t kHdrLen = kIpLen + kTcpLen;

inline std::uint16_t get16(const Bytes &b, std::size_t at) {
  return static_cast<std::uint16_t>((b.at(at) << 8) | b.at(at + 1));
}
inline std::uint32_t get32(const Bytes &b, std::size_t at) {
  return (std::uint32_t{get16(b, at)} << 16) | get16(b, at + 2);
}
inline void set16(Bytes &b, std::size_t at, std::uint32_t v) {
  b.at(at) = static_cast<std::uint8_t>(v >> 8);
  b.at(at + 1) = static_cast<std::uint8_t>(v & 0xFF);
}
inline void set32(Bytes &b, std::size_t at, std::uint32_t v) {
  set16(b, at, v >> 16);
  set16(b, at + 2, v & 0xFFFF);
}

// Independent RFC 1071 sum over big-endian 16-bit words, folded.
inline std::uint32_t sum16(const std::uint8_t *p, std::size_t n, std::uint32_t acc = 0) {
  for (std::size_t i = 0; i + 1 < n; i += 2) {
    acc += static_cast<std::uint32_t>((p[i] << 8) | p[i + 1]);
  }
  if (n % 2 == 1) {
    acc += static_cast<std::uint32_t>(p[n - 1] << 8);
  }
  while (acc >> 16) {
    acc = (acc & 0xFFFF) + (acc >> 16);
  }
  return acc;
}
inline std::uint32_t pseudo(const Bytes &pkt, std::uint8_t proto, std::size_t l4len) {
  std::uint32_t acc = sum16(pkt.data() + 12, 8);
  acc += proto;
  acc += static_cast<std::uint32_t>(l4len);
  return sum16(nullptr, 0, acc);
}
inline bool ipChecksumOk(const Bytes &pkt) {
  const std::size_t ihl = std::size_t{pkt.at(0) & 0x0FU} * 4;
  return sum16(pkt.data(), ihl) == 0xFFFF;
}
inline bool l4ChecksumOk(const Bytes &pkt, std::uint8_t proto) {
  const std::size_t ihl = std::size_t{pkt.at(0) & 0x0FU} * 4;
  const std::size_t l4 = pkt.size() - ihl;
  return sum16(pkt.data() + ihl, l4, pseudo(pkt, proto, l4)) == 0xFFFF;
}

struct Tcp {
  std::uint32_t seq = 1000;
  std::uint32_t ack = 77777;
  std::uint8_t flags = kAck;
  std::uint16_t window = 501;
  std::uint16_t sport = 40000;
  std::uint16_t dport = 5201;
  std::uint32_t tsval = 123456;
  std::uint16_t id = 0x1234;
  std::uint8_t tos = 0;
};

// An IPv4/TCP packet with `payload` bytes of a seq-derived pattern and valid
// checksums (computed with the independent sum).
inline Bytes tcpPacket(const Tcp &t, std::size_t payload) {
  Bytes b(kHdrLen + payload);
  b[0] = 0x45;
  b[1] = t.tos;
  set16(b, 2, static_cast<std::uint32_t>(b.size()));
  set16(b, 4, t.id);
  b[6] = 0x40; // DF
  b[8] = 64;
  b[9] = 6;
  set32(b, 12, 0x0A000001);
  set32(b, 16, 0x0A000102);
  set16(b, 20, t.sport);
  set16(b, 22, t.dport);
  set32(b, 24, t.seq);
  set32(b, 28, t.ack);
  b[32] = static_cast<std::uint8_t>((kTcpLen / 4) << 4);
  b[33] = t.flags;
  set16(b, 34, t.window);
  // NOP NOP TS(10): kind 8 len 10 tsval tsecr
  b[40] = 1;
  b[41] = 1;
  b[42] = 8;
  b[43] = 10;
  set32(b, 44, t.tsval);
  set32(b, 48, 999);
  for (std::size_t i = 0; i < payload; ++i) {
    b[kHdrLen + i] = static_cast<std::uint8_t>((t.seq + i) * 7 + 3);
  }
  set16(b, 10, ~sum16(b.data(), kIpLen) & 0xFFFF);
  set16(b, kIpLen + 16, 0);
  set16(b, kIpLen + 16,
        ~sum16(b.data() + kIpLen, b.size() - kIpLen, pseudo(b, 6, b.size() - kIpLen)) & 0xFFFF);
  return b;
}

// What the kernel hands over: headers once, gso_size, the checksum field
// holding only the pseudo-header sum.
inline Bytes superPacket(const Tcp &t, std::size_t payload, VirtioNetHdr &hdr) {
  Bytes b = tcpPacket(t, payload);
  set16(b, kIpLen + 16, pseudo(b, 6, b.size() - kIpLen));
  hdr = {};
  hdr.flags = VirtioNetHdr::kNeedsCsum;
  hdr.gso_type = VirtioNetHdr::kGsoTcpV4;
  hdr.hdr_len = kHdrLen;
  hdr.gso_size = kMss;
  hdr.csum_start = kIpLen;
  hdr.csum_offset = 16;
  return b;
}

inline Bytes payloadOf(const Bytes &pkt) {
  const std::size_t ihl = std::size_t{pkt.at(0) & 0x0FU} * 4;
  const std::size_t doff = static_cast<std::size_t>(pkt.at(ihl + 12) >> 4) * 4;
  return {pkt.begin() + static_cast<std::ptrdiff_t>(ihl + doff), pkt.end()};
}

} // namespace nvbox::osr::testing
