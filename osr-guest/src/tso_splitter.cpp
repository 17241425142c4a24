#include "osr/tso_splitter.hpp"

#include "osr/internet_checksum.hpp"
#include "tcp_ipv4.hpp"

#include <algorithm>
#include <cstring>

namespace nvbox::osr {
namespace {

using namespace tcpip;

constexpr std::size_t kMaxHeaders = 60 + 60; // IHL and data offset are 4-bit word counts

} // namespace

std::string_view toString(TsoReject reject) noexcept {
  switch (reject) {
  case TsoReject::None:
    return "none";
  case TsoReject::Truncated:
    return "truncated";
  case TsoReject::NotIpv4:
    return "not_ipv4";
  case TsoReject::BadIhl:
    return "bad_ihl";
  case TsoReject::BadTcpOffset:
    return "bad_tcp_offset";
  case TsoReject::NotTcp:
    return "not_tcp";
  case TsoReject::BadGsoType:
    return "bad_gso_type";
  case TsoReject::ZeroGsoSize:
    return "zero_gso_size";
  case TsoReject::BadHdrLen:
    return "bad_hdr_len";
  case TsoReject::BadCsum:
    return "bad_csum";
  case TsoReject::TooBig:
    return "too_big";
  }
  return "unknown";
}

TsoReject TsoSplitter::reject(TsoReject why) noexcept {
  ++counters_.rejected[static_cast<std::size_t>(why)];
  return why;
}

void TsoSplitter::emit(std::span<const std::uint8_t> packet, std::uint16_t mss,
                       TsoSink &sink) noexcept {
  ++counters_.emitted;
  counters_.bytes_out += packet.size();
  sink.segment(packet, mss);
}

TsoReject TsoSplitter::split(const VirtioNetHdr &hdr, std::span<std::uint8_t> packet,
                             TsoSink &sink) noexcept {
  ++counters_.packets;
  counters_.bytes_in += packet.size();
  if (hdr.hdr_len > packet.size()) {
    return reject(TsoReject::BadHdrLen);
  }
  switch (hdr.gso_type & ~VirtioNetHdr::kGsoEcn) {
  case VirtioNetHdr::kGsoNone:
    if ((hdr.flags & VirtioNetHdr::kNeedsCsum) != 0) {
      return completeCsum(hdr, packet, sink);
    }
    emit(packet, 0, sink);
    return TsoReject::None;
  case VirtioNetHdr::kGsoTcpV4:
    return splitTcp(hdr, packet, sink);
  default:
    return reject(TsoReject::BadGsoType);
  }
}

TsoReject TsoSplitter::completeCsum(const VirtioNetHdr &hdr, std::span<std::uint8_t> packet,
                                    TsoSink &sink) noexcept {
  const std::size_t start = hdr.csum_start;
  const std::size_t field = start + hdr.csum_offset;
  if (start >= packet.size() || field + 2 > packet.size()) {
    return reject(TsoReject::BadCsum);
  }
  // The field holds the pseudo-header sum, so summing over it includes it.
  std::uint16_t sum = checksum::complete(packet.subspan(start));
  if (sum == 0) {
    sum = 0xFFFF; // UDP's "no checksum" is 0; for TCP both mean the same
  }
  checksum::store(packet.data() + field, sum);
  ++counters_.csum_completed;
  emit(packet, 0, sink);
  return TsoReject::None;
}

TsoReject TsoSplitter::splitTcp(const VirtioNetHdr &hdr, std::span<std::uint8_t> packet,
                                TsoSink &sink) noexcept {
  std::uint8_t *p = packet.data();
  const std::size_t size = packet.size();
  if (size < kIpMinHeader) {
    return reject(TsoReject::Truncated);
  }
  if ((p[0] >> 4) != 4) {
    return reject(TsoReject::NotIpv4);
  }
  const std::size_t ipLen = std::size_t{p[0] & 0x0FU} * 4;
  if (ipLen < kIpMinHeader) {
    return reject(TsoReject::BadIhl);
  }
  if (ipLen + kTcpMinHeader > size) {
    return reject(TsoReject::Truncated);
  }
  // MF set or a fragment offset: not a whole TCP segment.
  if (p[9] != kProtoTcp || (load16(p + 6) & 0x3FFFU) != 0) {
    return reject(TsoReject::NotTcp);
  }
  const std::size_t tcpLen = static_cast<std::size_t>(p[ipLen + 12] >> 4) * 4;
  if (tcpLen < kTcpMinHeader) {
    return reject(TsoReject::BadTcpOffset);
  }
  const std::size_t hdrLen = ipLen + tcpLen;
  if (hdrLen >= size) {
    return reject(TsoReject::Truncated); // headers cut short, or nothing to segment
  }
  if (hdr.gso_size == 0) {
    return reject(TsoReject::ZeroGsoSize);
  }
  if ((hdr.flags & VirtioNetHdr::kNeedsCsum) != 0 &&
      (hdr.csum_start != ipLen || hdr.csum_offset != kTcpCsumOffset)) {
    return reject(TsoReject::BadCsum);
  }
  const std::size_t gso = hdr.gso_size;
  if (mode_ == Mode::Whole) {
    ++counters_.super_packets;
    emit(packet, hdr.gso_size, sink);
    return TsoReject::None;
  }
  if (hdrLen + gso > maxSegment_ || hdrLen + gso > 0xFFFF) {
    return reject(TsoReject::TooBig);
  }

  // Segment i's headers go over the tail of segment i-1's payload (already
  // emitted), so keep the original headers aside.
  std::array<std::uint8_t, kMaxHeaders> orig{};
  std::memcpy(orig.data(), p, hdrLen);
  const std::uint16_t id = load16(orig.data() + 4);
  const std::uint32_t seq = load32(orig.data() + ipLen + 4);
  const std::uint8_t flags = orig[ipLen + 13];
  const std::size_t payload = size - hdrLen;
  const std::size_t count = (payload + gso - 1) / gso;
  ++counters_.super_packets;
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t offset = i * gso; // where this segment's headers start
    const std::size_t chunk = std::min(gso, payload - offset);
    std::uint8_t *seg = p + offset;
    std::uint8_t *tcp = seg + ipLen;
    std::memcpy(seg, orig.data(), hdrLen);

    put16(seg + 2, static_cast<std::uint16_t>(hdrLen + chunk));
    put16(seg + 4, static_cast<std::uint16_t>(id + i));
    put16(seg + 10, 0);
    checksum::store(seg + 10, checksum::complete(std::span(seg, ipLen)));

    put32(tcp + 4, seq + static_cast<std::uint32_t>(offset));
    std::uint8_t f = flags;
    if (i + 1 != count) {
      f = static_cast<std::uint8_t>(f & ~(kFin | kPsh));
    }
    if (i != 0) {
      f = static_cast<std::uint8_t>(f & ~kCwr);
    }
    tcp[13] = f;
    put16(tcp + kTcpCsumOffset, 0);
    const std::uint64_t pseudo =
        checksum::pseudoHeader(std::span<const std::uint8_t, 8>(seg + 12, 8), kProtoTcp,
                               static_cast<std::uint16_t>(tcpLen + chunk));
    checksum::store(tcp + kTcpCsumOffset,
                    checksum::complete(std::span(tcp, tcpLen + chunk), pseudo));
    ++counters_.segments;
    emit(std::span(seg, hdrLen + chunk), 0, sink);
  }
  return TsoReject::None;
}

} // namespace nvbox::osr
