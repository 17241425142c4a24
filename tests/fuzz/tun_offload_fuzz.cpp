// libFuzzer target for the TUN offloads: TsoSplitter on arbitrary
// header + packet bytes (in Cut mode, its output into a GroCoalescer, and in
// Whole mode, as the ingress reads).
//
// Input: [ctrl:1][virtio_net_hdr:10][packet...]. ctrl can stamp valid values
// over the fields the fuzzer would rarely guess together (gso_type TCPV4,
// version/IHL and protocol, csum_start/csum_offset, a sane gso_size), so
// that the splitting and coalescing paths are reached. The packet is also
// given to the coalescer as it is (arbitrary bytes from the tunnel), and to
// isPureTcpAck, as the ingress gives it every packet.
// Traps on a violated invariant:
//  - every TSO segment is at most MAX_SEGMENT, a valid IPv4 packet whose
//    total length is its size, with valid IP and TCP checksums (checked with
//    an independent loop, not osr/internet_checksum.hpp);
//  - Whole mode emits a TSO packet once, unchanged, with its gso_size as the
//    MSS, or rejects it for the reason Cut mode does (Cut mode alone may find
//    it too big); any other packet it emits exactly as Cut mode does;
//  - a pure ACK is 40 to 120 bytes (two headers, options included, no data);
//  - the coalescer writes at most 65535 bytes at a time, GSO writes have a
//    consistent header, and no byte is lost or invented: bytes written plus
//    the headers dropped by merging equal the bytes added.
#include "osr/gro_coalescer.hpp"
#include "osr/pure_ack.hpp"
#include "osr/tso_splitter.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

namespace {

using namespace nvbox::osr;

constexpr std::size_t kMaxSegment = 1500;

std::uint32_t sum16(const std::uint8_t *p, std::size_t n, std::uint32_t acc) {
  for (std::size_t i = 0; i + 1 < n; i += 2) {
    acc += static_cast<std::uint32_t>((p[i] << 8) | p[i + 1]);
  }
  if (n % 2 == 1) {
    acc += static_cast<std::uint32_t>(p[n - 1] << 8);
  }
  while ((acc >> 16) != 0) {
    acc = (acc & 0xFFFF) + (acc >> 16);
  }
  return acc;
}

class Segments final : public TsoSink {
public:
  GroCoalescer *gro = nullptr;
  GroSink *out = nullptr;
  bool tso = false;
  std::uint64_t bytes = 0;

  void segment(std::span<const std::uint8_t> p, std::uint16_t /*mss*/) noexcept override {
    bytes += p.size();
    if (tso) {
      if (p.size() > kMaxSegment || p.size() < 40 || (p[0] >> 4) != 4) {
        __builtin_trap();
      }
      const std::size_t ihl = std::size_t{p[0] & 0x0FU} * 4;
      if (((p[2] << 8) | p[3]) != static_cast<int>(p.size()) || sum16(p.data(), ihl, 0) != 0xFFFF) {
        __builtin_trap();
      }
      const std::size_t l4 = p.size() - ihl;
      std::uint32_t acc = sum16(p.data() + 12, 8, 0) + 6 + static_cast<std::uint32_t>(l4);
      if (sum16(p.data() + ihl, l4, acc) != 0xFFFF) {
        __builtin_trap();
      }
    }
    gro->add(p, *out);
  }
};

// Whole mode's output: one packet at most, kept for comparison.
class WholeOut final : public TsoSink {
public:
  std::vector<std::uint8_t> packet;
  std::uint16_t mss = 0;
  std::size_t count = 0;

  void segment(std::span<const std::uint8_t> p, std::uint16_t m) noexcept override {
    packet.assign(p.begin(), p.end());
    mss = m;
    ++count;
  }
};

// The first packet Cut mode emits, for comparison with Whole mode's.
class FirstOut final : public TsoSink {
public:
  TsoSink *next = nullptr;
  std::vector<std::uint8_t> packet;
  std::size_t count = 0;

  void segment(std::span<const std::uint8_t> p, std::uint16_t m) noexcept override {
    if (count++ == 0) {
      packet.assign(p.begin(), p.end());
    }
    next->segment(p, m);
  }
};

class Writes final : public GroSink {
public:
  std::uint64_t bytes = 0;
  std::uint64_t droppedHeaders = 0;

