// IPv4 and TCP header fields as the TUN offloads (TsoSplitter, GroCoalescer)
// read and write them: offsets, flags and big-endian loads and stores on raw
// packet bytes. Private to nvbox_osr; callers check lengths first.
#pragma once

#include "osr/internet_checksum.hpp"
#include "osr/virtio_net_hdr.hpp"

#include <cstddef>
#include <cstdint>
#include <span>

namespace nvbox::osr::tcpip {

inline constexpr std::size_t kIpMinHeader = 20;
inline constexpr std::size_t kTcpMinHeader = 20;
inline constexpr std::uint8_t kProtoTcp = 6;
inline constexpr std::uint16_t kTcpCsumOffset = 16;
inline constexpr std::uint8_t kFin = 0x01;
inline constexpr std::uint8_t kSyn = 0x02;
inline constexpr std::uint8_t kRst = 0x04;
inline constexpr std::uint8_t kPsh = 0x08;
inline constexpr std::uint8_t kAck = 0x10;
inline constexpr std::uint8_t kUrg = 0x20;
inline constexpr std::uint8_t kCwr = 0x80;

inline std::uint16_t load16(const std::uint8_t *p) noexcept {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}
inline void put16(std::uint8_t *p, std::uint16_t v) noexcept {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v & 0xFF);
}
inline std::uint32_t load32(const std::uint8_t *p) noexcept {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}
inline void put32(std::uint8_t *p, std::uint32_t v) noexcept {
  put16(p, static_cast<std::uint16_t>(v >> 16));
  put16(p + 2, static_cast<std::uint16_t>(v & 0xFFFF));
}

// Makes `p`, an IPv4 TCP packet of `len` bytes with headers of `ipLen` and
// `hdrLen` (IP + TCP) bytes, ready for a TUN device with offloads: total
// length and IP header checksum set, and the pseudo-header sum
// (uncomplemented) in the TCP checksum field, as the kernel expects of
// CHECKSUM_PARTIAL. Returns its VirtioNetHdr: NEEDS_CSUM, and TCPV4 GSO at
// `mss` when the payload is longer than that (mss 0: never). Callers check
// the lengths.
inline VirtioNetHdr prepareForTun(std::uint8_t *p, std::size_t len, std::size_t ipLen,
                                  std::size_t hdrLen, std::size_t mss) noexcept {
  put16(p + 2, static_cast<std::uint16_t>(len));
  put16(p + 10, 0);
  checksum::store(p + 10, checksum::complete(std::span(p, ipLen)));
  const std::uint64_t pseudo =
      checksum::pseudoHeader(std::span<const std::uint8_t, 8>(p + 12, 8), kProtoTcp,
                             static_cast<std::uint16_t>(len - ipLen));
  checksum::store(p + ipLen + kTcpCsumOffset, checksum::fold(pseudo));
  VirtioNetHdr hdr{};
  hdr.flags = VirtioNetHdr::kNeedsCsum;
  hdr.csum_start = static_cast<std::uint16_t>(ipLen);
  hdr.csum_offset = kTcpCsumOffset;
  if (mss != 0 && len - hdrLen > mss) {
    hdr.gso_type = VirtioNetHdr::kGsoTcpV4;
    hdr.hdr_len = static_cast<std::uint16_t>(hdrLen);
    hdr.gso_size = static_cast<std::uint16_t>(mss);
  }
  return hdr;
}

} // namespace nvbox::osr::tcpip
