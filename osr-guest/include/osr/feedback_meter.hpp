// FeedbackMeter(EPOCH, SILENCE) — what the egress measures of one flow's
// paths, and the FEEDBACK it sends the flow's ingress about them.
//
// What it does: onData() and onProbe() are told of every DATA part and
// PROBE of the flow as it arrives. Per path the meter keeps:
//   - what arrived: payload bytes and parts (cumulative, wrapping at 2^32);
//   - losses: the path sequence numbers that never came. Paths are FIFO
//     (a relay forwards in order), so a part whose path sequence is ahead of
//     the next expected one proves the ones in between lost, and so does a
//     probe that says which path sequence the next part will carry (it was
//     sent after them); a part that comes late after all is taken back;
//   - queueing delay: a part's transit (arrival on our clock minus send time
//     on the ingress's, unwrapped from the 32-bit µs on the wire) above the
//     path's base transit (its least, over about 10 s: WindowedMin); the least
//     and the newest since the last FEEDBACK. The clocks' offset is in every
//     transit alike, so the difference is the queue;
//   - the highest flow sequence number the path has delivered, or that a
//     probe says it has sent past.
// From the last, lostBefore() infers losses for the re-sequencing buffer: a
// sequence number below what EVERY live path has delivered past can no
// longer arrive (paths are FIFO), so the gap is declared lost at once instead
// of at the gap timeout. A path counts as live while it was heard from
// (data or probe) within SILENCE.
//
// FEEDBACK (wire::Feedback) goes to the ingress about once per smallest RTT
// (the probes carry the ingress's minimum RTT; clamped to [kMinInterval,
// kMaxInterval]) while data arrives, and at once — after kLossInterval — when
// a new loss was seen. It echoes the newest ingress send time of the flow
// (the ingress drops a FEEDBACK older than one it has, so replays change
// nothing) and carries EPOCH, drawn by the caller when the flow's state
// began, so that the ingress restarts its differences when we do.
// routes() names where to send it: the relays of the two live paths with
// the smallest base transit, so that one dead path does not silence it.
//
// Parameters: EPOCH, SILENCE (as PlayoutClock's). Counters: per path, as
// above; feedback_sent.
// Threading: not thread-safe; the daemon's data-path thread. Every member
// is noexcept and allocation-free (fixed arrays).
#pragma once

#include "osr/endpoint.hpp"
#include "osr/types.hpp"
#include "osr/windowed_filter.hpp"
#include "osr/wire.hpp"

#include <array>
#include <cstdint>
#include <optional>

namespace nvbox::osr {

class FeedbackMeter {
public:
  static constexpr Nanos kMinInterval = std::chrono::milliseconds(5);
  static constexpr Nanos kMaxInterval = std::chrono::milliseconds(50);
  static constexpr Nanos kLossInterval = std::chrono::milliseconds(1);
  static constexpr Nanos kBaseBucket = std::chrono::seconds(5);

  FeedbackMeter(std::uint32_t epoch, Nanos silence) noexcept;

  // The transit of a packet of this flow sent at `sendUs` (the ingress's
  // clock, µs, mod 2^32) that arrived `now`: continuous across the 32-bit
  // wrap, with the clocks' offset in it.
  [[nodiscard]] Nanos transit(std::uint32_t sendUs, Nanos now) noexcept;

  // A DATA part (striped or EXPRESS) of `bytes` payload bytes, from `from`.
  // `transit` from transit(). For EXPRESS parts the header's seq is the
  // flow's next sequence number (nothing sent on the path before it is
  // still missing); for striped parts the part's own.
  void onData(const wire::Header &header, std::size_t bytes, Nanos transit, const Endpoint &from,
              Nanos now) noexcept;
  void onProbe(const wire::Header &header, const wire::ProbeInfo &info, Nanos transit,
               const Endpoint &from, Nanos now) noexcept;

  // The sequence number before which every missing part is lost; nothing
  // while some live path has delivered nothing yet.
  [[nodiscard]] std::optional<std::uint32_t> lostBefore(Nanos now) const noexcept;

  // The ingress, once a probe has named it.
  [[nodiscard]] std::optional<Endpoint> ingress() const noexcept { return ingress_; }
  [[nodiscard]] bool due(Nanos now) const noexcept;
  // The FEEDBACK to send now; starts the next interval.
  [[nodiscard]] wire::Feedback take(Nanos now) noexcept;
  // Up to two relays to send it through (invalid endpoints when fewer).
  [[nodiscard]] std::array<Endpoint, 2> routes(Nanos now) const noexcept;

  struct PathView {
    bool heard = false;
    Nanos queue{}; // newest queueing delay
    Nanos base{};  // base transit relative to the flow's fastest path
    std::uint64_t lost = 0;
  };
  [[nodiscard]] PathView path(PathId id, Nanos now) const noexcept;
  [[nodiscard]] std::uint64_t feedbackSent() const noexcept { return sent_; }

private:
  struct Path {
    bool heard = false;
    Nanos lastHeard{};
    Endpoint from{};
    WindowedMin<std::int64_t> base{kBaseBucket};
    bool haveSeq = false;
    std::uint16_t nextPathSeq = 0;
    std::uint16_t highestPathSeq = 0;
    std::uint32_t bytes = 0;
    std::uint32_t parts = 0;
    std::uint32_t lost = 0;
    std::uint64_t lostTotal = 0;
    std::optional<std::uint32_t> delivered; // flow seq the path is past
    std::optional<std::int64_t> queueMin;   // this interval, ns
    std::int64_t queueLast = -1;            // ns; -1 unknown
    Nanos minRtt{};                         // the ingress's, from probes
  };

  void heard(Path &path, const Endpoint &from, Nanos now) noexcept;
  void sampleQueue(Path &path, Nanos transit, Nanos now) noexcept;
  void pastSeq(Path &path, std::uint32_t seq) noexcept;
  // The path sequence `seq` arrived, or a probe says `seq` is next to come.
  void pathSeq(Path &path, std::uint16_t seq, bool arrived) noexcept;
  [[nodiscard]] bool live(const Path &path, Nanos now) const noexcept;
  [[nodiscard]] Nanos interval() const noexcept;
  [[nodiscard]] std::optional<std::int64_t> fastestBase(Nanos now) const noexcept;

  std::uint32_t epoch_;
  Nanos silence_;
  std::array<Path, kMaxPaths> paths_{};
  std::optional<Endpoint> ingress_;
  std::optional<std::int64_t> transitRef_; // µs
  bool haveEcho_ = false;
  std::uint32_t echo_ = 0;
  bool dataSince_ = false; // data arrived since the last FEEDBACK
  bool lossSince_ = false; // a new loss since the last FEEDBACK
  Nanos last_{};           // when the last FEEDBACK was taken
  std::uint64_t sent_ = 0;
};

} // namespace nvbox::osr
