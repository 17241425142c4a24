#include "osr/path_monitor.hpp"

#include <algorithm>
#include <cmath>

namespace nvbox::osr {

PathMonitor::PathMonitor(const Config &config) noexcept : config_(config) {}

bool PathMonitor::addPath(PathId id, Nanos now) noexcept {
  if (id >= kMaxPaths || paths_[id].health.present) {
    return false;
  }
  paths_[id] = Path{};
  paths_[id].health.present = true;
  paths_[id].last_reply = now;
  return true;
}

bool PathMonitor::removePath(PathId id) noexcept {
  if (!present(id)) {
    return false;
  }
  paths_[id] = Path{};
  return true;
}

bool PathMonitor::probeDue(PathId id, Nanos now) const noexcept {
  if (!present(id)) {
    return false;
  }
  const Path &path = paths_[id];
  const Nanos interval = path.urgent ? std::min(config_.probe_interval, config_.urgent_interval)
                                     : config_.probe_interval;
  return !path.last_probe || now - *path.last_probe >= interval;
}

void PathMonitor::setUrgent(PathId id, bool urgent) noexcept {
  if (present(id)) {
    paths_[id].urgent = urgent;
  }
}

std::optional<std::uint32_t> PathMonitor::onProbeSent(PathId id, Nanos now) noexcept {
  if (!present(id)) {
    return std::nullopt;
  }
  Path &path = paths_[id];
  const std::uint32_t seq = path.next_seq++;
  path.probes[seq % kLossWindow] = Probe{.sent_at = now, .seq = seq, .valid = true};
  path.last_probe = now;
  ++path.health.probes_sent;
  return seq;
}

void PathMonitor::sampleRtt(Path &path, Nanos rtt) const noexcept {
  PathHealth &health = path.health;
  health.min_rtt = health.min_rtt ? std::min(*health.min_rtt, rtt) : rtt;
  if (!health.srtt) {
    health.srtt = rtt;
    return;
  }
  const double delta = static_cast<double>((rtt - *health.srtt).count());
  health.srtt =
      *health.srtt + Nanos(static_cast<Nanos::rep>(std::llround(config_.rtt_gain * delta)));
}

ReplyResult PathMonitor::onReply(PathId id, std::uint32_t seq, Nanos now) noexcept {
  if (!present(id)) {
    return ReplyResult::Stray;
  }
  Path &path = paths_[id];
  // The slot still holds this seq only if it is one of the last kLossWindow
  // probes; anything else is forged, ancient or a duplicate.
  Probe &probe = path.probes[seq % kLossWindow];
  if (!probe.valid || probe.seq != seq || probe.answered) {
    ++path.health.stray_replies;
    return ReplyResult::Stray;
  }
  probe.answered = true;
  ++path.health.replies;
  sampleRtt(path, now - probe.sent_at);
  path.last_reply = std::max(path.last_reply, now);
  path.health.last_reply = path.last_reply;
  path.consecutive =
      (path.last_reply_seq && seq == *path.last_reply_seq + 1) ? path.consecutive + 1 : 1;
  path.last_reply_seq = seq;
  if (!path.health.up && path.consecutive >= config_.up_after) {
    path.health.up = true;
    ++path.health.went_up;
    return ReplyResult::CameUp;
  }
  return ReplyResult::Accepted;
}

std::uint16_t PathMonitor::tick(Nanos now) noexcept {
  std::uint16_t went_down = 0;
  for (std::size_t id = 0; id < kMaxPaths; ++id) {
    Path &path = paths_[id];
    if (path.health.up && now - path.last_reply >= config_.down_after) {
      path.health.up = false;
      ++path.health.went_down;
      path.consecutive = 0;
      path.last_reply_seq.reset();
      went_down = static_cast<std::uint16_t>(went_down | (1U << id));
    }
  }
  return went_down;
}

PathHealth PathMonitor::health(PathId id) const noexcept {
  return present(id) ? paths_[id].health : PathHealth{};
}

std::optional<double> PathMonitor::lossRate(PathId id, Nanos now) const noexcept {
  if (!present(id)) {
    return std::nullopt;
  }
  std::size_t settled = 0;
  std::size_t lost = 0;
  for (const Probe &probe : paths_[id].probes) {
    if (!probe.valid) {
      continue;
    }
    if (probe.answered) {
      ++settled;
    } else if (now - probe.sent_at >= config_.reply_timeout) {
      ++settled;
      ++lost;
    }
  }
  if (settled == 0) {
    return std::nullopt;
  }
  return static_cast<double>(lost) / static_cast<double>(settled);
}

} // namespace nvbox::osr
