// LinkControl — changes a deployed link while the routers at its ends run:
// its shaping and its state. deploy uses it when a link's rate, delay,
// jitter or loss changed (the routers are kept), `nvbox overlay run` for a
// topology's scheduled events.
//
//   rate                 bridge, vxlan: a tbf on both taps, on the hosts
//                        (what reaches each guest); udp: a tbf in the guests
//                        (there is no host device);
//   delay, jitter, loss  netem in both guests (host kernels may lack it),
//                        through the guest agent's shape command;
//   state                both NICs' carrier through libvirt (<link state>):
//                        the guests see the link go down or come back.
//
// Each call sets the whole of what it sets (a field the shape leaves out is
// no shaping), so repeating one changes nothing. Errors name the link.
//
// Threading: one LinkControl per thread; the connections and networks it is
// given must outlive it.
#pragma once

#include "link_wiring.hpp"

#include "nvbox/libvirt.hpp"
#include "nvbox/overlay_plan.hpp"

#include <map>
#include <string>

namespace nvbox::links {

class LinkControl {
public:
  LinkControl(const OverlayPlan &plan, const std::map<std::string, virt::Connection> &conns,
              HostNetworks &nets)
      : plan_(plan), conns_(conns), nets_(nets) {}

  // The host side of `shape`: the taps' tbf (none for udp links).
  void shapeHosts(const PlannedLink &link, const LinkShape &shape);
  // The guest side of `shape` at one end of the link (its MTU too).
  void shapeGuest(const PlannedLink &link, const PlannedPort &end, const LinkShape &shape);
  // Both sides, both ends.
  void shape(const PlannedLink &link, const LinkShape &shape);
  // Both ends' carrier.
  void setState(const PlannedLink &link, bool up);

private:
  const OverlayPlan &plan_;
  const std::map<std::string, virt::Connection> &conns_;
  HostNetworks &nets_;
};

} // namespace nvbox::links
