// Applying a NetConfig to the running kernel, and reading back what is there.
//
// applyNetConfig() acts on the network namespace of the calling thread
// through rtnetlink (libnl-route-3), /proc/sys and sethostname(), in this
// order: host name, sysctls, `lo` up, then for each iface its MTU, up,
// addresses and shaping, then the routes (their gateways need the
// addresses). Every iface is resolved (by MAC or by name) before the first
// change, so a configuration naming a missing interface changes nothing.
//
// Applying twice gives the same result: addresses and routes are replaced
// rather than added, and each configured interface's root qdisc is deleted
// and made again (none when the iface has no shaping). Shaping: rate alone →
// tbf at the root; delay, jitter or loss → netem at the root (handle 1:)
// with, when a rate is given too, tbf below it (parent 1:1).
//
// Failures throw std::runtime_error naming the object and the kernel's reason
// on one line: "iface 'eth1': cannot set MTU 9000: Invalid argument".
//
// listInterfaces() is the read side, for the agent's status.
//
// Threading: each call opens its own netlink socket; any thread may call.
#pragma once

#include "net_config.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace nvbox::agent {

struct InterfaceState {
  int ifindex = 0;
  std::string name;
  std::string mac; // "52:54:00:6e:76:01"; empty for links without one (TUN)
  std::uint32_t mtu = 0;
  bool up = false; // administratively (IFF_UP)
  bool loopback = false;
  std::vector<std::string> addresses; // IPv4 and IPv6, CIDR ("10.0.1.1/24")
};

void applyNetConfig(const NetConfig &config);

// Sets one interface's MTU (when given) and replaces its shaping, as
// applyNetConfig does for each iface: what the host changes while the
// router runs (parseShape() reads it).
void applyShape(const IfaceSpec &spec);

// Every link of the calling thread's network namespace, by ifindex.
[[nodiscard]] std::vector<InterfaceState> listInterfaces();

} // namespace nvbox::agent
