#include "osr/resequencing_buffer.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace nvbox::osr {

namespace {

// RFC 1982 serial arithmetic: the signed distance from `from` to `to` in the
// u32 sequence space, in [-2^31, 2^31).
std::int64_t serialDistance(std::uint32_t from, std::uint32_t to) noexcept {
  return static_cast<std::int32_t>(to - from);
}

std::size_t arenaSize(std::size_t capacity, std::size_t stride) {
  if (stride != 0 && capacity > std::numeric_limits<std::size_t>::max() / stride) {
    throw std::length_error("resequencing buffer of " + std::to_string(capacity) + " parts of " +
                            std::to_string(stride) + " bytes does not fit in memory");
  }
  return capacity * stride;
}

} // namespace

ResequencingBuffer::ResequencingBuffer(const Config &config)
    : config_(config), slots_(std::max<std::size_t>(config.capacity, 1)),
      arena_(arenaSize(slots_.size(), config.max_part_bytes)) {
  config_.capacity = slots_.size();
  if (config.first_seq) {
    next_ = *config.first_seq;
    anchored_ = true;
  }
}

std::size_t ResequencingBuffer::slotIndex(std::size_t offset) const noexcept {
  return (head_ + offset) % slots_.size();
}

std::span<std::uint8_t> ResequencingBuffer::slotBytes(std::size_t index) noexcept {
  return std::span(arena_).subspan(index * config_.max_part_bytes, config_.max_part_bytes);
}

void ResequencingBuffer::advance() noexcept {
  head_ = (head_ + 1) % slots_.size();
  ++next_;
  if (span_ > 0) {
    --span_;
  }
}

void ResequencingBuffer::deliverHead(ResequencingSink &sink) noexcept {
  Slot &slot = slots_[head_];
  const Part part{.seq = next_,
                  .flags = slot.flags,
                  .path_id = slot.path_id,
                  .payload = slotBytes(head_).first(slot.length),
                  .due = slot.due};
  slot.present = false;
  --count_;
  ++counters_.delivered;
  sink.deliver(part);
  advance();
}

void ResequencingBuffer::releaseRun(Nanos now, ResequencingSink &sink) noexcept {
  while (count_ > 0 && slots_[head_].present && slots_[head_].due <= now) {
    deliverHead(sink);
  }
}

void ResequencingBuffer::releaseThrough(std::uint64_t count, LossCause cause,
                                        ResequencingSink &sink) noexcept {
  std::uint32_t lost_first = next_;
  std::uint64_t lost_run = 0;
  std::uint64_t lost_total = 0;
  const auto flush = [&] {
    if (lost_run > 0) {
      sink.lost(lost_first, static_cast<std::uint32_t>(lost_run), cause);
      lost_total += lost_run;
      lost_run = 0;
    }
  };
  std::uint64_t released = 0;
  // Slot by slot only while buffered parts remain: past the newest one every
  // slot is empty, so the rest of a long jump is skipped in O(1) below.
  for (; released < count && span_ > 0; ++released) {
    if (slots_[head_].present) {
      flush();
      deliverHead(sink);
    } else {
      if (lost_run == 0) {
        lost_first = next_;
      }
      ++lost_run;
      advance();
    }
  }
  if (released < count) {
    const std::uint64_t rest = count - released;
    if (lost_run == 0) {
      lost_first = next_;
    }
    lost_run += rest;
    // count < 2^32 (a window jump is < 2^31), so the truncation is exact.
    next_ += static_cast<std::uint32_t>(rest);
    head_ = (head_ + static_cast<std::size_t>(rest % slots_.size())) % slots_.size();
  }
  flush();
  switch (cause) {
  case LossCause::Overflow:
    counters_.lost_overflow += lost_total;
    break;
  case LossCause::Timeout:
    counters_.lost_timeout += lost_total;
    break;
  case LossCause::Inferred:
    counters_.lost_inferred += lost_total;
    break;
  }
}

