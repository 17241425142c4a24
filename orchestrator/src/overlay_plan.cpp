#include "nvbox/overlay_plan.hpp"

#include "nvbox/error.hpp"
#include "nvbox/images/digest.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <regex>
#include <set>
#include <sstream>

namespace nvbox {

namespace {

constexpr unsigned kUdpBasePort = 40000;
constexpr unsigned kVxlanOverhead = 50;
// osrd: tunnel header and tag (osr::wire::kOverhead, 40), UDP and IP
// (docs/wire-format.md); overlay_plan_test checks it against the wire format.
constexpr unsigned kTunnelOverhead = 68;

std::string ipv4(std::uint32_t hostOrder) {
  in_addr a{htonl(hostOrder)};
  char text[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &a, text, sizeof text);
  return text;
}

std::string located(const Topology &t, const Mark &mark, const std::string &message) {
  return t.file + ":" + std::to_string(mark.line) + ":" + std::to_string(mark.column) + ": " +
         message;
}

// "8000k" for osr-agent's rate field (decimal kilobits; at least 1k).
std::string agentRate(std::uint64_t bps) {
  return std::to_string(std::max<std::uint64_t>(1, (bps + 500) / 1000)) + "k";
}

} // namespace

std::string guestShapeFields(const LinkShape &shape, bool rateInGuest) {
  std::ostringstream out;
  if (rateInGuest && shape.rateBps) {
    out << ",rate=" << agentRate(*shape.rateBps);
  }
  if (shape.delayUs) {
    out << ",delay=" << *shape.delayUs << "us";
  }
  if (shape.jitterUs) {
    out << ",jitter=" << *shape.jitterUs << "us";
  }
  if (shape.lossPercent) {
    char loss[32];
    std::snprintf(loss, sizeof loss, "%g%%", *shape.lossPercent);
    out << ",loss=" << loss;
  }
  return out.str();
}

namespace {

// One NIC of a router as the plan sees it: which link or endpoint, its port.
struct RouterPort {
  const PlannedPort *port;
  const PlannedLink *link;         // null for an endpoint's port
  const PlannedEndpoint *endpoint; // null for a link's port
  std::string peer;                // the router at the other end of a link
  std::string peerAddress;         // its address on the link (no prefix length)
};

std::string bare(const std::string &cidr) {
  return cidr.substr(0, cidr.find('/'));
}

class Planner {
public:
  explicit Planner(const Topology &t) : t_(t) {}

  OverlayPlan run() {
    plan_.overlay = t_.overlay;
    plan_.image = t_.image;
    plan_.linkPrefix = overlayLinkPrefix(t_.overlay);
    plan_.events = t_.events;
    hosts();
    addressing();
    links();
    endpoints();
    if (!errors_.empty()) {
      throw TopologyError(errors_);
    }
    stripes();
    if (!errors_.empty()) {
      throw TopologyError(errors_);
    }
    routers();
    return std::move(plan_);
  }

private:
  void hosts() {
    for (const auto &[name, h] : t_.hosts) {
      PlannedHost host{name, h.uri, h.underlay.value_or(""), h.netns,
                       hostNetworkReachable(h.uri, h.netns)};
      plan_.hosts.emplace(name, host);
    }
  }

  void addressing() {
    const auto slash = t_.addressing.find('/');
    in_addr a{};
    if (::inet_pton(AF_INET, t_.addressing.substr(0, slash).c_str(), &a) != 1) {
      errors_.push_back(t_.file + ": addressing '" + t_.addressing + "' is not A.B.C.D/LEN");
      return;
    }
    const int len = std::stoi(t_.addressing.substr(slash + 1));
    base_ = ntohl(a.s_addr);
    subnets_ = len >= 24 ? 1 : 1U << (24 - len);
    const std::size_t needed = t_.links.size() + t_.endpoints.size() + 1;
    if (needed > subnets_) {
      errors_.push_back(t_.file + ": addressing '" + t_.addressing + "' holds " +
                        std::to_string(subnets_) + " /24 subnets but the overlay needs " +
                        std::to_string(needed) +
                        " (one per link and endpoint, one for OSR "
                        "addresses)");
    }
    if (t_.routers.size() > 254) {
      errors_.push_back(t_.file + ": at most 254 routers fit the OSR addresses, not " +
                        std::to_string(t_.routers.size()));
    }
  }

