// PeerProber(SELF, PEERS, INTERVAL, TRAIN) — measures this OSR's paths to
// its overlay peers for the path oracle.
//
// What it does: every INTERVAL, for each peer, sends a train of TRAIN loop
// probes: PROBE packets (flow kMeasureFlow, padded to kProbeBytes) addressed
// to this router itself and sent to the peer, which relays them back like
// any tunnel packet (the one hop of OSR) — so a measurement covers the peer
// *as a relay*, its forwarding and its --relay-delay included, and needs
// nothing new from the peer. From the returns of a train:
//   delay: RTT of the train's first packet / 2, the smallest of the last
//          kDelayWindow trains (the path's propagation delay, not its
//          current queue: see Peer::rttUs);
//   rate:  dispersion, (received - 1) · datagram bytes / (last - first
//          arrival) — the loop's bottleneck; EWMA, gain 1/4; 0 until
//          a train returns at least 3 packets;
//   loss:  unreturned / sent over the last 8 trains.
// A peer none of whose last 8 trains returned anything reports loss 100 %.
// report() builds the REPORT datagrams (at most kEntriesPerReport peers
// each) into a batch for the oracle.
//
// Parameters: self endpoint (the return address and identity), peers,
// INTERVAL, TRAIN (kTrain). Counters per peer: trains sent, probes returned.
// Threading: the daemon's thread. Buffers are allocated at construction;
// sending and receiving allocate nothing.
#pragma once

#include "osr/endpoint.hpp"
#include "osr/oracle_wire.hpp"
#include "osr/overlay_key.hpp"
#include "osr/packet_authenticator.hpp"
#include "osr/wire.hpp"
#include "osrd_config.hpp"
#include "udp_socket.hpp"

#include <nlohmann/json.hpp>

#include <array>
#include <string>
#include <vector>

namespace nvbox::osr {

class PeerProber {
public:
  static constexpr std::uint32_t kTrain = 8;
  static constexpr std::size_t kProbeBytes = 1000; // payload of a probe
  static constexpr std::size_t kWindow = 8;        // trains in the loss window
  static constexpr std::size_t kDelayWindow = 32;  // trains in the delay window
  static constexpr std::size_t kEntriesPerReport = 90;

  PeerProber(const OverlayKey &key, Endpoint self, std::vector<Endpoint> peers, Nanos interval,
             std::string group);

  // True when INTERVAL has passed: the round before is settled (report()
  // now sends its results) and a new round of trains is to be sent.
  bool due(Nanos now) noexcept;
  // Sends the current round's trains that fit in `out` (whole trains only);
  // true if some remain (flush `out` and call again).
  bool send(Nanos now, PacketBatch &out) noexcept;
  // A loop probe that came back (PROBE, flow kMeasureFlow, addressed here).
  void onReturn(const wire::Header &header, std::size_t datagramBytes, Nanos now) noexcept;
  // Queues REPORT datagrams to `oracle` into `out`; wallNs = CLOCK_REALTIME.
  // Returns the number of datagrams queued.
  std::size_t report(const Endpoint &oracle, std::int64_t wallNs, PacketBatch &out) noexcept;

  [[nodiscard]] nlohmann::json status() const;
  [[nodiscard]] std::size_t peers() const { return peers_.size(); }

private:
  struct Peer {
    Endpoint endpoint;
    // the train in flight
    std::uint32_t round = 0;
    std::uint32_t received = 0;
    Nanos first{};
    Nanos last{};
    std::uint64_t bytes = 0; // datagram bytes of the returns after the first
    bool firstRtt = false;
    // results
    std::array<std::uint8_t, kWindow> returned{}; // per recent train
    std::size_t trains = 0;
    // One-way delay: half the smallest RTT of the last kDelayWindow trains,
    // so that a train delayed by queueing or a busy CPU does not rank a
    // peer (the oracle's delay objective is about the path, not the
    // moment). The window is long because a stripe's own traffic fills the
    // queues of the relays it uses: with a short one, a bulk transfer made
    // its relays look slower than idle ones within 8 s and the ingress
    // re-striped away from them, then back (seen in CI: 1/2 ms relays
    // traded for a 15 ms one mid-transfer).
    std::array<double, kDelayWindow> rttUs{}; // 0: no sample
    std::size_t rttSamples = 0;
    double delayUs = -1;
    double rate = 0;
    std::uint64_t trainsSent = 0;
    std::uint64_t returns = 0;
  };
  void settle(Peer &p) noexcept;

  OverlayKey key_;           // the oracle reports' BLAKE2b
  PacketAuthenticator auth_; // the probes
  Endpoint self_;
  std::vector<Peer> peers_;
  Nanos interval_;
  std::string group_;
  std::optional<Nanos> lastRound_;
  std::uint32_t round_ = 0;
  std::size_t cursor_ = 0; // next peer to send a train to
  std::array<std::uint8_t, kProbeBytes> payload_{};
  std::vector<oracle::ReportEntry> entries_;
  std::int64_t lastWall_ = 0;
};

} // namespace nvbox::osr
