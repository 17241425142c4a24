// OverlayRun — a topology's scheduled link events, played against the
// deployed overlay while a TCP stream runs through a stripe, and what the
// stripe did: `nvbox overlay run FILE`.
//
// The clock starts with the stream (pseudo-random bytes from one endpoint
// namespace to another, checked by SHA-256 at the end). Each event is
// applied at its `at` through LinkControl (a rate on the host taps, delay,
// jitter and loss in the guests, a link's state through libvirt) and the
// time it took effect is recorded. Meanwhile the ingress osrd's status is
// polled every `poll` for its paths' bytes and up/down state (one small
// request through the guest agent: often enough for a per-path rate line,
// seldom enough to leave the ingress's CPU to the stream), and the receiver
// notes its progress every `sample`. The stream stops `tail` after
// the last event; every link an event touched is then put back as the plan
// has it.
//
// The report splits the run into windows at the events (before the first,
// after each): goodput and each path's share per window; per event, which
// paths osrd took out of the stripe (or put back) and how long after the
// event, and the longest stall of the stream after it. Its summary is
// recorded in the ingress router's metadata, where `nvbox inspect` finds
// it.
//
// Threading: blocks; the stream runs on threads of its own.
#pragma once

#include "nvbox/overlay.hpp"
#include "nvbox/overlay_plan.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace nvbox {

struct RunOptions {
  std::string from; // endpoint names; empty: the first stripe's ingress endpoint
  std::string to;   // and egress endpoint
  std::chrono::milliseconds tail{std::chrono::seconds(10)};
  std::chrono::milliseconds poll{250};
  std::chrono::milliseconds sample{100};
};

struct PathChange {
  double at = 0; // seconds since the start (when the poll saw it)
  std::string relay;
  bool up = false;
};

struct RunEvent {
  std::uint64_t atMs = 0;
  std::string link;
  std::string change;            // "down", "up", "rate 2 Mbit/s, delay 20 ms"
  double applied = 0;            // seconds since the start, when it had taken effect
  double applyTook = 0;          // how long applying it took
  std::vector<PathChange> paths; // osrd's path changes until the next event
  double stall = 0;              // the longest the stream received nothing, until the next event
};

struct RunWindow {
  std::string label; // "before", "after t=5s ing-r1 down"
  double from = 0, to = 0;
  double mbps = 0;
  std::map<std::string, double> pathMbps; // by relay
};

struct OverlayRunReport {
  std::string overlay, stripe, from, to;
  std::string started; // UTC, ISO 8601
  double seconds = 0;
  std::uint64_t bytes = 0;
  bool identical = false;
  double mbps = 0;
  std::vector<RunEvent> events;
  std::vector<RunWindow> windows;
  std::vector<std::pair<double, double>> goodput; // (seconds, Mbit/s) per sample period
  // Per path, by relay: the bytes/s the ingress osrd's counters grew by
  // between two polls, at the end of each interval.
  std::map<std::string, std::vector<std::pair<double, double>>> pathRates;

  // Everything but the series: what the ingress's metadata keeps.
  [[nodiscard]] nlohmann::json summary() const;
  [[nodiscard]] nlohmann::json toJson() const;
};

// Throws UsageError when the plan schedules no events or the overlay is not
// deployed as planned; nvbox::Error when a host, a router or the stream
// fails (links already changed are put back first).
OverlayRunReport runOverlay(const OverlayPlan &plan, const RunOptions &options,
                            const OverlayLog &log);

} // namespace nvbox