  // At most 65536 subnets (addressing is checked): the sums stay in 32 bits.
  std::string subnet(std::size_t index) const {
    return ipv4(base_ + static_cast<std::uint32_t>(index) * 256) + "/24";
  }
  std::string hostIn(std::size_t index, unsigned host, unsigned len = 24) const {
    return ipv4(base_ + static_cast<std::uint32_t>(index) * 256 + host) + "/" + std::to_string(len);
  }

  std::string nicMac(const std::string &router) {
    return derivedMac(t_.overlay, router, nicCount_[router]++);
  }

  PlannedPort port(const std::string &router, std::size_t subnetIndex, unsigned hostPart,
                   const std::string &tap) {
    PlannedPort p;
    p.router = router;
    p.host = t_.router(router)->host;
    p.address = hostIn(subnetIndex, hostPart);
    p.tap = tap;
    p.mac = nicMac(router);
    return p;
  }

  void links() {
    const std::string &px = plan_.linkPrefix;
    // 16 bits of the overlay's digest, then the link index: VNIs of different
    // overlays on one underlay differ.
    const auto vniBase = static_cast<std::uint32_t>(
                             std::stoul(images::sha256Hex(t_.overlay).substr(0, 4), nullptr, 16))
                         << 8;
    for (std::size_t i = 0; i < t_.links.size(); ++i) {
      const TopologyLink &l = t_.links[i];
      const std::string idx = std::to_string(i);
      PlannedLink link;
      link.name = l.name;
      link.subnet = subnet(i);
      link.shape = l.shape;
      link.a = port(l.a, i, 1, px + "t" + idx + "a");
      link.b = port(l.b, i, 2, px + "t" + idx + "b");
      const PlannedHost &ha = plan_.hosts.at(link.a.host);
      const PlannedHost &hb = plan_.hosts.at(link.b.host);
      link.mtu = l.mtu;
      if (ha.name == hb.name && ha.reachable) {
        link.kind = LinkKind::Bridge;
        link.a.bridge = link.b.bridge = px + "b" + idx;
      } else if (ha.reachable && hb.reachable && !ha.underlay.empty() && !hb.underlay.empty()) {
        link.kind = LinkKind::Vxlan;
        link.a.bridge = link.b.bridge = px + "b" + idx;
        link.vxlanDevice = px + "x" + idx;
        link.vni = vniBase + static_cast<std::uint32_t>(i);
        link.mtu = std::min(link.mtu, 1500 - kVxlanOverhead);
      } else {
        link.kind = LinkKind::Udp;
        link.a.udpPort = static_cast<std::uint16_t>(kUdpBasePort + 2 * i);
        link.b.udpPort = static_cast<std::uint16_t>(kUdpBasePort + 2 * i + 1);
        if (ha.name != hb.name && (ha.underlay.empty() || hb.underlay.empty())) {
          errors_.push_back(located(t_, l.mark,
                                    "link '" + l.name + "': hosts '" + ha.name + "' and '" +
                                        hb.name + "' need underlay addresses"));
        }
      }
      plan_.links.push_back(std::move(link));
    }
  }

  void endpoints() {
    const std::string &px = plan_.linkPrefix;
    for (std::size_t j = 0; j < t_.endpoints.size(); ++j) {
      const TopologyEndpoint &e = t_.endpoints[j];
      const std::size_t s = t_.links.size() + j;
      const std::string idx = std::to_string(j);
      PlannedEndpoint ep;
      ep.name = e.name;
      ep.router = e.router;
      ep.host = t_.router(e.router)->host;
      ep.netns = endpointNamespace(t_.overlay, e.name);
      ep.subnet = subnet(s);
      ep.address = hostIn(s, 2);
      ep.gateway = bare(hostIn(s, 1));
      ep.port = port(e.router, s, 1, px + "e" + idx);
      ep.port.bridge = px + "q" + idx;
      ep.veth = px + "v" + idx;
      ep.vethPeer = px + "w" + idx;
      if (!plan_.hosts.at(ep.host).reachable) {
        errors_.push_back(located(t_, e.mark,
                                  "endpoint '" + e.name +
                                      "': nvbox cannot reach the network "
                                      "of host '" +
                                      ep.host + "' to make its namespace"));
      }
      plan_.endpoints.push_back(std::move(ep));
    }
  }

