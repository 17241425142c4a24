// OracleSignaling — the ingress's side of paper 4.1 steps 1–3: ask the path
// oracle for relays, set up tunnels to them, keep them good.
//
// What it does, per stripe with relays=oracle:
//   1. QUERY the oracle (src = this router, dst = the stripe's egress, the
//      stripe's objective) for k + 4 + (recently failed) candidates;
//   2. for the best k candidates not failed recently: HELLO to each relay's
//      tunnel endpoint with a fresh nonce; a matching HELLO_ACK (same nonce,
//      signed as that relay, naming this router) adds the path to the
//      stripe (Ingress::addPath), weighted by the answer's rate;
//   3. follow the paths: a path that goes down (PathMonitor) or never comes
//      up within UP_TIMEOUT is removed at once, its relay is excluded for
//      EXCLUDE, and the oracle is asked again; every REQUERY the oracle is
//      asked anyway, and when its best k are better than the current relays
//      by more than THRESHOLD of the metric (mean delay for delay/disjoint,
//      summed rate for rate) the stripe is re-striped make-before-break: new
//      relays are shaken hands with and added, the replaced ones removed once
//      the new ones are up (or after UP_TIMEOUT). The flow never stops.
// Answers and acks are matched by nonce (an unsolicited or replayed one is
// ignored); queries and hellos that get no reply are retried.
// A stripe is *settled* when its k paths have all come up, none is being
// replaced or shaken hands with, and they go through exactly the k relays
// that the oracle's last two answers both ranked best, counting relays this
// side excluded: the first measurements are few and noisy, and a relay
// excluded after a failed start but ranked best again is not settled for
// (its exclusion ends, a re-query re-stripes to it).
//
// Parameters: oracle endpoint, self endpoint, REQUERY, THRESHOLD;
// UP_TIMEOUT 3 s, EXCLUDE 15 s, reply timeout 1 s. Counters per stripe:
// queries, answers, hellos sent / acked / timed out, paths failed, restripes;
// and whether it is settled.
// Threading: the daemon's thread. Control path (allocates; never throws
// out of its noexcept entry points).
#pragma once

#include "ingress.hpp"
#include "osr/oracle_wire.hpp"
#include "osrd_config.hpp"
#include "udp_socket.hpp"

#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace nvbox::osr {

class OracleSignaling {
public:
  struct Config {
    Endpoint oracle;
    Endpoint self;
    Nanos requery = std::chrono::seconds(5);
    double threshold = 0.2;
    Nanos upTimeout = std::chrono::seconds(3);
    Nanos exclude = std::chrono::seconds(15);
    Nanos replyTimeout = std::chrono::seconds(1);
  };

  // `socket` is the control channel socket (not the tunnel socket).
  OracleSignaling(const OverlayKey &key, const Config &config, UdpSocket &socket, Ingress &ingress,
                  const std::vector<StripeSpec> &stripes);

  // The control socket is readable. now: CLOCK_MONOTONIC, wall: CLOCK_REALTIME.
  void onReadable(Nanos now, Nanos wall) noexcept;
  void tick(Nanos now, Nanos wall) noexcept;
  // For the reports of PeerProber, which share the socket.
  PacketBatch &out() { return *tx_; }
  void flush() noexcept;

  [[nodiscard]] nlohmann::json status() const;

private:
  struct Hello {
    Endpoint relay;
    std::uint64_t nonce = 0;
    Nanos sent{};
    std::uint64_t rate = 0;
  };
  struct Path {
    PathId id = 0;
    Endpoint relay;
    Nanos added{};
    std::uint64_t wentDown = 0;
    bool wasUp = false;
    bool retiring = false;
    Nanos retireSince{};
  };
  struct Stripe {
    StripeSpec spec;
    std::optional<std::uint64_t> queryNonce;
    Nanos querySent{};
    std::optional<Nanos> lastQuery;
    bool queryNow = true;
    std::vector<Hello> hellos;
    std::vector<Path> paths;
    std::vector<std::pair<Endpoint, Nanos>> excluded; // relay, until
    std::string lastError;
    nlohmann::json lastAnswer;
    std::vector<Endpoint> ranked; // the last answer's best k, excluded relays too
    std::uint64_t sameRanked = 0; // answers in a row that ranked the same k best
    std::uint64_t queries = 0, answers = 0, hellosSent = 0, hellosAcked = 0, helloTimeouts = 0,
                  failed = 0, restripes = 0;
  };

  void tickStripe(Stripe &s, Nanos now, Nanos wall);
  void onAnswer(Stripe &s, const oracle::Answer &a, Nanos now, Nanos wall);
  void onHelloAck(const oracle::Message &m, Nanos now, Nanos wall);
  void sendQuery(Stripe &s, Nanos now, Nanos wall);
  void sendHello(Stripe &s, const Endpoint &relay, std::uint64_t rate, Nanos now, Nanos wall);
  [[nodiscard]] bool isExcluded(const Stripe &s, const Endpoint &relay) const;
  void exclude(Stripe &s, const Endpoint &relay, Nanos now);
  [[nodiscard]] static bool settled(const Stripe &s);

  OverlayKey key_;
  Config config_;
  UdpSocket &socket_;
  Ingress &ingress_;
  std::vector<Stripe> stripes_;
  std::unique_ptr<PacketBatch> rx_ = std::make_unique<PacketBatch>();
  std::unique_ptr<PacketBatch> tx_ = std::make_unique<PacketBatch>();
  std::int64_t lastWall_ = 0;
  std::uint64_t rejected_ = 0;
  std::uint64_t unmatched_ = 0;
};

} // namespace nvbox::osr
