#include "link_control.hpp"

#include "nvbox/error.hpp"
#include "nvbox/guest_agent.hpp"
#include "nvbox/router.hpp"

#include <algorithm>
#include <chrono>

namespace nvbox::links {

namespace {

Error aboutLink(const PlannedLink &link, const std::exception &e) {
  const auto *known = dynamic_cast<const Error *>(&e);
  return Error("link '" + link.name + "': " + e.what(), known ? known->hint() : "");
}

} // namespace

void LinkControl::shapeHosts(const PlannedLink &link, const LinkShape &shape) {
  if (link.kind == LinkKind::Udp) {
    return; // no host device: the guests shape the rate
  }
  try {
    for (const PlannedPort *end : {&link.a, &link.b}) {
      netconfig::HostNetwork &net = nets_.at(end->host);
      if (shape.rateBps) {
        net.shape(end->tap, *shape.rateBps);
      } else {
        net.unshape(end->tap);
      }
    }
  } catch (const std::exception &e) {
    throw aboutLink(link, e);
  }
}

void LinkControl::shapeGuest(const PlannedLink &link, const PlannedPort &end,
                             const LinkShape &shape) {
  try {
    const RouterManager manager(conns_.at(end.host),
                                HostRef{end.host, plan_.hosts.at(end.host).uri});
    const virt::DomainPtr dom = manager.domain(end.router);
    GuestAgent agent(conns_.at(end.host), dom.get());
    const std::string iface = "mac=" + end.mac + ",mtu=" + std::to_string(link.mtu) +
                              guestShapeFields(shape, link.kind == LinkKind::Udp);
    const auto reply =
        agent.request({{"cmd", "shape"}, {"iface", iface}}, std::chrono::seconds(10));
    if (!reply.value("ok", false)) {
      throw Error("router '" + end.router + "' could not shape '" + iface +
                  "': " + reply.value("error", reply.dump()));
    }
  } catch (const std::exception &e) {
    throw aboutLink(link, e);
  }
}

void LinkControl::shape(const PlannedLink &link, const LinkShape &shape) {
  shapeHosts(link, shape);
  shapeGuest(link, link.a, shape);
  shapeGuest(link, link.b, shape);
}

void LinkControl::setState(const PlannedLink &link, bool up) {
  try {
    for (const PlannedPort *end : {&link.a, &link.b}) {
      RouterManager manager(conns_.at(end->host),
                            HostRef{end->host, plan_.hosts.at(end->host).uri});
      const PlannedRouter *router = plan_.router(end->router);
      const auto nic = std::find_if(router->nics.begin(), router->nics.end(),
                                    [&](const RouterNic &n) { return n.mac == end->mac; });
      if (nic == router->nics.end()) {
        throw Error("router '" + end->router + "' has no NIC '" + end->mac + "' in the plan");
      }
      manager.setLinkState(end->router, *nic, up);
    }
  } catch (const std::exception &e) {
    throw aboutLink(link, e);
  }
}

} // namespace nvbox::links
