#include "osr/segment_assembler.hpp"

#include "osr/wire.hpp"
#include "tcp_ipv4.hpp"

#include <algorithm>
#include <cstring>

namespace nvbox::osr {
namespace {

using namespace tcpip;

constexpr std::size_t kMaxHeaders = 60 + 60; // IHL and data offset are 4-bit word counts

// IP and TCP header lengths of a super-packet's first bytes; 0 when they are
// not those of a whole, unfragmented IPv4 TCP packet with payload after them.
std::size_t tcpHeaders(std::span<const std::uint8_t> p, std::size_t &ipLen) noexcept {
  if (p.size() < kIpMinHeader || (p[0] >> 4) != 4) {
    return 0;
  }
  ipLen = std::size_t{p[0] & 0x0FU} * 4;
  if (ipLen < kIpMinHeader || ipLen + kTcpMinHeader > p.size() || p[9] != kProtoTcp ||
      (load16(p.data() + 6) & 0x3FFFU) != 0) {
    return 0;
  }
  const std::size_t tcpLen = static_cast<std::size_t>(p[ipLen + 12] >> 4) * 4;
  if (tcpLen < kTcpMinHeader || ipLen + tcpLen >= p.size()) {
    return 0;
  }
  return ipLen + tcpLen;
}

} // namespace

SegmentAssembler::SegmentAssembler() : buf_(kMaxSegment), headers_(kMaxHeaders) {}

void SegmentAssembler::emit(const VirtioNetHdr &hdr, std::span<const std::uint8_t> packet,
                            GroSink &sink) noexcept {
  counters_.bytes_out += packet.size();
  sink.write(hdr, packet);
}

void SegmentAssembler::whole(std::span<const std::uint8_t> payload, GroSink &sink) noexcept {
  // Only plain packets travel outside the sequence (the ingress sends pure
  // ACKs so): a super-packet here would need the buffer of the segment that
  // may be pending.
  if (payload.size() <= kSegmentHeader || load16(payload.data()) != 0 ||
      load16(payload.data() + 2) != payload.size() - kSegmentHeader) {
    ++counters_.malformed;
    return;
  }
  ++counters_.express;
  emit(VirtioNetHdr{}, payload.subspan(kSegmentHeader), sink);
}

bool SegmentAssembler::start(const Part &part) noexcept {
  const auto payload = part.payload;
  if (payload.size() <= kSegmentHeader) {
    ++counters_.malformed;
    return false;
  }
  mss_ = load16(payload.data());
  length_ = load16(payload.data() + 2);
  partSize_ = payload.size();
  // One part holds it all, or this first part is as large as every part
  // but the last: then the length says how many parts there are.
  const bool last = (part.flags & wire::kFlagLast) != 0;
  if (last ? length_ + kSegmentHeader != partSize_ : length_ + kSegmentHeader <= partSize_) {
    ++counters_.malformed;
    return false;
  }
  parts_ = SegmentCutter::partsFor(length_, partSize_);
  firstSeq_ = part.seq;
  nextSeq_ = part.seq + 1;
  runStart_ = 0;
  len_ = payload.size() - kSegmentHeader;
  std::memcpy(buf_.data(), payload.data() + kSegmentHeader, len_);
  hdrLen_ = 0;
  if (mss_ != 0) {
    hdrLen_ = tcpHeaders(std::span(buf_.data(), len_), ipLen_);
    if (hdrLen_ == 0) {
      ++counters_.malformed;
      return false;
    }
    std::memcpy(headers_.data(), buf_.data(), hdrLen_);
  }
  active_ = true;
  return true;
}

void SegmentAssembler::deliver(const Part &part, GroSink &sink) noexcept {
  const bool last = (part.flags & wire::kFlagLast) != 0;
  if ((part.flags & wire::kFlagFirst) != 0) {
    if (active_) {
      cutShort(sink); // its last part was lost
    }
    if (start(part) && last) {
      emitRun(true, sink);
      active_ = false;
    }
    return;
  }
  if (!active_) {
    ++counters_.orphans;
    return;
  }
  // Part i of the segment holds packet bytes from i * P - 4 on.
  const std::uint32_t index = part.seq - firstSeq_;
  if (index >= parts_) {
    // Of a later segment, whose first part was lost (and this one's last).
    cutShort(sink);
    ++counters_.orphans;
    return;
  }
  const std::size_t offset = std::size_t{index} * partSize_ - kSegmentHeader;
  const std::size_t size = part.payload.size();
  const bool shouldBeLast = index + 1 == parts_;
  if (index == 0 || last != shouldBeLast || size != (shouldBeLast ? length_ - offset : partSize_)) {
    cutShort(sink);
    ++counters_.malformed;
    return;
  }
  if (part.seq != nextSeq_) {
    // Parts between were lost: what came before is a run of its own.
    if (mss_ == 0) {
      cutShort(sink); // a plain packet with a hole is of no use
      return;
    }
    emitRun(false, sink);
    runStart_ = offset;
  }
  std::memcpy(buf_.data() + offset, part.payload.data(), size);
  len_ = offset + size;
  nextSeq_ = part.seq + 1;
  if (last) {
    emitRun(true, sink);
    active_ = false;
  }
}

void SegmentAssembler::lost(GroSink &sink) noexcept {
  if (!active_) {
    return;
  }
  if (mss_ == 0) {
    cutShort(sink);
  } else {
    emitRun(false, sink); // later parts of the segment may still come
  }
}

void SegmentAssembler::cutShort(GroSink &sink) noexcept {
  if (mss_ != 0) {
    emitRun(false, sink);
  } else {
    ++counters_.dropped_parts;
  }
  active_ = false;
}

void SegmentAssembler::emitRun(bool ends, GroSink &sink) noexcept {
  const std::size_t start = runStart_;
  const std::size_t end = len_;
  runStart_ = len_; // whatever happens, these bytes are done
  if (end <= start) {
    return;
  }
  std::uint8_t *p = buf_.data();
  if (mss_ == 0) { // only ever whole: cutShort() drops the rest
    ++counters_.segments;
    emit(VirtioNetHdr{}, std::span(p, end), sink);
    return;
  }
  if (start == 0 && ends) {
    ++counters_.segments;
    emit(prepareForTun(p, end, ipLen_, hdrLen_, mss_), std::span(p, end), sink);
    return;
  }
  // A run of a segment with losses: the first part's headers go in front of
  // it, over bytes of an earlier run that was emitted already (or lost).
  std::size_t at = start;
  if (start != 0) {
    if (start < hdrLen_) {
      // The run would begin inside the headers: only a part size smaller
      // than the headers does that, which no ingress sends.
      ++counters_.malformed;
      return;
    }
    at = start - hdrLen_;
    std::memcpy(p + at, headers_.data(), hdrLen_);
    std::uint8_t *tcp = p + at + ipLen_;
    put32(tcp + 4, load32(tcp + 4) + static_cast<std::uint32_t>(start - hdrLen_));
    tcp[13] = static_cast<std::uint8_t>(tcp[13] & ~kCwr);
  } else if (end <= hdrLen_) {
    ++counters_.dropped_parts; // headers without payload
    return;
  }
  if (!ends) {
    std::uint8_t *tcp = p + at + ipLen_;
    tcp[13] = static_cast<std::uint8_t>(tcp[13] & ~(kFin | kPsh));
  }
  ++counters_.runs;
  const std::size_t len = end - at;
  emit(prepareForTun(p + at, len, ipLen_, hdrLen_, mss_), std::span(p + at, len), sink);
}

} // namespace nvbox::osr
