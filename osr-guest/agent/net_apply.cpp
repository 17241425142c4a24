#include "net_apply.hpp"

#include "nvbox/netconfig/fd.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/netlink.h>
#include <linux/pkt_sched.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/qdisc/netem.h>
#include <netlink/route/qdisc/tbf.h>
#include <netlink/route/route.h>
#include <netlink/route/tc.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>

namespace nvbox::agent {
namespace {

template <typename T, void (*Free)(T *)> struct Deleter {
  void operator()(T *p) const { Free(p); }
};
using SockPtr = std::unique_ptr<nl_sock, Deleter<nl_sock, nl_socket_free>>;
using CachePtr = std::unique_ptr<nl_cache, Deleter<nl_cache, nl_cache_free>>;
using LinkPtr = std::unique_ptr<rtnl_link, Deleter<rtnl_link, rtnl_link_put>>;
using AddrPtr = std::unique_ptr<nl_addr, Deleter<nl_addr, nl_addr_put>>;
using RtAddrPtr = std::unique_ptr<rtnl_addr, Deleter<rtnl_addr, rtnl_addr_put>>;
using RoutePtr = std::unique_ptr<rtnl_route, Deleter<rtnl_route, rtnl_route_put>>;
using QdiscPtr = std::unique_ptr<rtnl_qdisc, Deleter<rtnl_qdisc, rtnl_qdisc_put>>;

constexpr std::uint32_t kNetemHandle = TC_H_MAKE(1U << 16, 0); // 1:
constexpr std::uint32_t kNetemChild = TC_H_MAKE(1U << 16, 1);  // 1:1

// What the kernel said about the last failed request: libnl folds errno into
// its own coarser codes, and the extended ack's text ("Specified qdisc kind
// is unknown") is often the only useful part.
struct KernelError {
  int code = 0;
  std::string message;
};

int onKernelError(sockaddr_nl * /*from*/, nlmsgerr *error, void *arg) {
  auto *last = static_cast<KernelError *>(arg);
  last->code = -error->error;
  // libnl hands over the payload of the NLMSG_ERROR message; its header sits
  // just before it. With NETLINK_CAP_ACK the attributes follow the nlmsgerr.
  const auto *header =
      reinterpret_cast<const nlmsghdr *>(reinterpret_cast<const char *>(error) - NLMSG_HDRLEN);
  constexpr auto kAttrOffset = NLMSG_ALIGN(sizeof(nlmsgerr));
  if ((header->nlmsg_flags & NLM_F_ACK_TLVS) != 0 && (header->nlmsg_flags & NLM_F_CAPPED) != 0 &&
      header->nlmsg_len > NLMSG_HDRLEN + kAttrOffset) {
    auto *attrs = reinterpret_cast<nlattr *>(reinterpret_cast<char *>(error) + kAttrOffset);
    const auto length = static_cast<int>(header->nlmsg_len - NLMSG_HDRLEN - kAttrOffset);
    if (const nlattr *msg = nla_find(attrs, length, NLMSGERR_ATTR_MSG); msg != nullptr) {
      const auto *text = static_cast<const char *>(nla_data(msg));
      last->message.assign(text, ::strnlen(text, static_cast<std::size_t>(nla_len(msg))));
      while (!last->message.empty() && last->message.back() == '.') {
        last->message.pop_back();
      }
    }
  }
  return NL_STOP;
}

// One NETLINK_ROUTE socket in the calling thread's namespace; each method is
// one request and throws runtime_error("LABEL: WHAT: reason").
class Netlink {
public:
  Netlink() : sock_(nl_socket_alloc()) {
    if (!sock_) {
      throw std::runtime_error("cannot allocate a netlink socket");
    }
    nl_socket_modify_err_cb(sock_.get(), NL_CB_CUSTOM, onKernelError, &last_);
    check(nl_connect(sock_.get(), NETLINK_ROUTE), "rtnetlink", "cannot connect");
    const int on = 1;
    // Best effort: older kernels just send no extended ack.
    (void)::setsockopt(nl_socket_get_fd(sock_.get()), SOL_NETLINK, NETLINK_EXT_ACK, &on, sizeof on);
    (void)::setsockopt(nl_socket_get_fd(sock_.get()), SOL_NETLINK, NETLINK_CAP_ACK, &on, sizeof on);
  }
  // The error callback holds the address of last_.
  Netlink(const Netlink &) = delete;
  Netlink &operator=(const Netlink &) = delete;

