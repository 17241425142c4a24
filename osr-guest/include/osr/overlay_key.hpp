// OverlayKey — the 32-byte secret shared by every OSR of one overlay.
//
// What it does: holds the overlay's secret. Tunnel packets are tagged with
// AES-256-GCM under a key derived from it (PacketAuthenticator), the oracle's
// control messages with keyed BLAKE2b under it (oracle_wire.hpp). Created by
// generate() (randombytes_buf) or loaded from 64 hex digits; the bytes are
// wiped on destruction.
// Parameters: none beyond the key bytes.
// Counters: none.
// Threading: immutable after construction; share freely between threads.
//
// Every factory makes sure sodium_init() has run (once, thread-safe), so any
// code holding a key may use libsodium. Factories are control-path code: they
// may throw std::runtime_error if libsodium cannot initialise.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace nvbox::osr {

class OverlayKey {
public:
  static constexpr std::size_t kSize = 32;

  // A fresh random key from the system CSPRNG.
  static OverlayKey generate();
  // Exactly 64 hex digits (either case), surrounding whitespace ignored, so a
  // key file with a trailing newline loads. nullopt on anything else.
  static std::optional<OverlayKey> fromHex(std::string_view hex);
  static OverlayKey fromBytes(std::span<const std::uint8_t, kSize> bytes);

  OverlayKey(const OverlayKey &) = default;
  OverlayKey &operator=(const OverlayKey &) = default;
  ~OverlayKey();

  std::string toHex() const;
  std::span<const std::uint8_t, kSize> bytes() const noexcept { return bytes_; }

private:
  OverlayKey(); // runs sodium_init() once
  std::array<std::uint8_t, kSize> bytes_{};
};

} // namespace nvbox::osr