  void write(const VirtioNetHdr &h, std::span<const std::uint8_t> p) noexcept override {
    bytes += p.size();
    if (p.size() > GroCoalescer::kMaxSuperPacket) {
      __builtin_trap();
    }
    if (h == VirtioNetHdr{}) {
      return;
    }
    if (h.flags != VirtioNetHdr::kNeedsCsum || h.gso_type != VirtioNetHdr::kGsoTcpV4 ||
        h.gso_size == 0 || h.hdr_len >= p.size() || h.csum_offset != 16 ||
        h.csum_start + 20U > h.hdr_len || ((p[2] << 8) | p[3]) != static_cast<int>(p.size())) {
      __builtin_trap();
    }
    const std::size_t payload = p.size() - h.hdr_len;
    const std::size_t count = (payload + h.gso_size - 1) / h.gso_size;
    if (count < 2) {
      __builtin_trap();
    }
    droppedHeaders += (count - 1) * h.hdr_len;
  }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  if (size < 1 + sizeof(VirtioNetHdr)) {
    return 0;
  }
  const std::uint8_t ctrl = data[0];
  VirtioNetHdr hdr;
  std::memcpy(&hdr, data + 1, sizeof hdr);
  // Exactly sized, so that sanitizers see an overrun.
  std::vector<std::uint8_t> packet(data + 1 + sizeof hdr, data + size);
  if ((ctrl & 1) != 0) {
    hdr.gso_type = VirtioNetHdr::kGsoTcpV4;
  }
  if ((ctrl & 2) != 0 && packet.size() >= 20) {
    packet[0] = 0x45;
    packet[6] &= 0x40; // no MF, no offset
    packet[7] = 0;
    packet[9] = 6;
  }
  if ((ctrl & 4) != 0) {
    hdr.csum_start =
        static_cast<std::uint16_t>(std::size_t{packet.empty() ? 0U : packet[0] & 0x0FU} * 4);
    hdr.csum_offset = 16;
  }
  if ((ctrl & 8) != 0) {
    hdr.gso_size = static_cast<std::uint16_t>(1 + hdr.gso_size % 1448);
    hdr.hdr_len = 0;
  }
  GroCoalescer gro;
  Writes writes;
  Segments segments;
  segments.gro = &gro;
  segments.out = &writes;
  segments.tso = (hdr.gso_type & ~VirtioNetHdr::kGsoEcn) == VirtioNetHdr::kGsoTcpV4;
  const std::vector<std::uint8_t> raw = packet;
  std::vector<std::uint8_t> copy = raw;
  WholeOut whole;
  TsoSplitter wholeSplitter(kMaxSegment, TsoSplitter::Mode::Whole);
  const TsoReject rw = wholeSplitter.split(hdr, copy, whole);
  FirstOut first;
  first.next = &segments;
  TsoSplitter splitter(kMaxSegment);
  const TsoReject r = splitter.split(hdr, packet, first);
  if ((r == TsoReject::None) != (splitter.counters().emitted > 0) ||
      splitter.counters().bytes_out != segments.bytes) {
    __builtin_trap();
  }
  if (whole.count != (rw == TsoReject::None ? 1U : 0U)) {
    __builtin_trap();
  }
  if (segments.tso) {
    if (rw != r && !(r == TsoReject::TooBig && rw == TsoReject::None)) {
      __builtin_trap();
    }
    if (rw == TsoReject::None && (whole.packet != raw || whole.mss != hdr.gso_size)) {
      __builtin_trap();
    }
  } else if (rw != r ||
             (rw == TsoReject::None && (whole.mss != 0 || whole.packet != first.packet))) {
    __builtin_trap();
  }
  if (isPureTcpAck(raw) && (raw.size() < 40 || raw.size() > 120)) {
    __builtin_trap();
  }
  gro.add(raw, writes);
  gro.flush(writes);
  if (gro.pending() || writes.bytes + writes.droppedHeaders != gro.counters().bytes_in ||
      gro.counters().bytes_in != segments.bytes + raw.size()) {
    __builtin_trap();
  }
  return 0;
}
