#include "osr/gro_coalescer.hpp"

#include "osr/internet_checksum.hpp"
#include "tcp_ipv4.hpp"

#include <cstring>
#include <variant>

namespace nvbox::osr {
namespace {

using namespace tcpip;

bool same(const std::uint8_t *a, const std::uint8_t *b, std::size_t from, std::size_t to) noexcept {
  return std::memcmp(a + from, b + from, to - from) == 0;
}

} // namespace

std::string_view toString(GroPass pass) noexcept {
  switch (pass) {
  case GroPass::Malformed:
    return "malformed";
  case GroPass::NotIpv4:
    return "not_ipv4";
  case GroPass::NotTcp:
    return "not_tcp";
  case GroPass::Flags:
    return "flags";
  case GroPass::NoPayload:
    return "no_payload";
  }
  return "unknown";
}

std::string_view toString(GroEnd end) noexcept {
  switch (end) {
  case GroEnd::Flush:
    return "flush";
  case GroEnd::Passthrough:
    return "passthrough";
  case GroEnd::Mismatch:
    return "mismatch";
  case GroEnd::SeqGap:
    return "seq_gap";
  case GroEnd::Size:
    return "size";
  case GroEnd::Psh:
    return "psh";
  case GroEnd::Short:
    return "short";
  }
  return "unknown";
}

GroCoalescer::GroCoalescer() : buf_(kMaxSuperPacket) {}

namespace {

// A candidate segment, or why the packet is written as it is.
std::variant<GroPass, std::size_t> classify(std::span<const std::uint8_t> packet) noexcept {
  const std::uint8_t *p = packet.data();
  const std::size_t size = packet.size();
  if (size < kIpMinHeader) {
    return GroPass::Malformed;
  }
  if ((p[0] >> 4) != 4) {
    return GroPass::NotIpv4;
  }
  const std::size_t ipLen = std::size_t{p[0] & 0x0FU} * 4;
  if (ipLen < kIpMinHeader || ipLen + kTcpMinHeader > size || load16(p + 2) != size) {
    return GroPass::Malformed;
  }
  if (p[9] != kProtoTcp || (load16(p + 6) & 0x3FFFU) != 0) {
    return GroPass::NotTcp;
  }
  const std::size_t tcpLen = static_cast<std::size_t>(p[ipLen + 12] >> 4) * 4;
  if (tcpLen < kTcpMinHeader || ipLen + tcpLen > size) {
    return GroPass::Malformed;
  }
  if ((p[ipLen + 13] & (kSyn | kFin | kRst | kUrg | kCwr)) != 0) {
    return GroPass::Flags;
  }
  if (ipLen + tcpLen == size) {
    return GroPass::NoPayload;
  }
  return ipLen;
}

} // namespace

void GroCoalescer::add(std::span<const std::uint8_t> packet, GroSink &sink) noexcept {
  ++counters_.packets;
  counters_.bytes_in += packet.size();
  const auto kind = classify(packet);
  if (const auto *pass = std::get_if<GroPass>(&kind)) {
    end(GroEnd::Passthrough, sink);
    ++counters_.passthrough[static_cast<std::size_t>(*pass)];
    write(VirtioNetHdr{}, packet, sink);
    return;
  }
  const std::uint8_t *p = packet.data();
  Segment s;
  s.ipLen = std::get<std::size_t>(kind);
  s.hdrLen = s.ipLen + static_cast<std::size_t>(p[s.ipLen + 12] >> 4) * 4;
  s.payload = packet.size() - s.hdrLen;
  s.seq = load32(p + s.ipLen + 4);
  s.flags = p[s.ipLen + 13];

  if (len_ != 0) {
    const std::uint8_t *h = buf_.data();
    if (s.hdrLen != hdrLen_ || s.ipLen != ipLen_ || !same(p, h, 0, 2) || !same(p, h, 6, 10) ||
        !same(p, h, 12, ipLen_) || !same(p, h, ipLen_, ipLen_ + 4) ||
        !same(p, h, ipLen_ + 8, ipLen_ + 13) || !same(p, h, ipLen_ + 14, ipLen_ + 16) ||
        !same(p, h, ipLen_ + kTcpMinHeader, hdrLen_) || ((s.flags ^ h[ipLen_ + 13]) & ~kPsh) != 0) {
      // ip[2..6) length and id, ip[10..12) checksum, tcp[4..8) seq, the
      // flags byte (compared without PSH), tcp[16..20) checksum and urgent
      // pointer (meaningless without URG) may differ; nothing else.
      end(GroEnd::Mismatch, sink);
    } else if (s.seq != nextSeq_) {
      end(GroEnd::SeqGap, sink);
    } else if (s.payload > gsoSize_ || len_ + s.payload > kMaxSuperPacket) {
      end(GroEnd::Size, sink);
    } else {
      std::memcpy(buf_.data() + len_, p + s.hdrLen, s.payload);
      len_ += s.payload;
      nextSeq_ += static_cast<std::uint32_t>(s.payload);
      ++segments_;
      if ((s.flags & kPsh) != 0) {
        buf_[ipLen_ + 13] |= kPsh; // the super-packet ends with it
        end(GroEnd::Psh, sink);
      } else if (s.payload < gsoSize_) {
        end(GroEnd::Short, sink);
      }
      return;
    }
  }
  start(packet, s);
  if ((s.flags & kPsh) != 0) {
    end(GroEnd::Psh, sink);
  }
}

void GroCoalescer::start(std::span<const std::uint8_t> packet, const Segment &s) noexcept {
  // A candidate's size is its 16-bit total length: it fits.
  std::memcpy(buf_.data(), packet.data(), packet.size());
  len_ = packet.size();
  ipLen_ = s.ipLen;
  hdrLen_ = s.hdrLen;
  gsoSize_ = s.payload;
  segments_ = 1;
  nextSeq_ = s.seq + static_cast<std::uint32_t>(s.payload);
}

void GroCoalescer::end(GroEnd why, GroSink &sink) noexcept {
  if (len_ == 0) {
    return;
  }
  ++counters_.runs;
  ++counters_.ended[static_cast<std::size_t>(why)];
  std::uint8_t *p = buf_.data();
  const std::size_t len = len_;
  len_ = 0;
  if (segments_ == 1) {
    ++counters_.singles;
    write(VirtioNetHdr{}, std::span(p, len), sink);
    return;
  }
  const VirtioNetHdr hdr = prepareForTun(p, len, ipLen_, hdrLen_, gsoSize_);
  ++counters_.super_packets;
  counters_.coalesced += segments_;
  write(hdr, std::span(p, len), sink);
}

void GroCoalescer::write(const VirtioNetHdr &hdr, std::span<const std::uint8_t> packet,
                         GroSink &sink) noexcept {
  ++counters_.writes;
  counters_.bytes_out += packet.size();
  sink.write(hdr, packet);
}

} // namespace nvbox::osr
