// LinkWiring — the host side of one kind of overlay link (overlay_plan.hpp
// explains the kinds). One class per kind, each in its own file, like
// containerlab's links/: BridgeLink, VxlanLink, UdpLink; EndpointLink joins
// an endpoint namespace to its router.
//
// wire() makes what the link needs on its hosts before the routers' NICs
// attach to it, and records an undo step for everything it created, so a
// failed deploy removes exactly what it made. names() lists the host
// devices the link owns on one host, which is what a re-deploy keeps and
// destroy removes (destroy also sweeps the overlay's name prefix, for what a
// killed deploy left).
//
// Threading: wire() may run for different links on different threads when
// each thread has its own HostNetworks entries; the undo log is shared and
// locked.
#pragma once

#include "nvbox/netconfig/host_network.hpp"
#include "nvbox/overlay_plan.hpp"

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace nvbox::links {

using HostNetworks = std::map<std::string, netconfig::HostNetwork>; // host name -> network

// What a run created, undone in reverse order.
class UndoLog {
public:
  // `what` names the object the step removes ("bridge 'nv1b2c3db0' on host 'local'").
  void add(std::string what, std::function<void()> step);
  // What was recorded, oldest first.
  [[nodiscard]] std::vector<std::string> created();
  // Runs every step, newest first; failures are collected, not thrown.
  std::vector<std::string> rollback();
  void clear();

private:
  std::mutex mutex_;
  std::vector<std::pair<std::string, std::function<void()>>> steps_;
};

class LinkWiring {
public:
  virtual ~LinkWiring() = default;
  virtual void wire(const OverlayPlan &plan, const PlannedLink &link, HostNetworks &nets,
                    UndoLog &undo) const = 0;
  [[nodiscard]] virtual std::vector<std::string> names(const PlannedLink &link,
                                                       const std::string &host) const = 0;
};

[[nodiscard]] const LinkWiring &wiringFor(LinkKind kind);

// Bridges are shared by a link's kinds that need one on a host.
void wireBridge(const std::string &bridge, const std::string &host, HostNetworks &nets,
                UndoLog &undo);

class EndpointLink {
public:
  static void wire(const PlannedEndpoint &endpoint, HostNetworks &nets, UndoLog &undo);
  [[nodiscard]] static std::vector<std::string> names(const PlannedEndpoint &endpoint);
};

} // namespace nvbox::links
