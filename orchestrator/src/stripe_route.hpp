// StripeRoute — what carries traffic from one endpoint of a deployed overlay
// to another: the topology stripe, the osrd stripe on the ingress (one per
// destination subnet), the flow the egress re-sequences, the relays by name,
// and the transfer between the endpoints' namespaces. OsrdClient reaches
// osrd on a router through its guest agent. `nvbox overlay transfer` and
// `nvbox overlay run` measure stripes through them.
//
// Threading: plain values; one OsrdClient per thread.
#pragma once

#include "nvbox/guest_agent.hpp"
#include "nvbox/hosts.hpp"
#include "nvbox/libvirt.hpp"
#include "nvbox/netconfig/transfer.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace nvbox {

struct StripeRoute {
  nlohmann::json stripe; // as in the plan
  std::string ingress, egress;
  std::string osrdStripe; // the ingress osrd's stripe carrying the sink's subnet
  std::uint32_t flow = 0; // the flow id the egress re-sequences
  std::map<std::string, std::string> relayName; // osrd's "IP:PORT" -> router
  netconfig::TransferOptions transfer;          // namespaces, address and port set

  // A relay's router name, or `relay` itself when no router has it.
  [[nodiscard]] std::string nameOf(const std::string &relay) const;
};

// `plan` as deploy recorded it (OverlayPlan::toJson()); `from` and `to` are
// endpoint names. Throws UsageError: unknown endpoints, no stripe between
// their routers.
[[nodiscard]] StripeRoute resolveStripeRoute(const nlohmann::json &plan, const std::string &from,
                                             const std::string &to);

// osrd on one router of a plan, through the router's guest agent.
class OsrdClient {
public:
  OsrdClient(const nlohmann::json &plan, const std::string &router);

  // osrd's reply to `request`; throws nvbox::Error when osrd refuses.
  nlohmann::json call(const nlohmann::json &request);
  // The status of one of its stripes.
  nlohmann::json stripe(const std::string &name);
  // The egress counters of one flow (null when osrd has none).
  nlohmann::json egressFlow(std::uint32_t flow);
  // Waits up to `timeout` for `count` paths of the stripe to be up; throws
  // when they are not. With `grace`, also returns once at least one path is
  // up and the others have had `grace` to come up (osrd probes every 100 ms
  // and needs 3 replies; it takes a dead path out within 0.5 s); then only
  // a stripe without any path up after `timeout` throws. Returns the relays
  // ("IP:PORT") of the paths still down.
  std::vector<std::string>
  waitPathsUp(const std::string &stripe, std::size_t count,
              std::chrono::seconds timeout = std::chrono::seconds(30),
              std::optional<std::chrono::milliseconds> grace = std::nullopt);
  // Waits until the route's stripe carries, before it is measured: its k
  // paths up, or, when some stay down (a relay suspended or gone), the ones
  // that are up after a grace of a few seconds (60 s for the first, else
  // throws); `log` names the paths that are out, which are returned by
  // relay name. When the path oracle names its relays: its k paths up (60 s,
  // else throws; the oracle replaces a path that fails), then up to 60 s
  // more for the stripe to settle on the relays the oracle's last answer
  // ranks best (OracleSignaling). An oracle stripe that does not settle
  // still carries, over other relays: `log` says so.
  std::vector<std::string> waitCarrying(const StripeRoute &route,
                                        const std::function<void(const std::string &)> &log);

private:
  std::string router_;
  HostRef host_;
  virt::Connection conn_;
  virt::DomainPtr dom_;
  GuestAgent agent_;
};

// One counter of each path of a stripe status ("bytes", "went_down"), by
// osrd's relay "IP:PORT".
[[nodiscard]] std::map<std::string, std::uint64_t> pathCounter(const nlohmann::json &stripe,
                                                               const std::string &counter);

} // namespace nvbox