  std::vector<InterfaceState> interfaces() {
    nl_cache *rawLinks = nullptr;
    nl_cache *rawAddrs = nullptr;
    last_ = {};
    check(rtnl_link_alloc_cache(sock_.get(), AF_UNSPEC, &rawLinks), "links", "cannot list");
    const CachePtr links(rawLinks);
    last_ = {};
    check(rtnl_addr_alloc_cache(sock_.get(), &rawAddrs), "addresses", "cannot list");
    const CachePtr addrs(rawAddrs);
    std::vector<InterfaceState> out;
    for (nl_object *o = nl_cache_get_first(links.get()); o != nullptr; o = nl_cache_get_next(o)) {
      auto *link = reinterpret_cast<rtnl_link *>(o);
      InterfaceState state;
      state.ifindex = rtnl_link_get_ifindex(link);
      state.name = rtnl_link_get_name(link) != nullptr ? rtnl_link_get_name(link) : "";
      nl_addr *mac = rtnl_link_get_addr(link);
      if (mac != nullptr && nl_addr_get_len(mac) == 6) {
        char text[32];
        state.mac = nl_addr2str(mac, text, sizeof text);
      }
      state.mtu = rtnl_link_get_mtu(link);
      state.up = (rtnl_link_get_flags(link) & IFF_UP) != 0;
      state.loopback = (rtnl_link_get_flags(link) & IFF_LOOPBACK) != 0;
      out.push_back(std::move(state));
    }
    std::sort(out.begin(), out.end(),
              [](const auto &a, const auto &b) { return a.ifindex < b.ifindex; });
    for (nl_object *o = nl_cache_get_first(addrs.get()); o != nullptr; o = nl_cache_get_next(o)) {
      auto *addr = reinterpret_cast<rtnl_addr *>(o);
      const auto it = std::find_if(out.begin(), out.end(), [&](const InterfaceState &s) {
        return s.ifindex == rtnl_addr_get_ifindex(addr);
      });
      nl_addr *local = rtnl_addr_get_local(addr);
      if (it == out.end() || local == nullptr) {
        continue;
      }
      char text[INET6_ADDRSTRLEN] = {};
      const int family = nl_addr_get_family(local);
      if ((family == AF_INET || family == AF_INET6) &&
          ::inet_ntop(family, nl_addr_get_binary_addr(local), text, sizeof text) != nullptr) {
        it->addresses.push_back(std::string(text) + "/" +
                                std::to_string(rtnl_addr_get_prefixlen(addr)));
      }
    }
    return out;
  }

  void setMtu(const InterfaceState &link, std::uint32_t mtu) {
    const LinkPtr change(rtnl_link_alloc());
    rtnl_link_set_mtu(change.get(), mtu);
    changeLink(link, change.get(), "cannot set MTU " + std::to_string(mtu));
  }

  void setUp(const InterfaceState &link) {
    const LinkPtr change(rtnl_link_alloc());
    rtnl_link_set_flags(change.get(), IFF_UP);
    changeLink(link, change.get(), "cannot bring it up");
  }

  void replaceAddress(const InterfaceState &link, const std::string &cidr) {
    const std::string label = "iface '" + link.name + "'";
    const AddrPtr local = parse(cidr, label);
    const RtAddrPtr addr(rtnl_addr_alloc());
    rtnl_addr_set_ifindex(addr.get(), link.ifindex);
    last_ = {};
    check(rtnl_addr_set_local(addr.get(), local.get()), label, "bad address " + cidr);
    check(rtnl_addr_add(sock_.get(), addr.get(), NLM_F_REPLACE), label,
          "cannot add address " + cidr);
  }

  void replaceRoute(const RouteSpec &spec, int devIndex, const std::string &label) {
    const AddrPtr dst = parse(spec.dst, label);
    const AddrPtr via = parse(spec.via, label);
    const RoutePtr route(rtnl_route_alloc());
    rtnl_route_set_family(route.get(), AF_INET);
    last_ = {};
    check(rtnl_route_set_dst(route.get(), dst.get()), label, "bad destination");
    rtnl_nexthop *hop = rtnl_route_nh_alloc();
    if (hop == nullptr) {
      throw std::runtime_error(label + ": cannot allocate a next hop");
    }
    rtnl_route_nh_set_gateway(hop, via.get());
    if (devIndex != 0) {
      rtnl_route_nh_set_ifindex(hop, devIndex);
    }
    rtnl_route_add_nexthop(route.get(), hop); // the route owns the hop now
    check(rtnl_route_add(sock_.get(), route.get(), NLM_F_CREATE | NLM_F_REPLACE), label,
          "cannot add");
  }

