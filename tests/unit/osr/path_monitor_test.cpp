#include "osr/path_monitor.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <optional>
#include <vector>

namespace nvbox::osr {
namespace {

using namespace std::chrono_literals;

// Drives one monitored path the way the daemon will: a 10 ms timer that
// sends due probes and ticks; replies come back after `rtt` unless the path
// is dead or `lose(seq)` says so.
class ProbeLoop {
public:
  ProbeLoop(PathMonitor &monitor, PathId id, Nanos rtt) : monitor_(monitor), id_(id), rtt_(rtt) {
    monitor_.addPath(id_, now_);
  }

  std::function<bool(std::uint32_t)> lose = [](std::uint32_t) { return false; };
  bool dead = false;

  // Runs until `until`; returns the time the path went down, if it did.
  std::optional<Nanos> runUntil(Nanos until) {
    std::optional<Nanos> went_down;
    while (now_ < until) {
      now_ += 10ms;
      for (auto it = replies_.begin(); it != replies_.end();) {
        if (it->first <= now_) {
          monitor_.onReply(id_, it->second, it->first);
          it = replies_.erase(it);
        } else {
          ++it;
        }
      }
      if (monitor_.probeDue(id_, now_)) {
        const auto seq = monitor_.onProbeSent(id_, now_);
        if (seq && !dead && !lose(*seq)) {
          replies_.emplace_back(now_ + rtt_, *seq);
        }
      }
      if ((monitor_.tick(now_) & (1U << id_)) != 0 && !went_down) {
        went_down = now_;
      }
    }
    return went_down;
  }

