#include "osr/overlay_key.hpp"

#include <sodium.h>

#include <algorithm>
#include <stdexcept>

namespace nvbox::osr {

namespace {

// sodium_init() is idempotent and thread-safe, but calling it once through a
// function-local static also keeps it off every later key construction.
void ensureSodium() {
  static const int rc = sodium_init();
  if (rc < 0) {
    throw std::runtime_error("sodium_init() failed (rc=" + std::to_string(rc) +
                             "): libsodium cannot be used");
  }
}

std::string_view trimmed(std::string_view text) noexcept {
  constexpr std::string_view kSpace = " \t\r\n";
  const auto first = text.find_first_not_of(kSpace);
  if (first == std::string_view::npos) {
    return {};
  }
  return text.substr(first, text.find_last_not_of(kSpace) - first + 1);
}

} // namespace

OverlayKey::OverlayKey() {
  ensureSodium();
}

OverlayKey::~OverlayKey() {
  sodium_memzero(bytes_.data(), bytes_.size());
}

OverlayKey OverlayKey::generate() {
  OverlayKey key;
  randombytes_buf(key.bytes_.data(), key.bytes_.size());
  return key;
}

std::optional<OverlayKey> OverlayKey::fromHex(std::string_view hex) {
  hex = trimmed(hex);
  // sodium_hex2bin stops at the first non-hex byte; requiring exactly 2*kSize
  // digits and full consumption rejects short, long and dirty input alike.
  if (hex.size() != 2 * kSize) {
    return std::nullopt;
  }
  OverlayKey key;
  std::size_t written = 0;
  const char *end = nullptr;
  if (sodium_hex2bin(key.bytes_.data(), key.bytes_.size(), hex.data(), hex.size(), nullptr,
                     &written, &end) != 0 ||
      written != kSize || end != hex.data() + hex.size()) {
    return std::nullopt;
  }
  return key;
}

OverlayKey OverlayKey::fromBytes(std::span<const std::uint8_t, kSize> bytes) {
  OverlayKey key;
  std::copy(bytes.begin(), bytes.end(), key.bytes_.begin());
  return key;
}

std::string OverlayKey::toHex() const {
  std::array<char, 2 * kSize + 1> text{};
  sodium_bin2hex(text.data(), text.size(), bytes_.data(), bytes_.size());
  return std::string(text.data(), 2 * kSize);
}

} // namespace nvbox::osr
