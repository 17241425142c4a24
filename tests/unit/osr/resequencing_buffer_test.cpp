#include "osr/resequencing_buffer.hpp"
#include "recording_sink.hh"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace nvbox::osr {
namespace {

using namespace std::chrono_literals;
using testing::RecordingSink;
using Lost = RecordingSink::Lost;
using Seqs = std::vector<std::uint32_t>;

ResequencingBuffer::Config config(std::size_t capacity, std::optional<std::uint32_t> first = 0,
                                  Nanos timeout = 10ms) {
  return {.capacity = capacity, .max_part_bytes = 64, .gap_timeout = timeout, .first_seq = first};
}

// A part whose payload encodes its seq, so tests can check what comes out.
// part() builds the view on demand: a stored span would dangle once a
// vector of TestParts reallocates.
struct TestPart {
  explicit TestPart(std::uint32_t seq, std::uint8_t flags = 0)
      : bytes{static_cast<std::uint8_t>(seq), static_cast<std::uint8_t>(seq >> 8),
              static_cast<std::uint8_t>(seq >> 16), static_cast<std::uint8_t>(seq >> 24)},
        meta{.seq = seq, .flags = flags, .path_id = 3} {}
  Part part() const {
    Part view = meta;
    view.payload = bytes;
    return view;
  }
  std::array<std::uint8_t, 4> bytes;
  Part meta;
};

PushResult push(ResequencingBuffer &buffer, std::uint32_t seq, RecordingSink &sink,
                Nanos now = 0ns) {
  const TestPart p(seq);
  return buffer.push(p.part(), now, sink);
}

TEST(OsrResequencing, InOrderPartsPassStraightThrough) {
  ResequencingBuffer buffer(config(8));
  RecordingSink sink;
  for (std::uint32_t seq = 0; seq < 20; ++seq) {
    EXPECT_EQ(push(buffer, seq, sink), PushResult::Delivered);
  }
  EXPECT_EQ(sink.deliveredSeqs().size(), 20U);
  EXPECT_EQ(sink.order_violations, 0U);
  EXPECT_EQ(buffer.counters().delivered, 20U);
  EXPECT_EQ(buffer.counters().reordered, 0U);
  EXPECT_EQ(buffer.counters().peak_occupancy, 0U);
  EXPECT_EQ(buffer.nextSeq(), 20U);
}

TEST(OsrResequencing, HoldsPartsBehindAGapAndReleasesThemInOrder) {
  ResequencingBuffer buffer(config(8));
  RecordingSink sink;
  EXPECT_EQ(push(buffer, 2, sink), PushResult::Buffered);
  EXPECT_EQ(push(buffer, 1, sink), PushResult::Buffered);
  EXPECT_TRUE(sink.delivered.empty());
  EXPECT_EQ(buffer.occupancy(), 2U);
  EXPECT_EQ(push(buffer, 0, sink), PushResult::Delivered);
  EXPECT_EQ(sink.deliveredSeqs(), (Seqs{0, 1, 2}));
  // The buffered payloads are copies: they survive the caller's buffers.
  EXPECT_EQ(sink.delivered[2].payload, (std::vector<std::uint8_t>{2, 0, 0, 0}));
  EXPECT_EQ(sink.delivered[2].path_id, 3);
  EXPECT_EQ(buffer.counters().reordered, 2U);
  EXPECT_EQ(buffer.counters().peak_occupancy, 2U);
  EXPECT_EQ(buffer.occupancy(), 0U);
}

TEST(OsrResequencing, DuplicatesAndTooOldPartsAreDroppedAndCounted) {
  ResequencingBuffer buffer(config(8));
  RecordingSink sink;
  EXPECT_EQ(push(buffer, 3, sink), PushResult::Buffered);
  EXPECT_EQ(push(buffer, 3, sink), PushResult::Duplicate);
  for (std::uint32_t seq : {0U, 1U, 2U}) {
    push(buffer, seq, sink);
  }
  EXPECT_EQ(push(buffer, 1, sink), PushResult::TooOld);
  EXPECT_EQ(push(buffer, 3, sink), PushResult::TooOld);
  EXPECT_EQ(sink.deliveredSeqs(), (Seqs{0, 1, 2, 3}));
  EXPECT_EQ(buffer.counters().duplicates, 1U);
  EXPECT_EQ(buffer.counters().too_old, 2U);
}

TEST(OsrResequencing, FirstPartAnchorsTheWindowUnlessConfigured) {
  ResequencingBuffer unanchored(config(8, std::nullopt));
  RecordingSink sink;
  EXPECT_EQ(push(unanchored, 1000, sink), PushResult::Delivered);
  EXPECT_EQ(push(unanchored, 999, sink), PushResult::TooOld);

  ResequencingBuffer anchored(config(8, 998));
  RecordingSink sink2;
  EXPECT_EQ(push(anchored, 1000, sink2), PushResult::Buffered);
  EXPECT_EQ(push(anchored, 997, sink2), PushResult::TooOld);
  EXPECT_EQ(push(anchored, 998, sink2), PushResult::Delivered);
  EXPECT_EQ(push(anchored, 999, sink2), PushResult::Delivered);
  EXPECT_EQ(sink2.deliveredSeqs(), (Seqs{998, 999, 1000}));
}

TEST(OsrResequencing, WrapsAroundTwoToThe32) {
  ResequencingBuffer buffer(config(8, 0xFFFFFFFDU));
  RecordingSink sink;
  for (std::uint32_t seq : {1U, 0xFFFFFFFFU, 0U, 0xFFFFFFFEU, 2U}) {
    EXPECT_EQ(push(buffer, seq, sink), PushResult::Buffered) << seq;
  }
  EXPECT_EQ(push(buffer, 0xFFFFFFFDU, sink), PushResult::Delivered);
  EXPECT_EQ(sink.deliveredSeqs(), (Seqs{0xFFFFFFFDU, 0xFFFFFFFEU, 0xFFFFFFFFU, 0, 1, 2}));
  EXPECT_EQ(sink.order_violations, 0U);
  // Numbers just before the wrap are now in the past.
  EXPECT_EQ(push(buffer, 0xFFFFFFFFU, sink), PushResult::TooOld);
  EXPECT_EQ(push(buffer, 4, sink), PushResult::Buffered);
  EXPECT_EQ(buffer.nextSeq(), 3U);
}

TEST(OsrResequencing, SerialArithmeticTreatsHalfTheSpaceAheadAsOld) {
  ResequencingBuffer buffer(config(8, 10));
  RecordingSink sink;
  EXPECT_EQ(push(buffer, 10U + 0x80000000U, sink), PushResult::TooOld);
  EXPECT_EQ(buffer.counters().lost_overflow, 0U);
}

TEST(OsrResequencing, OverflowDeclaresTheOldestGapLost) {
  ResequencingBuffer buffer(config(4));
  RecordingSink sink;
  for (std::uint32_t seq : {1U, 2U, 3U}) {
    EXPECT_EQ(push(buffer, seq, sink), PushResult::Buffered);
  }
  // Window [0, 4) is full of waiting parts; 4 needs one slot: 0 is lost.
  EXPECT_EQ(push(buffer, 4, sink), PushResult::Delivered);
  EXPECT_EQ(sink.losses, (std::vector<Lost>{{0, 1, LossCause::Overflow}}));
  EXPECT_EQ(sink.deliveredSeqs(), (Seqs{1, 2, 3, 4}));
  EXPECT_EQ(buffer.counters().lost_overflow, 1U);
  EXPECT_EQ(sink.order_violations, 0U);
}

TEST(OsrResequencing, OverflowSlidesOnlyAsFarAsNeeded) {
  ResequencingBuffer buffer(config(4));
  RecordingSink sink;
  push(buffer, 2, sink);
  // 4 needs the window to start at 1: only 0 is skipped; 1 may still come.
  EXPECT_EQ(push(buffer, 4, sink), PushResult::Buffered);
  EXPECT_EQ(sink.losses, (std::vector<Lost>{{0, 1, LossCause::Overflow}}));
  EXPECT_EQ(buffer.nextSeq(), 1U);
  EXPECT_EQ(push(buffer, 1, sink), PushResult::Delivered);
  EXPECT_EQ(sink.deliveredSeqs(), (Seqs{1, 2}));
  EXPECT_EQ(buffer.occupancy(), 1U);
}

TEST(OsrResequencing, LongJumpIsAccountedWithoutWalkingIt) {
  ResequencingBuffer buffer(config(4));
  RecordingSink sink;
  push(buffer, 2, sink);
  const std::uint32_t far = 0x7FFFFFF0U;
  EXPECT_EQ(push(buffer, far, sink), PushResult::Buffered);
  // 0, 1 lost; 2 delivered; 3 .. far-4 lost; window is now [far-3, far].
  EXPECT_EQ(sink.losses, (std::vector<Lost>{{0, 2, LossCause::Overflow},
                                            {3, far - 3 - 3, LossCause::Overflow}}));
  EXPECT_EQ(sink.deliveredSeqs(), (Seqs{2}));
  EXPECT_EQ(buffer.counters().lost_overflow, std::uint64_t{far} - 3 - 1);
  EXPECT_EQ(buffer.nextSeq(), far - 3);
  EXPECT_EQ(sink.order_violations, 0U);
}

TEST(OsrResequencing, TimeoutReleasesPastTheGap) {
  ResequencingBuffer buffer(config(8, 0, 10ms));
  RecordingSink sink;
  push(buffer, 1, sink, 100ms);
  EXPECT_EQ(buffer.nextDeadline(), 110ms);
  buffer.expire(109ms, sink);
  EXPECT_TRUE(sink.delivered.empty());
  buffer.expire(110ms, sink);
  EXPECT_EQ(sink.losses, (std::vector<Lost>{{0, 1, LossCause::Timeout}}));
  EXPECT_EQ(sink.deliveredSeqs(), (Seqs{1}));
  EXPECT_EQ(buffer.counters().lost_timeout, 1U);
  EXPECT_EQ(buffer.nextDeadline(), std::nullopt);
  // The late part is now too old.
  EXPECT_EQ(push(buffer, 0, sink, 111ms), PushResult::TooOld);
}

TEST(OsrResequencing, TimeoutFollowsTheLongestWaitingPart) {
  ResequencingBuffer buffer(config(16, 0, 20ms));
  RecordingSink sink;
  push(buffer, 5, sink, 0ms);  // waits longest, behind four gaps
  push(buffer, 2, sink, 10ms); // younger, but earlier in order
  push(buffer, 7, sink, 15ms); // younger and later
  EXPECT_EQ(buffer.nextDeadline(), 20ms);
  buffer.expire(20ms, sink);
  EXPECT_EQ(sink.deliveredSeqs(), (Seqs{2, 5}));
  EXPECT_EQ(sink.losses,
            (std::vector<Lost>{{0, 2, LossCause::Timeout}, {3, 2, LossCause::Timeout}}));
  EXPECT_EQ(buffer.occupancy(), 1U);
  EXPECT_EQ(buffer.nextSeq(), 6U);
  EXPECT_EQ(buffer.nextDeadline(), 35ms);
  EXPECT_EQ(buffer.counters().lost_timeout, 4U);
}

TEST(OsrResequencing, SegmentFlagsPassThrough) {
  ResequencingBuffer buffer(config(64));
  RecordingSink sink;
  // Segments of 2, 5, 1 and 16 parts: the buffer orders by part seq alone and
  // hands each part's FIRST/LAST flags through unchanged.
  std::vector<TestPart> parts;
  std::uint32_t seq = 0;
  for (const std::uint8_t k : std::array<std::uint8_t, 4>{2, 5, 1, 16}) {
    for (std::uint8_t i = 0; i < k; ++i) {
      parts.emplace_back(seq++, static_cast<std::uint8_t>((i == 0 ? 1 : 0) | (i + 1 == k ? 4 : 0)));
    }
  }
  std::mt19937 rng(7);
  std::vector<std::size_t> order(parts.size());
  for (std::size_t i = 0; i < order.size(); ++i) {
    order[i] = i;
  }
  std::shuffle(order.begin(), order.end(), rng);
  for (std::size_t i : order) {
    buffer.push(parts[i].part(), 0ns, sink);
  }
  ASSERT_EQ(sink.delivered.size(), parts.size());
  for (std::size_t i = 0; i < parts.size(); ++i) {
    EXPECT_EQ(sink.delivered[i].seq, parts[i].meta.seq);
    EXPECT_EQ(sink.delivered[i].flags, parts[i].meta.flags);
  }
}

TEST(OsrResequencing, GrowingKeepsEveryBufferedPart) {
  ResequencingBuffer buffer(config(4));
  RecordingSink sink;
  push(buffer, 1, sink);
  push(buffer, 3, sink);
  buffer.resize(16, sink);
  EXPECT_EQ(buffer.capacity(), 16U);
  EXPECT_EQ(buffer.occupancy(), 2U);
  EXPECT_EQ(push(buffer, 15, sink), PushResult::Buffered); // fits only after growing
  push(buffer, 2, sink);
  push(buffer, 0, sink);
  EXPECT_EQ(sink.deliveredSeqs(), (Seqs{0, 1, 2, 3}));
  EXPECT_EQ(sink.delivered[3].payload, (std::vector<std::uint8_t>{3, 0, 0, 0}));
  EXPECT_TRUE(sink.losses.empty());
}

TEST(OsrResequencing, ShrinkingKeepsPartsThatStillFit) {
  ResequencingBuffer buffer(config(16));
  RecordingSink sink;
  push(buffer, 2, sink);
  push(buffer, 5, sink);
  buffer.resize(6, sink);
  EXPECT_TRUE(sink.losses.empty());
  EXPECT_EQ(buffer.occupancy(), 2U);
  // The window is now [0, 6): 6 overflows it by one, so 0 is skipped.
  EXPECT_EQ(push(buffer, 6, sink), PushResult::Buffered);
  EXPECT_EQ(sink.losses, (std::vector<Lost>{{0, 1, LossCause::Overflow}}));
  EXPECT_EQ(buffer.occupancy(), 3U);
}

TEST(OsrResequencing, ShrinkingBelowTheSpanReleasesTheOldestAsOverflow) {
  ResequencingBuffer buffer(config(16));
  RecordingSink sink;
  for (std::uint32_t seq : {1U, 4U, 9U}) {
    push(buffer, seq, sink);
  }
  buffer.resize(4, sink); // span is 10: the window must start at 6
  EXPECT_EQ(sink.deliveredSeqs(), (Seqs{1, 4}));
  EXPECT_EQ(sink.losses, (std::vector<Lost>{{0, 1, LossCause::Overflow},
                                            {2, 2, LossCause::Overflow},
                                            {5, 1, LossCause::Overflow}}));
  EXPECT_EQ(buffer.nextSeq(), 6U);
  EXPECT_EQ(buffer.capacity(), 4U);
  push(buffer, 6, sink);
  push(buffer, 7, sink);
  push(buffer, 8, sink);
  EXPECT_EQ(sink.deliveredSeqs(), (Seqs{1, 4, 6, 7, 8, 9}));
  EXPECT_EQ(buffer.counters().lost_overflow, 4U);
  EXPECT_EQ(sink.order_violations, 0U);
}

TEST(OsrResequencing, OversizePartsAreRejected) {
  ResequencingBuffer buffer(config(4));
  RecordingSink sink;
  const std::vector<std::uint8_t> big(65, 0);
  const Part part{.seq = 0, .payload = big};
  EXPECT_EQ(buffer.push(part, 0ns, sink), PushResult::Oversize);
  EXPECT_EQ(buffer.counters().oversize, 1U);
  EXPECT_TRUE(sink.delivered.empty());
}

// Random reordering, duplication, loss and late arrivals: whatever happens,
// every number from the first to the last released comes out exactly once,
// in order, and the counters agree with what the sink saw.
TEST(OsrResequencing, AccountsForEverySequenceNumberUnderStress) {
  std::mt19937_64 rng(12345);
  for (int round = 0; round < 20; ++round) {
    const std::size_t capacity = 1 + rng() % 32;
    const std::uint32_t first = 0xFFFFFF00U; // crosses the wrap
    ResequencingBuffer buffer(config(capacity, first, 5ms));
    RecordingSink sink;
    sink.next = first;
    std::uint64_t pushes = 0;
    std::uint64_t buffered_or_delivered = 0;
    Nanos now{};
    for (std::uint32_t i = 0; i < 2000; ++i) {
      const std::uint32_t seq = first + i + static_cast<std::uint32_t>(rng() % 24) - 8;
      now += Nanos(static_cast<Nanos::rep>(rng() % 1'000'000));
      const PushResult result = push(buffer, seq, sink, now);
      ++pushes;
      buffered_or_delivered += result == PushResult::Buffered || result == PushResult::Delivered;
      if (rng() % 16 == 0) {
        buffer.expire(now, sink);
      }
      if (rng() % 200 == 0) {
        buffer.resize(1 + rng() % 32, sink);
      }
    }
    buffer.expire(now + 1s, sink);
    const auto &c = buffer.counters();
    ASSERT_EQ(sink.order_violations, 0U) << "round " << round;
    EXPECT_EQ(buffer.occupancy(), 0U);
    EXPECT_EQ(c.delivered, sink.delivered.size());
    EXPECT_EQ(c.delivered, buffered_or_delivered);
    EXPECT_EQ(c.lost_overflow, sink.lost_overflow);
    EXPECT_EQ(c.lost_timeout, sink.lost_timeout);
    EXPECT_EQ(c.delivered + c.duplicates + c.too_old, pushes);
    // Released numbers cover [first, nextSeq()) without a hole.
    EXPECT_EQ(std::uint64_t{buffer.nextSeq() - first},
              c.delivered + c.lost_overflow + c.lost_timeout)
        << "round " << round;
  }
}

TEST(OsrResequencingSizing, FollowsTheDocumentedFormula) {
  // 1 MB/s at 10 ms and 3 MB/s at 50 ms, 1000-byte parts:
  // e = 10 ms + 1 ms and 50 ms + 0.333 ms; D = 39.333 ms; R = 4 MB/s.
  const std::array paths{PathModel{1e6, 10ms}, PathModel{3e6, 50ms}};
  const Sizing sizing = ResequencingBuffer::sizeFor(paths, 1000, 1.5);
  const double spread = 0.050 + 1000.0 / 3e6 - (0.010 + 1000.0 / 1e6);
  EXPECT_EQ(sizing.capacity, static_cast<std::size_t>(std::ceil(1.5 * 4e6 * spread / 1000)) + 4);
  EXPECT_NEAR(std::chrono::duration<double>(sizing.gap_timeout).count(), 1.5 * spread, 1e-6);
}

TEST(OsrResequencingSizing, AlikePathsNeedOnlyInterleavingRoom) {
  const std::array paths{PathModel{1e6, 20ms}, PathModel{1e6, 20ms}, PathModel{1e6, 20ms}};
  const Sizing sizing = ResequencingBuffer::sizeFor(paths, 1000, 2.0, 3ms);
  EXPECT_EQ(sizing.capacity, 6U);
  EXPECT_EQ(sizing.gap_timeout, 3ms);
}

TEST(OsrResequencingSizing, IgnoresUnusablePathsAndClampsAbsurdInput) {
  const std::array none{PathModel{0, 1ms}, PathModel{-5, 1ms},
                        PathModel{std::numeric_limits<double>::quiet_NaN(), 1ms}};
  const Sizing empty = ResequencingBuffer::sizeFor(none, 1000);
  EXPECT_EQ(empty.capacity, 1U);
  EXPECT_EQ(empty.gap_timeout, 1ms);

  const std::array absurd{PathModel{1e300, 0ms}, PathModel{1e-300, 0ms}};
  const Sizing clamped = ResequencingBuffer::sizeFor(absurd, 1000, 1e300);
  EXPECT_EQ(clamped.capacity, ResequencingBuffer::kMaxSizedCapacity);
  EXPECT_EQ(clamped.gap_timeout, std::chrono::hours(1));
}

// Playout: parts that carry a due time.
PushResult pushDue(ResequencingBuffer &buffer, std::uint32_t seq, RecordingSink &sink, Nanos now,
                   Nanos due) {
  const TestPart p(seq);
  Part part = p.part();
  part.due = due;
  return buffer.push(part, now, sink);
}

TEST(OsrResequencing, AnInOrderPartIsHeldUntilDue) {
  ResequencingBuffer buffer(config(8, 0, 10ms));
  RecordingSink sink;
  EXPECT_EQ(pushDue(buffer, 0, sink, 5ms, 30ms), PushResult::Buffered);
  EXPECT_TRUE(sink.delivered.empty());
  EXPECT_EQ(buffer.counters().held, 1U);
  EXPECT_EQ(buffer.counters().reordered, 0U);
  EXPECT_EQ(buffer.nextRelease(), 30ms);
  EXPECT_EQ(buffer.nextDeadline(), 30ms);
  buffer.expire(29ms, sink);
  EXPECT_TRUE(sink.delivered.empty());
  buffer.expire(30ms, sink);
  EXPECT_EQ(sink.deliveredSeqs(), (Seqs{0}));
  EXPECT_EQ(buffer.nextRelease(), std::nullopt);
  // Due already: straight through.
  EXPECT_EQ(pushDue(buffer, 1, sink, 31ms, 20ms), PushResult::Delivered);
  EXPECT_EQ(buffer.counters().held, 1U);
  EXPECT_EQ(buffer.counters().lost_timeout, 0U);
}

TEST(OsrResequencing, PartsBehindAHeldPartWaitForIt) {
  ResequencingBuffer buffer(config(8, 0, 10ms));
  RecordingSink sink;
  pushDue(buffer, 0, sink, 5ms, 30ms);                          // fast path, held
  EXPECT_EQ(push(buffer, 1, sink, 29ms), PushResult::Buffered); // slow path, due
  EXPECT_TRUE(sink.delivered.empty());
  buffer.expire(30ms, sink);
  EXPECT_EQ(sink.deliveredSeqs(), (Seqs{0, 1}));
  EXPECT_EQ(sink.order_violations, 0U);
}

TEST(OsrResequencing, TheGapTimeoutOfAHeldPartCountsFromItsDueTime) {
  ResequencingBuffer buffer(config(8, 0, 10ms));
  RecordingSink sink;
  pushDue(buffer, 1, sink, 5ms, 50ms); // behind a gap at 0, and held
  EXPECT_EQ(buffer.nextRelease(), std::nullopt);
  EXPECT_EQ(buffer.nextDeadline(), 60ms);
  buffer.expire(59ms, sink);
  EXPECT_TRUE(sink.losses.empty());
  EXPECT_EQ(push(buffer, 0, sink, 55ms), PushResult::Delivered); // in time
  EXPECT_EQ(sink.deliveredSeqs(), (Seqs{0, 1}));
  EXPECT_EQ(buffer.counters().lost_timeout, 0U);

  pushDue(buffer, 3, sink, 60ms, 70ms);
  buffer.expire(80ms, sink);
  EXPECT_EQ(sink.losses, (std::vector<Lost>{{2, 1, LossCause::Timeout}}));
  EXPECT_EQ(sink.deliveredSeqs(), (Seqs{0, 1, 3}));
}

TEST(OsrResequencing, OverflowReleasesHeldPartsEarlyInsteadOfLosingThem) {
  ResequencingBuffer buffer(config(4, 0, 10ms));
  RecordingSink sink;
  for (std::uint32_t seq = 0; seq < 4; ++seq) {
    pushDue(buffer, seq, sink, 0ms, 100ms);
  }
  EXPECT_EQ(push(buffer, 4, sink, 1ms), PushResult::Buffered);
  EXPECT_EQ(sink.deliveredSeqs(), (Seqs{0}));
  EXPECT_EQ(buffer.counters().lost_overflow, 0U);
  buffer.resize(2, sink); // no clock: held parts go
  EXPECT_EQ(sink.deliveredSeqs(), (Seqs{0, 1, 2, 3, 4}));
  EXPECT_EQ(buffer.occupancy(), 0U);
  EXPECT_EQ(sink.order_violations, 0U);
}

} // namespace
} // namespace nvbox::osr
