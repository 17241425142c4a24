#include "nvbox/overlay_transfer.hpp"

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

namespace {

constexpr std::uint16_t kTransferPort = 5201;

nlohmann::json findNamed(const nlohmann::json &list, const std::string &name,
                         const std::string &what) {
  for (const auto &item : list) {
    if (item.value("name", "") == name) {
      return item;
    }
  }
  throw UsageError("cannot find " + what + " '" + name + "' in the overlay",
                   "see 'nvbox inspect' for its " + what + "s");
}

// osrd on one router, through its guest agent.
class OsrdClient {
public:
  OsrdClient(const nlohmann::json &plan, const std::string &router)
      : router_(router), conn_(connect(plan, router)),
        dom_(RouterManager(conn_, host_).domain(router)), agent_(conn_, dom_.get()) {}

  nlohmann::json call(const nlohmann::json &request) {
    const auto reply =
        agent_.request({{"cmd", "osrd"}, {"request", request}}, std::chrono::seconds(5));
    if (!reply.value("ok", false) || !reply.contains("reply") ||
        !reply["reply"].value("ok", false)) {
      throw Error("osrd on router '" + router_ + "' refused " + request.dump() + ": " +
                  reply.dump());
    }
    return reply["reply"];
  }

  nlohmann::json stripe(const std::string &name) {
    for (const auto &s : call({{"cmd", "status"}})["status"].value("stripes", nlohmann::json())) {
      if (s.value("name", "") == name) {
        return s;
      }
    }
    throw Error("osrd on router '" + router_ + "' has no stripe '" + name + "'");
  }

  nlohmann::json egressFlow(std::uint32_t flow) {
    const auto status = call({{"cmd", "status"}})["status"];
    for (const auto &f : status["egress"].value("flows", nlohmann::json::array())) {
      if (f.value("flow", 0U) == flow) {
        return f;
      }
    }
    return nullptr;
  }

private:
  virt::Connection connect(const nlohmann::json &plan, const std::string &router) {
    const auto r = findNamed(plan["routers"], router, "router");
    const auto h = findNamed(plan["hosts"], r.value("host", ""), "host");
    host_ = HostRef{h.value("name", ""), h.value("uri", "")};
    return virt::Connection::open(host_.uri);
  }

  std::string router_;
  HostRef host_;
  virt::Connection conn_;
  virt::DomainPtr dom_;
  GuestAgent agent_;
};

std::map<std::string, std::uint64_t> pathBytes(const nlohmann::json &stripe) {
  std::map<std::string, std::uint64_t> out;
  for (const auto &p : stripe["paths"]) {
    out[p.value("relay", "")] = p.value("bytes", std::uint64_t{0});
  }
  return out;
}

// Waits until every path of the stripe is up again (probes answered).
void waitPathsUp(OsrdClient &osrd, const std::string &stripe, std::size_t count) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    const auto s = osrd.stripe(stripe);
    const auto up = std::count_if(s["paths"].begin(), s["paths"].end(),
                                  [](const nlohmann::json &p) { return p.value("up", false); });
    if (static_cast<std::size_t>(up) >= count) {
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  throw Error("stripe '" + stripe + "': its paths did not come up within 30 s");
}

} // namespace

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
  if (!plan.is_object() || !plan.contains("endpoints")) {
    throw Error("the overlay has no plan to measure");
  }
  const auto from = findNamed(plan["endpoints"], options.from, "endpoint");
  const auto to = findNamed(plan["endpoints"], options.to, "endpoint");
  const std::string ingress = from.value("router", "");
  const std::string egress = to.value("router", "");
  nlohmann::json stripe;
  for (const auto &s : plan["stripes"]) {
    if (s.value("ingress", "") == ingress && s.value("egress", "") == egress) {
      stripe = s;
    }
  }
  if (stripe.is_null()) {
    throw UsageError("no stripe of the overlay goes from router '" + ingress + "' (endpoint '" +
                         options.from + "') to router '" + egress + "' (endpoint '" + options.to +
                         "')",
                     "add one under 'stripes' in the topology");
  }
  StripeMeasurement m;
  m.stripe = stripe.value("name", "");
  m.from = options.from;
  m.to = options.to;
  for (const auto rate : stripe.value("path_rates", std::vector<std::uint64_t>{})) {
    m.sumOfRatesMbps += static_cast<double>(rate) * 8 / 1e6;
  }
  // Which osrd stripe carries the sink's subnet (one per destination subnet).
  std::string osrdStripe = m.stripe;
  const auto dsts = stripe.value("dst", std::vector<std::string>{});
  const auto at = std::find(dsts.begin(), dsts.end(), to.value("subnet", ""));
  if (at != dsts.begin() && at != dsts.end()) {
    osrdStripe += "." + std::to_string(at - dsts.begin());
  }
  const std::uint32_t flow =
      stripe.value("flow", 0U) + static_cast<std::uint32_t>(std::max<long>(0, at - dsts.begin()));

  OsrdClient in(plan, ingress);
  std::map<std::string, std::string> relayName; // "IP:PORT" -> router
  for (const auto &r : plan["routers"]) {
    relayName[r.value("osr_address", "") + ":7400"] = r.value("name", "");
  }
  const auto paths = in.stripe(osrdStripe)["paths"];
  waitPathsUp(in, osrdStripe, paths.size());

  netconfig::TransferOptions t;
  t.clientNs = from.value("netns", "");
  t.serverNs = to.value("netns", "");
  t.serverAddress = to.value("address", "");
  t.serverAddress = t.serverAddress.substr(0, t.serverAddress.find('/'));
  t.port = kTransferPort;
  t.bytes = options.bytes;

  log("striped transfer of " + std::to_string(options.bytes >> 20) + " MiB from '" + options.from +
      "' to '" + options.to + "' over stripe '" + m.stripe + "'");
  const auto before = pathBytes(in.stripe(osrdStripe));
  std::tie(m.sent, m.received) = netconfig::transfer(t);
  const auto after = pathBytes(in.stripe(osrdStripe));
  m.identical = m.sent.bytes == m.received.bytes && m.sent.digest == m.received.digest;
  m.mbps = m.received.mbps();
  for (const auto &[relay, bytes] : after) {
    const std::uint64_t moved = bytes - (before.contains(relay) ? before.at(relay) : 0);
    const std::string name = relayName.contains(relay) ? relayName.at(relay) : relay;
    m.paths.push_back({name, moved, static_cast<double>(moved) * 8 / m.received.seconds / 1e6});
  }
  OsrdClient out(plan, egress);
  m.egressFlow = out.egressFlow(flow);

  if (options.compare) {
    const auto rates = stripe.value("path_rates", std::vector<std::uint64_t>{});
    for (std::size_t keep = 0; keep < paths.size(); ++keep) {
      const std::string relay = paths[keep].value("relay", "");
      const std::string name = relayName.contains(relay) ? relayName.at(relay) : relay;
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
      waitPathsUp(in, osrdStripe, paths.size());
      m.singles.push_back({name, got.bytes == t.bytes ? got.mbps() : 0.0});
    }
  }
  return m;
}

} // namespace nvbox
