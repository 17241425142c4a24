// PeerProber under an injected clock: a train relayed back after a known
// round trip must be reported to the oracle as half that RTT, in
// microseconds (wire version 3 carries send times in µs; a units slip here
// once reported 15 ms as 15 µs and the oracle ranked every relay alike).
#include "peer_prober.hpp"
#include "udp_socket.hpp"

#include "osr/oracle_wire.hpp"
#include "osr/wire.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <vector>

namespace nvbox::osr {
namespace {

using std::chrono::milliseconds;

const Endpoint kSelf = *Endpoint::parse("10.0.0.1:7400");
const Endpoint kPeer = *Endpoint::parse("10.0.0.2:7400");
const Endpoint kOracle = *Endpoint::parse("10.0.0.9:7500");

// Sends one round at `sent` and returns every probe at `back`.
void roundTrip(PeerProber &prober, const OverlayKey &key, Nanos sent, Nanos back) {
  ASSERT_TRUE(prober.due(sent));
  PacketBatch batch;
  EXPECT_FALSE(prober.send(sent, batch));
  ASSERT_EQ(batch.size(), PeerProber::kTrain);
  PacketAuthenticator auth(key);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const auto r = wire::parse(batch.data(i), auth);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.header.dst, kSelf); // the peer relays it back to us
    prober.onReturn(r.header, batch.data(i).size(), back + milliseconds(i));
  }
}

TEST(PeerProber, ReportsHalfTheSmallestRoundTripInMicroseconds) {
  const auto key = OverlayKey::generate();
  PeerProber prober(key, kSelf, {kPeer}, milliseconds(1000), "host1");
  const Nanos t0 = milliseconds(5'000);
  roundTrip(prober, key, t0, t0 + milliseconds(30));
  EXPECT_EQ(prober.status()[0]["delay_us"], 15'000);
  // A slower train does not raise it: the path, not the moment.
  roundTrip(prober, key, t0 + milliseconds(1000), t0 + milliseconds(1090));
  EXPECT_EQ(prober.status()[0]["delay_us"], 15'000);

  ASSERT_TRUE(prober.due(t0 + milliseconds(2000))); // settles the round
  PacketBatch out;
  ASSERT_EQ(prober.report(kOracle, 1'000'000'000, out), 1U);
  const auto m = oracle::parse(out.data(0), key);
  ASSERT_TRUE(m.ok());
  const auto report = oracle::decodeReport(m);
  ASSERT_EQ(report.count(), 1U);
  EXPECT_EQ(report.entry(0).peer, kPeer);
  EXPECT_EQ(report.entry(0).delay_us, 15'000U);
  EXPECT_EQ(report.entry(0).loss, 0);
  EXPECT_GT(report.entry(0).rate, 0U);
}

} // namespace
} // namespace nvbox::osr
