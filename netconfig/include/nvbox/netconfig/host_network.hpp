// HostNetwork — the network of one NV-box host as nvbox wires overlays into
// it: bridges, VXLAN devices, and endpoint namespaces joined by veth pairs.
//
// A host's network is either the caller's own network namespace (a local
// libvirtd) or a named namespace (a host of the one-machine testbed, whose
// libvirtd runs inside it). Every operation runs its rtnetlink requests in
// that namespace (netns.hpp's runIn), never by running `ip`.
//
// The ensure*() operations are idempotent: what exists already is left as it
// is and reported as not created, so deploy can run twice and roll back only
// what it made itself.
//
// Threading: a HostNetwork is a value; its operations may run on any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace nvbox::netconfig {

class HostNetwork {
public:
  // `netns` empty: the caller's namespace.
  explicit HostNetwork(std::string netns = {});

  [[nodiscard]] const std::string &netns() const noexcept { return netns_; }

  // A bridge, up. Returns whether it was created.
  bool ensureBridge(const std::string &name);
  // A point-to-point VXLAN device enslaved to `bridge`, up. Returns whether
  // it was created.
  bool ensureVxlan(const std::string &name, std::uint32_t vni, const std::string &local,
                   const std::string &remote, const std::string &bridge);
  // The endpoint namespace `endpointNs` holding `peer` (address `cidr`,
  // default route via `gateway`), joined by the veth pair `veth`/`peer` to
  // `bridge` in this host's namespace. Returns whether it was created.
  bool ensureEndpoint(const std::string &endpointNs, const std::string &veth,
                      const std::string &peer, const std::string &bridge, const std::string &cidr,
                      const std::string &gateway);

  // Shapes what `dev` sends (for a VM's tap: what reaches the guest) to
  // `bitsPerSecond` with a tbf root qdisc: burst 10 ms of traffic (at least
  // two full frames), queue 50 ms (at least 32 KiB). Replaces what was there.
  void shape(const std::string &dev, std::uint64_t bitsPerSecond);
  // Takes shape()'s tbf away again; returns whether there was one.
  bool unshape(const std::string &dev);

  // Names of the links in this host's namespace starting with `prefix`.
  [[nodiscard]] std::vector<std::string> links(const std::string &prefix) const;
  // Deletes a link; a missing one is not an error. Returns whether it was there.
  bool removeLink(const std::string &name);

private:
  void run(const std::function<void()> &fn) const;
  std::string netns_;
};

} // namespace nvbox::netconfig