  // Next hop from every router towards `target` (breadth first from it).
  std::map<std::string, std::string> nextHops(const std::string &target) const {
    std::map<std::string, std::string> towards; // router -> neighbour closer to target
    std::deque<std::string> queue{target};
    std::set<std::string> seen{target};
    while (!queue.empty()) {
      const std::string at = queue.front();
      queue.pop_front();
      for (const auto &link : plan_.links) { // file order breaks ties
        for (const auto &[from, to] : {std::pair{&link.a, &link.b}, std::pair{&link.b, &link.a}}) {
          if (to->router == at && seen.insert(from->router).second) {
            towards[from->router] = at;
            queue.push_back(from->router);
          }
        }
      }
    }
    return towards;
  }

  const PlannedLink *between(const std::string &x, const std::string &y) const {
    for (const auto &link : plan_.links) {
      if ((link.a.router == x && link.b.router == y) ||
          (link.a.router == y && link.b.router == x)) {
        return &link;
      }
    }
    return nullptr;
  }

  std::vector<std::string> endpointSubnets(const std::string &router) const {
    std::vector<std::string> out;
    for (const auto &ep : plan_.endpoints) {
      if (ep.router == router) {
        out.push_back(ep.subnet);
      }
    }
    return out;
  }

  void stripes() {
    std::uint32_t flow = 1;
    for (const auto &s : t_.stripes) {
      PlannedStripe stripe;
      stripe.name = s.name;
      stripe.ingress = s.ingress;
      stripe.egress = s.egress;
      stripe.relays = s.relays;
      stripe.oracle = s.askOracle;
      stripe.k = s.k == 0 ? static_cast<unsigned>(s.relays.size()) : s.k;
      if (s.askOracle && plan_.oracle.empty()) {
        plan_.oracle = s.ingress; // the first such stripe's ingress hosts it
      }
      stripe.scheduler = s.scheduler;
      stripe.reverse = s.reverse;
      stripe.dst = endpointSubnets(s.egress);
      stripe.reverseDst = endpointSubnets(s.ingress);
      if (stripe.dst.empty() || (s.reverse && stripe.reverseDst.empty())) {
        errors_.push_back(located(
            t_, s.mark,
            "stripe '" + s.name + "': router '" + (stripe.dst.empty() ? s.egress : s.ingress) +
                "' has no endpoint, so the stripe would carry nothing; attach one")); // NOLINT
        continue;
      }
      stripe.flow = flow;
      flow += static_cast<std::uint32_t>(stripe.dst.size());
      if (s.reverse) {
        stripe.reverseFlow = flow;
        flow += static_cast<std::uint32_t>(stripe.reverseDst.size());
      }
      if (s.askOracle && !nextHops(s.egress).contains(s.ingress)) {
        errors_.push_back(located(t_, s.mark,
                                  "stripe '" + s.name + "': '" + s.ingress + "' has no route to '" +
                                      s.egress + "'; link them"));
      }
      for (const auto &relay : s.relays) {
        const auto toEgress = nextHops(s.egress);
        const auto toIngress = nextHops(s.ingress);
        if (!toEgress.contains(relay) || !toIngress.contains(relay)) {
          errors_.push_back(
              located(t_, s.mark,
                      "stripe '" + s.name + "': relay '" + relay + "' has no route to '" +
                          (toIngress.contains(relay) ? s.egress : s.ingress) + "'; link it"));
        }
        const PlannedLink *in = between(s.ingress, relay);
        const PlannedLink *out = between(relay, s.egress);
        if (in && out && in->shape.rateBps && out->shape.rateBps) {
          stripe.pathRates.push_back(std::min(*in->shape.rateBps, *out->shape.rateBps) / 8);
        }
      }
      if (stripe.pathRates.size() != stripe.relays.size()) {
        stripe.pathRates.clear(); // weights for all paths or none
      }
      plan_.stripes.push_back(std::move(stripe));
    }
  }

  std::vector<RouterPort> portsOf(const std::string &router) const {
    std::vector<RouterPort> out;
    for (const auto &link : plan_.links) {
      if (link.a.router == router) {
        out.push_back({&link.a, &link, nullptr, link.b.router, bare(link.b.address)});
      } else if (link.b.router == router) {
        out.push_back({&link.b, &link, nullptr, link.a.router, bare(link.a.address)});
      }
    }
    for (const auto &ep : plan_.endpoints) {
      if (ep.router == router) {
        out.push_back({&ep.port, nullptr, &ep, "", ""});
      }
    }
    return out;
  }

