// Big-endian (network byte order) stores and loads at an offset of a byte
// span, for the wire formats (wire.cpp, oracle_wire.cpp). Bytewise, so that
// neither alignment nor host byte order matters and no reinterpret_cast is
// needed. Private to nvbox_osr; callers check lengths first.
#pragma once

#include "osr/endpoint.hpp"

#include <cstddef>
#include <cstdint>
#include <span>

namespace nvbox::osr::be {

inline void put16(std::span<std::uint8_t> out, std::size_t at, std::uint16_t v) noexcept {
  out[at] = static_cast<std::uint8_t>(v >> 8);
  out[at + 1] = static_cast<std::uint8_t>(v);
}
inline void put32(std::span<std::uint8_t> out, std::size_t at, std::uint32_t v) noexcept {
  put16(out, at, static_cast<std::uint16_t>(v >> 16));
  put16(out, at + 2, static_cast<std::uint16_t>(v));
}
inline void put64(std::span<std::uint8_t> out, std::size_t at, std::uint64_t v) noexcept {
  put32(out, at, static_cast<std::uint32_t>(v >> 32));
  put32(out, at + 4, static_cast<std::uint32_t>(v));
}
inline void putEndpoint(std::span<std::uint8_t> out, std::size_t at, const Endpoint &ep) noexcept {
  put32(out, at, ep.addr);
  put16(out, at + 4, ep.port);
}
inline std::uint16_t get16(std::span<const std::uint8_t> in, std::size_t at) noexcept {
  return static_cast<std::uint16_t>((in[at] << 8) | in[at + 1]);
}
inline std::uint32_t get32(std::span<const std::uint8_t> in, std::size_t at) noexcept {
  return (std::uint32_t{get16(in, at)} << 16) | get16(in, at + 2);
}
inline std::uint64_t get64(std::span<const std::uint8_t> in, std::size_t at) noexcept {
  return (std::uint64_t{get32(in, at)} << 32) | get32(in, at + 4);
}
inline Endpoint getEndpoint(std::span<const std::uint8_t> in, std::size_t at) noexcept {
  return Endpoint{.addr = get32(in, at), .port = get16(in, at + 4)};
}

} // namespace nvbox::osr::be
