// Sha256 — streaming SHA-256 (libsodium) with lowercase hex output: how image
// parts, build inputs and bundles are identified.
//
// Feed any number of update() calls, then hex() once. sha256Hex() and
// digestFile() are the one-shot forms; digestFile() reads the file in
// 1 MiB chunks, so it costs no memory for multi-GiB disks.
//
// Threading: a Sha256 object belongs to one thread; the free functions are
// thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

struct crypto_hash_sha256_state;

namespace nvbox::images {

class Sha256 {
public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256 &) = delete;
  Sha256 &operator=(const Sha256 &) = delete;
  Sha256(Sha256 &&) noexcept;
  Sha256 &operator=(Sha256 &&) noexcept;

  void update(const void *data, std::size_t size);
  void update(std::string_view data) { update(data.data(), data.size()); }
  // The digest of everything fed so far as 64 lowercase hex digits. Ends the
  // stream: update() and hex() throw std::logic_error afterwards.
  [[nodiscard]] std::string hex();

private:
  std::unique_ptr<crypto_hash_sha256_state> state_;
};

// SHA-256 of a buffer, as 64 lowercase hex digits.
[[nodiscard]] std::string sha256Hex(std::string_view data);

struct FileDigest {
  std::string sha256; // 64 lowercase hex digits
  std::uint64_t size = 0;
};

// SHA-256 and size of a file's contents. Throws nvbox::Error naming the file
// when it cannot be opened or read.
[[nodiscard]] FileDigest digestFile(const std::filesystem::path &path);

// Whether text is exactly 64 lowercase hex digits.
[[nodiscard]] bool isSha256Hex(std::string_view text) noexcept;

} // namespace nvbox::images
