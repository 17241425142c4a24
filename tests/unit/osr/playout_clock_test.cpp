#include "osr/playout_clock.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

namespace nvbox::osr {
namespace {

using namespace std::chrono_literals;

// The sender's clock runs this far ahead of ours: every transit below is
// offset by it, as between two unsynchronised hosts.
constexpr std::int64_t kOffset = 7'000'000'000;

// The transit of a part sent at `sent` (our clock) that arrived `now`, as the
// egress computes it: arrival on our clock minus send time on the sender's.
Nanos transitOf(Nanos sent, Nanos now) {
  return now - (sent + Nanos(kOffset));
}

// A part sent at `sent` (our clock) that arrived `transit` later.
void observe(PlayoutClock &clock, PathId path, Nanos sent, Nanos transit) {
  clock.observe(path, transitOf(sent, sent + transit), sent + transit);
}

TEST(OsrPlayoutClock, HoldsFastPartsToTheSlowestBase) {
  PlayoutClock clock(2ms);
  observe(clock, 0, 0ms, 5ms);
  observe(clock, 1, 0ms, 30ms);
  EXPECT_EQ(clock.spread(30ms), 25ms);
  EXPECT_TRUE(clock.active(30ms));
  // A fast-path part crossing in 5 ms waits 25 ms; one in 12 ms (queued), 18.
  EXPECT_EQ(clock.hold(transitOf(100ms, 105ms), 105ms), 25ms);
  EXPECT_EQ(clock.hold(transitOf(100ms, 112ms), 112ms), 18ms);
  // The slow path's parts, and anything that queued past the target, go at once.
  EXPECT_EQ(clock.hold(transitOf(100ms, 130ms), 130ms), 0ms);
  EXPECT_EQ(clock.hold(transitOf(100ms, 150ms), 150ms), 0ms);
  EXPECT_EQ(clock.pathHold(0, 30ms), 25ms);
  EXPECT_EQ(clock.pathHold(1, 30ms), 0ms);
  EXPECT_EQ(clock.pathHold(2, 30ms), std::nullopt);
}

TEST(OsrPlayoutClock, BaseIsTheMinimumTransit) {
  PlayoutClock clock(2ms);
  observe(clock, 0, 0ms, 9ms);
  observe(clock, 0, 10ms, 5ms); // queue-free sample
  observe(clock, 0, 20ms, 14ms);
  observe(clock, 1, 0ms, 40ms);
  observe(clock, 1, 10ms, 30ms);
  EXPECT_EQ(clock.spread(50ms), 25ms);
}

TEST(OsrPlayoutClock, EqualPathsHoldNothing) {
  PlayoutClock clock(2ms);
  observe(clock, 0, 0ms, 5ms);
  observe(clock, 1, 0ms, 6ms); // 1 ms apart: scheduling noise
  EXPECT_FALSE(clock.active(10ms));
  EXPECT_EQ(clock.hold(transitOf(20ms, 25ms), 25ms), 0ms);
  EXPECT_EQ(clock.pathHold(0, 10ms), 0ms);
}

TEST(OsrPlayoutClock, OnePathOrNoneHoldsNothing) {
  PlayoutClock clock(2ms);
  EXPECT_EQ(clock.hold(transitOf(0ms, 5ms), 5ms), 0ms);
  EXPECT_EQ(clock.spread(0ms), 0ms);
  observe(clock, 0, 0ms, 5ms);
  EXPECT_EQ(clock.hold(transitOf(10ms, 12ms), 12ms), 0ms);
}

TEST(OsrPlayoutClock, ASilentPathStopsSettingTheTarget) {
  PlayoutClock clock(2ms);
  observe(clock, 0, 0ms, 5ms);
  observe(clock, 1, 0ms, 30ms); // then path 1 is removed
  for (Nanos t = 100ms; t < 12s; t += 100ms) {
    observe(clock, 0, t, 5ms);
  }
  const Nanos now = 12s;
  EXPECT_EQ(clock.pathHold(1, now), std::nullopt);
  EXPECT_FALSE(clock.active(now));
  EXPECT_EQ(clock.hold(transitOf(now - 5ms, now), now), 0ms);
}

TEST(OsrPlayoutClock, WhenTheSlowestPathDiesTheOthersAreReleasedWithinTheSilence) {
  PlayoutClock clock(2ms, 1s);
  Nanos t = 0ms;
  for (; t < 3s; t += 100ms) {
    observe(clock, 0, t, 5ms);
    observe(clock, 1, t, 30ms);
  }
  // Path 1 dies at 3 s (last heard at 2.9 s); path 0 carries on.
  for (; t < 3s + 800ms; t += 100ms) {
    observe(clock, 0, t, 5ms);
  }
  EXPECT_EQ(clock.pathHold(0, t), 25ms) << "0.9 s of silence: it may be a late probe";
  for (; t < 3s + 1s; t += 100ms) {
    observe(clock, 0, t, 5ms);
  }
  EXPECT_FALSE(clock.active(t)) << "1.1 s after path 1 was last heard";
  EXPECT_EQ(clock.hold(transitOf(t - 5ms, t), t), 0ms);
  EXPECT_EQ(clock.pathHold(1, t), std::nullopt);
  // Back: its first probe sets the target again.
  observe(clock, 1, t, 30ms);
  EXPECT_EQ(clock.hold(transitOf(t + 100ms, t + 105ms), t + 105ms), 25ms);
}

TEST(OsrPlayoutClock, TheMinimumForgetsAnOldBase) {
  PlayoutClock clock(2ms);
  // Path 1's base grows from 30 to 50 ms (re-routed); the old minimum ages
  // out within two windows.
  Nanos t = 0ms;
  for (; t < 4s; t += 100ms) {
    observe(clock, 0, t, 5ms);
    observe(clock, 1, t, 30ms);
  }
  for (; t < 4s + 2 * PlayoutClock::kWindow + 100ms; t += 100ms) {
    observe(clock, 0, t, 5ms);
    observe(clock, 1, t, 50ms);
  }
  EXPECT_EQ(clock.spread(t), 45ms);
}

TEST(OsrPlayoutClock, HoldsAreBounded) {
  // A silence long enough that path 0, last heard at 5 ms, still counts at 1 s.
  PlayoutClock clock(2ms, 10s);
  observe(clock, 0, 0ms, 5ms);
  observe(clock, 1, 0ms, 60s); // a path a minute behind
  EXPECT_EQ(clock.hold(transitOf(1s, 1s + 5ms), 1s + 5ms), PlayoutClock::kMaxHold);
}

TEST(OsrPlayoutClock, AbsurdTimestampsAreDefined) {
  // An authenticated peer may still send any timestamp: nothing overflows
  // (UBSan checks this in CI), and holds stay within their bound.
  PlayoutClock clock(2ms);
  clock.observe(0, Nanos(0), 0ms);
  clock.observe(1, Nanos::max(), 0ms);
  clock.observe(2, Nanos::min(), 0ms);
  clock.observe(200, Nanos(0), 0ms); // no such path: ignored
  EXPECT_LE(clock.hold(Nanos::min(), 1ms), PlayoutClock::kMaxHold);
  EXPECT_GE(clock.hold(Nanos::max(), Nanos::max()), 0ms);
  EXPECT_GT(clock.spread(0ms), 0ms);
}

} // namespace
} // namespace nvbox::osr
