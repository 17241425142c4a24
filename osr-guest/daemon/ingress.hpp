// Ingress — the sending end of stripes: application packets in, parts out.
//
// What it does: classifies each packet read from the TUN device (a TCP
// super-packet of up to 64 KiB with its MSS, or any other IP packet) by its
// IPv4 destination to the stripe whose prefix holds it, and sends it as one
// segment: a 4-byte segment header (the MSS; SegmentAssembler) and the
// packet's bytes, cut into parts that fill the paths' MTU (PART_SIZE payload
// bytes each, the last shorter). Each part carries the flow's next sequence
// number, its path's next path sequence number, FIRST/LAST at the segment's
// ends and the egress as its destination, and goes to the path its stripe's
// StripeScheduler picks, through the path's relay (a relay equal to the
// egress is a direct path).
//
// Every path is probed through its relay to the egress and back
// (PathMonitor); a probe also tells the egress what was sent on the path so
// far (wire::ProbeInfo). The egress's FEEDBACK feeds a PathEstimator per
// stripe; with the adaptive scheduler (the default) its measured rates,
// delays and backlogs drive the StripeScheduler (re-synchronised at every
// FEEDBACK). A path leaves the stripe when its probes go unanswered for
// DOWN_AFTER, or at once when the PathEstimator finds it stalled (the
// others deliver, it does not); it is then probed every kUrgentProbe, and
// comes back with its probes.
//
// A pure TCP ACK (isPureTcpAck) of a stripe with acks=express goes instead
// as an EXPRESS part, outside the flow's sequence (wire.hpp; docs/osrd.md,
// ACKs): with the adaptive scheduler on the path where it arrives first
// (the lowest delay, unless that path's queue makes another earlier), with
// the others on the up path with the smallest minimum RTT among those that
// answered a probe within kFreshProbes probe intervals plus their RTT. ACKs
// mostly take one path, so a dying path must lose them for less than the
// DOWN_AFTER it takes to leave the stripe: a stall (above) or the freshness
// rule takes them elsewhere sooner.
//
// Parameters: the overlay key, the stripes (StripeSpec), probe timing,
// PART_SIZE. Counters per stripe: packets, bytes, no_path (dropped: no path
// up), express (pure ACKs sent express, within packets), parts, feedback
// (accepted, stale, clamped, malformed); per path: parts, bytes (striped),
// express, probe health, measured rate, queue, share, lost, stalls.
// Threading: the daemon's single data-path thread.
#pragma once

#include "osr/overlay_key.hpp"
#include "osr/packet_authenticator.hpp"
#include "osr/path_estimator.hpp"
#include "osr/path_monitor.hpp"
#include "osr/stripe_scheduler.hpp"
#include "osr/wire.hpp"
#include "osrd_config.hpp"
#include "udp_socket.hpp"

#include <nlohmann/json.hpp>

#include <array>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace nvbox::osr {

class Ingress {
public:
  static constexpr int kFreshProbes = 2;
  // Probe interval of a path that is down or stalled: it should come back
  // soon after it heals.
  static constexpr Nanos kUrgentProbe = std::chrono::milliseconds(20);
  static constexpr Nanos kHoldBacklog = std::chrono::milliseconds(10);

  Ingress(const OverlayKey &key, Endpoint self, const PathMonitor::Config &probing,
          std::size_t partSize);

  // Adds a stripe; throws std::invalid_argument on a duplicate name or flow.
  void addStripe(const StripeSpec &spec, Nanos now);

  // The parts a packet of `bytes` bytes becomes: the room send() needs in
  // its batch.
  [[nodiscard]] std::size_t partsFor(std::size_t bytes) const noexcept;
  // Sends one application packet (`mss`: a TCP super-packet's MSS, 0 for
  // any other packet); false when no stripe or path takes it, or `out` has
  // less room than partsFor().
  bool send(std::span<const std::uint8_t> packet, std::uint16_t mss, Nanos now,
            PacketBatch &out) noexcept;

