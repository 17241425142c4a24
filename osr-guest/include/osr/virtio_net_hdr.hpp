// VirtioNetHdr — the 10-byte header a TUN device with IFF_VNET_HDR puts
// before every packet (struct virtio_net_hdr of <linux/virtio_net.h>).
//
// Why a copy of the kernel's struct: <linux/virtio_net.h> does not compile
// as C++ (a later struct in it has a member named `class`). The layout and
// values are the kernel's UAPI, which does not change; the static_asserts
// pin the layout. Fields are in host byte order (what TUN uses on
// little-endian hosts unless TUNSETVNETBE/LE say otherwise).
//
// Parameters, counters: none. Threading: a plain value.
#pragma once

#include <cstddef>
#include <cstdint>

namespace nvbox::osr {

struct VirtioNetHdr {
  static constexpr std::uint8_t kNeedsCsum = 1; // VIRTIO_NET_HDR_F_NEEDS_CSUM
  static constexpr std::uint8_t kDataValid = 2; // VIRTIO_NET_HDR_F_DATA_VALID
  static constexpr std::uint8_t kGsoNone = 0;   // VIRTIO_NET_HDR_GSO_NONE
  static constexpr std::uint8_t kGsoTcpV4 = 1;  // VIRTIO_NET_HDR_GSO_TCPV4
  static constexpr std::uint8_t kGsoUdp = 3;    // VIRTIO_NET_HDR_GSO_UDP
  static constexpr std::uint8_t kGsoTcpV6 = 4;  // VIRTIO_NET_HDR_GSO_TCPV6
  static constexpr std::uint8_t kGsoUdpL4 = 5;  // VIRTIO_NET_HDR_GSO_UDP_L4
  static constexpr std::uint8_t kGsoEcn = 0x80; // VIRTIO_NET_HDR_GSO_ECN

  std::uint8_t flags = 0;
  std::uint8_t gso_type = kGsoNone;
  std::uint16_t hdr_len = 0;     // Ethernet + IP + TCP/UDP headers
  std::uint16_t gso_size = 0;    // bytes of payload per segment
  std::uint16_t csum_start = 0;  // where the checksummed range starts
  std::uint16_t csum_offset = 0; // where the checksum goes, from csum_start

  friend bool operator==(const VirtioNetHdr &, const VirtioNetHdr &) = default;
};

static_assert(sizeof(VirtioNetHdr) == 10);
static_assert(offsetof(VirtioNetHdr, hdr_len) == 2);
static_assert(offsetof(VirtioNetHdr, csum_offset) == 8);

} // namespace nvbox::osr
