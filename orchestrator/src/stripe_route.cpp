#include "stripe_route.hpp"

#include "nvbox/error.hpp"
#include "nvbox/overlay_plan.hpp"
#include "nvbox/router.hpp"

#include <algorithm>
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

} // namespace

std::string StripeRoute::nameOf(const std::string &relay) const {
  const auto it = relayName.find(relay);
  return it == relayName.end() ? relay : it->second;
}

StripeRoute resolveStripeRoute(const nlohmann::json &plan, const std::string &fromName,
                               const std::string &toName) {
  if (!plan.is_object() || !plan.contains("endpoints")) {
    throw Error("the overlay has no plan to measure");
  }
  const auto from = findNamed(plan["endpoints"], fromName, "endpoint");
  const auto to = findNamed(plan["endpoints"], toName, "endpoint");
  StripeRoute route;
  route.ingress = from.value("router", "");
  route.egress = to.value("router", "");
  for (const auto &s : plan["stripes"]) {
    if (s.value("ingress", "") == route.ingress && s.value("egress", "") == route.egress) {
      route.stripe = s;
    }
  }
  if (route.stripe.is_null()) {
    throw UsageError("no stripe of the overlay goes from router '" + route.ingress +
                         "' (endpoint '" + fromName + "') to router '" + route.egress +
                         "' (endpoint '" + toName + "')",
                     "add one under 'stripes' in the topology");
  }
  // Which osrd stripe carries the sink's subnet (one per destination subnet).
  route.osrdStripe = route.stripe.value("name", "");
  const auto dsts = route.stripe.value("dst", std::vector<std::string>{});
  const auto at = std::find(dsts.begin(), dsts.end(), to.value("subnet", ""));
  if (at != dsts.begin() && at != dsts.end()) {
    route.osrdStripe += "." + std::to_string(at - dsts.begin());
  }
  route.flow = route.stripe.value("flow", 0U) +
               static_cast<std::uint32_t>(std::max<long>(0, at - dsts.begin()));
  for (const auto &r : plan["routers"]) {
    route.relayName[r.value("osr_address", "") + ":" + std::to_string(kOsrPort)] =
        r.value("name", "");
  }
  netconfig::TransferOptions &t = route.transfer;
  t.clientNs = from.value("netns", "");
  t.serverNs = to.value("netns", "");
  t.serverAddress = to.value("address", "");
  t.serverAddress = t.serverAddress.substr(0, t.serverAddress.find('/'));
  t.port = kTransferPort;
  return route;
}

namespace {

virt::Connection connectTo(const nlohmann::json &plan, const std::string &router, HostRef &host) {
  const auto r = findNamed(plan["routers"], router, "router");
  const auto h = findNamed(plan["hosts"], r.value("host", ""), "host");
  host = HostRef{h.value("name", ""), h.value("uri", "")};
  return virt::Connection::open(host.uri);
}

} // namespace

OsrdClient::OsrdClient(const nlohmann::json &plan, const std::string &router)
    : router_(router), conn_(connectTo(plan, router, host_)),
      dom_(RouterManager(conn_, host_).domain(router)), agent_(conn_, dom_.get()) {}

nlohmann::json OsrdClient::call(const nlohmann::json &request) {
  const auto reply =
      agent_.request({{"cmd", "osrd"}, {"request", request}}, std::chrono::seconds(5));
  if (!reply.value("ok", false) || !reply.contains("reply") || !reply["reply"].value("ok", false)) {
    const auto answer = reply.value("reply", nlohmann::json());
    const std::string why = answer.is_object() && answer.contains("error")
                                ? answer.value("error", "")
                                : reply.value("error", reply.dump());
    throw Error("osrd on router '" + router_ + "' refused '" + request.value("cmd", "") +
                "': " + why);
  }
  return reply["reply"];
}

nlohmann::json OsrdClient::stripe(const std::string &name) {
  for (const auto &s : call({{"cmd", "status"}})["status"].value("stripes", nlohmann::json())) {
    if (s.value("name", "") == name) {
      return s;
    }
  }
  throw Error("osrd on router '" + router_ + "' has no stripe '" + name + "'");
}