void ResequencingBuffer::store(std::size_t offset, const Part &part, Nanos now) noexcept {
  const std::size_t index = slotIndex(offset);
  Slot &slot = slots_[index];
  slot = Slot{.due = part.due,
              .ready = std::max(now, part.due),
              .length = static_cast<std::uint32_t>(part.payload.size()),
              .flags = part.flags,
              .path_id = part.path_id,
              .present = true};
  std::copy(part.payload.begin(), part.payload.end(), slotBytes(index).begin());
  ++count_;
  span_ = std::max(span_, offset + 1);
  counters_.peak_occupancy = std::max<std::uint64_t>(counters_.peak_occupancy, count_);
  ++(offset == 0 ? counters_.held : counters_.reordered);
}

PushResult ResequencingBuffer::push(const Part &part, Nanos now, ResequencingSink &sink) noexcept {
  if (part.payload.size() > config_.max_part_bytes) {
    ++counters_.oversize;
    return PushResult::Oversize;
  }
  if (!anchored_) {
    next_ = part.seq;
    anchored_ = true;
  }
  std::int64_t distance = serialDistance(next_, part.seq);
  if (distance < 0) {
    ++counters_.too_old;
    return PushResult::TooOld;
  }
  const auto window = static_cast<std::int64_t>(slots_.size());
  if (distance >= window) {
    releaseThrough(static_cast<std::uint64_t>(distance - window + 1), LossCause::Overflow, sink);
    releaseRun(now, sink);
    distance = serialDistance(next_, part.seq);
  }
  const auto offset = static_cast<std::size_t>(distance);
  if (slots_[slotIndex(offset)].present) {
    ++counters_.duplicates;
    return PushResult::Duplicate;
  }
  if (offset > 0 || part.due > now) {
    store(offset, part, now);
    return PushResult::Buffered;
  }
  // In order and due: hand the caller's bytes straight to the sink, no copy.
  ++counters_.delivered;
  sink.deliver(part);
  advance();
  releaseRun(now, sink);
  return PushResult::Delivered;
}

void ResequencingBuffer::expire(Nanos now, ResequencingSink &sink) noexcept {
  releaseRun(now, sink);
  std::optional<std::size_t> newest_expired;
  for (std::size_t offset = 0; offset < span_; ++offset) {
    const Slot &slot = slots_[slotIndex(offset)];
    if (slot.present && now - slot.ready >= config_.gap_timeout) {
      newest_expired = offset;
    }
  }
  if (newest_expired) {
    releaseThrough(*newest_expired + 1, LossCause::Timeout, sink);
    releaseRun(now, sink);
  }
}

void ResequencingBuffer::releaseLost(std::uint32_t end, Nanos now,
                                     ResequencingSink &sink) noexcept {
  if (!anchored_) {
    return;
  }
  std::int64_t distance = serialDistance(next_, end);
  while (distance > 0) {
    if (slots_[head_].present) {
      if (slots_[head_].due > now) {
        return; // held: the numbers behind it wait for its release
      }
      releaseRun(now, sink);
    } else {
      // The run of missing numbers up to the next buffered part or `end`.
      std::uint64_t run = 0;
      while (run < static_cast<std::uint64_t>(distance) && run < span_ &&
             !slots_[slotIndex(run)].present) {
        ++run;
      }
      if (span_ == 0) {
        run = static_cast<std::uint64_t>(distance); // nothing buffered: all of it
      }
      releaseThrough(run, LossCause::Inferred, sink);
      releaseRun(now, sink);
    }
    distance = serialDistance(next_, end);
  }
}

