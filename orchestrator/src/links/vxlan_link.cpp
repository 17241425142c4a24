// VxlanLink: routers on two hosts whose networks nvbox reaches; a bridge on
// each, joined by a VXLAN device (the link's VNI) between their underlays.
#include "link_wiring.hpp"

namespace nvbox::links {

namespace {

class VxlanLink final : public LinkWiring {
public:
  void wire(const OverlayPlan &plan, const PlannedLink &link, HostNetworks &nets,
            UndoLog &undo) const override {
    for (const auto &[self, other] : {std::pair{&link.a, &link.b}, std::pair{&link.b, &link.a}}) {
      wireBridge(self->bridge, self->host, nets, undo);
      netconfig::HostNetwork &net = nets.at(self->host);
      const std::string &local = plan.hosts.at(self->host).underlay;
      const std::string &remote = plan.hosts.at(other->host).underlay;
      if (net.ensureVxlan(link.vxlanDevice, link.vni, local, remote, self->bridge)) {
        undo.add("vxlan '" + link.vxlanDevice + "' on host '" + self->host + "'",
                 [&net, dev = link.vxlanDevice] { net.removeLink(dev); });
      }
    }
  }
  std::vector<std::string> names(const PlannedLink &link, const std::string &host) const override {
    const PlannedPort &p = host == link.a.host ? link.a : link.b;
    if (p.host != host) {
      return {};
    }
    return {p.bridge, link.vxlanDevice, p.tap};
  }
};

} // namespace

const LinkWiring &vxlanLink() {
  static const VxlanLink wiring;
  return wiring;
}

} // namespace nvbox::links
