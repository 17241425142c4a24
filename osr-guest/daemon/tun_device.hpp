// TunDevice — where application packets enter and leave the stripe.
//
// What it does: creates (or attaches to) a TUN device without packet-info
// headers, non-blocking, optionally gives it an IPv4 address and MTU and
// brings it up, all through ioctl(2) so that osrd needs no netlink library and
// stays a small static binary. Routes into the device are the host's, or
// osrd's own with --tun-routes (addRoute, the legacy SIOCADDRT ioctl).
//
// With offload: the device is made with IFF_VNET_HDR, so every read and
// write carries a 10-byte VirtioNetHdr (host byte order) ahead of the
// packet, and TUNSETOFFLOAD(TUN_F_CSUM | TUN_F_TSO4) lets the kernel
// hand over TCP/IPv4 super-packets of up to 64 KiB with checksums left
// partial (TsoSplitter checks them, the stripe cuts them into parts) and take
// rebuilt and coalesced ones (SegmentAssembler, GroCoalescer).
// A kernel that refuses TUNSETOFFLOAD keeps the header but sends only
// complete packets with all-zero headers; tso() says which. Without offload
// the device is exactly as before: no header.
//
// Parameters: device name, MTU, optional address/prefix length, offload.
// Threading: one thread per device.
#pragma once

#include "osr/endpoint.hpp"
#include "osr/virtio_net_hdr.hpp"

#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace nvbox::osr {

// Where the egress writes the stream: a TunDevice, or in tests a recorder.
class TunWriter {
public:
  virtual ~TunWriter() = default;
  // Takes TCP super-packets (a VirtioNetHdr with GSO) as they are.
  [[nodiscard]] virtual bool tso() const = 0;
  // One packet with its header; false when it was refused (counted by the caller).
  virtual bool write(const VirtioNetHdr &hdr, std::span<const std::uint8_t> packet) = 0;
};

class TunDevice final : public TunWriter {
public:
  // Throws std::runtime_error naming the device.
  TunDevice(const std::string &name, int mtu, std::optional<std::string> cidr,
            bool offload = false);
  ~TunDevice() override;
  TunDevice(const TunDevice &) = delete;
  TunDevice &operator=(const TunDevice &) = delete;

  [[nodiscard]] int fd() const { return fd_; }
  [[nodiscard]] const std::string &name() const { return name_; }
  [[nodiscard]] int mtu() const { return mtu_; }
  // Reads and writes carry a VirtioNetHdr.
  [[nodiscard]] bool vnetHdr() const { return vnetHdr_; }
  // TUNSETOFFLOAD(TUN_F_CSUM | TUN_F_TSO4) was accepted.
  [[nodiscard]] bool tso() const override { return tso_; }

  // One packet into buf, its length returned; 0 when none is waiting (or
  // it came without a whole header). `hdr` receives the packet's header,
  // all zero without vnetHdr().
  std::size_t read(VirtioNetHdr &hdr, std::span<std::uint8_t> buf);
  // Routes `prefix` into this device (an existing identical route is fine).
  // Throws std::runtime_error naming the prefix.
  void addRoute(const Prefix &prefix);

  // One packet out; false when the kernel refused it (counted by the caller).
  // With vnetHdr() it goes with an all-zero header (no offload asked).
  bool write(std::span<const std::uint8_t> packet);
  // One packet with its header (ignored without vnetHdr(): then `hdr` must
  // be all zero, or the packet is refused).
  bool write(const VirtioNetHdr &hdr, std::span<const std::uint8_t> packet) override;

private:
  int fd_ = -1;
  std::string name_;
  int mtu_;
  bool vnetHdr_ = false;
  bool tso_ = false;
};

} // namespace nvbox::osr
