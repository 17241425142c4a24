// PathEstimator — what the ingress knows of its stripe's paths from the
// egress's FEEDBACK: the rate each delivers, its queue, and whether it
// still delivers at all.
//
// What it does, per path (up to kMaxPaths), from onSent() (every part
// sent), onFeedback() (every FEEDBACK of the stripe's flow) and tick():
//   - rate: the deliverable rate in bytes/s. Delivery-rate samples are taken
//     from the egress's cumulative byte counts over at least kSampleSpan of
//     its clock. A path whose queue stayed above the cut (the least queueing
//     delay of every FEEDBACK interval in the span above kQueueCut) never
//     idled: what it delivered is what it can, and the
//     estimate becomes the sample, lower or higher. Otherwise a sample is a
//     lower bound, and the estimate rises to it. A path that gets faster is
//     noticed as soon as the scheduler gives it more than its estimate,
//     which it does whenever the others are queued (see StripeScheduler,
//     Adaptive); and a path that was sent about all its estimate allows
//     (kUsed) while its queue stayed empty (under kQueueEmpty) has its
//     estimate raised by a quarter per interval, so that one underestimated
//     is tried and not starved.
//     A sample needs kSampleBytes delivered in its span. Until a path has
//     one, its rate is the declared hint, or the mean of the measured ones
//     if above kDefaultRate, or kDefaultRate; never below kMinRate.
//   - backlog: how long a part sent now would wait in the path's queue: the
//     queueing delay the egress measured last, plus what was sent since that
//     measurement beyond what the path drains in the time (a history of
//     bytes sent per millisecond; a path that was not queued drains at least
//     what it was sent). The scheduler re-synchronises its queue model with
//     it at every FEEDBACK.
//   - delay: the path's one-way delay above the flow's fastest path, as the
//     egress measures it from base transits (exact without synchronised
//     clocks); before feedback, the caller's min RTT / 2 stands in.
//   - stalled: the path stopped delivering while the others still report:
//     bytes were sent on it, and no FEEDBACK showed it deliver for min RTT +
//     3 FEEDBACK intervals + kStallMargin since. That takes a dead path out
//     of the stripe in tens of ms rather than the probes' DOWN_AFTER. It ends
//     when it delivers again or a probe sent after the stall began is
//     answered (onProbeReply).
//   - share: the path's part of the bytes sent (EWMA over about a second).
//
// FEEDBACK is trusted only when fresh: its sequence number must be newer
// than the last accepted of the same egress epoch, and its echo (the newest
// send time of ours the egress had seen) must not be older than the last
// accepted one nor in our future; a new epoch (the egress restarted its
// state) needs a strictly newer echo. So a replayed or reordered FEEDBACK
// changes nothing (counted stale). A count that claims more bytes delivered
// than were sent on the path is clamped to what was sent (counted clamped).
// A path with no fresh FEEDBACK for kStaleAfter keeps its last rate and
// loses its backlog resync: the scheduler's own model and the probes carry
// on.
//
// Parameters: none (the constants below). Counters: feedback accepted,
// stale, clamped; per path: lost parts (as the egress counted them), stalls.
// Threading: not thread-safe; the daemon's data-path thread. Every member
// is noexcept and allocation-free.
#pragma once

#include "osr/types.hpp"
#include "osr/wire.hpp"

#include <array>
#include <cstdint>
#include <optional>

namespace nvbox::osr {

struct PathEstimate {
  std::uint64_t rate = 0;     // bytes/s for scheduling: measured, or the stand-in
  std::uint64_t measured = 0; // bytes/s measured; 0 before the first sample
  Nanos backlog{};            // as of the last FEEDBACK (see above)
  Nanos queue{};              // the egress's newest queueing delay
  std::optional<Nanos> delay; // relative one-way delay, from FEEDBACK
  bool fresh = false;         // FEEDBACK within kStaleAfter
  bool stalled = false;
  double share = 0;
  std::uint64_t lost = 0;
  std::uint64_t stalls = 0;
};

struct FeedbackCounters {
  std::uint64_t accepted = 0;
  std::uint64_t stale = 0;
  std::uint64_t clamped = 0;
};

enum class FeedbackResult : std::uint8_t { Accepted, Stale };

class PathEstimator {
public:
  static constexpr std::uint64_t kDefaultRate = 1'250'000; // 10 Mbit/s
  // No estimate goes lower: a rate near 0 would make every part look as if
  // it waited seconds, and the path would never be tried again.
  static constexpr std::uint64_t kMinRate = 16'000; // 128 kbit/s
  static constexpr std::uint64_t kSampleBytes = 8 * 1024;
  static constexpr std::uint64_t kMaxRate = std::uint64_t{1} << 40;
  static constexpr Nanos kSampleSpan = std::chrono::milliseconds(40);
  static constexpr Nanos kQueueCut = std::chrono::milliseconds(5);
  static constexpr Nanos kQueueEmpty = std::chrono::milliseconds(1);
  static constexpr double kUsed = 0.8; // sent / estimate: the path was used to its estimate
  static constexpr Nanos kStallMargin = std::chrono::milliseconds(20);
  static constexpr Nanos kStaleAfter = std::chrono::milliseconds(500);
  static constexpr std::size_t kHistoryMs = 512;

