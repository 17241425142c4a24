// End to end through the pure data plane: a sender cuts a stream into
// segments of k parts, the StripeScheduler spreads them over LoopbackPaths,
// the receiver authenticates each datagram with the wire parser and restores
// the order in a ResequencingBuffer. Probes run over the same paths into a
// PathMonitor that takes dead paths out of the schedule.
#include "loopback_paths.hh"
#include "osr/path_monitor.hpp"
#include "osr/resequencing_buffer.hpp"
#include "osr/stripe_scheduler.hpp"
#include "osr/wire.hpp"
#include "recording_sink.hh"

#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <vector>

namespace nvbox::osr {
namespace {

using namespace std::chrono_literals;
using testing::LoopbackPaths;
using testing::RecordingSink;
using testing::SimPathConfig;

constexpr std::uint32_t kFlow = 7;
constexpr std::uint32_t kFirstSeq = 0xFFFFF000U; // every run crosses the 2^32 wrap
constexpr std::size_t kPartBytes = 1000;
constexpr std::size_t kWireBytes = wire::packetSize(kPartBytes);

OverlayKey testKey() {
  std::array<std::uint8_t, OverlayKey::kSize> bytes{};
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    bytes[i] = static_cast<std::uint8_t>(i * 13 + 1);
  }
  return OverlayKey::fromBytes(bytes);
}

class Pipeline {
public:
  // Without probing the paths carry nothing but parts, so they behave
  // exactly as the scheduler models them.
  Pipeline(StripePolicy policy, const std::vector<SimPathConfig> &paths,
           const ResequencingBuffer::Config &buffer, std::uint64_t seed, bool probing = true)
      : forward_(seed), reverse_(seed + 1), scheduler_(policy), buffer_(buffer), probing_(probing) {
    for (const SimPathConfig &path : paths) {
      const PathId id = forward_.addPath(path);
      reverse_.addPath(
          SimPathConfig{.rate_bytes_per_s = path.rate_bytes_per_s, .delay = path.delay});
      scheduler_.addPath(id, static_cast<std::uint64_t>(path.rate_bytes_per_s), path.delay);
      monitor_.addPath(id, now_);
    }
    sink_.next = kFirstSeq;
  }

  // Sends `segments` segments of k parts (k = active paths when 0) at
  // `offered` bytes/s of payload, running the receiver and the probes as
  // simulated time passes.
  void stream(std::size_t segments, std::uint8_t k, double offered) {
    const Nanos gap(static_cast<Nanos::rep>(1e9 * kPartBytes / offered));
    for (std::size_t s = 0; s < segments; ++s) {
      const std::uint8_t parts = k != 0 ? k : scheduler_.activeCount();
      for (std::uint8_t i = 0; i < parts; ++i) {
        sendPart(i);
        advance(now_ + gap);
      }
    }
  }

  // Long enough for every queue to empty, every part to arrive and every gap
  // to time out (probes keep flowing, so "nothing in flight" never happens).
  void drain() { advance(now_ + 5s); }

  void setLoss(PathId path, double loss) { forward_.setLoss(path, loss); }
  void cut(PathId path, bool cut) {
    forward_.setCut(path, cut);
    reverse_.setCut(path, cut);
  }

  std::uint64_t sent() const { return next_seq_ - kFirstSeq; }
  std::uint64_t dropped() const {
    std::uint64_t total = 0;
    for (PathId id = 0; id < forward_.pathCount(); ++id) {
      total += forward_.counters(id).dropped;
    }
    return total - probes_dropped_;
  }
  std::uint64_t heldBack(PathId path) const { return forward_.counters(path).held_back; }
  std::uint64_t rejected() const { return rejected_; }
  std::uint64_t payloadErrors() const { return payload_errors_; }
  Nanos now() const { return now_; }
  const StripeScheduler &scheduler() const { return scheduler_; }
  const PathMonitor &monitor() const { return monitor_; }
  const ResequencingCounters &counters() const { return buffer_.counters(); }
  const RecordingSink &sink() const { return sink_; }

private:
  void sendPart(std::uint8_t index) {
    const auto choice = scheduler_.pick(index, kWireBytes, now_);
    ASSERT_TRUE(choice.has_value());
    // The payload carries its own seq so the receiver can check the bytes.
    std::array<std::uint8_t, kPartBytes> payload{};
    std::memcpy(payload.data(), &next_seq_, sizeof next_seq_);
    // Each part is a segment of its own here: the segments' framing has
    // tests of its own (segment_assembler_test.cpp).
    const wire::Header header{.type = wire::PacketType::Data,
                              .flags = wire::kFlagFirst | wire::kFlagLast,
                              .path_id = choice->path,
                              .flow_id = kFlow,
                              .seq = next_seq_++,
                              .send_us = static_cast<std::uint32_t>(now_.count() / 1000)};
    const std::size_t size = wire::encode(header, payload, auth_, tx_);
    ASSERT_EQ(size, kWireBytes);
    forward_.send(choice->path, std::span(tx_).first(size), now_);
  }

