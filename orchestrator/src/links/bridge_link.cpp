// BridgeLink: both routers on one host; one bridge, their taps on it.
#include "link_wiring.hpp"

namespace nvbox::links {

void wireBridge(const std::string &bridge, const std::string &host, HostNetworks &nets,
                UndoLog &undo) {
  netconfig::HostNetwork &net = nets.at(host);
  if (net.ensureBridge(bridge)) {
    undo.add("bridge '" + bridge + "' on host '" + host + "'",
             [&net, bridge] { net.removeLink(bridge); });
  }
}

namespace {

class BridgeLink final : public LinkWiring {
public:
  void wire(const OverlayPlan & /*plan*/, const PlannedLink &link, HostNetworks &nets,
            UndoLog &undo) const override {
    wireBridge(link.a.bridge, link.a.host, nets, undo);
  }
  std::vector<std::string> names(const PlannedLink &link, const std::string &host) const override {
    if (host != link.a.host) {
      return {};
    }
    return {link.a.bridge, link.a.tap, link.b.tap};
  }
};

} // namespace

const LinkWiring &bridgeLink() {
  static const BridgeLink wiring;
  return wiring;
}

} // namespace nvbox::links
