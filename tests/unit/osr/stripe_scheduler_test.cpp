#include "osr/stripe_scheduler.hpp"

#include <gtest/gtest.h>

#include <array>
#include <vector>

namespace nvbox::osr {
namespace {

using namespace std::chrono_literals;

PathId pickPath(StripeScheduler &scheduler, std::uint8_t part_index = 0, std::size_t bytes = 1000,
                Nanos now = 0ns) {
  const auto choice = scheduler.pick(part_index, bytes, now);
  EXPECT_TRUE(choice.has_value());
  return choice ? choice->path : PathId{0xFF};
}

TEST(OsrScheduler, PathTableValidatesChanges) {
  StripeScheduler scheduler;
  EXPECT_TRUE(scheduler.addPath(0, 1000, 1ms));
  EXPECT_FALSE(scheduler.addPath(0, 1000, 1ms)) << "duplicate id";
  EXPECT_FALSE(scheduler.addPath(16, 1000, 1ms)) << "id beyond kMaxPaths";
  EXPECT_FALSE(scheduler.addPath(1, 0, 1ms)) << "zero rate";
  EXPECT_TRUE(scheduler.addPath(15, 1000, 1ms));
  EXPECT_FALSE(scheduler.setPathUp(7, false));
  EXPECT_FALSE(scheduler.setRate(0, 0));
  EXPECT_FALSE(scheduler.removePath(7));
  EXPECT_EQ(scheduler.activeCount(), 2);
  EXPECT_TRUE(scheduler.removePath(15));
  EXPECT_FALSE(scheduler.hasPath(15));
  EXPECT_EQ(scheduler.activeCount(), 1);
}

TEST(OsrScheduler, NoActivePathMeansNoChoice) {
  for (const auto policy :
       {StripePolicy::Equal, StripePolicy::Weighted, StripePolicy::DelayAware}) {
    StripeScheduler scheduler(policy);
    EXPECT_FALSE(scheduler.pick(0, 100, 0ns).has_value());
    scheduler.addPath(3, 1000, 1ms);
    scheduler.setPathUp(3, false);
    EXPECT_FALSE(scheduler.pick(0, 100, 0ns).has_value());
    scheduler.setPathUp(3, true);
    EXPECT_EQ(pickPath(scheduler), 3);
  }
}

TEST(OsrScheduler, EqualPutsPartIOnTheIthActivePath) {
  StripeScheduler scheduler(StripePolicy::Equal);
  for (const PathId id : std::array<PathId, 3>{2, 5, 9}) {
    scheduler.addPath(id, 1000U * (id + 1U), 1ms); // rates must not matter
  }
  ASSERT_EQ(scheduler.activeCount(), 3);
  EXPECT_EQ(pickPath(scheduler, 0), 2);
  EXPECT_EQ(pickPath(scheduler, 1), 5);
  EXPECT_EQ(pickPath(scheduler, 2), 9);
  EXPECT_EQ(pickPath(scheduler, 3), 2) << "more parts than paths wrap around";

  scheduler.setPathUp(5, false);
  ASSERT_EQ(scheduler.activeCount(), 2);
  EXPECT_EQ(pickPath(scheduler, 0), 2);
  EXPECT_EQ(pickPath(scheduler, 1), 9);

  scheduler.setPathUp(5, true);
  scheduler.addPath(0, 1000, 1ms);
  EXPECT_EQ(scheduler.activeCount(), 4);
  EXPECT_EQ(pickPath(scheduler, 0), 0);
  EXPECT_EQ(pickPath(scheduler, 2), 5);
}

TEST(OsrScheduler, EqualSharesAreExact) {
  StripeScheduler scheduler(StripePolicy::Equal);
  for (PathId id = 0; id < 4; ++id) {
    scheduler.addPath(id, 1000 + id, 1ms);
  }
  for (int segment = 0; segment < 1000; ++segment) {
    for (std::uint8_t part = 0; part < scheduler.activeCount(); ++part) {
      pickPath(scheduler, part, 100);
    }
  }
  for (PathId id = 0; id < 4; ++id) {
    EXPECT_EQ(scheduler.counters(id).parts, 1000U);
    EXPECT_EQ(scheduler.counters(id).bytes, 100000U);
  }
}

TEST(OsrScheduler, WeightedSharesFollowRates) {
  StripeScheduler scheduler(StripePolicy::Weighted);
  const std::array<std::uint64_t, 3> rates{1'000'000, 2'000'000, 5'000'000};
  for (PathId id = 0; id < 3; ++id) {
    scheduler.addPath(id, rates[id], 1ms);
  }
  constexpr int kParts = 80'000;
  for (int i = 0; i < kParts; ++i) {
    pickPath(scheduler);
  }
  for (PathId id = 0; id < 3; ++id) {
    const double share = static_cast<double>(scheduler.counters(id).parts) / kParts;
    EXPECT_NEAR(share, static_cast<double>(rates[id]) / 8e6, 0.01) << "path " << int{id};
  }
}

TEST(OsrScheduler, WeightedIsSmoothWithinEachPeriod) {
  StripeScheduler scheduler(StripePolicy::Weighted);
  scheduler.addPath(0, 1, 1ms);
  scheduler.addPath(1, 2, 1ms);
  scheduler.addPath(2, 5, 1ms);
  // Every period of 8 picks holds exactly 1, 2 and 5 of them, and the heavy
  // path never takes more than two in a row.
  std::vector<PathId> picks;
  for (int i = 0; i < 80; ++i) {
    picks.push_back(pickPath(scheduler));
  }
  for (std::size_t period = 0; period < 10; ++period) {
    std::array<int, 3> counts{};
    for (std::size_t i = 0; i < 8; ++i) {
      ++counts[picks[period * 8 + i]];
    }
    EXPECT_EQ(counts, (std::array<int, 3>{1, 2, 5})) << "period " << period;
  }
  for (std::size_t i = 2; i < picks.size(); ++i) {
    EXPECT_FALSE(picks[i] == 2 && picks[i - 1] == 2 && picks[i - 2] == 2) << "at " << i;
  }
}

TEST(OsrScheduler, WeightedSkipsDownPathsAndAdaptsToNewRates) {
  StripeScheduler scheduler(StripePolicy::Weighted);
  scheduler.addPath(0, 1000, 1ms);
  scheduler.addPath(1, 1000, 1ms);
  scheduler.addPath(2, 1000, 1ms);
  scheduler.setPathUp(1, false);
  for (int i = 0; i < 100; ++i) {
    EXPECT_NE(pickPath(scheduler), 1);
  }
  EXPECT_EQ(scheduler.counters(1).parts, 0U);
  scheduler.setPathUp(1, true);
  scheduler.setRate(2, 3000);
  const auto before = scheduler.counters(2).parts;
  for (int i = 0; i < 500; ++i) {
    pickPath(scheduler);
  }
  EXPECT_EQ(scheduler.counters(2).parts - before, 300U);
}

TEST(OsrScheduler, DelayAwareArrivalsNeverGoBackwards) {
  StripeScheduler scheduler(StripePolicy::DelayAware);
  scheduler.addPath(0, 1'000'000, 40ms); // slow start, high rate
  scheduler.addPath(1, 250'000, 5ms);    // quick, but narrow
  scheduler.addPath(2, 500'000, 20ms);
  Nanos now{};
  Nanos last_eta{};
  std::array<std::uint64_t, 3> parts{};
  for (int i = 0; i < 20'000; ++i) {
    const auto choice = scheduler.pick(0, 1000, now);
    ASSERT_TRUE(choice.has_value());
    ASSERT_GE(choice->eta, last_eta) << "part " << i;
    last_eta = choice->eta;
    ++parts[choice->path];
    now += 500us; // 2 MB/s offered: above the 1.75 MB/s the paths carry
  }
  // Saturated, every path is used in proportion to its rate.
  const auto share = [&](std::size_t id) { return static_cast<double>(parts[id]) / 20'000; };
  EXPECT_NEAR(share(0), 1.0 / 1.75, 0.02);
  EXPECT_NEAR(share(1), 0.25 / 1.75, 0.02);
  EXPECT_NEAR(share(2), 0.5 / 1.75, 0.02);
}

TEST(OsrScheduler, DelayAwarePrefersTheQuickPathWhileItIsNotQueued) {
  StripeScheduler scheduler(StripePolicy::DelayAware);
  scheduler.addPath(0, 1'000'000, 30ms);
  scheduler.addPath(1, 1'000'000, 5ms);
  // A trickle never queues: everything goes on the quick path.
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(pickPath(scheduler, 0, 1000, Nanos(i * 10ms)), 1);
  }
  // A burst at one instant queues path 1 until its queue costs as much as
  // the 25 ms extra delay of path 0 (25 parts of 1 ms each).
  const Nanos burst = 2s;
  for (int i = 0; i < 25; ++i) {
    EXPECT_EQ(pickPath(scheduler, 0, 1000, burst), 1) << i;
  }
  EXPECT_EQ(pickPath(scheduler, 0, 1000, burst), 0);
}

TEST(OsrScheduler, CountersResetWhenAPathIsReAdded) {
  StripeScheduler scheduler(StripePolicy::Equal);
  scheduler.addPath(4, 1000, 1ms);
  pickPath(scheduler, 0, 123);
  EXPECT_EQ(scheduler.counters(4).bytes, 123U);
  scheduler.removePath(4);
  EXPECT_EQ(scheduler.counters(4).parts, 0U);
  scheduler.addPath(4, 1000, 1ms);
  EXPECT_EQ(scheduler.counters(4).parts, 0U);
}

} // namespace
} // namespace nvbox::osr
