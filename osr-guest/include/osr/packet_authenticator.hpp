// PacketAuthenticator — the tag of tunnel packets (wire version 3).
//
// What it does: computeTag() computes the 16-byte tag of a packet's bytes;
// verifying is recomputing it and comparing in constant time (wire::parse
// does that). Nothing is encrypted, so a relay forwards a packet without
// touching it.
//
// The tag needs no nonce: tag = AES-256_K2(GHASH_H(packet) xor c), where
// GHASH_H is GCM's polynomial hash (with the length block) under H =
// AES-256_K1(0), and c a constant (OpenSSL computes GHASH as an AES-256-GCM
// tag under K1 and a fixed all-zero IV, which adds the constant AES_K1(J0)).
// It is the tag of AES-GCM-SIV (RFC 8452, section 4: POLYVAL, then AES under
// a second key) with a fixed nonce and GCM's GHASH in place of POLYVAL: an
// almost-universal hash under a secret key, then a pseudo-random permutation
// under an independent key, which is a pseudo-random function and so a MAC.
// For q packets of at most L blocks the forgery bound is about
// q^2 * (L + 1) / 2^129: for 2^48 packets of 1500 bytes below 2^-26.
//
// Why no nonce: version 2 tagged with GMAC under a per-sender counting nonce,
// and GCM gives the authentication key away when one key tags two packets
// under one nonce. Every OSR of an overlay shares the key, and a router's
// counter lives in its RAM: restoring one saved state twice (a relocation's
// fallback, a snapshot revert, a router cloned from a template) would send the
// same nonces again. A deterministic tag has nothing to repeat. It also takes
// 12 bytes out of every packet (the nonce), which striping pays per part.
// The price is one more AES block per packet (docs/osrd-benchmarks.md).
// Identical packets get identical tags; replays are the receivers' business
// (sequence numbers, docs/wire-format.md).
//
// Parameters: the OverlayKey. K1 and K2 are derived from it with libsodium's
// crypto_kdf (keyed BLAKE2b, context "osrwire3", subkeys 1 and 2), so the
// overlay key itself never keys two algorithms (the oracle's messages use it
// with BLAKE2b). OpenSSL's libcrypto uses AES-NI and PCLMULQDQ where the CPU
// has them and a software path where it has not (a router VM under QEMU TCG
// sees a CPU without AES-NI).
//
// Counters: none. Threading: one instance per thread (it owns two OpenSSL
// cipher contexts); copying is not allowed, moving is.
#pragma once

#include "osr/overlay_key.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

namespace nvbox::osr {

class PacketAuthenticator {
public:
  static constexpr std::size_t kTagSize = 16;

  // Control-path: throws std::runtime_error if OpenSSL cannot set up AES.
  explicit PacketAuthenticator(const OverlayKey &key);
  PacketAuthenticator(PacketAuthenticator &&) noexcept;
  PacketAuthenticator &operator=(PacketAuthenticator &&) noexcept;
  ~PacketAuthenticator();

  // The tag of `authenticated`. False only if OpenSSL fails, which valid
  // sizes rule out; the caller then drops the packet.
  bool computeTag(std::span<const std::uint8_t> authenticated,
                  std::span<std::uint8_t, kTagSize> tag) noexcept;

  // computeTag() and a constant-time comparison with `tag`.
  bool verify(std::span<const std::uint8_t> authenticated,
              std::span<const std::uint8_t, kTagSize> tag) noexcept;

private:
  struct Ciphers;
  std::unique_ptr<Ciphers> ciphers_;
};

} // namespace nvbox::osr
