// ResequencingBuffer(CAPACITY N, MAX_PART_BYTES, GAP_TIMEOUT, [FIRST_SEQ])
//
// What it does: restores the order of the parts of ONE flow that arrive over
// several paths (paper section 4.2.3), and hands them to a sink in sequence
// order. Every sequence number from the first one seen onwards is accounted
// for exactly once, in order: either deliver()ed or reported lost().
//
// The buffer is a window of N consecutive sequence numbers starting at the
// oldest part not yet released (nextSeq()). A part with sequence number s:
//   - s before the window (serial arithmetic, see below): dropped, too_old —
//     it was already delivered, or skipped as lost.
//   - s == nextSeq(): delivered at once without being copied, followed by
//     every part buffered contiguously behind it.
//   - s inside the window: copied into its slot (reordered), or dropped as a
//     duplicate if that slot is already filled.
//   - s >= nextSeq() + N (the paper's "buffer filled while still waiting"):
//     part loss. The window slides forward by the fewest sequence numbers that
//     make s fit in its last slot: the released numbers are delivered if
//     buffered and reported lost (lost_overflow) if missing — i.e. the oldest
//     gaps are declared lost, oldest first, and never more than needed.
//     Then the run now at the head is delivered and s is stored.
//   - Gap timeout: expire(now) finds the newest position whose part has been
//     buffered for at least GAP_TIMEOUT and releases everything up to it:
//     missing numbers before it are lost (lost_timeout), buffered ones are
//     delivered. So no part waits much longer than GAP_TIMEOUT for a gap (if
//     expire() runs on time); a part that fills a gap after that is too_old.
//   - Inferred loss: releaseLost(END) declares the gaps before END lost at
//     once, for a caller that knows no path can still deliver them.
//   - Playout: a part may carry a due time (Part::due, from a PlayoutClock)
//     before which it is not delivered even when it is next in order; it is
//     then copied into its slot (held) and released by expire() once due.
//     The parts behind it wait for it as behind a gap. The gap timeout of a
//     held part counts from its due time, not its arrival. Overflow and
//     resize() release held parts early rather than lose them.
// The window start is the first part's seq, or FIRST_SEQ when configured
// (then a reordered first part is not mistaken for the start).
//
// Sequence numbers are u32 per flow and wrap: "a before b" means
// int32(b - a) > 0 (RFC 1982 serial arithmetic). A part 2^31 or more ahead
// therefore counts as too_old; a jump of up to 2^31-1 ahead is part loss
// accounted in O(N), not O(jump).
//
// Parameters: CAPACITY N (>= 1; change with resize()), MAX_PART_BYTES (slot
// size; larger payloads are dropped and counted `oversize`), GAP_TIMEOUT.
// sizeFor() recommends N and GAP_TIMEOUT for a set of paths.
// Counters: delivered, reordered (buffered behind a gap), held (buffered in
// order until due), peak_occupancy, lost_overflow, lost_timeout,
// lost_inferred, duplicates, too_old, oversize.
// Threading: not thread-safe; one owner per flow (the daemon's rx thread).
// The sink must not call back into the buffer and must not throw.
//
// Memory: N slot records and N * MAX_PART_BYTES payload bytes, allocated at
// construction and resize() only; push() and expire() never allocate.
#pragma once

#include "osr/types.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace nvbox::osr {

// One part of a segment, as the sink sees it. `payload` is only valid during
// the deliver() call.
struct Part {
  std::uint32_t seq = 0;
  std::uint8_t flags = 0; // wire::kFlagFirst / kFlagLast: where its segment begins and ends
  PathId path_id = 0;
  std::span<const std::uint8_t> payload{};
  Nanos due{}; // not delivered before this (playout); 0: at once
};

enum class LossCause : std::uint8_t {
  Overflow, // pushed out of the window by a newer part
  Timeout,  // a gap older than GAP_TIMEOUT
  Inferred, // declared by the caller (releaseLost): no path can still deliver it
};

class ResequencingSink {
public:
  virtual ~ResequencingSink() = default;
  virtual void deliver(const Part &part) = 0;
  // Sequence numbers first_seq .. first_seq + count - 1 (mod 2^32) will never
  // be delivered. Reported in order with deliver() calls.
  virtual void lost(std::uint32_t first_seq, std::uint32_t count, LossCause cause) = 0;
};

struct ResequencingCounters {
  std::uint64_t delivered = 0;
  std::uint64_t reordered = 0;
  std::uint64_t held = 0;
  std::uint64_t peak_occupancy = 0;
  std::uint64_t lost_overflow = 0;
  std::uint64_t lost_timeout = 0;
  std::uint64_t lost_inferred = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t too_old = 0;
  std::uint64_t oversize = 0;
};

enum class PushResult : std::uint8_t {
  Delivered, // it was next in order: delivered during this call
  Buffered,  // stored behind a gap, or held until due
  Duplicate, // already buffered: dropped
  TooOld,    // before the window: dropped
  Oversize,  // payload larger than MAX_PART_BYTES: dropped
};

// Input of sizeFor(): one path as the sender sees it.
struct PathModel {
  double rate_bytes_per_s = 0; // paths with a rate <= 0 (or NaN) carry nothing: ignored
  Nanos one_way_delay{};
};

