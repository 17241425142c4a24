// Egress — the receiving end of stripes: parts in, the stream out in order,
// and FEEDBACK back to each stripe's ingress.
//
// What it does: keeps per flow (created on the flow's first authenticated
// part or probe, at most kMaxFlows) a FeedbackMeter, a PlayoutClock and,
// from its first part on, a ResequencingBuffer and a SegmentAssembler. Parts
// are released in sequence order into the assembler, which rebuilds the
// segments (TCP super-packets or plain packets) and hands them on: plain
// packets through a GroCoalescer when the TUN device does TSO, super-packets
// straight to the device — or cut into segments by a TsoSplitter when the
// device cannot take them. Gaps are declared lost as soon as the meter
// shows that no path can still deliver them (every live path has delivered
// later parts: paths are FIFO), else by the gap timeout on a timer.
//
// Sizing: when the buffer size N or the gap timeout was not configured, it
// sizes them for each flow from what it measures per path: the arrival rate
// and the one-way delay relative to the fastest path (transits share one
// sender clock, so their differences are meaningful even between
// unsynchronised hosts), through ResequencingBuffer::sizeFor, re-sizing once
// a second as they change. Rates enter as a decaying peak (×0.9 a second); N
// grows at once to the estimate and shrinks by at most 1/16 a second: sizing
// from the last second alone would shrink the buffer when losses slow TCP
// down, causing more losses — a spiral to a useless N. A path's delay is its
// largest one-way delay in the window (queueing included) against the
// smallest of the fastest path: a part held up in a queue must not be
// declared lost by the gap timeout. The gap timeout follows the estimate the
// same way: up at once, down by 1/16 a second.
// Evidence beats the estimate, at the part that shows it: an overflow loss
// grows N by half at once, and a part arriving after its gap was declared
// lost by the timeout (too_old after timeout losses) grows the gap timeout by
// half at once; after either, neither shrinks for kHoldAfterLoss.
//
// Playout (unless disabled): a part that crossed faster than the flow's
// slowest path is held in the buffer until it would have crossed that path;
// see PlayoutClock for why TCP needs this over paths of unequal delay.
// Probes feed the clock too (they reach the egress before the first data
// part, so a connection's first packets are already held). Holds are
// released by expire(), which the daemon calls at nextRelease().
//
// An EXPRESS part (a pure TCP ACK sent outside its flow's sequence) is
// written at once: no buffer, no hold; it is a transit sample like a probe.
//
// FEEDBACK: sendFeedback() sends each flow's due FEEDBACK (FeedbackMeter) to
// its ingress, through up to two relays.
//
// flush() writes what the coalescer holds and must be called at the end of
// every receive batch and after expire().
//
// Parameters: the configured N and timeout (optional), the part size bound,
// playout on or off, the playout's SILENCE.
// Counters per flow: the ResequencingCounters, the SegmentCounters, per
// path parts, bytes, delay, queue, lost and playout hold, FEEDBACKs sent;
// globally: tun_write_errors, flows_refused, express; the coalescer's
// GroCounters.
// Threading: the daemon's single data-path thread.
#pragma once

#include "osr/feedback_meter.hpp"
#include "osr/gro_coalescer.hpp"
#include "osr/packet_authenticator.hpp"
#include "osr/playout_clock.hpp"
#include "osr/resequencing_buffer.hpp"
#include "osr/segment_assembler.hpp"
#include "osr/tso_splitter.hpp"
#include "osr/wire.hpp"
#include "tun_device.hpp"
#include "udp_socket.hpp"

#include <nlohmann/json.hpp>

#include <array>
#include <map>
#include <memory>
#include <optional>

namespace nvbox::osr {

class Egress : private GroSink {
public:
  static constexpr std::size_t kMaxFlows = 64;

  Egress(TunWriter &tun, std::optional<std::size_t> buffer, std::optional<Nanos> gapTimeout,
         std::size_t maxPartBytes, bool playout, Nanos pathSilence);
  ~Egress() override;
  Egress(const Egress &) = delete;
  Egress &operator=(const Egress &) = delete;

  void onData(const wire::Header &header, std::span<const std::uint8_t> payload,
              const Endpoint &from, Nanos now) noexcept;
  // A path probe of an ingress that stripes to us.
  void onProbe(const wire::Header &header, const wire::ProbeInfo &info, const Endpoint &from,
               Nanos now) noexcept;
  // Playout releases and gap timeouts; call often (every few ms), and at
  // nextRelease().
  void expire(Nanos now) noexcept;
  // The earliest time a held part comes due, over all flows.
  [[nodiscard]] std::optional<Nanos> nextRelease() const noexcept;
  // Writes the coalesced run held back, if any.
  void flush() noexcept;
  // Queues each flow's due FEEDBACK.
  void sendFeedback(Nanos now, PacketAuthenticator &auth, PacketBatch &out) noexcept;
  // nullptr when the TUN device does not take super-packets.
  [[nodiscard]] const GroCoalescer *coalescer() const { return gro_.get(); }
  // Auto-sizing; call about once a second.
  void resize(Nanos now);
  // Applies a new N (and timeout) to every flow; nullopt returns to auto.
  void setBuffer(std::optional<std::size_t> buffer, std::optional<Nanos> gapTimeout);

  [[nodiscard]] nlohmann::json status(Nanos now) const;

private:
  struct Flow;
  // What the coalescer and the splitter write: the TUN device.
  class TunOut final : public GroSink, public TsoSink {
  public:
    explicit TunOut(Egress &egress) : egress_(egress) {}
    void write(const VirtioNetHdr &hdr, std::span<const std::uint8_t> packet) noexcept override;
    void segment(std::span<const std::uint8_t> packet, std::uint16_t mss) noexcept override;

  private:
    Egress &egress_;
  };

  // A flow's state, created on first use; nullptr past kMaxFlows.
  Flow *flow(std::uint32_t flowId, Nanos now) noexcept;
  // Grows N or the gap timeout of an auto-sized flow after the part just
  // pushed showed them too small (see the header comment).
  void adapt(Flow &flow, Nanos now) noexcept;
  // What the assemblers emit.
  void write(const VirtioNetHdr &hdr, std::span<const std::uint8_t> packet) noexcept override;

  TunWriter &tun_;
  std::optional<std::size_t> buffer_;
  std::optional<Nanos> gapTimeout_;
  std::size_t maxPartBytes_;
  std::map<std::uint32_t, std::unique_ptr<Flow>> flows_;
  bool playout_;
  Nanos pathSilence_; // PlayoutClock's and FeedbackMeter's SILENCE
  std::unique_ptr<GroCoalescer> gro_;
  // Without TSO on the device: super-packets are cut here, in a copy.
  TsoSplitter splitter_{0xFFFF};
  std::vector<std::uint8_t> scratch_;
  TunOut tunOut_{*this};
  std::uint64_t tunWriteErrors_ = 0;
  std::uint64_t express_ = 0;
  std::uint64_t flowsRefused_ = 0;
};

} // namespace nvbox::osr