  bool addPath(PathId id, std::uint64_t hint) noexcept;
  bool removePath(PathId id) noexcept;
  void setHint(PathId id, std::uint64_t hint) noexcept;

  void onSent(PathId id, std::size_t bytes, Nanos now) noexcept;
  void setMinRtt(PathId id, Nanos rtt) noexcept;
  // A probe sent at `sentAt` on `id` was answered.
  void onProbeReply(PathId id, Nanos sentAt) noexcept;
  // A FEEDBACK of the stripe's flow: `seq` and `egressUs` from its header,
  // `nowUs` our clock as it is sent on the wire.
  FeedbackResult onFeedback(std::uint32_t seq, std::uint32_t egressUs, const wire::Feedback &f,
                            std::uint32_t nowUs, Nanos now) noexcept;
  // Stall detection and the share; returns a bit mask (bit = path id) of the
  // paths that stalled in this call.
  std::uint16_t tick(Nanos now) noexcept;

  [[nodiscard]] PathEstimate estimate(PathId id, Nanos now) const noexcept;
  [[nodiscard]] bool stalled(PathId id) const noexcept { return present(id) && paths_[id].stalled; }
  // FEEDBACK on the path within kStaleAfter.
  [[nodiscard]] bool fresh(PathId id, Nanos now) const noexcept {
    return present(id) && paths_[id].haveFeedback && now - paths_[id].lastFeedback <= kStaleAfter;
  }
  // The relative one-way delay the egress last measured; nothing before.
  [[nodiscard]] std::optional<Nanos> measuredDelay(PathId id) const noexcept {
    return present(id) ? paths_[id].delay : std::nullopt;
  }
  [[nodiscard]] const FeedbackCounters &counters() const noexcept { return counters_; }

private:
  struct Point {
    std::int64_t egressUs = 0;
    std::uint64_t delivered = 0;
  };
  struct Path {
    bool present = false;
    std::uint64_t hint = 0;
    Nanos minRtt{};
    // Sent bytes per millisecond, the last kHistoryMs of them.
    std::array<std::uint32_t, kHistoryMs> history{};
    std::int64_t historyMs = 0;        // the millisecond history[historyMs % kHistoryMs] counts
    std::optional<Nanos> pendingSince; // first send since the last progress
    std::uint64_t sentTotal = 0;
    std::uint64_t sinceTick = 0;
    double shareRate = 0; // bytes/s, EWMA
    // From FEEDBACK (reset when the epoch changes).
    bool haveFeedback = false;
    std::uint32_t lastBytes = 0;
    std::uint32_t lastLost = 0;
    std::uint64_t delivered = 0; // since the first FEEDBACK of the epoch
    std::uint64_t sentAtFirst = 0;
    std::array<Point, 16> points{};
    std::size_t pointCount = 0;
    std::uint64_t rate = 0; // 0: no sample yet
    Nanos lastCut{};
    Nanos lastGrow{};
    std::optional<std::int64_t> queuedSince; // egress µs; see apply()
    Nanos queue{};
    Nanos queueMin{};
    std::optional<Nanos> delay;
    Nanos lastFeedback{};
    Nanos lag{}; // how old the egress's view is when it reaches us
    bool stalled = false;
    Nanos stallStart{};
    std::uint64_t stalls = 0;
    std::uint64_t lost = 0;
  };

  [[nodiscard]] bool present(PathId id) const noexcept {
    return id < kMaxPaths && paths_[id].present;
  }
  void apply(Path &path, const wire::PathFeedback &f, std::int64_t egressUs, Nanos now) noexcept;
  // Bytes sent on the path in the `span` before `end` (within kHistoryMs).
  [[nodiscard]] std::uint64_t sentWithin(const Path &path, Nanos span, Nanos end) const noexcept;
  [[nodiscard]] static Nanos cutFor(const Path &path) noexcept;
  void growUnqueued(Nanos now) noexcept;
  [[nodiscard]] std::uint64_t standIn(const Path &path) const noexcept;

  std::array<Path, kMaxPaths> paths_{};
  FeedbackCounters counters_{};
  bool haveFeedback_ = false;
  std::uint32_t epoch_ = 0;
  std::uint32_t lastSeq_ = 0;
  std::uint32_t lastEcho_ = 0;
  std::int64_t egressUs_ = 0; // unwrapped egress clock of the last FEEDBACK
  Nanos lastAccepted_{};
  Nanos interval_ = std::chrono::milliseconds(10); // between FEEDBACKs, EWMA
  Nanos lastTick_{};
};

} // namespace nvbox::osr
