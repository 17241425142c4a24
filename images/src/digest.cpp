#include "nvbox/images/digest.hpp"

#include "internal.hpp"
#include "nvbox/error.hpp"

#include <array>
#include <fcntl.h>
#include <sodium.h>
#include <stdexcept>
#include <vector>

namespace nvbox::images {

namespace detail {

bool writeAll(int fd, const void *buf, std::size_t size) noexcept {
  const auto *p = static_cast<const char *>(buf);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return false;
    }
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

long readSome(int fd, void *buf, std::size_t size) noexcept {
  for (;;) {
    const ssize_t n = ::read(fd, buf, size);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    return static_cast<long>(n);
  }
}

} // namespace detail

namespace {

void initSodium() {
  // sodium_init() is idempotent and thread-safe; SHA-256 needs no more than
  // its CPU feature detection.
  static const int rc = sodium_init();
  if (rc < 0) {
    throw Error("cannot initialise libsodium", "reinstall libsodium23");
  }
}

std::string toHex(const unsigned char *bytes, std::size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(size * 2, '\0');
  for (std::size_t i = 0; i < size; ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4U];
    out[2 * i + 1] = kDigits[bytes[i] & 0x0FU];
  }
  return out;
}

} // namespace

Sha256::Sha256() : state_(std::make_unique<crypto_hash_sha256_state>()) {
  initSodium();
  crypto_hash_sha256_init(state_.get());
}

Sha256::~Sha256() = default;
Sha256::Sha256(Sha256 &&) noexcept = default;
Sha256 &Sha256::operator=(Sha256 &&) noexcept = default;

void Sha256::update(const void *data, std::size_t size) {
  if (!state_) {
    throw std::logic_error("Sha256::update after hex()");
  }
  crypto_hash_sha256_update(state_.get(), static_cast<const unsigned char *>(data), size);
}

std::string Sha256::hex() {
  if (!state_) {
    throw std::logic_error("Sha256::hex called twice");
  }
  std::array<unsigned char, crypto_hash_sha256_BYTES> out{};
  crypto_hash_sha256_final(state_.get(), out.data());
  state_.reset();
  return toHex(out.data(), out.size());
}

std::string sha256Hex(std::string_view data) {
  Sha256 h;
  h.update(data);
  return h.hex();
}

FileDigest digestFile(const std::filesystem::path &path) {
  detail::Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    throw Error("cannot open '" + path.string() + "': " + detail::errnoText());
  }
  Sha256 h;
  FileDigest result;
  std::vector<char> buf(std::size_t{1} << 20U);
  for (;;) {
    const long n = detail::readSome(fd.get(), buf.data(), buf.size());
    if (n < 0) {
      throw Error("cannot read '" + path.string() + "': " + detail::errnoText());
    }
    if (n == 0) {
      break;
    }
    h.update(buf.data(), static_cast<std::size_t>(n));
    result.size += static_cast<std::uint64_t>(n);
  }
  result.sha256 = h.hex();
  return result;
}

bool isSha256Hex(std::string_view text) noexcept {
  if (text.size() != 64) {
    return false;
  }
  for (const char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

} // namespace nvbox::images
