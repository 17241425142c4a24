// Rtnetlink — host links and queueing disciplines through libnl-route-3.
//
// One Rtnetlink object owns one NETLINK_ROUTE socket bound to the network
// namespace of the thread that constructed it (a netlink socket keeps the
// namespace it was created in). Every method is one request/acknowledge round
// trip; failures throw nvbox::Error naming the interface and the kernel's
// reason.
//
// Threading: an object is used by one thread at a time.
#pragma once

#include "nvbox/netconfig/fd.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

struct nl_sock;

namespace nvbox::netconfig {

class Rtnetlink {
public:
  Rtnetlink();
  ~Rtnetlink();
  Rtnetlink(const Rtnetlink &) = delete;
  Rtnetlink &operator=(const Rtnetlink &) = delete;

  void addVeth(const std::string &name, const std::string &peer);
  void addBridge(const std::string &name);
  void addVxlan(const std::string &name, std::uint32_t vni, std::uint16_t dstPort);
  // A point-to-point VXLAN: encapsulates to `remote` from `local` (IPv4
  // addresses of the underlay); the kernel picks the device by routing.
  void addVxlan(const std::string &name, std::uint32_t vni, std::uint16_t dstPort,
                const std::string &local, const std::string &remote);
  // Enslaves a link to a bridge.
  void setMaster(const std::string &name, const std::string &bridge);
  // Names of every link in this namespace.
  [[nodiscard]] std::vector<std::string> linkNames();
  void deleteLink(const std::string &name);
  [[nodiscard]] bool linkExists(const std::string &name);
  [[nodiscard]] int ifindex(const std::string &name);
  void setUp(const std::string &name);
  void setMtu(const std::string &name, std::uint32_t mtu);
  // Moves a link into the named network namespace (/run/netns/NAMESPACE).
  void moveToNamespace(const std::string &name, const std::string &netns);

  // Adds an IPv4 or IPv6 address in CIDR form ("10.0.0.1/24") to a link.
  void addAddress(const std::string &dev, const std::string &cidr);
  // Adds a route to `dst` (CIDR, or "default") via a gateway address, out of
  // a device, or both (either may be empty, not both).
  void addRoute(const std::string &dst, const std::string &gateway, const std::string &dev);

  // Root token-bucket filter: rate in bytes/s, burst and limit in bytes. It
  // replaces any root qdisc, dropping what that one held.
  void addTbf(const std::string &dev, std::uint64_t rateBytesPerSecond, std::uint32_t burstBytes,
              std::uint32_t limitBytes);
  // Removes the root qdisc nvbox put there (the kernel's default, which has
  // no handle, stays). Returns whether there was one.
  bool removeRootQdisc(const std::string &dev);
  // Root netem qdisc adding a fixed delay.
  void addNetemDelay(const std::string &dev, std::uint32_t delayMicros);

private:
  std::unique_ptr<nl_sock, void (*)(nl_sock *)> sock_;
};

// Creates a TUN device (IFF_TUN | IFF_NO_PI) in the caller's namespace and
// returns its descriptor; the device disappears when the descriptor closes.
[[nodiscard]] Fd openTun(const std::string &name);

} // namespace nvbox::netconfig