  void sendProbes() {
    for (PathId id = 0; id < forward_.pathCount(); ++id) {
      if (!monitor_.probeDue(id, now_)) {
        continue;
      }
      const auto seq = monitor_.onProbeSent(id, now_);
      const wire::Header header{.type = wire::PacketType::Probe,
                                .path_id = id,
                                .seq = *seq,
                                .send_us = static_cast<std::uint32_t>(now_.count() / 1000)};
      const std::size_t size = wire::encode(header, {}, auth_, tx_);
      const auto before = forward_.counters(id).dropped;
      forward_.send(id, std::span(tx_).first(size), now_);
      probes_dropped_ += forward_.counters(id).dropped - before;
    }
  }

  // The far end: parts into the buffer, probes echoed on the reverse path.
  void receive(PathId path, std::span<const std::uint8_t> datagram, Nanos at) {
    const wire::ParseResult result = wire::parse(datagram, auth_);
    if (!result.ok() || result.header.path_id != path) {
      ++rejected_;
      return;
    }
    if (result.header.type == wire::PacketType::Probe) {
      wire::Header reply = result.header;
      reply.type = wire::PacketType::ProbeReply;
      std::array<std::uint8_t, wire::kOverhead> out{};
      reverse_.send(path, std::span(out).first(wire::encode(reply, {}, auth_, out)), at);
      return;
    }
    std::uint32_t carried = 0;
    std::memcpy(&carried, result.payload.data(), sizeof carried);
    payload_errors_ += carried != result.header.seq || result.payload.size() != kPartBytes;
    const Part part{.seq = result.header.seq,
                    .flags = result.header.flags,
                    .path_id = result.header.path_id,
                    .payload = result.payload};
    buffer_.push(part, at, sink_);
  }

  // The near end: probe replies into the monitor, state changes into the scheduler.
  void receiveReply(PathId path, std::span<const std::uint8_t> datagram, Nanos at) {
    const wire::ParseResult result = wire::parse(datagram, auth_);
    if (!result.ok() || result.header.type != wire::PacketType::ProbeReply) {
      ++rejected_;
      return;
    }
    if (monitor_.onReply(path, result.header.seq, at) == ReplyResult::CameUp) {
      scheduler_.setPathUp(path, true);
    }
  }

  void advance(Nanos until) {
    while (now_ < until) {
      now_ = std::min(until, now_ + 1ms);
      forward_.deliverUntil(
          now_, [this](PathId path, auto bytes, Nanos at) { receive(path, bytes, at); });
      reverse_.deliverUntil(
          now_, [this](PathId path, auto bytes, Nanos at) { receiveReply(path, bytes, at); });
      buffer_.expire(now_, sink_);
      const std::uint16_t down = monitor_.tick(now_);
      for (PathId id = 0; id < kMaxPaths; ++id) {
        if ((down & (1U << id)) != 0) {
          scheduler_.setPathUp(id, false);
        }
      }
      if (probing_) {
        sendProbes();
      }
    }
  }

