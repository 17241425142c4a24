// PacketAuthenticator — the tag of tunnel packets (wire version 2), and the
// nonces one sender puts in them.
//
// What it does: nextNonce() hands out this sender's next 96-bit nonce;
// computeTag() computes the 16-byte AES-256-GCM tag of a packet's bytes
// under a nonce. GCM is used as a MAC (GMAC): every byte of the packet is
// additional data and nothing is encrypted, so a relay forwards a packet
// without touching it. Verifying is recomputing the tag from the nonce the
// packet carries and comparing in constant time (wire::parse does that).
//
// Why GCM and not the keyed BLAKE2b of version 1: per 1452-byte part, GMAC
// costs about 0.37 µs against BLAKE2b's 1.65 µs on the benchmark machines,
// and both ends of every part pay it (see docs/osrd-benchmarks.md). OpenSSL's
// libcrypto provides it, with AES-NI and PCLMULQDQ where the CPU has them
// and a software path where it has not (a router VM under QEMU TCG sees a
// CPU without AES-NI, and is slow anyway).
//
// Parameters: the OverlayKey. The AES key is derived from it with libsodium's
// crypto_kdf (keyed BLAKE2b, context "osrwire2", subkey 1), so the overlay key
// itself never keys two algorithms (the oracle's messages use it with BLAKE2b).
//
// Nonces: GCM breaks if one key ever tags two packets under the same nonce,
// and every OSR of an overlay shares the key. Each instance therefore counts
// from a random 96-bit start (randombytes), one step per packet. Two
// instances collide only if their ranges overlap: for 1024 senders over the
// key's life, each sending 2^40 packets, that is below 2^-36. A restart draws
// a new start, so restarts are senders like any other.
//
// Counters: none. Threading: one instance per thread (it owns an OpenSSL
// cipher context and the counter); copying is not allowed, moving is.
#pragma once

#include "osr/overlay_key.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

namespace nvbox::osr {

class PacketAuthenticator {
public:
  static constexpr std::size_t kNonceSize = 12;
  static constexpr std::size_t kTagSize = 16;

  // Control-path: throws std::runtime_error if OpenSSL cannot set up AES-GCM.
  explicit PacketAuthenticator(const OverlayKey &key);
  PacketAuthenticator(PacketAuthenticator &&) noexcept;
  PacketAuthenticator &operator=(PacketAuthenticator &&) noexcept;
  ~PacketAuthenticator();

  // Writes the next nonce, big-endian, and advances the counter (mod 2^96).
  void nextNonce(std::span<std::uint8_t, kNonceSize> nonce) noexcept;

  // The tag of `authenticated` under `nonce`. False only if OpenSSL fails,
  // which valid sizes rule out; the caller then drops the packet.
  bool computeTag(std::span<const std::uint8_t> authenticated,
                  std::span<const std::uint8_t, kNonceSize> nonce,
                  std::span<std::uint8_t, kTagSize> tag) noexcept;

private:
  struct Cipher;
  std::unique_ptr<Cipher> cipher_;
  std::array<std::uint8_t, kNonceSize> next_{};
};

} // namespace nvbox::osr
