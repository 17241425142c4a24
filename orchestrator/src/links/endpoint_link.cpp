// EndpointLink: an endpoint namespace joined by veth to a bridge on its
// router's host, where the router's tap joins too.
#include "link_wiring.hpp"

#include "nvbox/netconfig/netns.hpp"

namespace nvbox::links {

void EndpointLink::wire(const PlannedEndpoint &endpoint, HostNetworks &nets, UndoLog &undo) {
  wireBridge(endpoint.port.bridge, endpoint.host, nets, undo);
  netconfig::HostNetwork &net = nets.at(endpoint.host);
  if (net.ensureEndpoint(endpoint.netns, endpoint.veth, endpoint.vethPeer, endpoint.port.bridge,
                         endpoint.address, endpoint.gateway)) {
    undo.add("namespace '" + endpoint.netns + "' and veth '" + endpoint.veth + "' on host '" +
                 endpoint.host + "'",
             [&net, endpoint] {
               netconfig::removeNamespace(endpoint.netns); // takes the peer with it
               net.removeLink(endpoint.veth);
             });
  }
}

std::vector<std::string> EndpointLink::names(const PlannedEndpoint &endpoint) {
  return {endpoint.port.bridge, endpoint.port.tap, endpoint.veth};
}

} // namespace nvbox::links