  std::string osrdStripes(const std::string &name, const std::uint32_t flow,
                          const std::vector<std::string> &dst, const std::string &egress,
                          const PlannedStripe &s) const {
    std::ostringstream out;
    for (std::size_t i = 0; i < dst.size(); ++i) {
      out << "stripe = name=" << name << (i == 0 ? "" : "." + std::to_string(i))
          << ",flow=" << flow + i << ",dst=" << dst[i] << ",egress=" << osr_.at(egress) << ":"
          << kOsrPort << ",relays=";
      if (s.oracle) {
        out << "oracle,k=" << s.k << ",scheduler=" << s.scheduler << "\n";
        continue;
      }
      // The first k relays carry the stripe (osrd stripes over every path it has).
      for (std::size_t r = 0; r < s.k; ++r) {
        out << (r ? "+" : "") << osr_.at(s.relays[r]) << ":" << kOsrPort;
      }
      out << ",scheduler=" << s.scheduler;
      if (!s.pathRates.empty()) {
        out << ",rates=";
        for (std::size_t r = 0; r < s.k; ++r) {
          out << (r ? "+" : "") << s.pathRates[r];
        }
      }
      out << "\n";
    }
    return out.str();
  }

  void routers() {
    const std::size_t osrSubnet = subnets_ - 1;
    for (std::size_t i = 0; i < t_.routers.size(); ++i) {
      osr_[t_.routers[i].name] = bare(hostIn(osrSubnet, static_cast<unsigned>(i + 1)));
    }
    unsigned minMtu = 1500;
    for (const auto &link : plan_.links) {
      minMtu = std::min(minMtu, link.mtu);
    }
    // Parts fill the smallest link (osrd cuts TCP super-packets to it), and
    // a packet up to the TUN MTU is one part.
    plan_.pathMtu = minMtu;
    plan_.tunMtu = minMtu - kTunnelOverhead;

    for (const TopologyRouter &r : t_.routers) {
      PlannedRouter pr;
      pr.name = r.name;
      pr.host = r.host;
      pr.role = r.role;
      pr.memoryMiB = r.memoryMiB;
      pr.cpus = r.cpus;
      pr.osrAddress = osr_.at(r.name);

      // Routes that stripes replace: what this router stripes into osr0.
      std::set<std::string> striped;
      std::ostringstream osrd;
      // The OSR address sits on the router's first NIC; a router without
      // links has none to hold it, and osrd listens on any address instead.
      const bool linked = !portsOf(r.name).empty();
      osrd << "name = " << r.name << "\nkey-file = /run/nvbox/key\nlisten = "
           << (linked ? pr.osrAddress : std::string("0.0.0.0")) << ":" << kOsrPort
           << "\ntun = osr0\npath-mtu = " << plan_.pathMtu << "\nmtu = " << plan_.tunMtu
           << "\ntun-routes = true\ncontrol = /run/osrd.sock\n";
      std::optional<std::size_t> buffer;
      for (const auto &s : plan_.stripes) {
        if (s.ingress == r.name) {
          osrd << osrdStripes(s.name, s.flow, s.dst, s.egress, s);
          striped.insert(s.dst.begin(), s.dst.end());
        }
        if (s.reverse && s.egress == r.name) {
          osrd << osrdStripes(s.name + "-back", s.reverseFlow, s.reverseDst, s.ingress, s);
          striped.insert(s.reverseDst.begin(), s.reverseDst.end());
        }
        for (const auto &ts : t_.stripes) {
          const bool receives = ts.egress == r.name || (ts.reverse && ts.ingress == r.name);
          if (ts.name == s.name && ts.buffer && receives) {
            buffer = std::max(buffer.value_or(0), *ts.buffer);
          }
        }
      }
      if (buffer) {
        osrd << "buffer = " << *buffer << "\n";
      }
      // With a path oracle every linked router measures the others and
      // reports to it; the oracle's router also runs it.
      if (!plan_.oracle.empty() && linked) {
        const std::string oracle = osr_.at(plan_.oracle) + ":" + std::to_string(kOraclePort);
        if (plan_.oracle == r.name) {
          osrd << "oracle-serve = " << oracle << "\n";
        }
        osrd << "oracle = " << oracle << "\ngroup = " << r.host << "\n";
        for (const TopologyRouter &peer : t_.routers) {
          if (peer.name != r.name && !portsOf(peer.name).empty()) {
            osrd << "peer = " << osr_.at(peer.name) << ":" << kOsrPort << "\n";
          }
        }
      }
      for (const auto &[key, value] : r.osrd) {
        osrd << key << " = " << value << "\n";
      }
      pr.osrd = osrd.str();

      std::ostringstream net;
      std::ostringstream shapeless; // the same without the ifaces' shaping, for the digest
      net << "# nvbox overlay '" << t_.overlay << "', router '" << r.name << "'\n"
          << "hostname = " << r.name << "\n"
          << "sysctl = net.ipv4.ip_forward=1\n"
          << "sysctl = net.ipv4.conf.all.rp_filter=0\n"
          << "sysctl = net.ipv4.conf.default.rp_filter=0\n";
      const auto ports = portsOf(r.name);
      std::map<std::string, std::string> via; // neighbour router -> its address
      std::ostringstream routes;
      for (std::size_t n = 0; n < ports.size(); ++n) {
        const RouterPort &p = ports[n];
        const PlannedLink *link = p.link;
        RouterNic nic;
        nic.mac = p.port->mac;
        nic.mtu = link ? link->mtu : 1500;
        if (link && link->kind == LinkKind::Udp) {
          const PlannedPort &other = &link->a == p.port ? link->b : link->a;
          const auto addrOf = [&](const PlannedPort &port) {
            const PlannedHost &h = plan_.hosts.at(port.host);
            return link->a.host == link->b.host ? std::string("127.0.0.1") : h.underlay;
          };
          nic.kind = RouterNic::Kind::Udp;
          nic.udpLocal = addrOf(*p.port) + ":" + std::to_string(p.port->udpPort);
          nic.udpRemote = addrOf(other) + ":" + std::to_string(other.udpPort);
        } else {
          nic.kind = RouterNic::Kind::Bridge;
          nic.source = p.port->bridge;
          nic.tap = p.port->tap;
        }
        pr.nics.push_back(nic);
        std::ostringstream iface;
        iface << "iface = mac=" << nic.mac << ",addr=" << p.port->address
              << (n == 0 ? "+" + pr.osrAddress + "/32" : "") << ",mtu=" << *nic.mtu;
        // Shaping changes live (links/link_control.hpp): not part of the digest.
        shapeless << iface.str() << "\n";
        net << iface.str()
            << (link ? guestShapeFields(link->shape, link->kind == LinkKind::Udp) : "") << "\n";
        if (link) {
          via[p.peer] = p.peerAddress;
        }
      }
      // Shortest paths to every other router's OSR address and endpoint.
      for (const TopologyRouter &other : t_.routers) {
        if (other.name == r.name) {
          continue;
        }
        const auto hops = nextHops(other.name);
        const auto hop = hops.find(r.name);
        if (hop == hops.end()) {
          continue; // unreachable: nothing stripes through it (checked above)
        }
        const std::string &gw = via.at(hop->second);
        routes << "route = dst=" << osr_.at(other.name) << "/32,via=" << gw << "\n";
        for (const auto &sub : endpointSubnets(other.name)) {
          if (!striped.contains(sub)) {
            routes << "route = dst=" << sub << ",via=" << gw << "\n";
          }
        }
      }
      net << routes.str();
      shapeless << routes.str();
      pr.net = net.str();

      nlohmann::json identity = {
          {"host", pr.host},
          {"memory", pr.memoryMiB},
          {"cpus", pr.cpus},
          {"image", t_.image},
          {"net", shapeless.str()},
          // Path rates follow the links' rates and change live too.
          {"osrd", std::regex_replace(pr.osrd, std::regex(",rates=[0-9+]+"), "")},
          {"role", pr.role}};
      for (const auto &nic : pr.nics) {
        identity["nics"].push_back({nic.mac, nic.source, nic.tap, nic.udpLocal, nic.udpRemote,
                                    nic.rateKbps.value_or(0), nic.mtu.value_or(0)});
      }
      pr.digest = images::sha256Hex(identity.dump()).substr(0, 16);
      plan_.routers.push_back(std::move(pr));
    }
  }

