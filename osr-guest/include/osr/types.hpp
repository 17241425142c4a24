// Vocabulary shared by the OSR data-plane components: injected time and the
// limits the wire format imposes on paths and parts.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace nvbox::osr {

// No component reads a clock: callers pass `now`, so every decision is
// deterministic under test and replayable from a trace. The epoch is
// arbitrary (the daemon uses CLOCK_MONOTONIC); only differences matter.
using Nanos = std::chrono::nanoseconds;

// A path id travels in one byte but indexes fixed per-path arrays, so the
// parser rejects ids >= kMaxPaths instead of every user re-checking them.
using PathId = std::uint8_t;
inline constexpr std::size_t kMaxPaths = 16;

// A segment is cut into 1..kMaxK parts (one per path at most).
inline constexpr std::uint8_t kMaxK = 16;

} // namespace nvbox::osr
