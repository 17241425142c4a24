// Egress — the receiving end of stripes: parts in, the stream out in order.
//
// What it does: keeps one ResequencingBuffer per flow (created on the flow's
// first authenticated part, at most kMaxFlows), releases parts in sequence
// order to the TUN device, and expires gaps on a timer. When the buffer size
// N or the gap timeout was not configured, it sizes them for each flow from
// what it measures per path: the arrival rate and the one-way delay relative
// to the fastest path (send timestamps share one sender clock, so their
// differences are meaningful even between unsynchronised hosts), through
// ResequencingBuffer::sizeFor, re-sizing once a second as they change. Rates
// enter as a decaying peak (×0.9 a second); N grows at once to the estimate
// and shrinks by at most 1/16 a second: sizing from the last second alone
// would shrink the buffer when losses slow TCP down, causing more losses — a
// spiral to a useless N. A path's delay is its largest one-way delay in the
// window (queueing included) against the smallest of the fastest path: a part
// held up in a queue must not be declared lost by the gap timeout. The
// gap timeout follows the estimate the same way: up at once, down by 1/16 a
// second.
// Evidence beats the estimate, at the part that shows it: an overflow loss
// grows N by half at once, and a part arriving after its gap was declared
// lost by the timeout (too_old after timeout losses) grows the gap timeout by
// half at once; after either, neither shrinks for kHoldAfterLoss. Every
// overflow loses the slow paths' parts in flight, and TCP halves its window
// for each: waiting for the next once-a-second re-size costs a loss per
// round trip.
//
// Playout (unless disabled): every flow has a PlayoutClock, fed by its data
// parts and by the ingress's path probes (which reach the egress before the
// first data part, so a connection's first packets are already held). A
// part that crossed faster than the flow's slowest path is held in the
// buffer until it would have crossed that path; see PlayoutClock for why
// TCP needs this over paths of unequal delay. Holds are released by
// expire(), which the daemon calls at nextRelease().
//
// An EXPRESS part (wire.hpp: a pure TCP ACK sent outside its flow's
// sequence) is written at once: no buffer, no hold; it only gives the
// flow's PlayoutClock a transit sample, as a probe does.
//
// When the TUN device does TSO (TunDevice::tso()), released packets go
// through a GroCoalescer, so that consecutive segments of a TCP flow reach
// the kernel as one super-packet; flush() writes what it holds and must be
// called at the end of every receive batch and after expire().
//
// Parameters: the configured N and timeout (optional), the part size bound,
// playout on or off.
// Counters per flow: the ResequencingCounters plus per-path parts, delay and
// playout hold; globally: tun_write_errors, flows_refused, express (parts
// written at once); the coalescer's GroCounters.
// Threading: the daemon's single data-path thread.
#pragma once

#include "osr/gro_coalescer.hpp"
#include "osr/playout_clock.hpp"
#include "osr/resequencing_buffer.hpp"
#include "osr/wire.hpp"
#include "tun_device.hpp"

#include <nlohmann/json.hpp>

#include <array>
#include <map>
#include <memory>
#include <optional>

namespace nvbox::osr {

class Egress : private ResequencingSink, private GroSink {
public:
  static constexpr std::size_t kMaxFlows = 64;

  Egress(TunDevice &tun, std::optional<std::size_t> buffer, std::optional<Nanos> gapTimeout,
         std::size_t maxPartBytes, bool playout, Nanos pathSilence);

  void onData(const wire::Header &header, std::span<const std::uint8_t> payload,
              Nanos now) noexcept;
  // A path probe of an ingress that stripes to us: a transit sample.
  void onProbe(const wire::Header &header, Nanos now) noexcept;
  // Playout releases and gap timeouts; call often (every few ms), and at
  // nextRelease().
  void expire(Nanos now) noexcept;
  // The earliest time a held part comes due, over all flows.
  [[nodiscard]] std::optional<Nanos> nextRelease() const noexcept;
  // Writes the coalesced run held back, if any.
  void flush() noexcept;
  // nullptr when the TUN device does not take super-packets.
  [[nodiscard]] const GroCoalescer *coalescer() const { return gro_.get(); }
  // Auto-sizing; call about once a second.
  void resize(Nanos now);
  // Applies a new N (and timeout) to every flow; nullopt returns to auto.
  void setBuffer(std::optional<std::size_t> buffer, std::optional<Nanos> gapTimeout);

  [[nodiscard]] nlohmann::json status(Nanos now) const;

private:
  struct PathStats {
    std::uint64_t parts = 0;
    std::uint64_t bytes = 0;
    std::uint64_t windowBytes = 0;      // since the last resize()
    std::optional<std::int64_t> owdMin; // min(arrival - send), this window
    std::optional<std::int64_t> owdMax; // max(arrival - send), this window
    double rate = 0;                    // bytes/s over the last window
    double peakRate = 0;                // decaying maximum of `rate`
    std::int64_t owd = 0;               // relative one-way delay, ns
  };
  struct Flow {
    std::unique_ptr<ResequencingBuffer> buffer;
    std::array<PathStats, kMaxPaths> paths{};
    Nanos windowStart{};
    Nanos gapTimeout{};
    std::uint64_t overflowSeen = 0; // lost_overflow already acted on
    std::uint64_t tooOldSeen = 0;   // too_old already acted on
    std::uint64_t timeoutSeen = 0;  // lost_timeout at the last gap growth
    Nanos holdUntil{};              // no shrinking before this
    bool autoSized = true;
    PlayoutClock *playout = nullptr; // in clocks_, found once: not per part
  };

  // The flow's clock, created on first use; nullptr past kMaxFlows.
  PlayoutClock *clock(std::uint32_t flowId) noexcept;
  // Grows N or the gap timeout of an auto-sized flow after the part just
  // pushed showed them too small (see the header comment).
  void adapt(Flow &flow, Nanos now) noexcept;

  void deliver(const Part &part) override;
  void lost(std::uint32_t firstSeq, std::uint32_t count, LossCause cause) override;
  void write(const VirtioNetHdr &hdr, std::span<const std::uint8_t> packet) noexcept override;

  TunDevice &tun_;
  std::optional<std::size_t> buffer_;
  std::optional<Nanos> gapTimeout_;
  std::size_t maxPartBytes_;
  std::map<std::uint32_t, Flow> flows_;
  bool playout_;
  Nanos pathSilence_; // PlayoutClock's SILENCE
  // Apart from flows_: probes come before a flow's first part, and must not
  // allocate its buffer.
  std::map<std::uint32_t, PlayoutClock> clocks_;
  std::unique_ptr<GroCoalescer> gro_;
  std::uint64_t tunWriteErrors_ = 0;
  std::uint64_t express_ = 0;
  std::uint64_t flowsRefused_ = 0;
};

} // namespace nvbox::osr
