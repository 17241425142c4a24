// Overlay — deploy, destroy and inspect a planned overlay (overlay_plan.hpp)
// across its hosts: the deploy stage of parse → resolve → deploy.
//
// deploy() connects to every host first (an unreachable host or a missing
// image stops it before anything is touched), then converges the hosts on
// the plan:
//   1. the image is pushed to each host that lacks it;
//   2. each link's and endpoint's host side is wired (links/*.cpp);
//   3. routers that exist with the planned spec digest are kept (started if
//      stopped), routers whose spec changed are replaced, missing ones
//      created, and routers of the overlay that the plan no longer names are
//      destroyed;
//   4. new routers boot concurrently, at most `bootsPerHost` at a time per
//      host, each waited on until its guest reports ready;
//   5. links are shaped: the taps' rate on the hosts, and on kept routers
//      whose link shaping changed, the guests' netem (links/link_control),
//      so a link's new rate, delay, jitter or loss keeps the routers, and
//      kept ingresses (egresses, for reverse stripes) get the stripes' new
//      path rates through osrd's control socket;
//   6. host links and endpoint namespaces of the overlay that the plan no
//      longer names are removed.
// A second deploy of the same plan changes nothing. When a step fails, what
// this run created (routers, bridges, VXLANs, namespaces) is removed again
// and the error names the step.
//
// What deploy made is found again from the hosts alone: routers carry the
// overlay name, their spec digest and the plan in their libvirt metadata;
// host links start with the overlay's link prefix; endpoint namespaces are
// named after the overlay. So destroy() works after nvbox was killed in the
// middle of a deploy, and inspect() needs no local state.
//
// Threading: the functions block; deploy() boots routers on worker threads
// of its own.
#pragma once

#include "nvbox/hosts.hpp"
#include "nvbox/images/image_store.hpp"
#include "nvbox/overlay_plan.hpp"
#include "nvbox/router.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace nvbox {

// One line per step ("router 'r1' ready on host 'local' in 12.3 s").
using OverlayLog = std::function<void(const std::string &line)>;

struct DeployOptions {
  unsigned bootsPerHost = 4;
  std::chrono::milliseconds readyTimeout{std::chrono::minutes(5)};
};

struct DeployReport {
  std::string overlay;
  std::vector<std::string> created;  // routers
  std::vector<std::string> replaced; // routers whose spec changed
  std::vector<std::string> kept;
  std::vector<std::string> started;  // kept routers that were not running
  std::vector<std::string> removed;  // routers the plan no longer names
  std::vector<std::string> reshaped; // links shaped anew on kept routers
  std::vector<std::string> rerated;  // osrd stripes given new path rates ("stripe@router")
  std::vector<std::string> hostLinksCreated;
  std::vector<std::string> hostLinksRemoved;
  double seconds = 0;

  [[nodiscard]] bool changed() const;
  [[nodiscard]] nlohmann::json toJson() const;
};

struct DestroyReport {
  std::string overlay;
  std::vector<std::string> routers;    // "router@host"
  std::vector<std::string> hostLinks;  // "link@host"
  std::vector<std::string> namespaces; // endpoint namespaces
  std::vector<std::string> failures;   // hosts or objects that could not be removed
  double seconds = 0;
  [[nodiscard]] nlohmann::json toJson() const;
};

struct OverlayRouterStatus {
  std::string name;
  std::string host;
  RouterState state = RouterState::Other;
  std::string role;
  std::string digest;
  bool current = false;  // its spec digest is the plan's
  nlohmann::json osrd;   // osrd's status from the guest agent (null if none)
  std::string osrdError; // why there is none
};

struct OverlayStatus {
  std::string overlay;
  nlohmann::json plan; // the plan found in the routers' metadata (null if none)
  std::vector<OverlayRouterStatus> routers;
  nlohmann::json lastRun; // the newest `overlay run` summary a router keeps (null if none)
  std::vector<std::string> unreachable; // "host: reason"
  [[nodiscard]] nlohmann::json toJson() const;
};

// The hosts of a plan, as HostRefs.
[[nodiscard]] std::vector<HostRef> planHosts(const OverlayPlan &plan);

// Throws nvbox::Error (what failed, after rolling back what this run made).
DeployReport deployOverlay(const OverlayPlan &plan, const images::ImageStore &store,
                           const DeployOptions &options, const OverlayLog &log);

// Removes every router, host link and endpoint namespace of `overlay` on
// `hosts` (and on the hosts named by plans found in router metadata). Goes
// on past failures and lists them in the report.
DestroyReport destroyOverlay(const std::string &overlay, const std::vector<HostRef> &hosts,
                             const std::vector<PlannedHost> &networks, const OverlayLog &log);

// The overlay's routers on `hosts` (and on the hosts its plan names), with
// osrd's live status when `live`.
[[nodiscard]] OverlayStatus inspectOverlay(const std::string &overlay,
                                           const std::vector<HostRef> &hosts, bool live);

// The overlay key routers of `overlay` on this host carry, if any.
[[nodiscard]] std::string overlayKeyOf(const virt::Connection &conn, virDomainPtr domain);

} // namespace nvbox
