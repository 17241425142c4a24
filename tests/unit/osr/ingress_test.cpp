// Ingress, driven with an injected clock: probes leave through a PacketBatch
// and their replies are fed back after a per-path RTT, as the relays and the
// egress would. Checks where pure ACKs go (EXPRESS, on the fastest path that
// answers) and that other packets stay in the stripe.
#include "ingress.hpp"
#include "osrd_config.hpp"

#include <gtest/gtest.h>
#include <sodium.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace nvbox::osr {
namespace {

using std::chrono::milliseconds;

// The lowest-RTT rule for ACKs belongs to the schedulers without feedback;
// the adaptive one's choice is tested in closed loop (adaptive_test.cpp).
const std::string kSpec = "name=fwd,flow=7,dst=10.20.0.0/24,egress=10.9.0.2:7400,"
                          "relays=10.1.1.2:7400+10.1.2.2:7400,scheduler=weighted";

// An IPv4 TCP segment from 10.10.0.1 to 10.20.0.2 with ACK set.
std::vector<std::uint8_t> tcpSegment(std::size_t payload) {
  std::vector<std::uint8_t> p(40 + payload, 0);
  p[0] = 0x45;
  p[2] = static_cast<std::uint8_t>(p.size() >> 8);
  p[3] = static_cast<std::uint8_t>(p.size());
  p[8] = 64;
  p[9] = 6;
  p[12] = 10, p[13] = 10, p[15] = 1;
  p[16] = 10, p[17] = 20, p[19] = 2;
  p[32] = 0x50; // data offset 5
  p[33] = 0x10; // ACK
  return p;
}

class OsrIngress : public ::testing::Test {
protected:
  OsrIngress() {
    std::array<std::uint8_t, OverlayKey::kSize> bytes{};
    bytes.fill(0x5A);
    key_ = OverlayKey::fromBytes(bytes);
    auth_.emplace(*key_);
    ingress_.emplace(*key_, *Endpoint::parse("10.9.0.1:7400"), PathMonitor::Config{}, 1432);
  }

  void start(const std::string &spec) { ingress_->addStripe(parseStripeSpec(spec), now_); }

  // Runs the clock for `span` in 1 ms steps: due probes go out, and each is
  // answered after its path's RTT unless the path is cut.
  void run(Nanos span) {
    const Nanos end = now_ + span;
    for (; now_ < end; now_ += milliseconds(1)) {
      PacketBatch out;
      ingress_->tick(now_, out);
      for (std::size_t i = 0; i < out.size(); ++i) {
        const wire::ParseResult r = wire::parse(out.data(i), *auth_);
        ASSERT_TRUE(r.ok());
        ASSERT_EQ(r.header.type, wire::PacketType::Probe);
        if (!cut_[r.header.path_id]) {
          wire::Header reply = r.header;
          reply.type = wire::PacketType::ProbeReply;
          pending_.push_back({now_ + rtt_[r.header.path_id], reply});
        }
      }
      std::erase_if(pending_, [&](const Pending &p) {
        if (p.at > now_) {
          return false;
        }
        ingress_->onProbeReply(p.reply, now_);
        return true;
      });
    }
  }

  // Sends `packet`; the header of the part it became and the relay it went to.
  std::pair<wire::Header, Endpoint> send(const std::vector<std::uint8_t> &packet) {
    PacketBatch out;
    EXPECT_TRUE(ingress_->send(packet, 0, now_, out));
    EXPECT_EQ(out.size(), 1U);
    const wire::ParseResult r = wire::parse(out.data(0), *auth_);
    EXPECT_TRUE(r.ok());
    return {r.header, out.from(0)};
  }

  struct Pending {
    Nanos at;
    wire::Header reply;
  };
  std::optional<OverlayKey> key_;
  std::optional<PacketAuthenticator> auth_;
  std::optional<Ingress> ingress_;
  Nanos now_{std::chrono::seconds(100)};
  std::array<Nanos, 2> rtt_{milliseconds(40), milliseconds(10)};
  std::array<bool, 2> cut_{};
  std::vector<Pending> pending_;
};

TEST_F(OsrIngress, PureAcksGoExpressOnTheFastestPathAndDataStaysStriped) {
  start(kSpec);
  run(milliseconds(600));
  ASSERT_EQ(ingress_->status(now_)[0]["k"], 2);

  const auto [ack, ackRelay] = send(tcpSegment(0));
  EXPECT_EQ(ack.flags, wire::kFlagFirst | wire::kFlagLast | wire::kFlagExpress);
  EXPECT_EQ(ack.path_id, 1);
  EXPECT_EQ(ackRelay.toString(), "10.1.2.2:7400");
  EXPECT_EQ(ack.flow_id, 7U);
  EXPECT_EQ(ack.seq, 0U) << "the next sequence number, not one of its own";

  // Two data segments: consecutive parts of the stripe, one per path.
  const auto [first, firstRelay] = send(tcpSegment(100));
  const auto [second, secondRelay] = send(tcpSegment(100));
  EXPECT_EQ(first.flags, wire::kFlagFirst | wire::kFlagLast);
  EXPECT_EQ(second.flags, wire::kFlagFirst | wire::kFlagLast);
  EXPECT_EQ(second.seq, first.seq + 1) << "the express ACK took no sequence number";
  EXPECT_NE(first.path_id, second.path_id);

  const auto status = ingress_->status(now_)[0];
  EXPECT_EQ(status["express"], 1);
  EXPECT_EQ(status["packets"], 3);
  EXPECT_EQ(status["paths"][1]["express"], 1);
  EXPECT_EQ(status["paths"][0]["express"], 0);
}

TEST_F(OsrIngress, AcksLeaveAFastPathThatStopsAnsweringBeforeItIsDown) {
  start(kSpec);
  run(milliseconds(600));
  ASSERT_EQ(send(tcpSegment(0)).first.path_id, 1);
  cut_[1] = true;
  run(milliseconds(100));
  EXPECT_EQ(send(tcpSegment(0)).first.path_id, 1) << "one late probe is not yet a dead path";
  run(milliseconds(200));
  const auto status = ingress_->status(now_)[0];
  ASSERT_EQ(status["paths"][1]["up"], true) << "this must happen before DOWN_AFTER";
  const auto [ack, relay] = send(tcpSegment(0));
  EXPECT_EQ(ack.path_id, 0);
  EXPECT_EQ(relay.toString(), "10.1.1.2:7400");
  cut_[1] = false;
  run(milliseconds(300));
  EXPECT_EQ(send(tcpSegment(0)).first.path_id, 1) << "answering again, it is the fastest again";
}

TEST_F(OsrIngress, WithAcksStripedAPureAckIsAnOrdinaryPart) {
  start(kSpec + ",acks=striped");
  run(milliseconds(600));
  const auto [ack, relay] = send(tcpSegment(0));
  EXPECT_EQ(ack.flags, wire::kFlagFirst | wire::kFlagLast);
  EXPECT_EQ(ingress_->status(now_)[0]["express"], 0);
  EXPECT_EQ(ingress_->status(now_)[0]["acks"], "striped");
}

} // namespace
} // namespace nvbox::osr
