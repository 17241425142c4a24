// PathMonitor(PROBE_INTERVAL, DOWN_AFTER, REPLY_TIMEOUT, UP_AFTER, RTT_GAIN)
//
// What it does: the probe bookkeeping of up to kMaxPaths overlay paths. The
// daemon asks probeDue(), sends a PROBE carrying the seq that onProbeSent()
// returns, feeds every PROBE_REPLY to onReply() and calls tick() from its
// timer; the monitor keeps per path:
//   - RTT: smoothed (EWMA, srtt += RTT_GAIN * (sample - srtt), first sample
//     taken as is) and minimum, from the send time it recorded itself;
//   - loss over the last kLossWindow probes: unanswered / settled, where a
//     probe is settled once answered or REPLY_TIMEOUT old;
//   - state: a path starts DOWN; it goes UP after UP_AFTER replies to
//     consecutive probe seqs, and DOWN when no reply has arrived for
//     DOWN_AFTER (checked by tick()).
// Defaults: probes every 100 ms, DOWN_AFTER 500 ms, so a path that dies is
// declared down at most DOWN_AFTER + (reply already in flight, < RTT) + (tick
// period) after its death — under 1 s for RTT < 300 ms and a tick every
// 100 ms — while up to four probes in a row may be lost without a false alarm.
// UP_AFTER 3 brings a path back 200–300 ms after it heals; a path the caller
// marks urgent (setUrgent) is probed every URGENT_INTERVAL instead, so it
// comes back within about 3 × URGENT_INTERVAL + RTT.
//
// Parameters: the Config below. Counters per path: probes_sent, replies,
// stray_replies (unknown, outside the window, or duplicate), went_down, went_up.
// Threading: not thread-safe; owned by the daemon's control thread.
// Every member is noexcept and allocation-free.
#pragma once

#include "osr/types.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>

namespace nvbox::osr {

struct PathHealth {
  bool present = false;
  bool up = false;
  std::optional<Nanos> srtt{};
  std::optional<Nanos> min_rtt{};
  std::optional<Nanos> last_reply{}; // when the last valid reply came
  std::uint64_t probes_sent = 0;
  std::uint64_t replies = 0;
  std::uint64_t stray_replies = 0;
  std::uint64_t went_down = 0;
  std::uint64_t went_up = 0;
};

enum class ReplyResult : std::uint8_t {
  Accepted, // an RTT sample was taken
  CameUp,   // accepted, and it brought the path up
  Stray,    // unknown path, unknown or old seq, or a duplicate: ignored
};

class PathMonitor {
public:
  static constexpr std::size_t kLossWindow = 64;

  struct Config {
    Nanos probe_interval = std::chrono::milliseconds(100);
    Nanos down_after = std::chrono::milliseconds(500);
    Nanos reply_timeout = std::chrono::milliseconds(500);
    std::uint32_t up_after = 3;
    double rtt_gain = 0.125; // TCP's alpha (RFC 6298)
    // The probe interval of a path marked urgent (down, or suspected dead by
    // the caller), when shorter: it comes back soon after it heals.
    Nanos urgent_interval = std::chrono::milliseconds(20);
  };

  PathMonitor() noexcept : PathMonitor(Config{}) {}
  explicit PathMonitor(const Config &config) noexcept;

  // False if id >= kMaxPaths or already present. `now` starts the DOWN_AFTER
  // clock, and the first probe is due at once.
  bool addPath(PathId id, Nanos now) noexcept;
  bool removePath(PathId id) noexcept;

  bool probeDue(PathId id, Nanos now) const noexcept;
  // Probes the path every URGENT_INTERVAL (see Config) while set.
  void setUrgent(PathId id, bool urgent) noexcept;
  // Records a probe sent now; returns the seq it must carry (nullopt for an
  // absent path). Probe seqs are per path and wrap.
  std::optional<std::uint32_t> onProbeSent(PathId id, Nanos now) noexcept;
  ReplyResult onReply(PathId id, std::uint32_t seq, Nanos now) noexcept;

  // Applies DOWN_AFTER; returns a bit mask (bit = path id) of the paths that
  // went down in this call.
  std::uint16_t tick(Nanos now) noexcept;

  PathHealth health(PathId id) const noexcept;
  // Fraction of settled probes among the last kLossWindow that were not
  // answered; nullopt when none is settled yet.
  std::optional<double> lossRate(PathId id, Nanos now) const noexcept;

private:
  struct Probe {
    Nanos sent_at{};
    std::uint32_t seq = 0;
    bool valid = false;
    bool answered = false;
  };
  struct Path {
    PathHealth health{};
    std::array<Probe, kLossWindow> probes{};
    std::uint32_t next_seq = 0;
    std::optional<Nanos> last_probe{};
    Nanos last_reply{};
    std::optional<std::uint32_t> last_reply_seq{};
    std::uint32_t consecutive = 0;
    bool urgent = false;
  };

  bool present(PathId id) const noexcept { return id < kMaxPaths && paths_[id].health.present; }
  void sampleRtt(Path &path, Nanos rtt) const noexcept;

  Config config_;
  std::array<Path, kMaxPaths> paths_{};
};

} // namespace nvbox::osr
