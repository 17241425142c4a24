#include "osr/segment_cutter.hpp"

#include "osr/wire.hpp"

#include <algorithm>
#include <cstring>

namespace nvbox::osr {

std::size_t SegmentCutter::size(std::size_t index) const noexcept {
  const std::size_t total = kSegmentHeader + packet_.size();
  const std::size_t from = index * partSize_;
  return from >= total ? 0 : std::min(partSize_, total - from);
}

std::uint8_t SegmentCutter::flags(std::size_t index) const noexcept {
  return static_cast<std::uint8_t>((index == 0 ? wire::kFlagFirst : 0) |
                                   (index + 1 == parts() ? wire::kFlagLast : 0));
}

void SegmentCutter::writeHeader(std::uint16_t mss, std::uint16_t length,
                                std::span<std::uint8_t, kSegmentHeader> out) noexcept {
  out[0] = static_cast<std::uint8_t>(mss >> 8);
  out[1] = static_cast<std::uint8_t>(mss);
  out[2] = static_cast<std::uint8_t>(length >> 8);
  out[3] = static_cast<std::uint8_t>(length);
}

void SegmentCutter::write(std::size_t index, std::span<std::uint8_t> out) const noexcept {
  const std::size_t n = size(index);
  if (index == 0) {
    writeHeader(mss_, static_cast<std::uint16_t>(packet_.size()), out.first<kSegmentHeader>());
    std::memcpy(out.data() + kSegmentHeader, packet_.data(), n - kSegmentHeader);
  } else {
    std::memcpy(out.data(), packet_.data() + index * partSize_ - kSegmentHeader, n);
  }
}

} // namespace nvbox::osr
