#include "delay_line.hpp"

#include <cstring>

namespace nvbox::osr {

DelayLine::DelayLine(std::size_t capacity, Nanos delay) : slots_(capacity), delay_(delay) {}

bool DelayLine::push(std::span<const std::uint8_t> bytes, const Endpoint &to, Nanos now) noexcept {
  if (count_ == slots_.size() || bytes.size() > PacketBatch::kBufferSize) {
    ++dropped_;
    return false;
  }
  Slot &slot = slots_[(head_ + count_) % slots_.size()];
  slot.due = now + delay_;
  slot.to = to;
  slot.length = bytes.size();
  std::memcpy(slot.bytes.data(), bytes.data(), bytes.size());
  ++count_;
  ++delayed_;
  return true;
}

void DelayLine::release(Nanos now, PacketBatch &out) noexcept {
  while (count_ > 0 && !out.full()) {
    const Slot &slot = slots_[head_];
    if (slot.due > now) {
      return;
    }
    out.push(std::span(slot.bytes.data(), slot.length), slot.to);
    head_ = (head_ + 1) % slots_.size();
    --count_;
  }
}

} // namespace nvbox::osr
