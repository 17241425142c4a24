#include "osr/packet_authenticator.hpp"

#include <openssl/evp.h>
#include <sodium.h>

#include <array>
#include <climits>
#include <stdexcept>

namespace nvbox::osr {

namespace {

constexpr char kKdfContext[crypto_kdf_CONTEXTBYTES + 1] = "osrwire3";
constexpr std::uint64_t kHashKeyId = 1;  // K1: GHASH's key H = AES_K1(0)
constexpr std::uint64_t kFinalKeyId = 2; // K2: the permutation over the hash
constexpr std::size_t kAesKeySize = 32;
constexpr std::size_t kGcmIvSize = 12;
// The IV is fixed: GCM here only computes GHASH (plus a constant), see the
// header; the nonce-dependent part of GCM's security is not used.
constexpr std::array<std::uint8_t, kGcmIvSize> kFixedIv{};

struct FreeContext {
  void operator()(EVP_CIPHER_CTX *context) const noexcept { EVP_CIPHER_CTX_free(context); }
};
using Context = std::unique_ptr<EVP_CIPHER_CTX, FreeContext>;

std::array<std::uint8_t, kAesKeySize> deriveKey(const OverlayKey &key, std::uint64_t id) {
  std::array<std::uint8_t, kAesKeySize> out{};
  static_assert(OverlayKey::kSize == crypto_kdf_KEYBYTES);
  crypto_kdf_derive_from_key(out.data(), out.size(), id, kKdfContext, key.bytes().data());
  return out;
}

} // namespace

// The contexts keep the expanded AES keys (and GHASH's H) between packets.
struct PacketAuthenticator::Ciphers {
  Context hash{EVP_CIPHER_CTX_new()};
  Context permute{EVP_CIPHER_CTX_new()};
};

PacketAuthenticator::PacketAuthenticator(const OverlayKey &key)
    : ciphers_(std::make_unique<Ciphers>()) {
  auto k1 = deriveKey(key, kHashKeyId);
  auto k2 = deriveKey(key, kFinalKeyId);
  EVP_CIPHER_CTX *hash = ciphers_->hash.get();
  EVP_CIPHER_CTX *permute = ciphers_->permute.get();
  const bool ok =
      hash != nullptr && permute != nullptr &&
      EVP_EncryptInit_ex(hash, EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
      EVP_CIPHER_CTX_ctrl(hash, EVP_CTRL_GCM_SET_IVLEN, kGcmIvSize, nullptr) == 1 &&
      EVP_EncryptInit_ex(hash, nullptr, nullptr, k1.data(), nullptr) == 1 &&
      EVP_EncryptInit_ex(permute, EVP_aes_256_ecb(), nullptr, k2.data(), nullptr) == 1 &&
      EVP_CIPHER_CTX_set_padding(permute, 0) == 1;
  sodium_memzero(k1.data(), k1.size());
  sodium_memzero(k2.data(), k2.size());
  if (!ok) {
    throw std::runtime_error("cannot set up AES-256 with OpenSSL: tunnel packets cannot be "
                             "authenticated");
  }
}

PacketAuthenticator::PacketAuthenticator(PacketAuthenticator &&) noexcept = default;
PacketAuthenticator &PacketAuthenticator::operator=(PacketAuthenticator &&) noexcept = default;
PacketAuthenticator::~PacketAuthenticator() = default;

bool PacketAuthenticator::computeTag(std::span<const std::uint8_t> authenticated,
                                     std::span<std::uint8_t, kTagSize> tag) noexcept {
  EVP_CIPHER_CTX *hash = ciphers_->hash.get();
  int written = 0;
  // EVP takes int lengths; a datagram is far below INT_MAX, but say so.
  if (authenticated.size() > static_cast<std::size_t>(INT_MAX)) {
    return false;
  }
  std::array<std::uint8_t, kTagSize> ghash{};
  return EVP_EncryptInit_ex(hash, nullptr, nullptr, nullptr, kFixedIv.data()) == 1 &&
         EVP_EncryptUpdate(hash, nullptr, &written, authenticated.data(),
                           static_cast<int>(authenticated.size())) == 1 &&
         EVP_EncryptFinal_ex(hash, ghash.data(), &written) == 1 &&
         EVP_CIPHER_CTX_ctrl(hash, EVP_CTRL_GCM_GET_TAG, kTagSize, ghash.data()) == 1 &&
         EVP_EncryptUpdate(ciphers_->permute.get(), tag.data(), &written, ghash.data(),
                           static_cast<int>(ghash.size())) == 1 &&
         written == static_cast<int>(kTagSize);
}

bool PacketAuthenticator::verify(std::span<const std::uint8_t> authenticated,
                                 std::span<const std::uint8_t, kTagSize> tag) noexcept {
  std::array<std::uint8_t, kTagSize> expected{};
  return computeTag(authenticated, expected) && crypto_verify_16(expected.data(), tag.data()) == 0;
}

} // namespace nvbox::osr
