#include "osr/packet_authenticator.hpp"

#include <openssl/evp.h>
#include <sodium.h>

#include <climits>
#include <stdexcept>

namespace nvbox::osr {

namespace {

constexpr char kKdfContext[crypto_kdf_CONTEXTBYTES + 1] = "osrwire2";
constexpr std::uint64_t kKdfSubkeyId = 1;
constexpr std::size_t kAesKeySize = 32;

} // namespace

// The EVP context keeps the expanded AES key and the GHASH key between
// packets; each packet only sets its nonce.
struct PacketAuthenticator::Cipher {
  struct Free {
    void operator()(EVP_CIPHER_CTX *context) const noexcept { EVP_CIPHER_CTX_free(context); }
  };
  std::unique_ptr<EVP_CIPHER_CTX, Free> ctx{EVP_CIPHER_CTX_new()};
};

PacketAuthenticator::PacketAuthenticator(const OverlayKey &key)
    : cipher_(std::make_unique<Cipher>()) {
  std::array<std::uint8_t, kAesKeySize> aes_key{};
  static_assert(OverlayKey::kSize == crypto_kdf_KEYBYTES);
  crypto_kdf_derive_from_key(aes_key.data(), aes_key.size(), kKdfSubkeyId, kKdfContext,
                             key.bytes().data());
  const bool ok =
      cipher_->ctx &&
      EVP_EncryptInit_ex(cipher_->ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
      EVP_CIPHER_CTX_ctrl(cipher_->ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonceSize, nullptr) == 1 &&
      EVP_EncryptInit_ex(cipher_->ctx.get(), nullptr, nullptr, aes_key.data(), nullptr) == 1;
  sodium_memzero(aes_key.data(), aes_key.size());
  if (!ok) {
    throw std::runtime_error("cannot set up AES-256-GCM with OpenSSL: tunnel packets cannot be "
                             "authenticated");
  }
  randombytes_buf(next_.data(), next_.size());
}

PacketAuthenticator::PacketAuthenticator(PacketAuthenticator &&) noexcept = default;
PacketAuthenticator &PacketAuthenticator::operator=(PacketAuthenticator &&) noexcept = default;
PacketAuthenticator::~PacketAuthenticator() = default;

void PacketAuthenticator::nextNonce(std::span<std::uint8_t, kNonceSize> nonce) noexcept {
  std::copy(next_.begin(), next_.end(), nonce.begin());
  // Big-endian increment with carry; sodium_increment is little-endian.
  for (std::size_t i = next_.size(); i-- > 0;) {
    if (++next_[i] != 0) {
      break;
    }
  }
}

bool PacketAuthenticator::computeTag(std::span<const std::uint8_t> authenticated,
                                     std::span<const std::uint8_t, kNonceSize> nonce,
                                     std::span<std::uint8_t, kTagSize> tag) noexcept {
  EVP_CIPHER_CTX *ctx = cipher_->ctx.get();
  int written = 0;
  // EVP takes int lengths; a datagram is far below INT_MAX, but say so.
  if (authenticated.size() > static_cast<std::size_t>(INT_MAX)) {
    return false;
  }
  return EVP_EncryptInit_ex(ctx, nullptr, nullptr, nullptr, nonce.data()) == 1 &&
         EVP_EncryptUpdate(ctx, nullptr, &written, authenticated.data(),
                           static_cast<int>(authenticated.size())) == 1 &&
         EVP_EncryptFinal_ex(ctx, tag.data(), &written) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, kTagSize, tag.data()) == 1;
}

} // namespace nvbox::osr
