#include "overlay_hosts.hpp"

#include "nvbox/error.hpp"

#include <vector>

namespace nvbox {

netconfig::HostNetwork networkOf(const PlannedHost &host) {
  return netconfig::HostNetwork(host.netns);
}

std::map<std::string, virt::Connection> connectAll(const OverlayPlan &plan,
                                                   const std::string &verb) {
  std::map<std::string, virt::Connection> conns;
  std::vector<std::string> failures;
  for (const auto &[name, host] : plan.hosts) {
    try {
      conns.emplace(name, virt::Connection::open(host.uri));
    } catch (const Error &e) {
      failures.push_back("host '" + name + "': " + e.what());
    }
  }
  if (!failures.empty()) {
    std::string all;
    for (const auto &f : failures) {
      all += (all.empty() ? "" : "; ") + f;
    }
    throw Error("cannot " + verb + " overlay '" + plan.overlay + "': " + all,
                "check the hosts' URIs and that their libvirtd runs; nothing was changed");
  }
  return conns;
}

links::HostNetworks networksOf(const OverlayPlan &plan) {
  links::HostNetworks nets;
  for (const auto &[name, host] : plan.hosts) {
    if (host.reachable) {
      nets.emplace(name, networkOf(host));
    }
  }
  return nets;
}

} // namespace nvbox
