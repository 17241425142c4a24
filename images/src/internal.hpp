// Internal to nvbox_images: an owned file descriptor and errno formatting for
// the store and bundle code (which work on raw fds to fsync and to rename
// atomically), and adding context to an error on its way out.
#pragma once

#include "nvbox/error.hpp"

#include <cerrno>
#include <cstring>
#include <string>
#include <unistd.h>

namespace nvbox::images::detail {

class Fd {
public:
  explicit Fd(int fd = -1) noexcept : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(const Fd &) = delete;
  Fd &operator=(const Fd &) = delete;
  Fd(Fd &&other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  Fd &operator=(Fd &&other) = delete;

  [[nodiscard]] int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  void reset() noexcept {
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  // Closes and reports whether close() succeeded (it can report a late write error).
  [[nodiscard]] bool close() noexcept {
    const int fd = fd_;
    fd_ = -1;
    return fd < 0 || ::close(fd) == 0;
  }

private:
  int fd_;
};

// strerror of the current errno, read before anything can clobber it.
inline std::string errnoText() {
  const int saved = errno;
  return std::strerror(saved);
}

// Writes all of buf or returns false (errno set).
bool writeAll(int fd, const void *buf, std::size_t size) noexcept;

// Reads up to size bytes, retrying on EINTR; returns bytes read, 0 at end, -1 on error.
long readSome(int fd, void *buf, std::size_t size) noexcept;

// Throws e again with "PREFIX: " in front of its message, keeping its hint
// and its kind (a UsageError stays one).
[[noreturn]] inline void rethrowWithContext(const std::string &prefix, const Error &e) {
  const std::string what = prefix + ": " + e.what();
  if (e.kind() == Error::Kind::Usage) {
    throw UsageError(what, e.hint());
  }
  throw Error(what, e.hint(), e.kind());
}

} // namespace nvbox::images::detail
