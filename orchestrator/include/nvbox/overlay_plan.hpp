// OverlayPlan — the resolve stage: what a validated Topology becomes on the
// hosts, decided before anything is touched (`nvbox deploy --dry-run` prints
// it).
//
// Addressing: every link and every endpoint gets the next /24 of the
// topology's `addressing` prefix in file order (side a .1, side b .2; a
// router .1 and its endpoint .2); every router also gets an OSR address, a
// /32 from the prefix's last /24, which osrd listens on and which every
// router routes to by the shortest path over the links. Stripes then use
// OSR addresses: the ingress tunnels to each relay's OSR address (one hop
// over their direct link), the relay routes to the egress's.
//
// Link kinds (each wired by its own class, orchestrator/src/links/):
//   bridge  both ends on one host whose network nvbox reaches (the local
//           host, or a testbed host's namespace): one Linux bridge, the VMs'
//           taps on it, the rate shaped by a tbf on each tap (what reaches
//           each guest), set by deploy once the tap exists (libvirt's
//           <bandwidth> needs sch_sfq, which host kernels may lack);
//   vxlan   ends on two such hosts: a bridge on each, joined by a VXLAN
//           (one VNI per link) over the hosts' underlay addresses; shaped
//           like bridge links;
//   udp     anything else (remote hosts reached through libvirt alone):
//           QEMU UDP socket NICs pointed at each other; the rate is shaped in
//           the guest (tbf), there being no host device to shape.
// Delay, jitter and loss are netem in the guests (host kernels may lack it).
//
// Stripes with `relays: oracle`: the first such stripe's ingress runs the
// path oracle inside its osrd (oracle-serve, port kOraclePort on its OSR
// address); every linked router measures every other and reports to it,
// grouped by host, and the stripes ask it for their k relays at run time.
//
// Host-side names derive from the overlay so destroy finds them even after
// a crash: links are "nv" + 6 hex digits of the overlay name's digest + a
// kind letter + an index (kernel names are at most 15 characters), endpoint
// namespaces "nvbox-<overlay>.<endpoint>" (no overlay name has a dot).
//
// Threading: plain values and pure functions.
#pragma once

#include "nvbox/router_domain.hpp"
#include "nvbox/topology.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace nvbox {

// The UDP port osrd listens on, on every router of an overlay.
inline constexpr unsigned kOsrPort = 7400;
// The UDP port of the path oracle, on the router that runs it.
inline constexpr unsigned kOraclePort = 7401;

enum class LinkKind { Bridge, Vxlan, Udp };
[[nodiscard]] std::string toString(LinkKind kind);

struct PlannedHost {
  std::string name;
  std::string uri;
  std::string underlay;
  std::string netns;
  bool reachable = false; // nvbox can configure its network (bridges, namespaces)
};

// One end of a link on a router.
struct PlannedPort {
  std::string router;
  std::string host;
  std::string address; // CIDR on the router's NIC
  std::string bridge;  // the host bridge its tap joins (bridge, vxlan)
  std::string tap;
  std::string mac;
  std::uint16_t udpPort = 0; // udp: the local port of this end
};

struct PlannedLink {
  std::string name;
  LinkKind kind = LinkKind::Bridge;
  std::string subnet; // A.B.C.0/24
  PlannedPort a;
  PlannedPort b;
  LinkShape shape;
  unsigned mtu = 1500;
  std::uint32_t vni = 0;   // vxlan
  std::string vxlanDevice; // vxlan: the device's name on both hosts
};

struct PlannedEndpoint {
  std::string name;
  std::string router;
  std::string host;
  std::string netns;    // nvbox-<overlay>.<name>
  std::string subnet;   // A.B.C.0/24
  std::string address;  // the endpoint's CIDR (.2)
  std::string gateway;  // the router's address (.1)
  PlannedPort port;     // the router's side
  std::string veth;     // host side, on the bridge
  std::string vethPeer; // inside the namespace
};

struct PlannedStripe {
  std::string name;
  std::string ingress;
  std::string egress;
  std::vector<std::string> relays; // empty when the oracle names them
  bool oracle = false;             // relays: oracle
  unsigned k = 0;
  std::string scheduler;
  std::uint32_t flow = 0;
  std::vector<std::string> dst; // the egress's endpoint subnets
  bool reverse = true;
  std::uint32_t reverseFlow = 0;
  std::vector<std::string> reverseDst;  // the ingress's endpoint subnets
  std::vector<std::uint64_t> pathRates; // bytes/s per relay; empty when unknown
};

struct PlannedRouter {
  std::string name;
  std::string host;
  std::string role;
  std::uint64_t memoryMiB = 128;
  unsigned cpus = 1;
  std::string osrAddress; // A.B.C.D (the /32 osrd listens on)
  std::vector<RouterNic> nics;
  std::string net;  // osr-agent's network configuration
  std::string osrd; // osrd's configuration file
  // Of everything above but the links' shaping, which changes without
  // replacing the router: a changed router has a changed digest.
  std::string digest;
};

struct OverlayPlan {
  std::string overlay;
  std::string image;
  std::string linkPrefix; // "nv" + 6 hex digits: every host link of the overlay starts so
  std::map<std::string, PlannedHost> hosts;
  std::vector<PlannedRouter> routers;
  std::vector<PlannedLink> links;
  std::vector<PlannedEndpoint> endpoints;
  std::vector<PlannedStripe> stripes;
  std::vector<TopologyEvent> events;
  // The router that runs the path oracle (the first oracle stripe's
  // ingress); empty when no stripe asks the oracle.
  std::string oracle;
  unsigned pathMtu = 1500; // the smallest link's: osrd's parts fill it
  unsigned tunMtu = 1432;

  [[nodiscard]] const PlannedRouter *router(const std::string &name) const;
  [[nodiscard]] const PlannedLink *link(const std::string &name) const;
  [[nodiscard]] nlohmann::json toJson() const;
  // Host by host, for --dry-run and humans.
  [[nodiscard]] std::string describe() const;
};

// The overlay's host link prefix ("nv" + 6 hex digits).
[[nodiscard]] std::string overlayLinkPrefix(const std::string &overlay);
// The namespace of an endpoint.
[[nodiscard]] std::string endpointNamespace(const std::string &overlay,
                                            const std::string &endpoint);
// Whether nvbox can configure the network of a host with this URI and
// namespace from here: a local system URI, or a local namespace.
[[nodiscard]] bool hostNetworkReachable(const std::string &uri, const std::string &netns);

// A link's shaping as osr-agent's iface fields (",rate=4000k,delay=2000us"):
// the rate only when the guest shapes it (udp links), delay, jitter and loss
// always. Routers boot with it and get it again from LinkControl.
[[nodiscard]] std::string guestShapeFields(const LinkShape &shape, bool rateInGuest);

// Resolves a validated topology. Throws TopologyError (file:line:col) for
// what only resolution finds: a stripe relay with no route to its ends, a
// prefix too small for the OSR addresses.
[[nodiscard]] OverlayPlan planOverlay(const Topology &topology);

} // namespace nvbox
