#include "nvbox/overlay_transfer.hpp"

#include "stripe_route.hpp"

#include "nvbox/error.hpp"
#include "nvbox/guest_agent.hpp"
#include "nvbox/hosts.hpp"
#include "nvbox/libvirt.hpp"
#include "nvbox/router.hpp"

#include <algorithm>
#include <chrono>
#include <map>
#include <thread>

namespace nvbox {

double StripeMeasurement::bestSingleMbps() const {
  double best = 0;
  for (const auto &s : singles) {
    best = std::max(best, s.mbps);
  }
  return best;
}

nlohmann::json StripeMeasurement::toJson() const {
  nlohmann::json j = {{"stripe", stripe},
                      {"from", from},
                      {"to", to},
                      {"bytes", received.bytes},
                      {"sha256_sent", sent.digest},
                      {"sha256_received", received.digest},
                      {"identical", identical},
                      {"seconds", received.seconds},
                      {"mbps", mbps},
                      {"sum_of_rates_mbps", sumOfRatesMbps},
                      {"paths", nlohmann::json::array()},
                      {"paths_down", pathsDown},
                      {"single_paths", nlohmann::json::array()},
                      {"egress_flow", egressFlow}};
  for (const auto &p : paths) {
    j["paths"].push_back({{"relay", p.relay}, {"bytes", p.bytes}, {"mbps", p.mbps}});
  }
  for (const auto &s : singles) {
    j["single_paths"].push_back({{"relay", s.relay}, {"mbps", s.mbps}});
  }
  if (!singles.empty()) {
    j["best_single_mbps"] = bestSingleMbps();
  }
  return j;
}

StripeMeasurement measureStripe(const nlohmann::json &plan, const MeasureOptions &options,
                                const std::function<void(const std::string &)> &log) {
  const StripeRoute route = resolveStripeRoute(plan, options.from, options.to);
  const nlohmann::json &stripe = route.stripe;
  StripeMeasurement m;
  m.stripe = stripe.value("name", "");
  m.from = options.from;
  m.to = options.to;
  for (const auto rate : stripe.value("path_rates", std::vector<std::uint64_t>{})) {
    m.sumOfRatesMbps += static_cast<double>(rate) * 8 / 1e6;
  }
  const std::string &osrdStripe = route.osrdStripe;
  OsrdClient in(plan, route.ingress);
  m.pathsDown = in.waitCarrying(route, log);
  const auto paths = in.stripe(osrdStripe)["paths"];
  netconfig::TransferOptions t = route.transfer;
  t.bytes = options.bytes;

  log("striped transfer of " + std::to_string(options.bytes >> 20) + " MiB from '" + options.from +
      "' to '" + options.to + "' over stripe '" + m.stripe + "'");
  const nlohmann::json first = in.stripe(osrdStripe);
  std::tie(m.sent, m.received) = netconfig::transfer(t);
  const nlohmann::json last = in.stripe(osrdStripe);
  m.identical = m.sent.bytes == m.received.bytes && m.sent.digest == m.received.digest;
  m.mbps = m.received.mbps();
  const auto before = pathCounter(first, "bytes");
  for (const auto &[relay, bytes] : pathCounter(last, "bytes")) {
    const std::uint64_t moved = bytes - (before.contains(relay) ? before.at(relay) : 0);
    const std::string name = route.nameOf(relay);
    m.paths.push_back({name, moved, static_cast<double>(moved) * 8 / m.received.seconds / 1e6});
  }
  // A path osrd took out during the transfer was out too: a relay suspended
  // just before it began still counts as up for osrd's first 0.5 s.
  const auto wentDown = pathCounter(first, "went_down");
  for (const auto &p : last["paths"]) {
    const std::string relay = p.value("relay", "");
    const std::string name = route.nameOf(relay);
    const bool wasOut =
        !p.value("up", false) || p.value("went_down", std::uint64_t{0}) >
                                     (wentDown.contains(relay) ? wentDown.at(relay) : 0);
    if (wasOut && std::find(m.pathsDown.begin(), m.pathsDown.end(), name) == m.pathsDown.end()) {
      m.pathsDown.push_back(name);
      log("stripe '" + m.stripe + "': path via '" + name + "' went down during the transfer");
    }
  }
  OsrdClient out(plan, route.egress);
  m.egressFlow = out.egressFlow(route.flow);

  if (options.compare) {
    const auto rates = stripe.value("path_rates", std::vector<std::uint64_t>{});
    const std::size_t up = paths.size() - std::min(paths.size(), m.pathsDown.size());
    for (std::size_t keep = 0; keep < paths.size(); ++keep) {
      const std::string relay = paths[keep].value("relay", "");
      const std::string name = route.nameOf(relay);
      if (std::find(m.pathsDown.begin(), m.pathsDown.end(), name) != m.pathsDown.end()) {
        continue; // alone it would carry nothing
      }
      // Take the others out, measure, put them back (with their weights).
      const nlohmann::json now = in.stripe(osrdStripe);
      for (const auto &p : now["paths"]) {
        if (p.value("relay", "") != relay) {
          in.call({{"cmd", "remove_path"}, {"stripe", osrdStripe}, {"path", p.value("id", 0)}});
        }
      }
      log("single path through '" + name + "'");
      netconfig::Transfer sent;
      netconfig::Transfer got;
      try {
        std::tie(sent, got) = netconfig::transfer(t);
      } catch (const Error &) {
        got = {};
      }
      for (std::size_t i = 0; i < paths.size(); ++i) {
        if (i != keep) {
          in.call({{"cmd", "add_path"},
                   {"stripe", osrdStripe},
                   {"relay", paths[i].value("relay", "")},
                   {"rate", i < rates.size() ? rates[i] : 0}});
        }
      }
      in.waitPathsUp(osrdStripe, up);
      m.singles.push_back({name, got.bytes == t.bytes ? got.mbps() : 0.0});
    }
  }
  return m;
}

} // namespace nvbox