  Nanos now() const { return now_; }

private:
  PathMonitor &monitor_;
  PathId id_;
  Nanos rtt_;
  Nanos now_{};
  std::vector<std::pair<Nanos, std::uint32_t>> replies_;
};

TEST(OsrPathMonitor, StartsDownAndComesUpAfterConsecutiveReplies) {
  PathMonitor monitor;
  ASSERT_TRUE(monitor.addPath(2, 0ns));
  EXPECT_FALSE(monitor.health(2).up);
  const auto s0 = monitor.onProbeSent(2, 0ms);
  const auto s1 = monitor.onProbeSent(2, 100ms);
  const auto s2 = monitor.onProbeSent(2, 200ms);
  ASSERT_TRUE(s0 && s1 && s2);
  EXPECT_EQ(*s1, *s0 + 1);
  EXPECT_EQ(monitor.onReply(2, *s0, 10ms), ReplyResult::Accepted);
  EXPECT_EQ(monitor.onReply(2, *s1, 110ms), ReplyResult::Accepted);
  EXPECT_FALSE(monitor.health(2).up);
  EXPECT_EQ(monitor.onReply(2, *s2, 210ms), ReplyResult::CameUp);
  EXPECT_TRUE(monitor.health(2).up);
  EXPECT_EQ(monitor.health(2).went_up, 1U);
}

TEST(OsrPathMonitor, AGapInRepliesRestartsTheUpCount) {
  PathMonitor monitor;
  monitor.addPath(0, 0ns);
  std::vector<std::uint32_t> seqs;
  for (int i = 0; i < 6; ++i) {
    seqs.push_back(*monitor.onProbeSent(0, Nanos(i * 100ms)));
  }
  monitor.onReply(0, seqs[0], 1ms);
  monitor.onReply(0, seqs[1], 1ms);
  // seqs[2] lost
  EXPECT_EQ(monitor.onReply(0, seqs[3], 1ms), ReplyResult::Accepted);
  EXPECT_EQ(monitor.onReply(0, seqs[4], 1ms), ReplyResult::Accepted);
  EXPECT_FALSE(monitor.health(0).up);
  EXPECT_EQ(monitor.onReply(0, seqs[5], 1ms), ReplyResult::CameUp);
}

TEST(OsrPathMonitor, EstimatesSmoothedAndMinimumRtt) {
  PathMonitor monitor;
  monitor.addPath(1, 0ns);
  const auto a = *monitor.onProbeSent(1, 0ms);
  const auto b = *monitor.onProbeSent(1, 100ms);
  const auto c = *monitor.onProbeSent(1, 200ms);
  monitor.onReply(1, a, 80ms);  // 80 ms: first sample taken as is
  monitor.onReply(1, b, 140ms); // 40 ms: 80 + (40 - 80) / 8 = 75
  EXPECT_EQ(monitor.health(1).srtt, 75ms);
  monitor.onReply(1, c, 291ms); // 91 ms: 75 + 16 / 8 = 77
  EXPECT_EQ(monitor.health(1).srtt, 77ms);
  EXPECT_EQ(monitor.health(1).min_rtt, 40ms);
}

TEST(OsrPathMonitor, StrayRepliesAreIgnored) {
  PathMonitor monitor;
  monitor.addPath(0, 0ns);
  const auto seq = *monitor.onProbeSent(0, 0ms);
  EXPECT_EQ(monitor.onReply(0, seq + 1, 1ms), ReplyResult::Stray) << "never sent";
  EXPECT_EQ(monitor.onReply(0, seq, 5ms), ReplyResult::Accepted);
  EXPECT_EQ(monitor.onReply(0, seq, 6ms), ReplyResult::Stray) << "duplicate";
  EXPECT_EQ(monitor.onReply(5, seq, 6ms), ReplyResult::Stray) << "unknown path";
  for (std::size_t i = 0; i <= PathMonitor::kLossWindow; ++i) {
    monitor.onProbeSent(0, 10ms);
  }
  // seq + 1 was sent, but kLossWindow later probes have pushed it out.
  EXPECT_EQ(monitor.onReply(0, seq + 1, 11ms), ReplyResult::Stray) << "outside the window";
  EXPECT_EQ(monitor.health(0).stray_replies, 3U);
  EXPECT_EQ(monitor.health(0).replies, 1U);
  EXPECT_EQ(monitor.health(0).srtt, 5ms);
}

TEST(OsrPathMonitor, LossRateCountsOnlySettledProbes) {
  PathMonitor::Config config;
  config.reply_timeout = 300ms;
  PathMonitor monitor(config);
  monitor.addPath(0, 0ns);
  EXPECT_EQ(monitor.lossRate(0, 0ms), std::nullopt);
  for (int i = 0; i < 8; ++i) {
    const auto seq = *monitor.onProbeSent(0, Nanos(i * 100ms));
    if (i % 4 != 3) {
      monitor.onReply(0, seq, Nanos(i * 100ms + 20ms));
    }
  }
  // At 1 s: probes 3 (sent 300 ms) and 7 (sent 700 ms) unanswered; both settled.
  EXPECT_DOUBLE_EQ(*monitor.lossRate(0, 1000ms), 0.25);
  // At 900 ms probe 7 is only 200 ms old: not yet counted either way.
  EXPECT_DOUBLE_EQ(*monitor.lossRate(0, 900ms), 1.0 / 7.0);
}

TEST(OsrPathMonitor, DeadPathIsDownWithinOneSecondAndBackUpWhenHealed) {
  PathMonitor monitor; // defaults: probe every 100 ms
  ProbeLoop loop(monitor, 3, 30ms);
  EXPECT_EQ(loop.runUntil(2s), std::nullopt);
  ASSERT_TRUE(monitor.health(3).up);

  loop.dead = true;
  const Nanos death = loop.now();
  const auto went_down = loop.runUntil(death + 2s);
  ASSERT_TRUE(went_down.has_value());
  EXPECT_LT(*went_down - death, 1s);
  // ... but not before DOWN_AFTER has passed without a reply; the last reply
  // may predate the death by up to one probe interval.
  EXPECT_GE(*went_down - death, 500ms - 100ms);
  EXPECT_FALSE(monitor.health(3).up);
  EXPECT_EQ(monitor.health(3).went_down, 1U);

  loop.dead = false;
  const Nanos healed = loop.now();
  loop.runUntil(healed + 1s);
  EXPECT_TRUE(monitor.health(3).up);
  EXPECT_EQ(monitor.health(3).went_up, 2U);
}

TEST(OsrPathMonitor, LossyButAlivePathStaysUp) {
  PathMonitor monitor;
  ProbeLoop loop(monitor, 0, 50ms);
  // About 36 % lost, never more than two probes in a row.
  loop.lose = [](std::uint32_t seq) { return seq % 4 == 0 || seq % 7 == 0; };
  loop.runUntil(1s);
  ASSERT_TRUE(monitor.health(0).up);
  EXPECT_EQ(loop.runUntil(20s), std::nullopt);
  EXPECT_TRUE(monitor.health(0).up);
  EXPECT_EQ(monitor.health(0).went_down, 0U);
  const auto loss = monitor.lossRate(0, loop.now());
  ASSERT_TRUE(loss.has_value());
  EXPECT_GT(*loss, 0.3);
  EXPECT_LT(*loss, 0.5);
}

TEST(OsrPathMonitor, ProbesAreDueEveryInterval) {
  PathMonitor monitor;
  EXPECT_FALSE(monitor.probeDue(0, 0ms)) << "absent path";
  monitor.addPath(0, 0ms);
  EXPECT_TRUE(monitor.probeDue(0, 0ms));
  monitor.onProbeSent(0, 0ms);
  EXPECT_FALSE(monitor.probeDue(0, 99ms));
  EXPECT_TRUE(monitor.probeDue(0, 100ms));
  EXPECT_FALSE(monitor.addPath(0, 0ms));
  EXPECT_FALSE(monitor.addPath(16, 0ms));
  EXPECT_TRUE(monitor.removePath(0));
  EXPECT_FALSE(monitor.onProbeSent(0, 0ms).has_value());
}

} // namespace
} // namespace nvbox::osr
