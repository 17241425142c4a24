// DelayLine(CAPACITY, DELAY) — holds relayed datagrams for a fixed time.
//
// What it does: a FIFO of datagrams, each released DELAY after it entered.
// It is osrd's userspace delay stage, for experiments on hosts whose kernel
// has no netem (the host of the one-machine testbed): `--relay-delay MS` on
// a relay gives its overlay paths that much extra one-way delay. Release
// happens on the daemon's tick (1 ms while a delay is set), so the added
// delay is DELAY plus up to one tick.
//
// Parameters: CAPACITY datagrams (memory: CAPACITY × 2 KiB, allocated once),
// DELAY. Counters: delayed, dropped (the line was full).
// Threading: the daemon's data-path thread.
#pragma once

#include "osr/endpoint.hpp"
#include "osr/types.hpp"
#include "udp_socket.hpp"

#include <array>
#include <cstdint>
#include <span>
#include <vector>

namespace nvbox::osr {

class DelayLine {
public:
  DelayLine(std::size_t capacity, Nanos delay);

  // Queues a copy; false (and counted) when full or too large.
  bool push(std::span<const std::uint8_t> bytes, const Endpoint &to, Nanos now) noexcept;
  // Moves the datagrams due by `now` into `out`, oldest first, until it is full.
  void release(Nanos now, PacketBatch &out) noexcept;

  [[nodiscard]] Nanos delay() const { return delay_; }
  [[nodiscard]] std::size_t size() const { return count_; }
  [[nodiscard]] std::uint64_t delayed() const { return delayed_; }
  [[nodiscard]] std::uint64_t dropped() const { return dropped_; }

private:
  struct Slot {
    Nanos due{};
    Endpoint to;
    std::size_t length = 0;
    std::array<std::uint8_t, PacketBatch::kBufferSize> bytes{};
  };
  std::vector<Slot> slots_;
  Nanos delay_;
  std::size_t head_ = 0;
  std::size_t count_ = 0;
  std::uint64_t delayed_ = 0;
  std::uint64_t dropped_ = 0;
};

} // namespace nvbox::osr
