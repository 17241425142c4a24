// Internet checksum (RFC 1071) — the one's-complement sum shared by the TUN
// offloads (TsoSplitter, GroCoalescer).
//
// What it does: sums bytes as 16-bit words in one's-complement arithmetic.
// The sum is taken over native-order loads and stored back with memcpy: the
// one's-complement sum is byte-order independent (RFC 1071 section 2B), so
// the bytes written are right on any host and no word is byte-swapped.
// Partial sums chain: pass the previous (unfolded) sum as `initial`. Every
// region is summed as if it started at an even offset, so chain only at even
// boundaries (headers are; a payload is summed last).
//
// Parameters: none. Counters: none. Threading: pure functions.
#pragma once

#include <cstdint>
#include <span>

namespace nvbox::osr::checksum {

// Unfolded partial sum of `bytes` added to `initial`; an odd trailing byte
// counts as padded with a zero byte. Inputs up to 2^32 bytes cannot overflow.
std::uint64_t partial(std::span<const std::uint8_t> bytes, std::uint64_t initial = 0) noexcept;

// Folds a partial sum to 16 bits (native order, not complemented).
std::uint16_t fold(std::uint64_t sum) noexcept;

// The partial sum of the IPv4 pseudo-header (RFC 793): source and
// destination addresses as the 8 bytes at `addrs` (network order, as in the
// IP header), protocol and the transport length.
std::uint64_t pseudoHeader(std::span<const std::uint8_t, 8> addrs, std::uint8_t protocol,
                           std::uint16_t length) noexcept;

// Stores a native-order 16-bit value at `at` (the two bytes then read as
// the checksum field on the wire).
void store(std::uint8_t *at, std::uint16_t value) noexcept;

// ~fold(partial(bytes)) — what goes in a checksum field (the IP header
// checksum when `bytes` is the header with its checksum field zeroed).
std::uint16_t complete(std::span<const std::uint8_t> bytes, std::uint64_t initial = 0) noexcept;

} // namespace nvbox::osr::checksum