std::optional<Nanos> ResequencingBuffer::nextDeadline() const noexcept {
  std::optional<Nanos> oldest;
  for (std::size_t offset = 0; offset < span_; ++offset) {
    const Slot &slot = slots_[slotIndex(offset)];
    if (slot.present && (!oldest || slot.ready < *oldest)) {
      oldest = slot.ready;
    }
  }
  if (!oldest) {
    return std::nullopt;
  }
  const Nanos gap = *oldest + config_.gap_timeout;
  const auto release = nextRelease();
  return release ? std::min(gap, *release) : gap;
}

std::optional<Nanos> ResequencingBuffer::nextRelease() const noexcept {
  if (count_ == 0 || !slots_[head_].present) {
    return std::nullopt;
  }
  return slots_[head_].due;
}

void ResequencingBuffer::resize(std::size_t capacity, ResequencingSink &sink) {
  capacity = std::max<std::size_t>(capacity, 1);
  if (capacity == slots_.size()) {
    return;
  }
  // Allocate before touching any state, so a failure leaves the buffer as it was.
  std::vector<Slot> slots(capacity);
  std::vector<std::uint8_t> arena(arenaSize(capacity, config_.max_part_bytes));
  if (span_ > capacity) {
    releaseThrough(span_ - capacity, LossCause::Overflow, sink);
    // resize() has no clock: the run now at the head goes out as on an
    // overflow, held parts early.
    releaseRun(Nanos::max(), sink);
  }
  const std::size_t stride = config_.max_part_bytes;
  for (std::size_t offset = 0; offset < span_; ++offset) {
    const std::size_t from = slotIndex(offset);
    if (slots_[from].present) {
      slots[offset] = slots_[from];
      const auto bytes = slotBytes(from).first(slots_[from].length);
      std::copy(bytes.begin(), bytes.end(),
                arena.begin() + static_cast<std::ptrdiff_t>(offset * stride));
    }
  }
  slots_ = std::move(slots);
  arena_ = std::move(arena);
  head_ = 0;
  config_.capacity = capacity;
}

Sizing ResequencingBuffer::sizeFor(std::span<const PathModel> paths, std::size_t part_bytes,
                                   double headroom, Nanos min_timeout) noexcept {
  const double part = static_cast<double>(std::max<std::size_t>(part_bytes, 1));
  if (!std::isfinite(headroom) || headroom < 1.0) {
    headroom = 1.0;
  }
  double total_rate = 0;
  double fastest = std::numeric_limits<double>::infinity();
  double slowest = 0;
  std::size_t usable = 0;
  for (const PathModel &path : paths) {
    if (!(path.rate_bytes_per_s > 0) || !std::isfinite(path.rate_bytes_per_s)) {
      continue;
    }
    const double latency =
        std::chrono::duration<double>(path.one_way_delay).count() + part / path.rate_bytes_per_s;
    fastest = std::min(fastest, latency);
    slowest = std::max(slowest, latency);
    total_rate += path.rate_bytes_per_s;
    ++usable;
  }
  if (usable == 0) {
    return Sizing{.capacity = 1, .gap_timeout = min_timeout};
  }
  // Absurd inputs (rates near 0 or near DBL_MAX) give infinite or NaN
  // intermediates; the clamps are written so that NaN fails the comparison
  // too, which keeps the float-to-integer conversions below defined.
  constexpr double kMaxTimeoutSeconds = 3600;
  const double spread = slowest - fastest;
  double window =
      std::ceil(headroom * total_rate * spread / part) + 2.0 * static_cast<double>(usable);
  if (!(window < static_cast<double>(kMaxSizedCapacity))) {
    window = static_cast<double>(kMaxSizedCapacity);
  }
  double timeout = headroom * spread;
  if (!(timeout < kMaxTimeoutSeconds)) {
    timeout = kMaxTimeoutSeconds;
  }
  return Sizing{.capacity = static_cast<std::size_t>(window),
                .gap_timeout = std::max(min_timeout, std::chrono::duration_cast<Nanos>(
                                                         std::chrono::duration<double>(timeout)))};
}

} // namespace nvbox::osr
