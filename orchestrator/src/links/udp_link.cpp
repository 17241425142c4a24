// UdpLink: QEMU UDP socket NICs pointed at each other; the hosts need
// nothing but libvirt, so this is the link for hosts whose network nvbox
// cannot reach. The rate is shaped in the guests (overlay_plan.cpp).
#include "link_wiring.hpp"

namespace nvbox::links {

namespace {

class UdpLink final : public LinkWiring {
public:
  void wire(const OverlayPlan & /*plan*/, const PlannedLink & /*link*/, HostNetworks & /*nets*/,
            UndoLog & /*undo*/) const override {
    // QEMU opens the sockets when the routers start.
  }
  std::vector<std::string> names(const PlannedLink & /*link*/,
                                 const std::string & /*host*/) const override {
    return {};
  }
};

} // namespace

const LinkWiring &udpLink() {
  static const UdpLink wiring;
  return wiring;
}

const LinkWiring &bridgeLink();
const LinkWiring &vxlanLink();

const LinkWiring &wiringFor(LinkKind kind) {
  switch (kind) {
  case LinkKind::Bridge:
    return bridgeLink();
  case LinkKind::Vxlan:
    return vxlanLink();
  case LinkKind::Udp:
    break;
  }
  return udpLink();
}

} // namespace nvbox::links
