// Closed-loop striping under an injected clock: osrd's real Ingress and
// Egress, joined by LoopbackPaths (forward for parts and probes, reverse for
// probe replies and FEEDBACK), with the adaptive scheduler and no rates
// declared. A sender offers packets at a constant rate: a tenth above the
// stripe's capacity, as a transport that keeps it full would (then every
// path must carry what it can: shares follow the paths' rates, and what
// reaches the egress is the stripe's capacity), or well below it (then the
// earliest-arrival rule may leave a slow path idle). Each test changes the
// paths under it — a rate step down and up, a delay jump, a loss burst, a
// path that goes silent — and asserts the shares, what reaches the egress's
// TUN side, and how soon.
#include "egress.hpp"
#include "ingress.hpp"
#include "loopback_paths.hh"
#include "osrd_config.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace nvbox::osr {
namespace {

using namespace std::chrono_literals;
using testing::LoopbackPaths;
using testing::SimPathConfig;

constexpr std::size_t kPacket = 1400; // application packets, one part each
constexpr Nanos kTick = 5ms;          // osrd's timer
const Endpoint kIngress = *Endpoint::parse("10.9.0.1:7400");
const Endpoint kEgress = *Endpoint::parse("10.9.0.2:7400");

Endpoint relay(std::size_t i) {
  return Endpoint{.addr = 0x0A010002U | static_cast<std::uint32_t>((i + 1) << 8), .port = 7400};
}

OverlayKey testKey() {
  std::array<std::uint8_t, OverlayKey::kSize> bytes{};
  bytes.fill(0x3C);
  return OverlayKey::fromBytes(bytes);
}

// The egress's TUN side: what the stripe delivered.
class Recorder final : public TunWriter {
public:
  bool tso() const override { return true; }
  bool write(const VirtioNetHdr & /*hdr*/, std::span<const std::uint8_t> packet) override {
    bytes += packet.size();
    ++packets;
    return true;
  }
  std::uint64_t bytes = 0;
  std::uint64_t packets = 0;
};

class ClosedLoop {
public:
  explicit ClosedLoop(const std::vector<SimPathConfig> &paths, const std::string &extra = "",
                      std::uint64_t seed = 1)
      : forward_(seed), reverse_(seed + 1), auth_(testKey()),
        ingress_(testKey(), kIngress, PathMonitor::Config{}, 1500 - wire::kIpUdpOverhead),
        egress_(tun_, std::nullopt, std::nullopt, PacketBatch::kBufferSize, true, 1s) {
    std::string relays;
    for (std::size_t i = 0; i < paths.size(); ++i) {
      forward_.addPath(paths[i]);
      reverse_.addPath(SimPathConfig{.rate_bytes_per_s = 1e9, .delay = paths[i].delay});
      relays += (i == 0 ? "" : "+") + relay(i).toString();
    }
    ingress_.addStripe(parseStripeSpec("name=fwd,flow=1,dst=10.20.0.0/24,egress=" +
                                       kEgress.toString() + ",relays=" + relays + extra),
                       now_);
    packet_.resize(kPacket);
    packet_[0] = 0x45;
    packet_[2] = static_cast<std::uint8_t>(kPacket >> 8);
    packet_[3] = static_cast<std::uint8_t>(kPacket & 0xFF);
    packet_[9] = 17; // UDP: never a pure TCP ACK
    const std::array<std::uint8_t, 8> addrs{10, 10, 0, 1, 10, 20, 0, 2};
    std::copy(addrs.begin(), addrs.end(), packet_.begin() + 12);
  }

  // Runs for `span`, the sender offering `offered` bytes/s of packets.
  void run(Nanos span, double offered) {
    const Nanos end = now_ + span;
    const Nanos gap(static_cast<Nanos::rep>(1e9 * kPacket / std::max(offered, 1.0)));
    while (now_ < end) {
      now_ += 100us;
      while (offered > 0 && nextSend_ <= now_) {
        PacketBatch out;
        if (ingress_.send(packet_, 0, nextSend_, out)) {
          offeredBytes_ += kPacket;
        }
        forward(out, nextSend_);
        nextSend_ += gap;
      }
      nextSend_ = std::max(nextSend_, now_ - gap); // no burst after an idle spell
      forward_.deliverUntil(now_, [this](PathId p, auto bytes, Nanos at) { far(p, bytes, at); });
      reverse_.deliverUntil(now_, [this](PathId p, auto bytes, Nanos at) { near(p, bytes, at); });
      if (now_ >= nextTick_) {
        nextTick_ = now_ + kTick;
        PacketBatch out;
        ingress_.tick(now_, out);
        forward(out, now_);
        egress_.expire(now_);
        egress_.flush();
        PacketBatch back;
        egress_.sendFeedback(now_, auth_, back);
        backward(back, now_);
        if (now_ - lastResize_ >= 1s) {
          lastResize_ = now_;
          egress_.resize(now_);
        }
      }
    }
  }

