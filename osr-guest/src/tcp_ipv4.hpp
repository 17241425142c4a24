// IPv4 and TCP header fields as the TUN offloads (TsoSplitter, GroCoalescer)
// read and write them: offsets, flags and big-endian loads and stores on raw
// packet bytes. Private to nvbox_osr; callers check lengths first.
#pragma once

#include <cstddef>
#include <cstdint>

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

} // namespace nvbox::osr::tcpip
