#include "osr/internet_checksum.hpp"

#include <array>
#include <cstring>

namespace nvbox::osr::checksum {

std::uint64_t partial(std::span<const std::uint8_t> bytes, std::uint64_t initial) noexcept {
  // Two accumulators of 32-bit words: a 64-bit sum of 2^30 of them cannot
  // carry out, and the loads overlap in the pipeline.
  std::uint64_t a = initial;
  std::uint64_t b = 0;
  const std::uint8_t *p = bytes.data();
  std::size_t n = bytes.size();
  while (n >= 8) {
    std::uint32_t w0 = 0;
    std::uint32_t w1 = 0;
    std::memcpy(&w0, p, 4);
    std::memcpy(&w1, p + 4, 4);
    a += w0;
    b += w1;
    p += 8;
    n -= 8;
  }
  if (n >= 4) {
    std::uint32_t w = 0;
    std::memcpy(&w, p, 4);
    a += w;
    p += 4;
    n -= 4;
  }
  if (n >= 2) {
    std::uint16_t w = 0;
    std::memcpy(&w, p, 2);
    b += w;
    p += 2;
    n -= 2;
  }
  if (n == 1) {
    // The missing byte is a zero in the word's second (higher-addressed) byte.
    const std::array<std::uint8_t, 2> last{*p, 0};
    std::uint16_t w = 0;
    std::memcpy(&w, last.data(), 2);
    b += w;
  }
  // A 32-bit word is two 16-bit words: folding treats them alike.
  const std::uint64_t sum = a + b;
  return (sum < a) ? sum + 1 : sum; // end-around carry (only with a huge initial)
}

std::uint16_t fold(std::uint64_t sum) noexcept {
  while ((sum >> 16) != 0) {
    sum = (sum & 0xFFFF) + (sum >> 16);
  }
  return static_cast<std::uint16_t>(sum);
}

std::uint64_t pseudoHeader(std::span<const std::uint8_t, 8> addrs, std::uint8_t protocol,
                           std::uint16_t length) noexcept {
  std::array<std::uint8_t, 12> ph{};
  std::memcpy(ph.data(), addrs.data(), 8);
  ph[9] = protocol;
  ph[10] = static_cast<std::uint8_t>(length >> 8);
  ph[11] = static_cast<std::uint8_t>(length & 0xFF);
  return partial(ph);
}

void store(std::uint8_t *at, std::uint16_t value) noexcept {
  std::memcpy(at, &value, 2);
}

std::uint16_t complete(std::span<const std::uint8_t> bytes, std::uint64_t initial) noexcept {
  return static_cast<std::uint16_t>(~fold(partial(bytes, initial)));
}

} // namespace nvbox::osr::checksum