  LoopbackPaths &paths() { return forward_; }
  LoopbackPaths &reversePaths() { return reverse_; }
  Ingress &ingress() { return ingress_; }
  Egress &egress() { return egress_; }
  Nanos now() const { return now_; }
  std::uint64_t delivered() const { return tun_.bytes; }
  std::uint64_t offered() const { return offeredBytes_; }
  // Drops FEEDBACK on its way back while set (the replies still pass).
  std::function<bool(std::span<const std::uint8_t>)> dropBack;
  // Every FEEDBACK datagram that reached the ingress, as sent.
  std::vector<std::vector<std::uint8_t>> feedbackSeen;

  nlohmann::json path(std::size_t i) const { return ingress_.status(now_)[0]["paths"][i]; }
  nlohmann::json stripe() const { return ingress_.status(now_)[0]; }
  std::uint64_t bytesOn(std::size_t i) const { return path(i)["bytes"].get<std::uint64_t>(); }

private:
  std::size_t pathOf(const Endpoint &relayEp) const {
    for (std::size_t i = 0; i < forward_.pathCount(); ++i) {
      if (relay(i) == relayEp) {
        return i;
      }
    }
    ADD_FAILURE() << "a datagram to " << relayEp.toString() << ", which is no relay";
    return 0;
  }

  void forward(const PacketBatch &out, Nanos at) {
    for (std::size_t i = 0; i < out.size(); ++i) {
      forward_.send(static_cast<PathId>(pathOf(out.from(i))), out.data(i), at);
    }
  }

  void backward(const PacketBatch &out, Nanos at) {
    for (std::size_t i = 0; i < out.size(); ++i) {
      if (dropBack && dropBack(out.data(i))) {
        continue;
      }
      reverse_.send(static_cast<PathId>(pathOf(out.from(i))), out.data(i), at);
    }
  }

  // The egress's side, as Osrd::onTunnel wires it.
  void far(PathId path, std::span<const std::uint8_t> bytes, Nanos at) {
    const wire::ParseResult r = wire::parse(bytes, auth_);
    ASSERT_TRUE(r.ok()) << wire::toString(r.status);
    if (r.header.type == wire::PacketType::Data) {
      egress_.onData(r.header, r.payload, relay(path), at);
      egress_.flush();
      return;
    }
    ASSERT_EQ(r.header.type, wire::PacketType::Probe);
    const auto info = wire::parseProbeInfo(r.payload);
    ASSERT_TRUE(info.has_value());
    egress_.onProbe(r.header, *info, relay(path), at);
    wire::Header reply = r.header;
    reply.type = wire::PacketType::ProbeReply;
    reply.dst = info->back;
    std::array<std::uint8_t, wire::kOverhead> out{};
    reverse_.send(path, std::span(out).first(wire::encode(reply, {}, auth_, out)), at);
  }

  // The ingress's side.
  void near(PathId /*path*/, std::span<const std::uint8_t> bytes, Nanos at) {
    const wire::ParseResult r = wire::parse(bytes, auth_);
    ASSERT_TRUE(r.ok()) << wire::toString(r.status);
    if (r.header.type == wire::PacketType::ProbeReply) {
      ingress_.onProbeReply(r.header, at);
    } else {
      ASSERT_EQ(r.header.type, wire::PacketType::Feedback);
      feedbackSeen.emplace_back(bytes.begin(), bytes.end());
      ingress_.onFeedback(r.header, r.payload, at);
    }
  }

