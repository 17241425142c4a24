// StripeScheduler(POLICY)
//
// What it does: chooses the overlay path for each part of a segment
// (paper section 4.2.3) among up to kMaxPaths paths that can be added,
// removed, marked down/up and re-rated at run time. Only paths that are
// present and up ("active") are chosen.
//
// Policies:
//   Equal      — the paper's scheme: the sender cuts each segment into
//                k = activeCount() parts and part i goes on the i-th active
//                path in ascending path-id order (i mod k if the caller cut
//                more parts than there are active paths).
//   Weighted   — smooth weighted round robin (as in nginx) with weight = path
//                rate: over any run of picks, each path's share of parts
//                tracks rate_i / sum(rates) within one part, and its picks are
//                spread out rather than bunched. Shares are in parts, so
//                they equal byte shares when parts have equal size.
//   Adaptive   — on what the egress measures: the caller keeps rates and
//                delays set from a PathEstimator and re-synchronises each
//                path's queue with setBacklog() at every FEEDBACK, so a path
//                whose real queue grows is avoided at once and one that
//                drains faster than its estimate gets more. A part goes to
//                the path where it arrives first (as DelayAware: earliest
//                completion first, as ECF and BLEST do for MPTCP) among the
//                paths whose queue it would not take past kQueueBudget; when
//                every path is that full, to the one it leaves first, so
//                that the queues stay equal and short. (Arrival first all the
//                way would keep the fast path's queue as long as the delay
//                difference: the egress's re-sequencing buffer waits for the
//                slow path's parts anyway, and a queue in the network only
//                leaves less room before the path drops.) The default.
//   DelayAware — the path with the earliest estimated arrival
//                  eta_i = max(now, busy_until_i) + bytes / rate_i + delay_i
//                where busy_until_i is when the bytes already given to path i
//                will have left at its rate (so busy_until_i - now is its
//                queued bytes / rate). With equal part sizes, successive etas
//                never decrease, so parts tend to arrive in sequence order.
//                Ties go to the lowest path id.
// Every policy advances the chosen path's busy_until, so queue estimates are
// valid whichever policy is active and switching policy is seamless.
//
// Parameters: POLICY; per path: rate (bytes/s, > 0) and one-way delay (for
// example half the PathMonitor's smoothed RTT).
// Counters: per path, parts and bytes assigned since the path was added.
// Threading: not thread-safe; owned by the sender thread.
// pick() is noexcept and allocation-free; the path table is a fixed array.
#pragma once

#include "osr/types.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>

namespace nvbox::osr {

enum class StripePolicy : std::uint8_t { Equal, Weighted, DelayAware, Adaptive };

struct PathCounters {
  std::uint64_t parts = 0;
  std::uint64_t bytes = 0;
};

class StripeScheduler {
public:
  // Rates above this are clamped, so the weighted sums stay far from int64 overflow.
  static constexpr std::uint64_t kMaxRate = std::uint64_t{1} << 40;
  // The queue Adaptive lets a path have before it balances departures.
  static constexpr Nanos kQueueBudget = std::chrono::milliseconds(5);

  struct Choice {
    PathId path = 0;
    Nanos eta{}; // estimated arrival of the part's last byte at the far end
  };

  explicit StripeScheduler(StripePolicy policy = StripePolicy::Equal) noexcept;

  // False (and no change) if id >= kMaxPaths, the id is already present, or
  // the rate is 0. A new path is up.
  bool addPath(PathId id, std::uint64_t rate_bytes_per_s, Nanos one_way_delay) noexcept;
  bool removePath(PathId id) noexcept;
  // False if the path is not present.
  bool setPathUp(PathId id, bool up) noexcept;
  bool setRate(PathId id, std::uint64_t rate_bytes_per_s) noexcept;
  bool setDelay(PathId id, Nanos one_way_delay) noexcept;
  // The path's queue now holds `backlog` of sending time (its busy_until
  // becomes now + backlog).
  bool setBacklog(PathId id, Nanos backlog, Nanos now) noexcept;
  void setPolicy(StripePolicy policy) noexcept;

  StripePolicy policy() const noexcept { return policy_; }
  bool hasPath(PathId id) const noexcept;
  bool isUp(PathId id) const noexcept;
  // How long a part given to the path now would wait behind the bytes it
  // already has (0 for an absent path).
  Nanos backlog(PathId id, Nanos now) const noexcept;
  // Number of active paths: the k the Equal policy cuts segments into.
  std::uint8_t activeCount() const noexcept;

  // The path for part `part_index` of `bytes` bytes, sent at `now`; nullopt
  // when no path is active. `part_index` only matters for Equal.
  std::optional<Choice> pick(std::uint8_t part_index, std::size_t bytes, Nanos now) noexcept;

  // Zero for an absent path.
  PathCounters counters(PathId id) const noexcept;

private:
  struct Path {
    bool present = false;
    bool up = false;
    std::uint64_t rate = 0;
    Nanos delay{};
    Nanos busy_until{};
    std::int64_t swrr_current = 0;
    PathCounters counters{};
  };

  bool active(std::size_t index) const noexcept;
  std::optional<std::size_t> nthActive(std::size_t n) const noexcept;
  std::optional<std::size_t> pickWeighted() noexcept;
  std::optional<std::size_t> pickEarliest(std::size_t bytes, Nanos now) const noexcept;
  std::optional<std::size_t> pickAdaptive(std::size_t bytes, Nanos now) const noexcept;
  Nanos eta(const Path &path, std::size_t bytes, Nanos now) const noexcept;
  void resetWeights() noexcept;

  std::array<Path, kMaxPaths> paths_{};
  StripePolicy policy_;
};

} // namespace nvbox::osr