  // When the caller should read application packets again: while every
  // path of an adaptive stripe has more than kHoldBacklog queued (the
  // scheduler's model, re-synchronised with the egress's measurements),
  // more packets would only lengthen the paths' queues until they drop.
  // Left unread, the sender's packets wait in the TUN device's queue: the
  // sender sees a longer RTT instead of losses. nullopt: read now.
  // (A full stripe holds back every stripe's packets: they share the device.)
  [[nodiscard]] std::optional<Nanos> holdUntil(Nanos now) const noexcept;

  // Sends due probes and applies path timeouts and stalls.
  void tick(Nanos now, PacketBatch &out) noexcept;
  // A PROBE_REPLY addressed to this router.
  void onProbeReply(const wire::Header &header, Nanos now) noexcept;
  // A FEEDBACK addressed to this router.
  void onFeedback(const wire::Header &header, std::span<const std::uint8_t> payload,
                  Nanos now) noexcept;

  // Control operations; throw std::invalid_argument naming what is wrong.
  PathId addPath(const std::string &stripe, const Endpoint &relay, std::uint64_t rate, Nanos now);
  void removePath(const std::string &stripe, PathId path);
  // A path's declared rate (bytes/s; 0: unknown): what the weighted and
  // delay-aware schedulers split by, and the adaptive one's starting hint.
  void setRate(const std::string &stripe, PathId path, std::uint64_t rate);
  void setPolicy(const std::string &stripe, StripePolicy policy, Nanos now);

  [[nodiscard]] nlohmann::json status(Nanos now) const;

  // The paths of a stripe as OracleSignaling follows them (control path;
  // empty for an unknown stripe).
  struct PathView {
    PathId id = 0;
    Endpoint relay{};
    bool up = false;
    std::uint64_t wentDown = 0;
  };
  [[nodiscard]] std::vector<PathView> paths(const std::string &stripe) const;

private:
  struct Path {
    Endpoint relay;
    std::uint64_t rate = 0; // declared; 0 unknown
    std::uint64_t express = 0;
    std::uint16_t nextPathSeq = 0;
  };
  struct Stripe {
    StripeSpec spec;
    StripeScheduler scheduler;
    PathMonitor monitor;
    PathEstimator estimator;
    std::array<std::optional<Path>, kMaxPaths> paths{};
    std::uint32_t nextSeq = 0;
    std::uint64_t packets = 0;
    std::uint64_t bytes = 0;
    std::uint64_t parts = 0;
    std::uint64_t noPath = 0;
    std::uint64_t failovers = 0;
    std::uint64_t express = 0;
    std::uint64_t feedbackMalformed = 0;
  };

  Stripe *find(const std::string &name);
  Stripe *byFlow(std::uint32_t flow) noexcept;
  // The up path with the smallest minimum RTT, fresh ones first (see the
  // header comment; any up path before RTTs are known); nullopt when none is
  // up.
  std::optional<PathId> fastestPath(const Stripe &s, Nanos now) const noexcept;
  bool sendExpress(Stripe &s, std::span<const std::uint8_t> packet, Nanos now,
                   PacketBatch &out) noexcept;
  // Whether the scheduler may use the path: probes answer and it delivers.
  void syncUp(Stripe &s, PathId id) noexcept;
  // The adaptive scheduler's view of the path, from the PathEstimator.
  void syncMeasured(Stripe &s, PathId id, Nanos now) noexcept;
  void sendProbe(Stripe &s, PathId id, Nanos now, PacketBatch &out) noexcept;
  wire::Header dataHeader(Stripe &s, PathId path, Nanos now) noexcept;

  PacketAuthenticator auth_;
  Endpoint self_;
  PathMonitor::Config probing_;
  std::size_t partSize_;
  std::vector<std::unique_ptr<Stripe>> stripes_;
};

// A clock as the wire carries it: µs, mod 2^32.
inline std::uint32_t wireMicros(Nanos t) noexcept {
  return static_cast<std::uint32_t>(static_cast<std::uint64_t>(t.count()) / 1000);
}

} // namespace nvbox::osr
