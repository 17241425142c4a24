// What every packet written to a TUN device must satisfy, for the fuzz
// targets that drive a SegmentAssembler (osr_packet_fuzz, segment_fuzz).
// Checksums are computed with a plain RFC 1071 loop over big-endian words,
// not with osr/internet_checksum.hpp, so that a bug there cannot hide itself.
// Header-only; fuzz code.
#pragma once

#include "osr/virtio_net_hdr.hpp"

#include <cstddef>
#include <cstdint>
#include <span>

namespace nvbox::osr::fuzz {

[[noreturn]] inline void fail() {
  __builtin_trap();
}
inline void check(bool ok) {
  if (!ok) {
    fail();
  }
}

inline std::uint16_t be16(const std::uint8_t *p) {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}
inline std::uint32_t be32(const std::uint8_t *p) {
  return (std::uint32_t{be16(p)} << 16) | be16(p + 2);
}
inline void put16(std::uint8_t *p, std::uint32_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v & 0xFF);
}
inline void put32(std::uint8_t *p, std::uint32_t v) {
  put16(p, v >> 16);
  put16(p + 2, v & 0xFFFF);
}

// Independent RFC 1071 sum over big-endian 16-bit words, folded.
inline std::uint32_t sum16(const std::uint8_t *p, std::size_t n, std::uint32_t acc = 0) {
  for (std::size_t i = 0; i + 1 < n; i += 2) {
    acc += be16(p + i);
    acc = (acc & 0xFFFF) + (acc >> 16);
  }
  if (n % 2 == 1) {
    acc += static_cast<std::uint32_t>(p[n - 1] << 8);
  }
  while ((acc >> 16) != 0) {
    acc = (acc & 0xFFFF) + (acc >> 16);
  }
  return acc;
}

// The pseudo-header sum of an IPv4 packet for a transport of `l4len` bytes.
inline std::uint32_t pseudoSum(std::span<const std::uint8_t> ip, std::uint8_t proto,
                               std::size_t l4len) {
  return sum16(ip.data() + 12, 8, proto + static_cast<std::uint32_t>(l4len));
}

// One's complement equality: 0 and 0xFFFF are both zero.
inline bool sameSum(std::uint32_t a, std::uint32_t b) {
  return (a == 0xFFFF ? 0 : a) == (b == 0xFFFF ? 0 : b);
}

// A packet with its VirtioNetHdr as the egress writes it to TUN. An all-zero
// header is a plain packet, written as it is (nothing to check but the size);
// any other is an IPv4 TCP packet for CHECKSUM_PARTIAL, with or without GSO:
// its header must describe the packet, and the kernel takes the IP header and
// the pseudo-header sum in the TCP checksum field as they are.
inline void checkTunWrite(const VirtioNetHdr &h, std::span<const std::uint8_t> p) {
  check(p.size() <= 0xFFFF);
  if (h == VirtioNetHdr{}) {
    return;
  }
  check(h.flags == VirtioNetHdr::kNeedsCsum);
  check(h.gso_type == VirtioNetHdr::kGsoNone || h.gso_type == VirtioNetHdr::kGsoTcpV4);
  check(p.size() >= 40 && (p[0] >> 4) == 4 && p[9] == 6);
  const std::size_t ihl = std::size_t{p[0] & 0x0FU} * 4;
  check(ihl >= 20 && ihl + 20 <= p.size());
  check(h.csum_start == ihl && h.csum_offset == 16 && h.csum_start + 18U <= p.size());
  check(be16(p.data() + 2) == p.size());
  check(sum16(p.data(), ihl) == 0xFFFF);
  check((be16(p.data() + 6) & 0x3FFFU) == 0); // no fragment
  const std::size_t doff = std::size_t{p[ihl + 12]} / 16 * 4;
  check(doff >= 20 && ihl + doff < p.size()); // headers, then payload
  check(sameSum(be16(p.data() + ihl + 16), pseudoSum(p, 6, p.size() - ihl)));
  if (h.gso_type == VirtioNetHdr::kGsoTcpV4) {
    check(h.hdr_len == ihl + doff && h.hdr_len < p.size() && h.gso_size != 0 &&
          p.size() - h.hdr_len > h.gso_size);
  } else {
    check(h.hdr_len == 0 && h.gso_size == 0);
  }
}

} // namespace nvbox::osr::fuzz
