// Osrd — the One-hop Source Router daemon: wires the stages, holds none of
// their logic (ns-3 style: mechanism in Ingress/Egress/ResequencingBuffer/
// StripeScheduler/PathMonitor, assembly here).
//
// Every datagram on the tunnel socket is authenticated with the overlay key
// before anything else is read (wire::parse); failures are dropped and
// counted by reason. Then:
//   - addressed to this router: DATA → Egress, PROBE → Egress (a sample) and
//     a PROBE_REPLY back through the relay it came from, PROBE_REPLY and
//     FEEDBACK → Ingress;
//   - addressed elsewhere: relayed unchanged to its destination (the one
//     intermediate hop of One-hop Source Routing).
// Packets read from the TUN device go to Ingress, TCP super-packets whole
// (TsoSplitter, Whole mode, checks them) when the device has offloads
// (--offload); Ingress cuts them into parts. Egress rebuilds them and
// coalesces what it writes back (GroCoalescer), and sends each stripe's
// ingress its FEEDBACK after every receive batch and tick. Datagrams with the oracle
// magic on the tunnel socket are handshakes for HelloResponder; loop probes
// (flow kMeasureFlow) coming home go to PeerProber. With --oracle, a second
// UDP socket (the control channel) carries PeerProber's REPORTs and
// OracleSignaling's QUERY/ANSWER and HELLO/HELLO_ACK (docs/oracle.md).
//
// Parameters: OsrdConfig. Counters: rx/tx datagrams, relayed, rejected per
// ParseStatus, send drops; the TUN offloads' (splitter and coalescer); the
// stages' own counters; all in status().
// Threading: one thread runs everything (the event loop).
#pragma once

#include "control_server.hpp"
#include "delay_line.hpp"
#include "egress.hpp"
#include "event_loop.hpp"
#include "hello_responder.hpp"
#include "ingress.hpp"
#include "oracle_signaling.hpp"
#include "osrd_config.hpp"
#include "peer_prober.hpp"
#include "tun_device.hpp"
#include "udp_socket.hpp"

#include "osr/packet_authenticator.hpp"
#include "osr/tso_splitter.hpp"

#include <array>
#include <memory>
#include <set>
#include <vector>

namespace nvbox::osr {

class Osrd {
public:
  explicit Osrd(const OsrdConfig &config);
  void run() { loop_.run(); }
  void stop() noexcept { loop_.stop(); }

  [[nodiscard]] nlohmann::json status() const;

private:
  void onTunnel() noexcept;
  void onTun() noexcept;
  void onTick() noexcept;
  // Arms the playout alarm for the egress's next held part, if earlier.
  void armPlayout() noexcept;
  void onPlayout() noexcept;
  // The stripe has room again, or not yet (Ingress::holdUntil).
  void onHoldEnd() noexcept;
  void refreshLocalAddresses();
  [[nodiscard]] bool isLocal(const Endpoint &ep) const noexcept;
  nlohmann::json control(const nlohmann::json &request);
  void flush() noexcept;
  void onOracleTick(Nanos now) noexcept;
  [[nodiscard]] nlohmann::json offloadStatus() const;

  // Segments of what the TUN device gave, on their way to Ingress.
  class TunSegments final : public TsoSink {
  public:
    explicit TunSegments(Osrd &osrd) : osrd_(osrd) {}
    void segment(std::span<const std::uint8_t> packet, std::uint16_t mss) noexcept override;
    Nanos now{};

  private:
    Osrd &osrd_;
  };

  OsrdConfig config_;
  // Verifies every tunnel datagram and tags the probe replies.
  PacketAuthenticator auth_;
  Nanos started_; // for the uptime in status: it survives a save/restore
  EventLoop loop_;
  UdpSocket socket_;
  TunDevice tun_;
  Ingress ingress_;
  Egress egress_;
  std::unique_ptr<ControlServer> control_;
  std::unique_ptr<DelayLine> delayLine_; // only with --relay-delay
  HelloResponder hello_;
  std::unique_ptr<UdpSocket> oracleSocket_; // only with --oracle
  std::unique_ptr<PeerProber> prober_;      // only with --oracle
  std::unique_ptr<OracleSignaling> signaling_;
  Nanos lastSignal_{};
  std::unique_ptr<PacketBatch> rx_ = std::make_unique<PacketBatch>();
  std::unique_ptr<PacketBatch> tx_ = std::make_unique<PacketBatch>();
  // One TUN read: a packet, or a TCP super-packet of up to 64 KiB with
  // offloads (allocated once).
  std::vector<std::uint8_t> tunBuf_;
  TsoSplitter splitter_;
  TunSegments tunSegments_{*this};
  std::set<std::uint32_t> localAddrs_;
  int playoutAlarm_ = -1;
  int holdAlarm_ = -1;
  bool tunHeld_ = false;              // TUN reads paused: the stripe is full
  std::optional<Nanos> playoutArmed_; // when the alarm fires, if armed
  Nanos lastResize_{};
  Nanos lastAddrRefresh_{};

  struct Counters {
    std::uint64_t rx = 0;
    std::uint64_t tx = 0;
    std::uint64_t relayed = 0;
    std::uint64_t sendDrops = 0;
    std::uint64_t tunPackets = 0;
    std::uint64_t tunUnrouted = 0;
    std::uint64_t badProbes = 0; // authenticated, but no valid ProbeInfo
    std::uint64_t tunHolds = 0;  // times TUN reads paused for a full stripe
    std::array<std::uint64_t, wire::kParseStatusCount> rejected{};
  } counters_;
};

// CLOCK_MONOTONIC as Nanos.
Nanos monotonicNow() noexcept;
// CLOCK_REALTIME as Nanos since the epoch (timestamps of oracle messages).
Nanos realtimeNow() noexcept;

} // namespace nvbox::osr