  // Removes whatever root qdisc the interface has; the kernel's default
  // (which has no handle) cannot be removed and is left alone.
  void resetRootQdisc(const InterfaceState &link) {
    const QdiscPtr q = qdisc(link, TC_H_ROOT, 0);
    last_ = {};
    const int err = rtnl_qdisc_delete(sock_.get(), q.get());
    if (last_.code != ENOENT) {
      check(err, "iface '" + link.name + "'", "cannot remove its root qdisc");
    }
  }

  void addNetem(const InterfaceState &link, const IfaceSpec &spec) {
    const QdiscPtr q = qdisc(link, TC_H_ROOT, kNetemHandle);
    setKind(q.get(), "netem", link);
    rtnl_netem_set_delay(q.get(), static_cast<int>(spec.delayUs.value_or(0)));
    rtnl_netem_set_jitter(q.get(), static_cast<int>(spec.jitterUs.value_or(0)));
    // The kernel's loss is a probability scaled to 2^32 - 1.
    const double loss =
        std::round(spec.lossPercent.value_or(0) / 100 * std::numeric_limits<std::uint32_t>::max());
    rtnl_netem_set_loss(q.get(), static_cast<int>(static_cast<std::uint32_t>(loss)));
    addQdisc(q.get(), link, "netem");
  }

  void addTbf(const InterfaceState &link, std::uint64_t bitsPerSecond, std::uint32_t parent) {
    const std::uint64_t bytes = bitsPerSecond / 8;
    // Burst: 10 ms of traffic but at least two full frames, or tbf would
    // never pass one; queue: 50 ms, at least 32 KiB.
    const std::uint64_t burst = std::max<std::uint64_t>(bytes / 100, 2 * (link.mtu + 14ULL));
    const std::uint64_t limit = std::max<std::uint64_t>({bytes / 20, 32768, burst});
    const QdiscPtr q = qdisc(link, parent, 0);
    setKind(q.get(), "tbf", link);
    rtnl_qdisc_tbf_set_limit(q.get(), static_cast<int>(limit));
    rtnl_qdisc_tbf_set_rate(q.get(), static_cast<int>(bytes), static_cast<int>(burst), 0);
    addQdisc(q.get(), link, "tbf");
  }

private:
  void check(int err, const std::string &label, const std::string &what) const {
    if (err >= 0) {
      return;
    }
    std::string reason = last_.code != 0 ? std::strerror(last_.code) : nl_geterror(err);
    if (!last_.message.empty()) {
      reason += " (" + last_.message + ")";
    }
    throw std::runtime_error(label + ": " + what + ": " + reason);
  }

  static AddrPtr parse(const std::string &text, const std::string &label) {
    nl_addr *raw = nullptr;
    if (nl_addr_parse(text.c_str(), AF_INET, &raw) < 0) {
      throw std::runtime_error(label + ": bad address '" + text + "'");
    }
    return AddrPtr(raw);
  }

  void changeLink(const InterfaceState &link, rtnl_link *change, const std::string &what) {
    const LinkPtr orig(rtnl_link_alloc());
    rtnl_link_set_ifindex(orig.get(), link.ifindex);
    last_ = {};
    check(rtnl_link_change(sock_.get(), orig.get(), change, 0), "iface '" + link.name + "'", what);
  }

  static QdiscPtr qdisc(const InterfaceState &link, std::uint32_t parent, std::uint32_t handle) {
    QdiscPtr q(rtnl_qdisc_alloc());
    if (!q) {
      throw std::runtime_error("iface '" + link.name + "': cannot allocate a qdisc");
    }
    rtnl_tc_set_ifindex(TC_CAST(q.get()), link.ifindex);
    rtnl_tc_set_parent(TC_CAST(q.get()), parent);
    if (handle != 0) {
      rtnl_tc_set_handle(TC_CAST(q.get()), handle);
    }
    return q;
  }

  void setKind(rtnl_qdisc *q, const char *kind, const InterfaceState &link) {
    last_ = {};
    check(rtnl_tc_set_kind(TC_CAST(q), kind), "iface '" + link.name + "'",
          std::string("libnl has no ") + kind + " qdisc");
  }

  void addQdisc(rtnl_qdisc *q, const InterfaceState &link, const char *kind) {
    last_ = {};
    check(rtnl_qdisc_add(sock_.get(), q, NLM_F_CREATE | NLM_F_REPLACE), "iface '" + link.name + "'",
          std::string("cannot add ") + kind + " qdisc");
  }