struct Sizing {
  std::size_t capacity = 1;
  Nanos gap_timeout{};
};

class ResequencingBuffer {
public:
  struct Config {
    std::size_t capacity = 256;
    std::size_t max_part_bytes = 1500;
    Nanos gap_timeout = std::chrono::milliseconds(50);
    std::optional<std::uint32_t> first_seq{};
  };

  // Throws std::length_error if capacity * max_part_bytes overflows and
  // std::bad_alloc if it cannot be allocated. A capacity of 0 means 1.
  explicit ResequencingBuffer(const Config &config);

  PushResult push(const Part &part, Nanos now, ResequencingSink &sink) noexcept;

  // Releases the parts that have come due and applies the gap timeout. Call
  // it from a timer at nextDeadline(), or once per receive batch; it costs
  // O(occupied span).
  void expire(Nanos now, ResequencingSink &sink) noexcept;

  // The earliest `now` at which expire() would release something; nullopt
  // when nothing is buffered.
  std::optional<Nanos> nextDeadline() const noexcept;
  // When the part at the head comes due, if it is buffered and held: the
  // playout's release time, which wants a finer timer than the gap timeout.
  std::optional<Nanos> nextRelease() const noexcept;

  // Changes N at run time. Growing, or shrinking to no less than the occupied
  // span, keeps every buffered part. Shrinking below it first slides the
  // window as an overflow would (oldest numbers delivered or lost_overflow)
  // until the occupied span fits. Allocates; may throw like the constructor,
  // in which case nothing has changed.
  void resize(std::size_t capacity, ResequencingSink &sink);

  void setGapTimeout(Nanos timeout) noexcept { config_.gap_timeout = timeout; }

  // Declares every missing sequence number before `end` lost (lost_inferred)
  // and delivers what is buffered and due in front of and behind them. A held
  // part that is not yet due stops it: the numbers behind that part are left
  // for a later call. For a caller that knows the parts cannot arrive any more
  // (FeedbackMeter: every path has delivered later parts, and paths are FIFO).
  void releaseLost(std::uint32_t end, Nanos now, ResequencingSink &sink) noexcept;

  std::size_t capacity() const noexcept { return slots_.size(); }
  std::size_t occupancy() const noexcept { return count_; }
  // The oldest sequence number not yet released; meaningless before the
  // first part when no FIRST_SEQ was configured.
  std::uint32_t nextSeq() const noexcept { return next_; }
  const ResequencingCounters &counters() const noexcept { return counters_; }

  // Recommended N and GAP_TIMEOUT for striping parts of `part_bytes` over
  // `paths` at their full rates. With S = part_bytes, for each usable path i
  // (rate r_i > 0, one-way delay d_i) its latency is e_i = d_i + S / r_i
  // (propagation plus serialisation of one part). With R = sum r_i and the
  // spread D = max e_i - min e_i:
  //
  //   N           = ceil(headroom * R * D / S) + 2 * P      (P usable paths)
  //   GAP_TIMEOUT = max(min_timeout, headroom * D)
  //
  // R * D / S is the number of parts the sender emits, over all paths, while
  // the slowest path's part is still in flight behind the fastest path's:
  // when it finally arrives, the newest part already received is that many
  // sequence numbers ahead, so the window must span them (N counts sequence
  // numbers, not only the parts physically held; peak occupancy is about
  // sum r_i * (max e - e_i) / S). 2 * P leaves room for the interleaving of
  // one segment per path even when all paths are alike. Headroom < 1 or not
  // finite counts as 1. N is capped at kMaxSizedCapacity and GAP_TIMEOUT at
  // one hour, which also keeps absurd inputs (rates near 0 or DBL_MAX)
  // defined. No usable path gives {1, min_timeout}.
  static constexpr std::size_t kMaxSizedCapacity = std::size_t{1} << 20;
  static Sizing sizeFor(std::span<const PathModel> paths, std::size_t part_bytes,
                        double headroom = 1.5,
                        Nanos min_timeout = std::chrono::milliseconds(1)) noexcept;

private:
  struct Slot {
    Nanos due{};
    Nanos ready{}; // max(arrival, due): the gap timeout counts from here
    std::uint32_t length = 0;
    std::uint8_t flags = 0;
    PathId path_id = 0;
    bool present = false;
  };

  std::size_t slotIndex(std::size_t offset) const noexcept;
  std::span<std::uint8_t> slotBytes(std::size_t index) noexcept;
  void advance() noexcept;
  void deliverHead(ResequencingSink &sink) noexcept;
  // Delivers the head while it is buffered and due by `now`.
  void releaseRun(Nanos now, ResequencingSink &sink) noexcept;
  void releaseThrough(std::uint64_t count, LossCause cause, ResequencingSink &sink) noexcept;
  void store(std::size_t offset, const Part &part, Nanos now) noexcept;

  Config config_;
  std::vector<Slot> slots_;
  std::vector<std::uint8_t> arena_; // slots_.size() * max_part_bytes
  std::size_t head_ = 0;            // slot of next_
  std::size_t count_ = 0;           // parts buffered
  std::size_t span_ = 0;            // 1 + offset of the newest buffered part; 0 if none
  std::uint32_t next_ = 0;
  bool anchored_ = false;
  ResequencingCounters counters_{};
};

} // namespace nvbox::osr
