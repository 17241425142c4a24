// LoopbackPaths — k simulated overlay paths in memory, driven by an injected
// clock (in the spirit of Seastar's tests/unit/loopback_socket.hh): what the
// sender writes into a path comes out at the far end after the time a real
// path would take, or not at all.
//
// Per path: rate (bytes/s, a FIFO serialiser: a datagram leaves when the
// previous one has left), a queue limit (a datagram that would wait longer
// for the serialiser is dropped, as by tbf), one-way delay, loss
// probability, and reorder
// injection (with probability `reorder` a datagram is held back by
// `reorder_extra` on top of its normal arrival, without delaying the ones
// behind it). A path can also be cut (everything dropped) and healed.
// Randomness comes from one seeded generator, so a run is reproducible.
//
// Counters per path: sent, dropped, held_back, delivered.
// Threading: single-threaded test code; it allocates freely.
#pragma once

#include "osr/types.hpp"

#include <cstdint>
#include <optional>
#include <queue>
#include <random>
#include <span>
#include <vector>

namespace nvbox::osr::testing {

struct SimPathConfig {
  double rate_bytes_per_s = 1e6;
  Nanos delay{};
  Nanos queue_limit{}; // 0: unlimited
  double loss = 0;
  double reorder = 0;
  Nanos reorder_extra{};
};

struct SimPathCounters {
  std::uint64_t sent = 0;
  std::uint64_t dropped = 0;
  std::uint64_t held_back = 0;
  std::uint64_t delivered = 0;
};

class LoopbackPaths {
public:
  explicit LoopbackPaths(std::uint64_t seed) : rng_(seed) {}

  PathId addPath(const SimPathConfig &config) {
    paths_.push_back(Path{.config = config});
    return static_cast<PathId>(paths_.size() - 1);
  }

  void setLoss(PathId path, double loss) { paths_.at(path).config.loss = loss; }
  void setRate(PathId path, double rate) { paths_.at(path).config.rate_bytes_per_s = rate; }
  void setDelay(PathId path, Nanos delay) { paths_.at(path).config.delay = delay; }
  // How long a datagram sent now would wait for the serialiser.
  Nanos queued(PathId path, Nanos now) const {
    return std::max(Nanos(0), paths_.at(path).busy_until - now);
  }
  void setCut(PathId path, bool cut) { paths_.at(path).cut = cut; }
  const SimPathCounters &counters(PathId path) const { return paths_.at(path).counters; }
  std::size_t pathCount() const { return paths_.size(); }

  void send(PathId id, std::span<const std::uint8_t> datagram, Nanos now) {
    Path &path = paths_.at(id);
    ++path.counters.sent;
    if (path.config.queue_limit > Nanos(0) && path.busy_until - now > path.config.queue_limit) {
      ++path.counters.dropped; // the queue is full: tail drop
      return;
    }
    // The serialiser is busy even for datagrams lost further down the path.
    const Nanos start = std::max(now, path.busy_until);
    path.busy_until = start + Nanos(static_cast<Nanos::rep>(static_cast<double>(datagram.size()) *
                                                            1e9 / path.config.rate_bytes_per_s));
    if (path.cut || chance(path.config.loss)) {
      ++path.counters.dropped;
      return;
    }
    Nanos arrival = path.busy_until + path.config.delay;
    if (chance(path.config.reorder)) {
      arrival += path.config.reorder_extra;
      ++path.counters.held_back;
    }
    in_flight_.push(InFlight{.arrival = arrival,
                             .order = next_order_++,
                             .path = id,
                             .bytes = {datagram.begin(), datagram.end()}});
  }

  std::optional<Nanos> nextArrival() const {
    return in_flight_.empty() ? std::nullopt : std::optional(in_flight_.top().arrival);
  }

  // Hands every datagram that has arrived by `until` to
  // receive(PathId, std::span<const std::uint8_t>, Nanos arrival), in arrival
  // order (ties in send order). Returns how many were handed over.
  template <typename Receive> std::size_t deliverUntil(Nanos until, Receive &&receive) {
    std::size_t count = 0;
    while (!in_flight_.empty() && in_flight_.top().arrival <= until) {
      const InFlight datagram = in_flight_.top();
      in_flight_.pop();
      ++paths_[datagram.path].counters.delivered;
      receive(datagram.path, std::span<const std::uint8_t>(datagram.bytes), datagram.arrival);
      ++count;
    }
    return count;
  }

private:
  struct Path {
    SimPathConfig config;
    Nanos busy_until{};
    bool cut = false;
    SimPathCounters counters{};
  };
  struct InFlight {
    Nanos arrival{};
    std::uint64_t order = 0;
    PathId path = 0;
    std::vector<std::uint8_t> bytes;
    // Min-heap on (arrival, order).
    bool operator<(const InFlight &other) const {
      return arrival != other.arrival ? arrival > other.arrival : order > other.order;
    }
  };

  // Uniform [0, 1) from the top 53 bits: the same sequence on every standard
  // library, unlike std::uniform_real_distribution.
  bool chance(double probability) {
    return static_cast<double>(rng_() >> 11) * 0x1.0p-53 < probability;
  }

  std::mt19937_64 rng_;
  std::vector<Path> paths_;
  std::priority_queue<InFlight> in_flight_;
  std::uint64_t next_order_ = 0;
};

} // namespace nvbox::osr::testing