  SockPtr sock_;
  KernelError last_;
};

const InterfaceState &resolve(const std::vector<InterfaceState> &links, const IfaceSpec &spec) {
  const InterfaceState *found = nullptr;
  for (const auto &link : links) {
    if (spec.mac.empty() ? link.name == spec.name : link.mac == spec.mac) {
      if (found != nullptr) {
        throw std::runtime_error("iface '" + spec.selector() + "': MAC address of both '" +
                                 found->name + "' and '" + link.name + "'");
      }
      found = &link;
    }
  }
  if (found == nullptr) {
    throw std::runtime_error(
        "iface '" + spec.selector() +
        "': " + (spec.mac.empty() ? "unknown interface" : "no interface has this MAC address"));
  }
  return *found;
}

std::string routeLabel(const RouteSpec &route) {
  return "route '" + route.dst + " via " + route.via +
         (route.dev.empty() ? "" : " dev " + route.dev) + "'";
}

const InterfaceState &byName(const std::vector<InterfaceState> &links, const std::string &name,
                             const std::string &label) {
  const auto it = std::find_if(links.begin(), links.end(),
                               [&](const InterfaceState &link) { return link.name == name; });
  if (it == links.end()) {
    throw std::runtime_error(label + ": unknown interface '" + name + "'");
  }
  return *it;
}

void setHostname(const std::string &name) {
  if (::sethostname(name.data(), name.size()) != 0) {
    throw std::runtime_error(netconfig::sysError("hostname '" + name + "': cannot set it"));
  }
}

void writeSysctl(const SysctlSpec &sysctl) {
  std::string path = "/proc/sys/" + sysctl.key;
  std::replace(path.begin() + 10, path.end(), '.', '/');
  const std::string what =
      "sysctl '" + sysctl.key + "': cannot write '" + sysctl.value + "' to " + path;
  const netconfig::Fd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd || ::write(fd.get(), sysctl.value.data(), sysctl.value.size()) !=
                 static_cast<ssize_t>(sysctl.value.size())) {
    throw std::runtime_error(netconfig::sysError(what));
  }
}

// Replaces the link's root qdisc by the spec's shaping (none when the spec
// has none).
void shapeLink(Netlink &nl, const InterfaceState &link, const IfaceSpec &spec) {
  nl.resetRootQdisc(link);
  if (spec.netem()) {
    nl.addNetem(link, spec);
    if (spec.rate) {
      nl.addTbf(link, *spec.rate, kNetemChild);
    }
  } else if (spec.rate) {
    nl.addTbf(link, *spec.rate, TC_H_ROOT);
  }
}

} // namespace

void applyShape(const IfaceSpec &spec) {
  Netlink nl;
  InterfaceState link = resolve(nl.interfaces(), spec);
  if (spec.mtu && *spec.mtu != link.mtu) {
    nl.setMtu(link, *spec.mtu);
    link.mtu = *spec.mtu;
  }
  shapeLink(nl, link, spec);
}

void applyNetConfig(const NetConfig &config) {
  Netlink nl;
  const std::vector<InterfaceState> links = nl.interfaces();
  std::vector<const InterfaceState *> targets;
  for (const auto &spec : config.ifaces) {
    const InterfaceState &link = resolve(links, spec);
    if (std::find(targets.begin(), targets.end(), &link) != targets.end()) {
      throw std::runtime_error("iface '" + link.name + "': configured by two iface lines");
    }
    targets.push_back(&link);
  }
  std::vector<int> routeDevs;
  for (const auto &route : config.routes) {
    routeDevs.push_back(route.dev.empty() ? 0
                                          : byName(links, route.dev, routeLabel(route)).ifindex);
  }
  const InterfaceState &loopback = byName(links, "lo", "loopback");

  if (!config.hostname.empty()) {
    setHostname(config.hostname);
  }
  for (const auto &sysctl : config.sysctls) {
    writeSysctl(sysctl);
  }
  nl.setUp(loopback);
  for (std::size_t i = 0; i < config.ifaces.size(); ++i) {
    const IfaceSpec &spec = config.ifaces[i];
    InterfaceState link = *targets[i];
    if (spec.mtu) {
      nl.setMtu(link, *spec.mtu);
      link.mtu = *spec.mtu;
    }
    nl.setUp(link);
    for (const auto &cidr : spec.addresses) {
      nl.replaceAddress(link, cidr);
    }
    shapeLink(nl, link, spec);
  }
  for (std::size_t i = 0; i < config.routes.size(); ++i) {
    nl.replaceRoute(config.routes[i], routeDevs[i], routeLabel(config.routes[i]));
  }
}

std::vector<InterfaceState> listInterfaces() {
  return Netlink().interfaces();
}

} // namespace nvbox::agent