  PacketAuthenticator auth_{testKey()};
  LoopbackPaths forward_;
  LoopbackPaths reverse_;
  StripeScheduler scheduler_;
  PathMonitor monitor_;
  ResequencingBuffer buffer_;
  RecordingSink sink_;
  bool probing_;
  std::array<std::uint8_t, wire::kMaxPacket> tx_{};
  Nanos now_{};
  std::uint32_t next_seq_ = kFirstSeq;
  std::uint64_t probes_dropped_ = 0;
  std::uint64_t rejected_ = 0;
  std::uint64_t payload_errors_ = 0;
};

ResequencingBuffer::Config bufferFor(const std::vector<SimPathConfig> &paths, double headroom) {
  std::vector<PathModel> models;
  for (const auto &path : paths) {
    models.push_back({path.rate_bytes_per_s, path.delay});
  }
  const Sizing sizing = ResequencingBuffer::sizeFor(models, kWireBytes, headroom);
  return {.capacity = sizing.capacity,
          .max_part_bytes = kPartBytes,
          .gap_timeout = sizing.gap_timeout,
          .first_seq = kFirstSeq};
}

void expectCompleteAccounting(const Pipeline &pipeline) {
  const auto &c = pipeline.counters();
  EXPECT_EQ(pipeline.sink().order_violations, 0U);
  EXPECT_EQ(pipeline.rejected(), 0U);
  EXPECT_EQ(pipeline.payloadErrors(), 0U);
  EXPECT_EQ(c.delivered, pipeline.sink().delivered.size());
  EXPECT_EQ(c.delivered + c.lost_overflow + c.lost_timeout, pipeline.sent());
  EXPECT_EQ(c.duplicates, 0U);
}

TEST(OsrStriping, EqualOverUnevenDelaysWithReorderingDeliversEverythingInOrder) {
  const std::vector<SimPathConfig> paths{
      {.rate_bytes_per_s = 2e6, .delay = 5ms, .reorder = 0.05, .reorder_extra = 15ms},
      {.rate_bytes_per_s = 2e6, .delay = 10ms, .reorder = 0.05, .reorder_extra = 15ms},
      {.rate_bytes_per_s = 2e6, .delay = 20ms, .reorder = 0.05, .reorder_extra = 15ms},
      {.rate_bytes_per_s = 2e6, .delay = 40ms, .reorder = 0.05, .reorder_extra = 15ms}};
  // The injected hold-back adds to the delay spread the sizing assumes.
  Pipeline pipeline(StripePolicy::Equal, paths, bufferFor(paths, 2.0), 1);
  pipeline.stream(5000, 0, 0.9 * 8e6 * kPartBytes / kWireBytes);
  pipeline.drain();

  expectCompleteAccounting(pipeline);
  const auto &c = pipeline.counters();
  EXPECT_EQ(pipeline.sent(), 20000U);
  EXPECT_EQ(c.delivered, 20000U);
  EXPECT_EQ(c.lost_overflow + c.lost_timeout, 0U);
  EXPECT_EQ(c.too_old, 0U);
  EXPECT_GT(c.reordered, 5000U) << "uneven delays must reorder";
  EXPECT_GT(pipeline.heldBack(3), 0U);
  for (PathId id = 0; id < 4; ++id) {
    EXPECT_EQ(pipeline.scheduler().counters(id).parts, 5000U);
  }
  // The delivered stream is the sent one: part i went on path i mod 4.
  const auto &delivered = pipeline.sink().delivered;
  for (std::size_t i = 0; i < delivered.size(); i += 997) {
    EXPECT_EQ(delivered[i].seq, static_cast<std::uint32_t>(kFirstSeq + i));
    EXPECT_EQ(delivered[i].path_id, i % 4);
  }
}

TEST(OsrStriping, WeightedWithLossAccountsEveryLostPartAndNothingElse) {
  const std::vector<SimPathConfig> paths{{.rate_bytes_per_s = 1e6, .delay = 10ms},
                                         {.rate_bytes_per_s = 2e6, .delay = 20ms, .loss = 0.02},
                                         {.rate_bytes_per_s = 4e6, .delay = 30ms, .loss = 0.02}};
  Pipeline pipeline(StripePolicy::Weighted, paths, bufferFor(paths, 1.5), 2);
  pipeline.stream(6000, 4, 0.9 * 7e6 * kPartBytes / kWireBytes);
  // Losses at the very end would leave no later part to reveal them.
  pipeline.setLoss(1, 0);
  pipeline.setLoss(2, 0);
  pipeline.stream(10, 4, 1e6);
  pipeline.drain();

  expectCompleteAccounting(pipeline);
  const auto &c = pipeline.counters();
  EXPECT_GT(pipeline.dropped(), 200U);
  EXPECT_EQ(c.lost_overflow + c.lost_timeout, pipeline.dropped());
  EXPECT_EQ(c.too_old, 0U) << "a part declared lost arrived later: buffer sized too small";
  EXPECT_LE(c.peak_occupancy, bufferFor(paths, 1.5).capacity);
  const double total = static_cast<double>(pipeline.sent());
  EXPECT_NEAR(static_cast<double>(pipeline.scheduler().counters(2).parts) / total, 4.0 / 7, 0.01);
}

TEST(OsrStriping, TooSmallABufferLosesPartsButStillAccountsForAll) {
  const std::vector<SimPathConfig> paths{{.rate_bytes_per_s = 2e6, .delay = 2ms},
                                         {.rate_bytes_per_s = 2e6, .delay = 50ms}};
  ResequencingBuffer::Config config = bufferFor(paths, 1.5);
  config.capacity = 8; // the sizing asks for about 280
  Pipeline pipeline(StripePolicy::Equal, paths, config, 3);
  pipeline.stream(2000, 0, 0.9 * 4e6 * kPartBytes / kWireBytes);
  pipeline.drain();

  expectCompleteAccounting(pipeline);
  const auto &c = pipeline.counters();
  EXPECT_EQ(pipeline.dropped(), 0U);
  EXPECT_GT(c.lost_overflow, 1000U);
  // Every part declared lost did arrive, too late: the paper's part loss.
  EXPECT_EQ(c.too_old, c.lost_overflow + c.lost_timeout);
  EXPECT_LE(c.peak_occupancy, 8U);
}

TEST(OsrStriping, DelayAwareKeepsOrderWhereEqualReorders) {
  const std::vector<SimPathConfig> paths{{.rate_bytes_per_s = 1e6, .delay = 5ms},
                                         {.rate_bytes_per_s = 2e6, .delay = 15ms},
                                         {.rate_bytes_per_s = 4e6, .delay = 30ms}};
  ResequencingBuffer::Config config = bufferFor(paths, 2.0);
  config.capacity = 4096;
  config.gap_timeout = 1s;
  const double offered = 0.9 * 3e6 * kPartBytes / kWireBytes; // what Equal can carry
  std::array<std::uint64_t, 2> reordered{};
  for (const auto policy : {StripePolicy::Equal, StripePolicy::DelayAware}) {
    Pipeline pipeline(policy, paths, config, 4, /*probing=*/false);
    pipeline.stream(3000, 3, offered);
    pipeline.drain();
    expectCompleteAccounting(pipeline);
    EXPECT_EQ(pipeline.counters().delivered, 9000U);
    reordered[policy == StripePolicy::Equal ? 0 : 1] = pipeline.counters().reordered;
  }
  EXPECT_GT(reordered[0], 3000U);
  EXPECT_EQ(reordered[1], 0U) << "arrivals follow the scheduler's estimates";
}

TEST(OsrStriping, DeadPathLeavesTheScheduleWithinASecondAndReturnsWhenHealed) {
  const std::vector<SimPathConfig> paths{{.rate_bytes_per_s = 2e6, .delay = 10ms},
                                         {.rate_bytes_per_s = 2e6, .delay = 15ms},
                                         {.rate_bytes_per_s = 2e6, .delay = 20ms}};
  Pipeline pipeline(StripePolicy::Weighted, paths, bufferFor(paths, 2.0), 5);
  const double offered = 0.5 * 6e6 * kPartBytes / kWireBytes;
  pipeline.stream(1000, 3, offered); // ~1.5 s: the monitor brings every path up
  ASSERT_TRUE(pipeline.monitor().health(1).up);

  pipeline.cut(1, true);
  const Nanos cut_at = pipeline.now();
  // Just under 1 s of parts (0.99 s, whatever the wire overhead).
  const auto under_a_second = static_cast<std::size_t>(0.99 * offered / (3 * kPartBytes));
  pipeline.stream(under_a_second, 3, offered);
  ASSERT_LT(pipeline.now() - cut_at, 1s);
  EXPECT_FALSE(pipeline.scheduler().isUp(1));
  const auto parts_after_detection = pipeline.scheduler().counters(1).parts;
  pipeline.stream(700, 3, offered);
  EXPECT_EQ(pipeline.scheduler().counters(1).parts, parts_after_detection)
      << "a down path must not get parts";

  pipeline.cut(1, false);
  pipeline.stream(700, 3, offered);
  EXPECT_TRUE(pipeline.scheduler().isUp(1));
  EXPECT_GT(pipeline.scheduler().counters(1).parts, parts_after_detection);
  pipeline.drain();

  expectCompleteAccounting(pipeline);
  const auto &c = pipeline.counters();
  EXPECT_GT(pipeline.dropped(), 0U);
  EXPECT_EQ(c.lost_overflow + c.lost_timeout, pipeline.dropped());
  EXPECT_EQ(c.too_old, 0U);
}

} // namespace
} // namespace nvbox::osr