  LoopbackPaths forward_;
  LoopbackPaths reverse_;
  PacketAuthenticator auth_;
  Recorder tun_;
  Ingress ingress_;
  Egress egress_;
  std::vector<std::uint8_t> packet_;
  Nanos now_{10s};
  Nanos nextSend_{10s};
  Nanos nextTick_{};
  Nanos lastResize_{};
  std::uint64_t offeredBytes_ = 0;
};

// Each path's share of the stripe's bytes over the next `span`.
std::vector<double> sharesOver(ClosedLoop &loop, Nanos span, double offered) {
  const std::size_t n = loop.paths().pathCount();
  std::vector<std::uint64_t> before(n);
  for (std::size_t i = 0; i < n; ++i) {
    before[i] = loop.bytesOn(i);
  }
  loop.run(span, offered);
  std::vector<double> shares(n);
  double total = 0;
  for (std::size_t i = 0; i < n; ++i) {
    shares[i] = static_cast<double>(loop.bytesOn(i) - before[i]);
    total += shares[i];
  }
  for (double &s : shares) {
    s = total > 0 ? s / total : 0;
  }
  return shares;
}

// What reached the TUN side over the next `span`, against what was offered.
double deliveredOver(ClosedLoop &loop, Nanos span, double offered) {
  const std::uint64_t d0 = loop.delivered();
  const std::uint64_t o0 = loop.offered();
  loop.run(span, offered);
  return static_cast<double>(loop.delivered() - d0) / static_cast<double>(loop.offered() - o0);
}

// What reached the TUN side over the next `span`, against `capacity` bytes/s.
double carriedOver(ClosedLoop &loop, Nanos span, double offered, double capacity) {
  const std::uint64_t d0 = loop.delivered();
  loop.run(span, offered);
  return static_cast<double>(loop.delivered() - d0) /
         (capacity * std::chrono::duration<double>(span).count());
}

SimPathConfig shaped(double rate, Nanos delay = 5ms) {
  // A tbf-like queue of 50 ms: overload shows as loss, not as a queue that
  // grows for ever.
  return SimPathConfig{.rate_bytes_per_s = rate, .delay = delay, .queue_limit = 50ms};
}

// Payload bytes a path of `rate` wire bytes/s carries: a part is the packet
// behind a 4-byte segment header, in a datagram of wire::kOverhead more.
double payloadRate(double rate) {
  return rate * kPacket / (kPacket + 4 + wire::kOverhead);
}

TEST(OsrAdaptive, SharesFollowARateStepDownAndUp) {
  ClosedLoop loop({shaped(4e6), shaped(2e6)});
  const double sum = payloadRate(6e6);
  loop.run(2s, 1.1 * sum);
  auto shares = sharesOver(loop, 2s, 1.1 * sum);
  EXPECT_NEAR(shares[1], 2.0 / 6, 0.04) << "before the step";
  EXPECT_GT(carriedOver(loop, 2s, 1.1 * sum, sum), 0.96);

  loop.paths().setRate(1, 0.5e6);
  const double low = payloadRate(4.5e6);
  loop.run(1s, 1.1 * low);
  shares = sharesOver(loop, 2s, 1.1 * low);
  EXPECT_NEAR(shares[1], 0.5 / 4.5, 0.03) << "path 1 at a quarter of its rate";
  EXPECT_GT(carriedOver(loop, 2s, 1.1 * low, low), 0.96);
  EXPECT_NEAR(loop.path(1)["measured_rate"].get<double>(), payloadRate(0.5e6), 0.1e6);

  loop.paths().setRate(1, 2e6);
  loop.run(1s, 1.1 * sum);
  shares = sharesOver(loop, 2s, 1.1 * sum);
  EXPECT_NEAR(shares[1], 2.0 / 6, 0.04) << "back up";
  EXPECT_GT(carriedOver(loop, 2s, 1.1 * sum, sum), 0.96);
}

TEST(OsrAdaptive, BelowCapacityNothingIsLost) {
  ClosedLoop loop({shaped(4e6), shaped(2e6)});
  const double load = 0.9 * payloadRate(6e6);
  loop.run(2s, load);
  EXPECT_GT(deliveredOver(loop, 2s, load), 0.99);
  // Path 0 alone carries 4/6 of the capacity: path 1 takes the rest at least.
  EXPECT_GT(sharesOver(loop, 2s, load)[1], 0.24);
}

TEST(OsrAdaptive, ADelayJumpMovesALightLoadToTheFasterPath) {
  ClosedLoop loop({shaped(3e6), shaped(3e6)});
  const double light = 0.3 * payloadRate(6e6); // one path could carry it alone
  loop.run(2s, light);
  auto shares = sharesOver(loop, 2s, light);
  EXPECT_GT(shares[0], 0.25);
  EXPECT_GT(shares[1], 0.25);

  loop.paths().setDelay(0, 40ms);
  loop.reversePaths().setDelay(0, 40ms);
  loop.run(1s, light);
  shares = sharesOver(loop, 2s, light);
  EXPECT_LT(shares[0], 0.05) << "a part on path 0 would arrive 35 ms later";
  // Measured as queueing until the path's base delay (a minimum over 5-10 s)
  // has forgotten the shorter one: to the sender, both mean a later arrival.
  EXPECT_GT(loop.path(0)["delay_us"].get<int>() + loop.path(0)["queue_us"].get<int>(), 30'000);
  EXPECT_GT(deliveredOver(loop, 2s, light), 0.99);
}

TEST(OsrAdaptive, ALossBurstIsInferredAtOnceAndForgotten) {
  ClosedLoop loop({shaped(3e6), shaped(3e6)});
  const double load = 0.8 * payloadRate(6e6);
  loop.run(2s, load);
  const auto lostBefore = loop.egress().status(loop.now())["flows"][0]["lost_inferred"];
  const std::uint64_t droppedBefore = loop.paths().counters(1).dropped;
  loop.paths().setLoss(1, 0.2);
  loop.run(500ms, load);
  loop.paths().setLoss(1, 0);
  const std::uint64_t dropped = loop.paths().counters(1).dropped - droppedBefore;
  ASSERT_GT(dropped, 50U);
  loop.run(1s, load);
  const auto flow = loop.egress().status(loop.now())["flows"][0];
  // Every lost part was declared by the paths' sequence, none waited for
  // the gap timeout (the path also lost a few probes, which count in
  // `dropped` but are no parts).
  const auto inferred =
      flow["lost_inferred"].get<std::uint64_t>() - lostBefore.get<std::uint64_t>();
  EXPECT_LE(inferred, dropped);
  EXPECT_GE(inferred, dropped * 95 / 100);
  EXPECT_EQ(flow["lost_timeout"].get<std::uint64_t>(), 0U);
  EXPECT_EQ(loop.path(1)["lost"].get<std::uint64_t>(), inferred);
  EXPECT_GT(deliveredOver(loop, 2s, load), 0.99);
  // The rate estimate is not hurt (losses are not a queue): filled, the
  // stripe still splits evenly.
  const double sum = payloadRate(6e6);
  loop.run(1s, 1.1 * sum);
  EXPECT_NEAR(sharesOver(loop, 2s, 1.1 * sum)[1], 0.5, 0.06);
  EXPECT_GT(carriedOver(loop, 2s, 1.1 * sum, sum), 0.96);
}

TEST(OsrAdaptive, ASilentPathLeavesWithinAHundredAndFiftyMsAndComesBack) {
  ClosedLoop loop({shaped(2e6), shaped(2e6), shaped(2e6)});
  const double load = 0.8 * payloadRate(6e6);
  loop.run(2s, load);
  ASSERT_EQ(loop.stripe()["k"], 3);
  loop.paths().setCut(2, true);
  loop.reversePaths().setCut(2, true);
  const Nanos cutAt = loop.now();
  while (loop.stripe()["k"] == 3 && loop.now() - cutAt < 1s) {
    loop.run(1ms, load);
  }
  EXPECT_LE(loop.now() - cutAt, 150ms)
      << "out after " << std::chrono::duration<double, std::milli>(loop.now() - cutAt).count()
      << " ms";
  EXPECT_TRUE(loop.path(2)["stalled"].get<bool>());
  const double two = 0.8 * payloadRate(4e6);
  loop.run(500ms, two);
  auto shares = sharesOver(loop, 1s, two);
  EXPECT_EQ(shares[2], 0);
  EXPECT_GT(deliveredOver(loop, 1s, two), 0.99);

  loop.paths().setCut(2, false);
  loop.reversePaths().setCut(2, false);
  const Nanos healedAt = loop.now();
  while (loop.stripe()["k"] != 3 && loop.now() - healedAt < 2s) {
    loop.run(5ms, two);
  }
  EXPECT_LE(loop.now() - healedAt, 1s);
  loop.run(1s, load);
  shares = sharesOver(loop, 2s, load);
  EXPECT_NEAR(shares[2], 1.0 / 3, 0.06);
}

TEST(OsrAdaptive, UnknownUnequalRatesAreFoundFromNothing) {
  ClosedLoop loop({shaped(4e6), shaped(1e6)});
  const double sum = payloadRate(5e6);
  loop.run(1s, 1.1 * sum);
  const auto shares = sharesOver(loop, 2s, 1.1 * sum);
  EXPECT_NEAR(shares[1], 0.2, 0.04);
  EXPECT_GT(carriedOver(loop, 2s, 1.1 * sum, sum), 0.96);
  EXPECT_NEAR(loop.path(0)["measured_rate"].get<double>(), payloadRate(4e6), 0.6e6);
  EXPECT_NEAR(loop.path(1)["measured_rate"].get<double>(), payloadRate(1e6), 0.2e6);
}

TEST(OsrAdaptive, ManyPathsShareEvenlyAndStayNearTheirRates) {
  ClosedLoop loop({shaped(2e6), shaped(2e6), shaped(2e6), shaped(2e6)});
  const double sum = payloadRate(8e6);
  loop.run(2s, 1.1 * sum);
  const auto shares = sharesOver(loop, 3s, 1.1 * sum);
  for (const double share : shares) {
    EXPECT_NEAR(share, 0.25, 0.04);
  }
  EXPECT_GT(carriedOver(loop, 2s, 1.1 * sum, sum), 0.96);
  for (std::size_t i = 0; i < 4; ++i) {
    // Estimates follow the paths: no runaway growth of the idle ones.
    EXPECT_LT(loop.path(i)["measured_rate"].get<double>(), 1.5 * payloadRate(2e6)) << i;
  }
}

TEST(OsrAdaptive, PathsOfUnequalDelayAreBothFilled) {
  ClosedLoop loop({shaped(3e6, 5ms), shaped(3e6, 30ms)});
  const double sum = payloadRate(6e6);
  loop.run(2s, 1.1 * sum);
  EXPECT_NEAR(sharesOver(loop, 3s, 1.1 * sum)[1], 0.5, 0.05);
  EXPECT_GT(carriedOver(loop, 2s, 1.1 * sum, sum), 0.96);
}

TEST(OsrAdaptive, ReplayedFeedbackChangesNothingAndIsCounted) {
  ClosedLoop loop({shaped(3e6), shaped(3e6)});
  loop.run(2s, 0.5 * payloadRate(6e6));
  ASSERT_GT(loop.feedbackSeen.size(), 20U);
  const auto accepted = loop.stripe()["feedback"]["accepted"].get<std::uint64_t>();
  const auto stale = loop.stripe()["feedback"]["stale"].get<std::uint64_t>();
  // The oldest FEEDBACK again, and the newest: both stale now.
  PacketAuthenticator auth(testKey());
  for (const auto &old : {loop.feedbackSeen.front(), loop.feedbackSeen.back()}) {
    const wire::ParseResult r = wire::parse(old, auth);
    ASSERT_TRUE(r.ok());
    loop.ingress().onFeedback(r.header, r.payload, loop.now());
  }
  EXPECT_EQ(loop.stripe()["feedback"]["accepted"].get<std::uint64_t>(), accepted);
  EXPECT_EQ(loop.stripe()["feedback"]["stale"].get<std::uint64_t>(), stale + 2);
}

TEST(OsrAdaptive, FeedbackClaimingMoreThanWasSentIsClamped) {
  ClosedLoop loop({shaped(3e6), shaped(3e6)});
  loop.run(2s, 0.5 * payloadRate(6e6));
  // A newer FEEDBACK, authenticated, claiming a gigabyte more on path 0.
  PacketAuthenticator auth(testKey());
  const wire::ParseResult last = wire::parse(loop.feedbackSeen.back(), auth);
  ASSERT_TRUE(last.ok());
  wire::Feedback f;
  ASSERT_EQ(wire::parseFeedback(last.payload, f), wire::FeedbackStatus::Ok);
  for (std::size_t i = 0; i < f.count; ++i) {
    f.paths[i].bytes += 1'000'000'000U;
  }
  std::array<std::uint8_t, wire::kMaxFeedbackSize> payload{};
  wire::Header h = last.header;
  h.seq += 1000;
  const std::size_t size = wire::encodeFeedback(f, payload);
  loop.ingress().onFeedback(h, std::span(payload).first(size), loop.now());
  EXPECT_GE(loop.stripe()["feedback"]["clamped"].get<std::uint64_t>(), 1U);
  EXPECT_LT(loop.path(0)["measured_rate"].get<double>(), 10e6);
}

TEST(OsrAdaptive, WithoutFeedbackTheStripeCarriesOnByItsProbes) {
  ClosedLoop loop({shaped(3e6), shaped(3e6)});
  const double load = 0.6 * payloadRate(6e6);
  loop.run(2s, load);
  loop.dropBack = [](std::span<const std::uint8_t> d) {
    return d.size() > wire::kOverhead &&
           d[wire::offset::kType] == static_cast<std::uint8_t>(wire::PacketType::Feedback);
  };
  loop.run(1s, load);
  EXPECT_FALSE(loop.path(0)["feedback"].get<bool>());
  EXPECT_EQ(loop.stripe()["k"], 2) << "no path is taken out for lack of FEEDBACK";
  EXPECT_GT(deliveredOver(loop, 2s, load), 0.98);
}

} // namespace
} // namespace nvbox::osr
