// SegmentCutter(PACKET, MSS, PART_SIZE) — how the ingress cuts one packet
// it read from its TUN device into parts (wire version 3's segments; the
// egress's half is SegmentAssembler).
//
// What it does: the segment is a 4-byte segment header (MSS: the TCP
// super-packet's, 0 for any other packet; then the packet's length, both
// 16-bit big-endian) followed by the packet's bytes; part i carries segment
// bytes [i * PART_SIZE, ...), so every part but the last holds exactly
// PART_SIZE bytes, and the egress places a part by its sequence number alone
// and knows from the length which parts belong to the segment (a part of the
// next one is never taken for a continuation when the parts between are
// lost). The first part is flagged FIRST (it holds the inner IP and TCP
// headers), the last LAST.
//
// Parameters: the packet (viewed, not copied, at most 65535 bytes), MSS,
// PART_SIZE (> 4).
// Counters: none. Threading: a plain value; write() may run anywhere.
// Every member is noexcept and allocation-free.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace nvbox::osr {

class SegmentCutter {
public:
  static constexpr std::size_t kSegmentHeader = 4;

  SegmentCutter(std::span<const std::uint8_t> packet, std::uint16_t mss,
                std::size_t partSize) noexcept
      : packet_(packet), mss_(mss), partSize_(partSize) {}

  // The parts of a packet of `bytes` bytes.
  static std::size_t partsFor(std::size_t bytes, std::size_t partSize) noexcept {
    return (bytes + kSegmentHeader + partSize - 1) / partSize;
  }

  [[nodiscard]] std::size_t parts() const noexcept { return partsFor(packet_.size(), partSize_); }
  [[nodiscard]] std::size_t size(std::size_t index) const noexcept;
  // wire::kFlagFirst / kFlagLast as they apply to part `index`.
  [[nodiscard]] std::uint8_t flags(std::size_t index) const noexcept;
  // Writes part `index` into `out` (at least size(index) bytes).
  void write(std::size_t index, std::span<std::uint8_t> out) const noexcept;

  // The segment header as the egress reads it.
  static void writeHeader(std::uint16_t mss, std::uint16_t length,
                          std::span<std::uint8_t, kSegmentHeader> out) noexcept;

private:
  std::span<const std::uint8_t> packet_;
  std::uint16_t mss_;
  std::size_t partSize_;
};

} // namespace nvbox::osr
