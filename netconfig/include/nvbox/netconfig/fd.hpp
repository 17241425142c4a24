// Fd owns one file descriptor and closes it; sysError() formats errno.
// Shared by netconfig and its users (TUN devices, namespace handles).
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <unistd.h>

namespace nvbox::netconfig {

class Fd {
public:
  explicit Fd(int fd = -1) noexcept : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  Fd(const Fd &) = delete;
  Fd &operator=(const Fd &) = delete;
  Fd(Fd &&other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  Fd &operator=(Fd &&other) = delete;

  [[nodiscard]] int get() const noexcept { return fd_; }
  [[nodiscard]] int release() noexcept {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  explicit operator bool() const noexcept { return fd_ >= 0; }

private:
  int fd_;
};

// "WHAT: strerror(errno)", read before anything else can clobber errno.
inline std::string sysError(const std::string &what) {
  const int saved = errno;
  return what + ": " + std::strerror(saved);
}

} // namespace nvbox::netconfig