  const Topology &t_;
  OverlayPlan plan_;
  std::vector<std::string> errors_;
  std::uint32_t base_ = 0;
  std::size_t subnets_ = 0;
  std::map<std::string, std::size_t> nicCount_;
  std::map<std::string, std::string> osr_; // router -> OSR address
};

nlohmann::json portJson(const PlannedPort &p) {
  nlohmann::json j = {
      {"router", p.router}, {"host", p.host}, {"address", p.address}, {"mac", p.mac}};
  if (!p.bridge.empty()) {
    j["bridge"] = p.bridge;
    j["tap"] = p.tap;
  }
  if (p.udpPort) {
    j["udp_port"] = p.udpPort;
  }
  return j;
}

nlohmann::json shapeJson(const LinkShape &s) {
  nlohmann::json j = nlohmann::json::object();
  if (s.rateBps) {
    j["rate_bps"] = *s.rateBps;
  }
  if (s.delayUs) {
    j["delay_us"] = *s.delayUs;
  }
  if (s.jitterUs) {
    j["jitter_us"] = *s.jitterUs;
  }
  if (s.lossPercent) {
    j["loss_percent"] = *s.lossPercent;
  }
  return j;
}

std::string shapeText(const LinkShape &s) {
  std::ostringstream out;
  if (s.rateBps) {
    out << " " << static_cast<double>(*s.rateBps) / 1e6 << " Mbit/s";
  }
  if (s.delayUs) {
    out << " delay " << static_cast<double>(*s.delayUs) / 1000 << " ms";
  }
  if (s.jitterUs) {
    out << " jitter " << static_cast<double>(*s.jitterUs) / 1000 << " ms";
  }
  if (s.lossPercent) {
    out << " loss " << *s.lossPercent << " %";
  }
  return out.str();
}

} // namespace

std::string toString(LinkKind kind) {
  switch (kind) {
  case LinkKind::Bridge:
    return "bridge";
  case LinkKind::Vxlan:
    return "vxlan";
  case LinkKind::Udp:
    return "udp";
  }
  return "?";
}

std::string overlayLinkPrefix(const std::string &overlay) {
  return "nv" + images::sha256Hex(overlay).substr(0, 6);
}

std::string endpointNamespace(const std::string &overlay, const std::string &endpoint) {
  return "nvbox-" + overlay + "." + endpoint;
}

bool hostNetworkReachable(const std::string &uri, const std::string &netns) {
  if (!netns.empty()) {
    return true;
  }
  // A local daemon's VMs share this machine's network namespace.
  return uri == "qemu:///system" || uri.starts_with("qemu+unix:///system");
}

const PlannedRouter *OverlayPlan::router(const std::string &name) const {
  for (const auto &r : routers) {
    if (r.name == name) {
      return &r;
    }
  }
  return nullptr;
}

const PlannedLink *OverlayPlan::link(const std::string &name) const {
  for (const auto &l : links) {
    if (l.name == name) {
      return &l;
    }
  }
  return nullptr;
}

nlohmann::json OverlayPlan::toJson() const {
  nlohmann::json j = {{"overlay", overlay},
                      {"image", image},
                      {"link_prefix", linkPrefix},
                      {"path_mtu", pathMtu},
                      {"tun_mtu", tunMtu},
                      {"hosts", nlohmann::json::array()},
                      {"routers", nlohmann::json::array()},
                      {"links", nlohmann::json::array()},
                      {"endpoints", nlohmann::json::array()},
                      {"stripes", nlohmann::json::array()},
                      {"events", nlohmann::json::array()}};
  for (const auto &[name, h] : hosts) {
    j["hosts"].push_back({{"name", name},
                          {"uri", h.uri},
                          {"underlay", h.underlay},
                          {"netns", h.netns},
                          {"network_reachable", h.reachable}});
  }
  for (const auto &r : routers) {
    j["routers"].push_back({{"name", r.name},
                            {"host", r.host},
                            {"role", r.role},
                            {"memory_mib", r.memoryMiB},
                            {"cpus", r.cpus},
                            {"osr_address", r.osrAddress},
                            {"digest", r.digest},
                            {"net", r.net},
                            {"osrd", r.osrd}});
  }
  for (const auto &l : links) {
    nlohmann::json lj = {{"name", l.name},     {"kind", toString(l.kind)},
                         {"subnet", l.subnet}, {"a", portJson(l.a)},
                         {"b", portJson(l.b)}, {"shape", shapeJson(l.shape)},
                         {"mtu", l.mtu}};
    if (l.kind == LinkKind::Vxlan) {
      lj["vni"] = l.vni;
      lj["vxlan_device"] = l.vxlanDevice;
    }
    j["links"].push_back(lj);
  }
  for (const auto &e : endpoints) {
    j["endpoints"].push_back({{"name", e.name},
                              {"router", e.router},
                              {"host", e.host},
                              {"netns", e.netns},
                              {"subnet", e.subnet},
                              {"address", e.address},
                              {"gateway", e.gateway},
                              {"port", portJson(e.port)},
                              {"veth", e.veth},
                              {"veth_peer", e.vethPeer}});
  }
  for (const auto &s : stripes) {
    j["stripes"].push_back({{"name", s.name},
                            {"ingress", s.ingress},
                            {"egress", s.egress},
                            {"relays", s.relays},
                            {"k", s.k},
                            {"scheduler", s.scheduler},
                            {"flow", s.flow},
                            {"dst", s.dst},
                            {"reverse", s.reverse},
                            {"reverse_flow", s.reverseFlow},
                            {"reverse_dst", s.reverseDst},
                            {"path_rates", s.pathRates}});
    if (s.oracle) {
      j["stripes"].back()["oracle"] = true;
    }
  }
  if (!oracle.empty()) {
    j["oracle"] = {{"router", oracle}, {"port", kOraclePort}};
  }
  for (const auto &e : events) {
    nlohmann::json ej = {{"at_ms", e.atMs}, {"link", e.link}, {"shape", shapeJson(e.shape)}};
    if (e.up) {
      ej["state"] = *e.up ? "up" : "down";
    }
    j["events"].push_back(ej);
  }
  return j;
}

std::string OverlayPlan::describe() const {
  std::ostringstream out;
  out << "overlay '" << overlay << "': " << routers.size() << " routers, " << links.size()
      << " links, " << endpoints.size() << " endpoints, " << stripes.size() << " stripes; image '"
      << image << "'\n";
  for (const auto &[name, h] : hosts) {
    out << "\nhost " << name << " (" << h.uri << ")"
        << (h.underlay.empty() ? "" : ", underlay " + h.underlay)
        << (h.netns.empty() ? "" : ", network namespace " + h.netns) << "\n";
    for (const auto &r : routers) {
      if (r.host != name) {
        continue;
      }
      out << "  router " << r.name << " (" << r.role << ", " << r.memoryMiB << " MiB, " << r.cpus
          << " vCPU), OSR address " << r.osrAddress << "\n";
    }
    for (const auto &l : links) {
      if (l.a.host != name && l.b.host != name) {
        continue;
      }
      out << "  link " << l.name << " [" << toString(l.kind) << "] " << l.a.router << " "
          << l.a.address << " <-> " << l.b.router << " " << l.b.address << shapeText(l.shape)
          << ", mtu " << l.mtu;
      if (l.kind == LinkKind::Bridge) {
        out << "; bridge " << l.a.bridge;
      } else if (l.kind == LinkKind::Vxlan) {
        out << "; bridge " << l.a.bridge << " + vxlan " << l.vxlanDevice << " vni " << l.vni;
      } else {
        const PlannedPort &p = l.a.host == name ? l.a : l.b;
        out << "; QEMU UDP port " << p.udpPort;
      }
      out << "\n";
    }
    for (const auto &e : endpoints) {
      if (e.host != name) {
        continue;
      }
      out << "  endpoint " << e.name << ": namespace " << e.netns << ", " << e.address << " via "
          << e.gateway << " (router " << e.router << "), veth " << e.veth << " on bridge "
          << e.port.bridge << "\n";
    }
  }
  for (const auto &s : stripes) {
    out << "\nstripe " << s.name << ": " << s.ingress << " -> " << s.egress << " over ";
    if (s.oracle) {
      out << "the relays the path oracle on " << oracle << " names";
    }
    for (std::size_t i = 0; i < s.relays.size(); ++i) {
      out << (i ? ", " : "") << s.relays[i];
    }
    out << " (k = " << s.k << ", " << s.scheduler << ")";
    for (const auto &d : s.dst) {
      out << ", carries " << d;
    }
    if (s.reverse) {
      for (const auto &d : s.reverseDst) {
        out << ", back " << d;
      }
    }
    out << "\n";
  }
  for (const auto &e : events) {
    out << "event at " << static_cast<double>(e.atMs) / 1000 << " s: link " << e.link;
    if (e.up) {
      out << (*e.up ? " up" : " down");
    }
    out << shapeText(e.shape) << "\n";
  }
  return out.str();
}

OverlayPlan planOverlay(const Topology &topology) {
  return Planner(topology).run();
}

} // namespace nvbox
