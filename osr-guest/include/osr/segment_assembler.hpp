// SegmentAssembler — rebuilds the segments of one flow from its parts, as
// the ResequencingBuffer releases them in order (the egress half of wire
// version 3's segments; the ingress's half is SegmentCutter).
//
// What it does: a segment is one packet the ingress read from its TUN
// device: a TCP super-packet (IPv4 and TCP headers, then up to 64 KiB of
// payload that the kernel would cut at the MSS) or any other IP packet,
// behind a segment header and cut into parts of one size P by SegmentCutter
// (the last part may be shorter); FIRST and LAST flag the ends. deliver() takes the flow's parts in
// sequence order; lost() hears of sequence numbers that will never come.
//
// A whole segment is emitted as it was read: a plain packet unchanged (with
// an all-zero VirtioNetHdr), a super-packet with total length and IP header
// checksum fixed, the pseudo-header sum in the TCP checksum field and the
// header {NEEDS_CSUM, TCPV4, hdr_len, gso_size = MSS, csum_start = IP header
// length, csum_offset = 16}: the kernel segments it and completes the
// checksums (GroCoalescer's convention; why that is sound is explained
// there). A super-packet whose payload fits one MSS goes without GSO.
//
// Losses: P and the first part's sequence number give every later part's
// byte offset, and the packet's length in the segment header the segment's
// last part; a part beyond it is of a later segment whose first part was
// lost, and is dropped (never taken for a continuation). So when parts of a
// super-packet are lost, what arrived is not thrown away: each contiguous run of payload is emitted
// as a TCP packet of its own, with the first part's headers, seq advanced to the run's offset, FIN
// and PSH only on a run that ends the segment, CWR only on one that starts it. TCP takes them as
// any segments, and its retransmission fills only what is missing. A plain packet missing a part,
// or parts whose first part (with the headers) was lost, are dropped.
//
// Input is untrusted (any holder of the overlay key can send parts): sizes,
// offsets and headers are checked before use; a segment that fails is
// dropped and counted, nothing is written outside the buffer.
//
// Parameters: none (segments are at most 64 KiB, the IPv4 limit).
// Counters: segments (emitted whole), runs (emitted from segments with
// losses), express (whole() calls emitted), dropped_parts, malformed
// (segments with a bad segment header, IP or TCP header, part size or
// flags), orphans (parts whose segment's first part was lost), bytes_out.
// Threading: one owner (the daemon's data-path thread). The sink must not
// throw or call back into the assembler.
//
// Memory: one buffer of kMaxSegment bytes, allocated at construction; the
// data path never allocates.
#pragma once

#include "osr/gro_coalescer.hpp"
#include "osr/resequencing_buffer.hpp"
#include "osr/segment_cutter.hpp"
#include "osr/virtio_net_hdr.hpp"

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace nvbox::osr {

struct SegmentCounters {
  std::uint64_t segments = 0;
  std::uint64_t runs = 0;
  std::uint64_t express = 0;
  std::uint64_t dropped_parts = 0;
  std::uint64_t malformed = 0;
  std::uint64_t orphans = 0;
  std::uint64_t bytes_out = 0;
};

class SegmentAssembler {
public:
  static constexpr std::size_t kSegmentHeader = SegmentCutter::kSegmentHeader;
  static constexpr std::size_t kMaxSegment = 0xFFFF;

  // Throws std::bad_alloc.
  SegmentAssembler();

  void deliver(const Part &part, GroSink &sink) noexcept;
  // Sequence numbers [first, first + count) are lost: what the pending
  // segment holds is emitted now, not when its next part comes.
  void lost(GroSink &sink) noexcept;
  // An EXPRESS part: a whole plain packet outside the flow's sequence,
  // emitted at once, the pending segment untouched (a super-packet here is
  // malformed).
  void whole(std::span<const std::uint8_t> payload, GroSink &sink) noexcept;

  [[nodiscard]] const SegmentCounters &counters() const noexcept { return counters_; }

private:
  // Starts a segment from its first part; false (and counted) if malformed.
  bool start(const Part &part) noexcept;
  // Emits [runStart_, len_) of buf_; `ends`: the run reaches the segment's end.
  void emitRun(bool ends, GroSink &sink) noexcept;
  // Ends the pending segment early: a super-packet's run so far is emitted,
  // a plain packet dropped.
  void cutShort(GroSink &sink) noexcept;
  void emit(const VirtioNetHdr &hdr, std::span<const std::uint8_t> packet, GroSink &sink) noexcept;

  std::vector<std::uint8_t> buf_;     // the segment's packet bytes at their offsets
  std::vector<std::uint8_t> headers_; // the first part's IP and TCP headers
  bool active_ = false;
  std::uint16_t mss_ = 0;
  std::size_t length_ = 0;   // the packet's, from the segment header
  std::size_t parts_ = 0;    // the segment's
  std::size_t partSize_ = 0; // payload bytes of every part but the last
  std::uint32_t firstSeq_ = 0;
  std::uint32_t nextSeq_ = 0;
  std::size_t runStart_ = 0; // packet offset of the run not yet emitted
  std::size_t len_ = 0;      // packet offset just past the last byte received
  std::size_t ipLen_ = 0;
  std::size_t hdrLen_ = 0; // 0 until a super-packet's headers are checked
  SegmentCounters counters_{};
};

} // namespace nvbox::osr
