// OverlayTransfer — measures a deployed stripe with real TCP: a transfer of
// pseudo-random bytes from one endpoint namespace to another, byte for byte
// checked (SHA-256), with the per-path share read from the ingress osrd's
// counters before and after; optionally the same transfer over each path of
// the stripe alone (the others removed through osrd's control socket and put
// back afterwards), which gives the best single path to compare with.
// Paths that stay down (a relay suspended or gone) are left out after a
// few seconds' grace: the transfer runs over the others and names them.
//
// It runs where the endpoints' namespaces are (the machine nvbox deployed
// from) and reaches osrd through the routers' guest agents.
//
// Threading: blocks; one call at a time per overlay.
#pragma once

#include "nvbox/netconfig/transfer.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace nvbox {

struct PathShare {
  std::string relay; // the relay router
  std::uint64_t bytes = 0;
  double mbps = 0; // its share of the striped transfer's goodput
};

struct SinglePath {
  std::string relay;
  double mbps = 0;
};

struct StripeMeasurement {
  std::string stripe;
  std::string from, to;
  netconfig::Transfer sent, received;
  bool identical = false; // same byte count and SHA-256 on both ends
  double mbps = 0;        // goodput of the striped transfer
  std::vector<PathShare> paths;
  std::vector<std::string> pathsDown; // relays whose paths were out, before or during it
  std::vector<SinglePath> singles;    // with compare
  double sumOfRatesMbps = 0;          // of the stripe's paths, from the topology (0: unknown)
  nlohmann::json egressFlow;          // the egress's re-sequencing counters for the flow

  [[nodiscard]] double bestSingleMbps() const;
  [[nodiscard]] nlohmann::json toJson() const;
};

struct MeasureOptions {
  std::string from; // endpoint names
  std::string to;
  std::uint64_t bytes = 32ULL << 20;
  bool compare = false;
};

// `plan` is an overlay plan as deploy recorded it (OverlayPlan::toJson()).
// Throws nvbox::Error: unknown endpoints, no stripe between their routers,
// a transfer that fails or stalls.
StripeMeasurement measureStripe(const nlohmann::json &plan, const MeasureOptions &options,
                                const std::function<void(const std::string &)> &log);

} // namespace nvbox
