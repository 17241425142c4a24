#include "nvbox/netconfig/rtnetlink.hpp"

#include "nvbox/error.hpp"
#include "nvbox/netconfig/fd.hpp"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/pkt_sched.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/link/vxlan.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/qdisc/netem.h>
#include <netlink/route/qdisc/tbf.h>
#include <netlink/route/route.h>
#include <netlink/route/tc.h>
#include <sys/ioctl.h>

namespace nvbox::netconfig {
namespace {

using LinkPtr = std::unique_ptr<rtnl_link, void (*)(rtnl_link *)>;
using QdiscPtr = std::unique_ptr<rtnl_qdisc, void (*)(rtnl_qdisc *)>;

using AddrPtr = std::unique_ptr<nl_addr, void (*)(nl_addr *)>;

std::string nlError(int err) {
  return nl_geterror(err);
}

AddrPtr parseAddress(const std::string &text, const std::string &what) {
  nl_addr *raw = nullptr;
  const int err = nl_addr_parse(text.c_str(), AF_UNSPEC, &raw);
  if (err < 0) {
    throw UsageError("invalid " + what + " '" + text + "': " + nlError(err));
  }
  return {raw, nl_addr_put};
}

void check(int err, const std::string &what) {
  if (err < 0) {
    throw Error(what + ": " + nlError(err));
  }
}

LinkPtr ownLink(rtnl_link *link) {
  return {link, rtnl_link_put};
}

QdiscPtr rootQdisc(int ifindex, const char *kind) {
  QdiscPtr q(rtnl_qdisc_alloc(), rtnl_qdisc_put);
  if (!q) {
    throw Error("cannot allocate a qdisc");
  }
  rtnl_tc_set_ifindex(TC_CAST(q.get()), ifindex);
  rtnl_tc_set_parent(TC_CAST(q.get()), TC_H_ROOT);
  check(rtnl_tc_set_kind(TC_CAST(q.get()), kind), std::string("qdisc kind '") + kind + "'");
  return q;
}

} // namespace

Rtnetlink::Rtnetlink() : sock_(nl_socket_alloc(), nl_socket_free) {
  if (!sock_) {
    throw Error("cannot allocate a netlink socket");
  }
  check(nl_connect(sock_.get(), NETLINK_ROUTE), "cannot open rtnetlink");
}

Rtnetlink::~Rtnetlink() = default;

void Rtnetlink::addVeth(const std::string &name, const std::string &peer) {
  // Built by hand rather than with rtnl_link_veth_add(), which pins the peer
  // to a pid's namespace; both ends stay in this socket's namespace.
  LinkPtr link = ownLink(rtnl_link_veth_alloc());
  if (!link) {
    throw Error("cannot allocate veth '" + name + "'");
  }
  rtnl_link_set_name(link.get(), name.c_str());
  rtnl_link_set_name(rtnl_link_veth_get_peer(link.get()), peer.c_str());
  check(rtnl_link_add(sock_.get(), link.get(), NLM_F_CREATE | NLM_F_EXCL),
        "cannot create veth pair '" + name + "'/'" + peer + "'");
}

void Rtnetlink::addBridge(const std::string &name) {
  check(rtnl_link_bridge_add(sock_.get(), name.c_str()), "cannot create bridge '" + name + "'");
}

void Rtnetlink::addVxlan(const std::string &name, std::uint32_t vni, std::uint16_t dstPort) {
  LinkPtr link = ownLink(rtnl_link_vxlan_alloc());
  if (!link) {
    throw Error("cannot allocate vxlan link '" + name + "'");
  }
  rtnl_link_set_name(link.get(), name.c_str());
  check(rtnl_link_vxlan_set_id(link.get(), vni), "vxlan '" + name + "' id");
  check(rtnl_link_vxlan_set_port(link.get(), dstPort), "vxlan '" + name + "' port");
  check(rtnl_link_add(sock_.get(), link.get(), NLM_F_CREATE | NLM_F_EXCL),
        "cannot create vxlan '" + name + "'");
}

void Rtnetlink::addVxlan(const std::string &name, std::uint32_t vni, std::uint16_t dstPort,
                         const std::string &local, const std::string &remote) {
  LinkPtr link = ownLink(rtnl_link_vxlan_alloc());
  if (!link) {
    throw Error("cannot allocate vxlan link '" + name + "'");
  }
  const AddrPtr localAddr = parseAddress(local, "vxlan local address");
  const AddrPtr remoteAddr = parseAddress(remote, "vxlan remote address");
  rtnl_link_set_name(link.get(), name.c_str());
  check(rtnl_link_vxlan_set_id(link.get(), vni), "vxlan '" + name + "' id");
  check(rtnl_link_vxlan_set_port(link.get(), dstPort), "vxlan '" + name + "' port");
  check(rtnl_link_vxlan_set_local(link.get(), localAddr.get()), "vxlan '" + name + "' local");
  check(rtnl_link_vxlan_set_group(link.get(), remoteAddr.get()), "vxlan '" + name + "' remote");
  check(rtnl_link_add(sock_.get(), link.get(), NLM_F_CREATE | NLM_F_EXCL),
        "cannot create vxlan '" + name + "' to '" + remote + "'");
}

void Rtnetlink::setMaster(const std::string &name, const std::string &bridge) {
  rtnl_link *raw = nullptr;
  check(rtnl_link_get_kernel(sock_.get(), 0, name.c_str(), &raw),
        "cannot find link '" + name + "'");
  const LinkPtr link = ownLink(raw);
  const LinkPtr change = ownLink(rtnl_link_alloc());
  rtnl_link_set_master(change.get(), ifindex(bridge));
  check(rtnl_link_change(sock_.get(), link.get(), change.get(), 0),
        "cannot attach link '" + name + "' to bridge '" + bridge + "'");
}

std::vector<std::string> Rtnetlink::linkNames() {
  nl_cache *raw = nullptr;
  check(rtnl_link_alloc_cache(sock_.get(), AF_UNSPEC, &raw), "cannot list links");
  const std::unique_ptr<nl_cache, void (*)(nl_cache *)> cache(raw, nl_cache_free);
  std::vector<std::string> names;
  for (nl_object *obj = nl_cache_get_first(cache.get()); obj != nullptr;
       obj = nl_cache_get_next(obj)) {
    names.emplace_back(rtnl_link_get_name(reinterpret_cast<rtnl_link *>(obj)));
  }
  return names;
}

void Rtnetlink::deleteLink(const std::string &name) {
  LinkPtr link = ownLink(rtnl_link_alloc());
  rtnl_link_set_name(link.get(), name.c_str());
  check(rtnl_link_delete(sock_.get(), link.get()), "cannot delete link '" + name + "'");
}

bool Rtnetlink::linkExists(const std::string &name) {
  rtnl_link *raw = nullptr;
  const int err = rtnl_link_get_kernel(sock_.get(), 0, name.c_str(), &raw);
  if (err == -NLE_OBJ_NOTFOUND || err == -NLE_NODEV) {
    return false;
  }
  check(err, "cannot look up link '" + name + "'");
  ownLink(raw);
  return true;
}

int Rtnetlink::ifindex(const std::string &name) {
  rtnl_link *raw = nullptr;
  check(rtnl_link_get_kernel(sock_.get(), 0, name.c_str(), &raw),
        "cannot find link '" + name + "'");
  const LinkPtr link = ownLink(raw);
  return rtnl_link_get_ifindex(link.get());
}

void Rtnetlink::setUp(const std::string &name) {
  rtnl_link *raw = nullptr;
  check(rtnl_link_get_kernel(sock_.get(), 0, name.c_str(), &raw),
        "cannot find link '" + name + "'");
  const LinkPtr link = ownLink(raw);
  const LinkPtr change = ownLink(rtnl_link_alloc());
  rtnl_link_set_flags(change.get(), IFF_UP);
  check(rtnl_link_change(sock_.get(), link.get(), change.get(), 0),
        "cannot bring up link '" + name + "'");
}

void Rtnetlink::setMtu(const std::string &name, std::uint32_t mtu) {
  rtnl_link *raw = nullptr;
  check(rtnl_link_get_kernel(sock_.get(), 0, name.c_str(), &raw),
        "cannot find link '" + name + "'");
  const LinkPtr link = ownLink(raw);
  const LinkPtr change = ownLink(rtnl_link_alloc());
  rtnl_link_set_mtu(change.get(), mtu);
  check(rtnl_link_change(sock_.get(), link.get(), change.get(), 0),
        "cannot set the MTU of '" + name + "' to " + std::to_string(mtu));
}

void Rtnetlink::moveToNamespace(const std::string &name, const std::string &netns) {
  const std::string path = "/run/netns/" + netns;
  const Fd ns(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns) {
    throw Error(sysError("cannot open network namespace '" + netns + "'"));
  }
  rtnl_link *raw = nullptr;
  check(rtnl_link_get_kernel(sock_.get(), 0, name.c_str(), &raw),
        "cannot find link '" + name + "'");
  const LinkPtr link = ownLink(raw);
  const LinkPtr change = ownLink(rtnl_link_alloc());
  rtnl_link_set_ns_fd(change.get(), ns.get());
  check(rtnl_link_change(sock_.get(), link.get(), change.get(), 0),
        "cannot move link '" + name + "' to network namespace '" + netns + "'");
}

void Rtnetlink::addAddress(const std::string &dev, const std::string &cidr) {
  const AddrPtr local = parseAddress(cidr, "address");
  using RtAddrPtr = std::unique_ptr<rtnl_addr, void (*)(rtnl_addr *)>;
  const RtAddrPtr addr(rtnl_addr_alloc(), rtnl_addr_put);
  rtnl_addr_set_ifindex(addr.get(), ifindex(dev));
  check(rtnl_addr_set_local(addr.get(), local.get()), "address '" + cidr + "'");
  check(rtnl_addr_add(sock_.get(), addr.get(), 0),
        "cannot add address '" + cidr + "' to '" + dev + "'");
}

void Rtnetlink::addRoute(const std::string &dst, const std::string &gateway,
                         const std::string &dev) {
  if (gateway.empty() && dev.empty()) {
    throw UsageError("route to '" + dst + "' needs a gateway or a device");
  }
  using RoutePtr = std::unique_ptr<rtnl_route, void (*)(rtnl_route *)>;
  const RoutePtr route(rtnl_route_alloc(), rtnl_route_put);
  const AddrPtr to = parseAddress(dst, "route destination");
  check(rtnl_route_set_dst(route.get(), to.get()), "route destination '" + dst + "'");
  rtnl_route_set_family(route.get(), static_cast<std::uint8_t>(nl_addr_get_family(to.get())));
  rtnl_nexthop *hop = rtnl_route_nh_alloc();
  if (!dev.empty()) {
    rtnl_route_nh_set_ifindex(hop, ifindex(dev));
  }
  if (!gateway.empty()) {
    const AddrPtr via = parseAddress(gateway, "gateway");
    rtnl_route_nh_set_gateway(hop, via.get());
  }
  rtnl_route_add_nexthop(route.get(), hop); // the route now owns the hop
  check(rtnl_route_add(sock_.get(), route.get(), NLM_F_CREATE | NLM_F_EXCL),
        "cannot add route to '" + dst + "'" + (gateway.empty() ? "" : " via '" + gateway + "'") +
            (dev.empty() ? "" : " dev '" + dev + "'"));
}

void Rtnetlink::addTbf(const std::string &dev, std::uint64_t rateBytesPerSecond,
                       std::uint32_t burstBytes, std::uint32_t limitBytes) {
  if (rateBytesPerSecond == 0 || rateBytesPerSecond > 0xffffffffULL) {
    throw UsageError("tbf rate on '" + dev + "' must be between 1 B/s and 4 GB/s");
  }
  // A new shape starts from an empty queue: tbf cannot send a packet larger
  // than its burst, and a change keeps the queue, so a burst made smaller
  // under GSO packets queued at the old rate would hold them — and the link —
  // forever (seen with UDP GSO on veth: a rate drop wedged the path).
  removeRootQdisc(dev);
  QdiscPtr q = rootQdisc(ifindex(dev), "tbf");
  rtnl_qdisc_tbf_set_limit(q.get(), static_cast<int>(limitBytes));
  rtnl_qdisc_tbf_set_rate(q.get(), static_cast<int>(rateBytesPerSecond),
                          static_cast<int>(burstBytes), 0);
  check(rtnl_qdisc_add(sock_.get(), q.get(), NLM_F_CREATE | NLM_F_REPLACE),
        "cannot add tbf on '" + dev + "'");
}

bool Rtnetlink::removeRootQdisc(const std::string &dev) {
  QdiscPtr q(rtnl_qdisc_alloc(), rtnl_qdisc_put);
  if (!q) {
    throw Error("cannot allocate a qdisc");
  }
  rtnl_tc_set_ifindex(TC_CAST(q.get()), ifindex(dev));
  rtnl_tc_set_parent(TC_CAST(q.get()), TC_H_ROOT);
  const int err = rtnl_qdisc_delete(sock_.get(), q.get());
  if (err == -NLE_OBJ_NOTFOUND) {
    return false; // none, or the kernel's default (ENOENT for a handle of zero)
  }
  check(err, "cannot remove the root qdisc of '" + dev + "'");
  return true;
}

void Rtnetlink::addNetemDelay(const std::string &dev, std::uint32_t delayMicros) {
  QdiscPtr q = rootQdisc(ifindex(dev), "netem");
  rtnl_netem_set_delay(q.get(), static_cast<int>(delayMicros));
  check(rtnl_qdisc_add(sock_.get(), q.get(), NLM_F_CREATE | NLM_F_REPLACE),
        "cannot add netem on '" + dev + "'");
}

Fd openTun(const std::string &name) {
  if (name.empty() || name.size() >= IFNAMSIZ) {
    throw UsageError("invalid TUN device name '" + name + "'", "use 1-15 characters");
  }
  Fd fd(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
  if (!fd) {
    throw Error(sysError("cannot open '/dev/net/tun'"), "load the tun module and run as root");
  }
  ifreq req{};
  req.ifr_flags = IFF_TUN | IFF_NO_PI;
  name.copy(req.ifr_name, IFNAMSIZ - 1);
  if (::ioctl(fd.get(), TUNSETIFF, &req) != 0) {
    throw Error(sysError("cannot create TUN device '" + name + "'"), "run as root");
  }
  return fd;
}

} // namespace nvbox::netconfig
