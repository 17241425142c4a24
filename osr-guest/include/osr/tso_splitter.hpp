// TsoSplitter(MAX_SEGMENT, MODE) — checks the TCP super-packets that a TUN
// device with IFF_VNET_HDR and TSO hands over and, in Cut mode, cuts them
// into MSS-sized IPv4 packets; completes checksums the kernel left to us.
//
// Modes: the ingress reads in Whole mode — a valid super-packet is emitted
// as it is, with its MSS, for the stripe to cut into parts that fill the
// paths' MTU (wire version 3 carries the headers once per super-packet). The
// egress cuts in Cut mode when its TUN device cannot take super-packets.
//
// What it does, by the packet's VirtioNetHdr (host byte order, as
// TUN uses it on little-endian hosts without TUNSETVNETBE):
//   - gso_type NONE without the NEEDS_CSUM flag: the packet as is
//     (whatever it is: classifying it is the ingress's business).
//   - gso_type NONE with NEEDS_CSUM: the kernel left the transport checksum
//     to us (CHECKSUM_PARTIAL). The field at csum_start + csum_offset holds
//     the pseudo-header sum; the Internet checksum from csum_start to the end
//     is computed over it and stored there (0 stored as 0xFFFF, which UDP
//     requires and TCP treats alike), then the packet is emitted.
//   - gso_type TCPV4, with or without the ECN bit: one IPv4+TCP header and a
//     payload. Whole mode: the packet as is, with gso_size as its MSS (the
//     TCP checksum stays partial: whoever writes it out completes it). Cut
//     mode: cut into segments of gso_size payload bytes (the last one may
//     be shorter). Each segment is emitted as a complete IPv4 packet: total
//     length, IP id + i (mod 2^16), header checksum, seq + i * gso_size, FIN
//     and PSH only on the last segment, CWR only on the first, and the full
//     TCP checksum (pseudo-header, header, payload). The header length is
//     taken from the IP and TCP headers: hdr_len from the kernel is only
//     bounds-checked, as it is the skb's linear length on some kernels, not
//     the header length.
//   - anything else is rejected, counted by cause, and nothing is emitted.
//
// The packet is split in place: segment i's headers are written over the
// last bytes of segment i-1's payload, which the sink has consumed by then.
// So the packet's bytes are modified and an emitted span is valid only
// during the sink call; there is no copy of the payload and no allocation.
// Input is untrusted: every length is checked before it is used, and a
// reject never reads or writes outside `packet`.
//
// Parameters: MAX_SEGMENT, the largest IPv4 packet the sink accepts (a TSO
// packet whose segments would be larger is rejected as too_big; a packet
// without GSO is not checked against it); MODE (Cut by default).
// Counters: packets (read), super_packets (TSO inputs split), segments (TSO
// output packets), csum_completed, emitted (every packet given to the sink),
// bytes_in, bytes_out, rejected per TsoReject.
// Threading: not thread-safe; one owner (the daemon's data-path thread). The
// sink must not throw and must not call back into the splitter.
#pragma once

#include "osr/virtio_net_hdr.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace nvbox::osr {

enum class TsoReject : std::uint8_t {
  None,
  Truncated,    // shorter than its IP or TCP header, or a TSO packet without payload
  NotIpv4,      // IP version != 4 (with GSO)
  BadIhl,       // IHL < 5
  BadTcpOffset, // TCP data offset < 5
  NotTcp,       // TCPV4 GSO on another protocol, or an IP fragment
  BadGsoType,   // TCPV6, UDP, UDP_L4 or an unknown gso_type
  ZeroGsoSize,  // TCPV4 with gso_size 0
  BadHdrLen,    // hdr_len beyond the packet
  BadCsum,      // csum_start/csum_offset beyond the packet, or not at TCP's checksum under TSO
  TooBig,       // a segment would exceed MAX_SEGMENT
};
inline constexpr std::size_t kTsoRejectCount = 11;
std::string_view toString(TsoReject reject) noexcept;

struct TsoCounters {
  std::uint64_t packets = 0;
  std::uint64_t super_packets = 0;
  std::uint64_t segments = 0;
  std::uint64_t csum_completed = 0;
  std::uint64_t emitted = 0;
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
  std::array<std::uint64_t, kTsoRejectCount> rejected{};
};

class TsoSink {
public:
  virtual ~TsoSink() = default;
  // One IPv4 packet, or (Whole mode) a TCP super-packet whose payload the
  // kernel would cut at `mss` (0: not a super-packet); `packet` is valid only
  // during the call.
  virtual void segment(std::span<const std::uint8_t> packet, std::uint16_t mss) noexcept = 0;
};

class TsoSplitter {
public:
  static constexpr std::size_t kVnetHdrSize = sizeof(VirtioNetHdr);

  enum class Mode : std::uint8_t { Cut, Whole };

  explicit TsoSplitter(std::size_t maxSegment, Mode mode = Mode::Cut) noexcept
      : maxSegment_(maxSegment), mode_(mode) {}

  // Emits the packet's segments to `sink`; returns why it was rejected
  // (None: everything was emitted).
  TsoReject split(const VirtioNetHdr &hdr, std::span<std::uint8_t> packet, TsoSink &sink) noexcept;

  [[nodiscard]] const TsoCounters &counters() const noexcept { return counters_; }

private:
  TsoReject completeCsum(const VirtioNetHdr &hdr, std::span<std::uint8_t> packet,
                         TsoSink &sink) noexcept;
  TsoReject splitTcp(const VirtioNetHdr &hdr, std::span<std::uint8_t> packet,
                     TsoSink &sink) noexcept;
  void emit(std::span<const std::uint8_t> packet, std::uint16_t mss, TsoSink &sink) noexcept;
  TsoReject reject(TsoReject why) noexcept;

  std::size_t maxSegment_;
  Mode mode_;
  TsoCounters counters_{};
};

} // namespace nvbox::osr
