// Ingress — the sending end of stripes: application packets in, parts out.
//
// What it does: classifies each packet read from the TUN device by its IPv4
// destination to the stripe whose prefix holds it, and sends it as one part
// of the stripe's current segment: a segment is k consecutive packets of the
// flow, k = the stripe's active paths when the segment starts, and the
// stripe's StripeScheduler picks the path of each part. Each part carries
// the flow's next sequence number and the egress as its destination, and goes
// to the path's relay, which forwards it (a relay equal to the egress is a
// direct path). It also probes every path through its relay to the egress and
// back (PathMonitor), takes dead paths out of the stripe and puts them back.
// A pure TCP ACK (isPureTcpAck) of a stripe with acks=express goes instead
// as an EXPRESS part, outside the flow's sequence, on the up path with the
// smallest minimum RTT among those that answered a probe within
// kFreshProbes probe intervals plus their RTT (wire.hpp; docs/osrd.md,
// ACKs). All ACKs take one path, so a dying path must lose them for less
// than the DOWN_AFTER it takes to leave the stripe.
//
// Parameters: the overlay key, the stripes (StripeSpec), probe timing.
// Counters per stripe: packets, bytes, no_path (dropped: no path up),
// express (pure ACKs sent express, within packets); per path: parts, bytes
// (striped), express, probe health.
// Threading: the daemon's single data-path thread.
#pragma once

#include "osr/overlay_key.hpp"
#include "osr/packet_authenticator.hpp"
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

  Ingress(const OverlayKey &key, Endpoint self, const PathMonitor::Config &probing);

  // Adds a stripe; throws std::invalid_argument on a duplicate name or flow.
  void addStripe(const StripeSpec &spec, Nanos now);

  // Sends one application packet; false when no stripe or path takes it.
  bool send(std::span<const std::uint8_t> packet, Nanos now, PacketBatch &out) noexcept;

  // Sends due probes and applies path timeouts.
  void tick(Nanos now, PacketBatch &out) noexcept;
  // A PROBE_REPLY addressed to this router.
  void onProbeReply(const wire::Header &header, Nanos now) noexcept;

  // Control operations; throw std::invalid_argument naming what is wrong.
  PathId addPath(const std::string &stripe, const Endpoint &relay, std::uint64_t rate, Nanos now);
  void removePath(const std::string &stripe, PathId path);
  // A path's rate (bytes/s; 0: unknown, weighs like the default), which the
  // weighted and delay-aware schedulers split by; the path keeps its id.
  void setRate(const std::string &stripe, PathId path, std::uint64_t rate);
  void setPolicy(const std::string &stripe, StripePolicy policy);

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
    std::uint64_t rate = 0;
    std::uint64_t express = 0;
  };
  struct Stripe {
    StripeSpec spec;
    StripeScheduler scheduler;
    PathMonitor monitor;
    std::array<std::optional<Path>, kMaxPaths> paths{};
    std::uint32_t nextSeq = 0;
    std::uint32_t segment = 0;
    std::uint8_t partIndex = 0;
    std::uint8_t k = 0; // of the current segment
    std::uint64_t packets = 0;
    std::uint64_t bytes = 0;
    std::uint64_t noPath = 0;
    std::uint64_t failovers = 0;
    std::uint64_t express = 0;
  };

  Stripe *find(const std::string &name);
  Stripe *byFlow(std::uint32_t flow) noexcept;
  static std::uint8_t activePaths(const Stripe &s) noexcept;
  // The up path with the smallest minimum RTT, fresh ones first (see the
  // header comment; any up path before RTTs are known); nullopt when none is
  // up.
  std::optional<PathId> fastestPath(const Stripe &s, Nanos now) const noexcept;
  bool sendExpress(Stripe &s, std::span<const std::uint8_t> packet, Nanos now,
                   PacketBatch &out) noexcept;
  void syncUp(Stripe &s, PathId id) noexcept;
  void sendProbe(Stripe &s, PathId id, Nanos now, PacketBatch &out) noexcept;

  PacketAuthenticator auth_;
  Endpoint self_;
  PathMonitor::Config probing_;
  std::vector<std::unique_ptr<Stripe>> stripes_;
};

} // namespace nvbox::osr
