// PlayoutClock(MIN_SPREAD, SILENCE) — how long the egress holds a part so
// that every path looks as slow as the slowest one.
//
// What it does: learns, for one flow, each path's base transit — the
// smallest (arrival - send timestamp) seen on it, data parts and probes
// alike — and names the slowest path's base the playout target. A part that
// arrived faster than the target is held for the difference (hold()), so the
// stream leaves the egress at one latency whichever path it took.
//
// Why: a stripe delivers in order, so most of the fast path's parts wait for
// the slow path's anyway; but the ones that do not — a connection's first
// packets, a window of a few packets during BBR's probe of the minimum RTT,
// ACKs of an idle reverse stripe — cross at the fast path's latency. TCP
// takes its minimum RTT from them: BBR then caps its window at 2 × bandwidth
// × that minimum, far below what the slow path needs in flight, and the flow
// stays slow (docs/osrd-benchmarks.md). Held to the slowest path's latency,
// every sample is honest. Queueing is not equalised: a part that queued
// beyond the target is not held at all, so TCP still sees its own queue.
//
// Send timestamps come from the sender's clock and arrivals from ours, so a
// transit holds an unknown clock offset; it is the same for every path of
// the flow, so differences between paths, and hence the holds, are exact
// (up to clock drift, which the windowed minimum follows).
//
// The minimum is windowed (two buckets of kWindow: it forgets within 2 ×
// kWindow) so that a path whose base grows — re-routed, or the offset
// drifting — is followed. A path not heard from for SILENCE (down, or
// removed) no longer sets the target, so when the slowest path dies the
// others stop being held to its latency within SILENCE, as the ingress takes
// it out of the stripe within its down-after time; heard again, it sets the
// target again at once. SILENCE must exceed the gap between an idle path's
// probes (osrd: max(1 s, 3 probe intervals)). Below MIN_SPREAD between the
// fastest and the slowest base, the paths count as equal and nothing is held:
// holding costs a copy of every part and a timer, for no gain when the spread
// is within scheduling noise.
//
// Parameters: MIN_SPREAD (default 2 ms), SILENCE (default 1 s).
// Counters: none (the buffer counts `held`).
// Threading: not thread-safe; the daemon's data-path thread.
#pragma once

#include "osr/types.hpp"

#include <array>
#include <cstdint>
#include <optional>

namespace nvbox::osr {

class PlayoutClock {
public:
  static constexpr Nanos kWindow = std::chrono::seconds(5);
  // No hold is longer: the target is a path's latency, and no path the
  // gap timeout lets through is slower (see Egress, kMaxGapTimeout).
  static constexpr Nanos kMaxHold = std::chrono::seconds(2);

  static constexpr Nanos kDefaultMinSpread = std::chrono::milliseconds(2);
  static constexpr Nanos kDefaultSilence = std::chrono::seconds(1);

  explicit PlayoutClock(Nanos minSpread = kDefaultMinSpread, Nanos silence = kDefaultSilence)
      : minSpread_(minSpread), silence_(silence) {}

  // A part or probe crossed `path` in `transit` (arrival on our clock minus
  // send time on the sender's: the offset between the clocks is in it) and
  // arrived `now`.
  void observe(PathId path, Nanos transit, Nanos now) noexcept;

  // How long to hold a part that crossed in `transit` and arrived `now`: the
  // target minus its transit, 0 when it is not ahead of the target or when
  // the paths' bases are within MIN_SPREAD. observe() it first.
  [[nodiscard]] Nanos hold(Nanos transit, Nanos now) const noexcept;

  // The hold a part on `path` gets when it crosses at its path's base (what
  // status reports per path); nullopt for a path not measured.
  [[nodiscard]] std::optional<Nanos> pathHold(PathId path, Nanos now) const noexcept;
  // Slowest base - fastest base among the live paths (0 with fewer than two).
  [[nodiscard]] Nanos spread(Nanos now) const noexcept;
  [[nodiscard]] bool active(Nanos now) const noexcept { return spread(now) >= minSpread_; }

private:
  struct PathBase {
    std::optional<std::int64_t> current;  // min transit in the current bucket
    std::optional<std::int64_t> previous; // in the bucket before
    Nanos bucketStart{};
    Nanos lastHeard{};
  };

  [[nodiscard]] bool live(const PathBase &p, Nanos now) const noexcept;
  [[nodiscard]] static std::optional<std::int64_t> base(const PathBase &p) noexcept;
  // The slowest and fastest live base; nullopt when no path is live.
  [[nodiscard]] std::optional<std::pair<std::int64_t, std::int64_t>>
  bounds(Nanos now) const noexcept;

  Nanos minSpread_;
  Nanos silence_;
  std::array<PathBase, kMaxPaths> paths_{};
};

} // namespace nvbox::osr
