// GroCoalescer — merges consecutive segments of one TCP flow, as the egress
// releases them in order, into one super-packet that a TUN device with
// IFF_VNET_HDR takes in a single write (the receive half of the TUN
// offloads; TsoSplitter is the send half).
//
// What it does: add() takes IPv4 packets one by one. A TCP segment with
// payload, without SYN, FIN, RST, URG or CWR, whose total length matches
// its size, is a candidate: it starts a run, or joins the pending one when
//   - its IP header equals the run's except total length, id and checksum
//     (so same addresses, TOS/ECN, TTL, DF, options);
//   - same ports, TCP header length and option bytes (byte-identical, as
//     wireguard-go requires: timestamps usually change only every ms, so
//     runs still form), same ack, window and flags except PSH;
//   - its seq is exactly the end of the run;
//   - its payload is at most gso_size (the run's first payload); and
//   - the run stays within kMaxSuperPacket (65535, the IP total length).
// A segment shorter than gso_size, or with PSH, ends the run after being
// merged; the run is then written at once. Anything that is not a candidate
// is written as it is, after the pending run (so the order is kept), with an
// all-zero VirtioNetHdr; so is a run of one segment, untouched. A run of
// two or more is written as one IPv4 packet with total length and header
// checksum fixed and the header {flags NEEDS_CSUM, gso_type TCPV4, hdr_len
// = IP + TCP header, gso_size, csum_start = IP header length, csum_offset =
// 16}; its TCP checksum field holds the pseudo-header sum for the
// super-packet's TCP length, as the kernel expects of CHECKSUM_PARTIAL: the
// stack (or the NIC, when the kernel forwards and re-segments it) completes
// it, and local TCP accepts the payload without verifying it.
//
// Why that is sound without verifying each segment's checksum here: every
// byte of a part is authenticated end to end by the tunnel MAC (wire.hpp),
// so nothing between the ingress and here changed it, and the ingress's
// TsoSplitter (or the sending kernel) produced valid checksums. A segment
// the kernel would have rejected for a bad checksum cannot arrive.
//
// flush() writes the pending run; call it when a receive batch ends and
// after the re-sequencing timer, so no segment waits for a next one.
//
// Parameters: none (kMaxSuperPacket is the IPv4 limit).
// Counters: packets (in), bytes_in, runs (written from pending runs),
// super_packets (runs of >= 2 written with GSO), coalesced (segments in
// them), singles (runs of 1), passthrough per GroPass cause, writes and
// bytes_out (everything handed to the sink), and why runs ended (GroEnd).
// Threading: not thread-safe; one owner (the daemon's data-path thread).
// The sink must not throw and must not call back into the coalescer.
//
// Memory: one kMaxSuperPacket buffer, allocated at construction; add() and
// flush() never allocate.
#pragma once

#include "osr/virtio_net_hdr.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace nvbox::osr {

// Why a packet was written as it is.
enum class GroPass : std::uint8_t {
  Malformed, // too short, bad IHL or data offset, total length != size
  NotIpv4,
  NotTcp,    // another protocol, or an IP fragment
  Flags,     // SYN, FIN, RST, URG or CWR
  NoPayload, // e.g. a pure ACK
};
inline constexpr std::size_t kGroPassCount = 5;
std::string_view toString(GroPass pass) noexcept;

// Why a run ended.
enum class GroEnd : std::uint8_t {
  Flush,       // flush() called
  Passthrough, // a non-candidate packet came next
  Mismatch,    // another flow, or differing headers/options/ack/window/flags
  SeqGap,      // not contiguous
  Size,        // would exceed kMaxSuperPacket, or a payload larger than gso_size
  Psh,         // the last segment had PSH
  Short,       // the last segment was shorter than gso_size
};
inline constexpr std::size_t kGroEndCount = 7;
std::string_view toString(GroEnd end) noexcept;

struct GroCounters {
  std::uint64_t packets = 0;
  std::uint64_t bytes_in = 0;
  std::uint64_t runs = 0;
  std::uint64_t super_packets = 0;
  std::uint64_t coalesced = 0;
  std::uint64_t singles = 0;
  std::uint64_t writes = 0;
  std::uint64_t bytes_out = 0;
  std::array<std::uint64_t, kGroPassCount> passthrough{};
  std::array<std::uint64_t, kGroEndCount> ended{};
};

class GroSink {
public:
  virtual ~GroSink() = default;
  // One packet for the TUN device; `packet` is valid only during the call.
  virtual void write(const VirtioNetHdr &hdr, std::span<const std::uint8_t> packet) noexcept = 0;
};

class GroCoalescer {
public:
  static constexpr std::size_t kMaxSuperPacket = 0xFFFF;

  // Throws std::bad_alloc.
  GroCoalescer();

  void add(std::span<const std::uint8_t> packet, GroSink &sink) noexcept;
  void flush(GroSink &sink) noexcept { end(GroEnd::Flush, sink); }

  [[nodiscard]] bool pending() const noexcept { return len_ != 0; }
  [[nodiscard]] const GroCounters &counters() const noexcept { return counters_; }

private:
  struct Segment {
    std::size_t ipLen = 0;
    std::size_t hdrLen = 0;
    std::size_t payload = 0;
    std::uint32_t seq = 0;
    std::uint8_t flags = 0;
  };

  bool joins(std::span<const std::uint8_t> packet, const Segment &s) const noexcept;
  void start(std::span<const std::uint8_t> packet, const Segment &s) noexcept;
  void end(GroEnd why, GroSink &sink) noexcept;
  void write(const VirtioNetHdr &hdr, std::span<const std::uint8_t> packet, GroSink &sink) noexcept;

  std::vector<std::uint8_t> buf_;
  std::size_t len_ = 0; // 0: no run pending
  std::size_t ipLen_ = 0;
  std::size_t hdrLen_ = 0;
  std::size_t gsoSize_ = 0;
  std::size_t segments_ = 0;
  std::uint32_t nextSeq_ = 0;
  GroCounters counters_{};
};

} // namespace nvbox::osr