std::vector<std::string>
OsrdClient::waitCarrying(const StripeRoute &route,
                         const std::function<void(const std::string &)> &log) {
  constexpr auto kWait = std::chrono::seconds(60);
  // Enough for a live relay's path to come up (3 probe replies) even on a
  // loaded machine, short next to the 60 s a dead one used to cost.
  constexpr auto kGrace = std::chrono::seconds(5);
  const std::size_t k = route.stripe.value("k", 0U);
  const bool byOracle = route.stripe.value("oracle", false);
  std::vector<std::string> down;
  // An oracle stripe replaces a path that does not come up by itself
  // (docs/oracle.md): it is waited for whole, as before.
  for (const auto &relay :
       waitPathsUp(route.osrdStripe, k, kWait, byOracle ? std::nullopt : std::optional(kGrace))) {
    down.push_back(route.nameOf(relay));
  }
  if (!down.empty()) {
    std::string names;
    for (std::size_t i = 0; i < down.size(); ++i) {
      names += (i == 0 ? "" : i + 1 == down.size() ? " and " : ", ") + ("'" + down[i] + "'");
    }
    log("stripe '" + route.stripe.value("name", "") +
        "': " + (down.size() == 1 ? "path via " + names + " is" : "paths via " + names + " are") +
        " down: it runs over " + std::to_string(k - std::min(k, down.size())) + " of " +
        std::to_string(k) + " paths");
  }
  if (!byOracle) {
    return down;
  }
  // The oracle's first answer can come before every relay is measured, and a
  // relay whose path was slow to start is excluded for a while: measuring
  // then would measure a stripe the oracle would not choose.
  const auto deadline = std::chrono::steady_clock::now() + kWait;
  for (;;) {
    const auto status = call({{"cmd", "status"}})["status"];
    const auto oracle = status.value("oracle", nlohmann::json());
    const auto signaling =
        oracle.is_object() ? oracle.value("signaling", nlohmann::json()) : nlohmann::json();
    for (const auto &s : signaling.value("stripes", nlohmann::json::array())) {
      if (s.value("stripe", "") == route.osrdStripe && s.value("settled", false)) {
        return down;
      }
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      log("stripe '" + route.stripe.value("name", "") + "' has not settled on the relays the " +
          "oracle ranks best within " + std::to_string(kWait.count()) +
          " s; it carries over the relays it has");
      return down;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

nlohmann::json OsrdClient::egressFlow(std::uint32_t flow) {
  const auto status = call({{"cmd", "status"}})["status"];
  for (const auto &f : status["egress"].value("flows", nlohmann::json::array())) {
    if (f.value("flow", 0U) == flow) {
      return f;
    }
  }
  return nullptr;
}

std::vector<std::string> OsrdClient::waitPathsUp(const std::string &stripeName, std::size_t count,
                                                 std::chrono::seconds timeout,
                                                 std::optional<std::chrono::milliseconds> grace) {
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    const auto s = stripe(stripeName);
    std::size_t up = 0;
    std::vector<std::string> down;
    for (const auto &p : s["paths"]) {
      if (p.value("up", false)) {
        ++up;
      } else {
        down.push_back(p.value("relay", ""));
      }
    }
    if (up >= count) {
      return {};
    }
    if (grace && up > 0 && std::chrono::steady_clock::now() - start >= *grace) {
      return down;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  throw Error("stripe '" + stripeName + "': " +
              (grace ? std::string("none of its paths came up") : "its paths did not come up") +
              " within " + std::to_string(timeout.count()) + " s");
}

std::map<std::string, std::uint64_t> pathCounter(const nlohmann::json &stripe,
                                                 const std::string &counter) {
  std::map<std::string, std::uint64_t> out;
  for (const auto &p : stripe["paths"]) {
    out[p.value("relay", "")] = p.value(counter, std::uint64_t{0});
  }
  return out;
}

} // namespace nvbox
