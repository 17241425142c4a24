#include "nvbox/netconfig/host_network.hpp"

#include "nvbox/netconfig/netns.hpp"
#include "nvbox/netconfig/rtnetlink.hpp"

#include <algorithm>
#include <utility>

namespace nvbox::netconfig {

namespace {
constexpr std::uint16_t kVxlanPort = 4789; // IANA's
}

HostNetwork::HostNetwork(std::string netns) : netns_(std::move(netns)) {}

void HostNetwork::run(const std::function<void()> &fn) const {
  if (netns_.empty()) {
    fn();
  } else {
    runIn(netns_, fn);
  }
}

bool HostNetwork::ensureBridge(const std::string &name) {
  bool created = false;
  run([&] {
    Rtnetlink nl;
    if (!nl.linkExists(name)) {
      nl.addBridge(name);
      created = true;
    }
    nl.setUp(name);
  });
  return created;
}

bool HostNetwork::ensureVxlan(const std::string &name, std::uint32_t vni, const std::string &local,
                              const std::string &remote, const std::string &bridge) {
  bool created = false;
  run([&] {
    Rtnetlink nl;
    if (!nl.linkExists(name)) {
      nl.addVxlan(name, vni, kVxlanPort, local, remote);
      created = true;
    }
    nl.setMaster(name, bridge);
    nl.setUp(name);
  });
  return created;
}

bool HostNetwork::ensureEndpoint(const std::string &endpointNs, const std::string &veth,
                                 const std::string &peer, const std::string &bridge,
                                 const std::string &cidr, const std::string &gateway) {
  if (namespaceExists(endpointNs)) {
    return false;
  }
  NetworkNamespace ns(endpointNs); // removed again if a step below fails
  run([&] {
    Rtnetlink nl;
    if (nl.linkExists(veth)) {
      nl.deleteLink(veth); // a half-made endpoint of a killed deploy
    }
    nl.addVeth(veth, peer);
    nl.setMaster(veth, bridge);
    nl.setUp(veth);
    nl.moveToNamespace(peer, endpointNs);
  });
  runIn(endpointNs, [&] {
    Rtnetlink nl;
    nl.setUp("lo");
    nl.setUp(peer);
    nl.addAddress(peer, cidr);
    nl.addRoute("default", gateway, peer);
  });
  ns.release();
  return true;
}

void HostNetwork::shape(const std::string &dev, std::uint64_t bitsPerSecond) {
  const std::uint64_t bytesPerSecond = bitsPerSecond / 8;
  const auto burst =
      static_cast<std::uint32_t>(std::max<std::uint64_t>(bytesPerSecond / 100, 3028));
  const auto limit =
      static_cast<std::uint32_t>(std::max<std::uint64_t>(bytesPerSecond / 20, 32 * 1024));
  run([&] { Rtnetlink().addTbf(dev, bytesPerSecond, burst, limit); });
}

bool HostNetwork::unshape(const std::string &dev) {
  bool removed = false;
  run([&] { removed = Rtnetlink().removeRootQdisc(dev); });
  return removed;
}

std::vector<std::string> HostNetwork::links(const std::string &prefix) const {
  std::vector<std::string> out;
  run([&] {
    for (auto &name : Rtnetlink().linkNames()) {
      if (name.starts_with(prefix)) {
        out.push_back(std::move(name));
      }
    }
  });
  return out;
}

bool HostNetwork::removeLink(const std::string &name) {
  bool removed = false;
  run([&] {
    Rtnetlink nl;
    if (nl.linkExists(name)) {
      nl.deleteLink(name);
      removed = true;
    }
  });
  return removed;
}

} // namespace nvbox::netconfig
