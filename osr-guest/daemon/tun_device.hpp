// TunDevice — where application packets enter and leave the stripe.
//
// What it does: creates (or attaches to) a TUN device without packet-info
// headers, non-blocking, optionally gives it an IPv4 address and MTU and
// brings it up, all through ioctl(2) so that osrd needs no netlink library and
// stays a small static binary. Routes into the device are the host's, or
// osrd's own with --tun-routes (addRoute, the legacy SIOCADDRT ioctl).
//
// Parameters: device name, MTU, optional address/prefix length.
// Threading: one thread per device.
#pragma once

#include "osr/endpoint.hpp"

#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace nvbox::osr {

class TunDevice {
public:
  // Throws std::runtime_error naming the device.
  TunDevice(const std::string &name, int mtu, std::optional<std::string> cidr);
  ~TunDevice();
  TunDevice(const TunDevice &) = delete;
  TunDevice &operator=(const TunDevice &) = delete;

  [[nodiscard]] int fd() const { return fd_; }
  [[nodiscard]] const std::string &name() const { return name_; }
  [[nodiscard]] int mtu() const { return mtu_; }

  // One packet into buf; 0 when none is waiting.
  std::size_t read(std::span<std::uint8_t> buf);
  // Routes `prefix` into this device (an existing identical route is fine).
  // Throws std::runtime_error naming the prefix.
  void addRoute(const Prefix &prefix);

  // One packet out; false when the kernel refused it (counted by the caller).
  bool write(std::span<const std::uint8_t> packet);

private:
  int fd_ = -1;
  std::string name_;
  int mtu_;
};

} // namespace nvbox::osr
