#include "nvbox/overlay.hpp"

#include "links/link_control.hpp"
#include "links/link_wiring.hpp"
#include "nvbox/error.hpp"
#include "nvbox/guest_agent.hpp"
#include "nvbox/image_push.hpp"
#include "nvbox/netconfig/netns.hpp"
#include "nvbox/xml.hpp"
#include "overlay_hosts.hpp"
#include "stripe_route.hpp"

#include <sodium.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

namespace nvbox {

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string seconds(double s) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f s", s);
  return text;
}

// A router of the overlay found on a host.
struct Found {
  RouterInfo info;
  std::string hostName;
};

std::vector<RouterInfo> overlayRouters(const virt::Connection &conn, const HostRef &host,
                                       const std::string &overlay) {
  std::vector<RouterInfo> out;
  for (auto &info : RouterManager(conn, host).list()) {
    if (info.metadata.overlay == overlay) {
      out.push_back(std::move(info));
    }
  }
  return out;
}

std::string randomKeyHex() {
  unsigned char key[32];
  randombytes_buf(key, sizeof key);
  char hex[65];
  sodium_bin2hex(hex, sizeof hex, key, sizeof key);
  return hex;
}

// Endpoint namespaces are "nvbox-<overlay>.<endpoint>": the dot cannot occur
// in overlay names, so one overlay's sweep never takes another's.
std::string namespacePrefix(const std::string &overlay) {
  return endpointNamespace(overlay, "");
}

class Deployer {
public:
  Deployer(const OverlayPlan &plan, const images::ImageStore &store, const DeployOptions &options,
           const OverlayLog &log)
      : plan_(plan), store_(store), options_(options), log_(log) {}

  DeployReport run() {
    const auto start = Clock::now();
    report_.overlay = plan_.overlay;
    conns_ = connectAll(plan_, "deploy");
    if (!store_.contains(plan_.image)) {
      throw Error("cannot find image '" + plan_.image + "' in the store",
                  "build it with 'nvbox image build --name " + plan_.image + "'");
    }
    for (const auto &[name, host] : plan_.hosts) {
      hostRefs_[name] = HostRef{name, host.uri};
    }
    nets_ = networksOf(plan_);
    survey();
    checkMemory();
    try {
      converge();
    } catch (const std::exception &e) {
      log_("deploy failed: " + std::string(e.what()) + "; rolling back what this run created");
      rollback();
      throw;
    }
    report_.seconds = since(start);
    return report_;
  }

private:
  RouterManager manager(const std::string &host) {
    return RouterManager(conns_.at(host), hostRefs_.at(host));
  }

  // What of the overlay is already on the hosts, and its key.
  void survey() {
    for (const auto &[name, conn] : conns_) {
      for (auto &info : overlayRouters(conn, hostRefs_.at(name), plan_.overlay)) {
        if (key_.empty()) {
          const virt::DomainPtr dom = manager(name).domain(info.name);
          key_ = overlayKeyOf(conn, dom.get());
        }
        const std::string router = info.name; // `info` moves below
        existing_[router] = Found{std::move(info), name};
      }
    }
    if (key_.empty()) {
      key_ = randomKeyHex();
    }
  }

  void checkMemory() {
    std::map<std::string, std::uint64_t> needMiB;
    for (const auto &r : plan_.routers) {
      const auto it = existing_.find(r.name);
      if (it == existing_.end() || it->second.info.metadata.spec != r.digest ||
          it->second.hostName != r.host) {
        needMiB[r.host] += r.memoryMiB;
      }
    }
    for (const auto &[host, need] : needMiB) {
      const unsigned long long freeBytes = virNodeGetFreeMemory(conns_.at(host).get());
      if (freeBytes != 0 && need > freeBytes / (1024 * 1024)) {
        throw Error("cannot deploy overlay '" + plan_.overlay + "': host '" + host + "' has " +
                        std::to_string(freeBytes / (1024 * 1024)) +
                        " MiB of free memory, its new routers need " + std::to_string(need) +
                        " MiB",
                    "move routers to another host or give them less memory; nothing was changed");
      }
    }
  }

  void converge() {
    pushImages();
    wireHosts();
    std::vector<const PlannedRouter *> toBoot;
    removeUnplanned();
    for (const auto &r : plan_.routers) {
      const auto it = existing_.find(r.name);
      if (it != existing_.end() && it->second.info.metadata.spec == r.digest &&
          it->second.hostName == r.host) {
        report_.kept.push_back(r.name);
        if (it->second.info.state != RouterState::Running &&
            it->second.info.state != RouterState::Paused) {
          report_.started.push_back(r.name);
          toBoot.push_back(&r);
        }
        continue;
      }
      if (it != existing_.end()) {
        log_("router '" + r.name + "' changed: replacing it");
        manager(it->second.hostName).destroy(r.name);
        report_.replaced.push_back(r.name);
      } else {
        report_.created.push_back(r.name);
      }
      create(r);
      toBoot.push_back(&r);
    }
    boot(toBoot);
    shapeLinks();
    rerateStripes();
    recordPlan();
    sweepHostLinks();
    for (auto &what : undo_.created()) {
      if (!what.starts_with("router ")) {
        report_.hostLinksCreated.push_back(std::move(what));
      }
    }
  }

  void pushImages() {
    std::set<std::string> hosts;
    for (const auto &r : plan_.routers) {
      hosts.insert(r.host);
    }
    for (const auto &host : hosts) {
      const PushReport pushed = pushImage(conns_.at(host), store_, plan_.image);
      if (pushed.bytesUploaded > 0) {
        log_("image '" + plan_.image + "' pushed to host '" + host + "' (" +
             std::to_string(pushed.bytesUploaded / (1024 * 1024)) + " MiB)");
      }
    }
  }

  void wireHosts() {
    for (const auto &link : plan_.links) {
      try {
        links::wiringFor(link.kind).wire(plan_, link, nets_, undo_);
      } catch (const Error &e) {
        throw Error("link '" + link.name + "': " + e.what(), e.hint());
      }
    }
    for (const auto &ep : plan_.endpoints) {
      try {
        links::EndpointLink::wire(ep, nets_, undo_);
      } catch (const Error &e) {
        throw Error("endpoint '" + ep.name + "': " + e.what(), e.hint());
      }
    }
  }

  void create(const PlannedRouter &r) {
    RouterCreateOptions o;
    o.name = r.name;
    o.image = plan_.image;
    o.memoryMiB = r.memoryMiB;
    o.vcpus = r.cpus;
    o.nics = r.nics;
    o.config = {{"net", r.net}, {"osrd", r.osrd}, {"key", key_ + "\n"}};
    o.role = r.role;
    o.overlay = plan_.overlay;
    o.spec = r.digest;
    o.plan = planJson_;
    manager(r.host).create(store_, o);
    const std::string host = r.host;
    undo_.add("router '" + r.name + "' on host '" + host + "'",
              [this, host, name = r.name] { manager(host).destroy(name); });
    log_("router '" + r.name + "' defined on host '" + r.host + "'");
  }

  // Starts the routers and waits for each to be ready, host by host in
  // parallel, at most bootsPerHost at a time on one host.
  void boot(const std::vector<const PlannedRouter *> &routers) {
    std::map<std::string, std::deque<const PlannedRouter *>> queues;
    for (const auto *r : routers) {
      queues[r->host].push_back(r);
    }
    std::mutex mutex;
    std::vector<std::string> failures;
    std::vector<std::thread> workers;
    for (auto &[host, queue] : queues) {
      const std::size_t n =
          std::min<std::size_t>(std::max(1U, options_.bootsPerHost), queue.size());
      for (std::size_t i = 0; i < n; ++i) {
        workers.emplace_back([&, hostName = host] {
          for (;;) {
            const PlannedRouter *r = nullptr;
            {
              const std::lock_guard lock(mutex);
              auto &q = queues.at(hostName);
              if (q.empty() || !failures.empty()) {
                return;
              }
              r = q.front();
              q.pop_front();
            }
            try {
              RouterManager m = manager(hostName);
              const auto started = Clock::now();
              m.start(r->name);
              const ReadyReport ready = m.waitReady(r->name, options_.readyTimeout);
              if (!ready.ready) {
                throw Error("router '" + r->name + "' on host '" + hostName +
                            "' did not become ready: " + ready.reason);
              }
              log_("router '" + r->name + "' ready on host '" + hostName + "' in " +
                   seconds(since(started)));
            } catch (const std::exception &e) {
              const std::lock_guard lock(mutex);
              failures.emplace_back(e.what());
            }
          }
        });
      }
    }
    for (auto &w : workers) {
      w.join();
    }
    if (!failures.empty()) {
      throw Error(failures.front());
    }
  }

  // A tap exists only while its router runs, so the host side of shaping
  // follows boot and is set again on every deploy (a restarted router's tap
  // comes back bare). The guest side is in the routers' boot configuration;
  // a kept router gets it again when the link's shaping changed since its
  // plan was recorded, or when this run started it (it booted with what it
  // was created with).
  void shapeLinks() {
    links::LinkControl control(plan_, conns_, nets_);
    const nlohmann::json planned = nlohmann::json::parse(planJson_);
    for (std::size_t i = 0; i < plan_.links.size(); ++i) {
      const PlannedLink &link = plan_.links[i];
      control.shapeHosts(link, link.shape);
      bool reshaped = false;
      for (const PlannedPort *end : {&link.a, &link.b}) {
        const auto it = existing_.find(end->router);
        const bool kept =
            std::find(report_.kept.begin(), report_.kept.end(), end->router) != report_.kept.end();
        if (!kept) {
          continue; // booted with this plan's shaping
        }
        const bool started = std::find(report_.started.begin(), report_.started.end(),
                                       end->router) != report_.started.end();
        if (started || recordedShape(it->second.info.metadata.plan, link.name) !=
                           planned["links"][i]["shape"]) {
          if (it->second.info.state == RouterState::Paused) {
            throw Error("link '" + link.name + "': router '" + end->router +
                            "' is paused and cannot be shaped anew",
                        "resume it ('nvbox router resume " + end->router + "') and deploy again");
          }
          control.shapeGuest(link, *end, link.shape);
          reshaped = true;
        }
      }
      if (reshaped) {
        report_.reshaped.push_back(link.name);
        log_("link '" + link.name + "' shaped anew on its running routers");
      }
    }
  }

  bool keptRouter(const std::string &name) const {
    return std::find(report_.kept.begin(), report_.kept.end(), name) != report_.kept.end();
  }
  bool startedRouter(const std::string &name) const {
    return std::find(report_.started.begin(), report_.started.end(), name) != report_.started.end();
  }

  // osrd's path rates follow the links' rates (router digests leave them
  // out): a kept ingress, or egress of a reverse stripe, gets the planned
  // rates through osrd's control socket when they changed since its plan
  // was recorded, or when this run started it.
  void rerateStripes() {
    const nlohmann::json planned = nlohmann::json::parse(planJson_);
    for (const auto &s : plan_.stripes) {
      std::map<std::string, std::uint64_t> rateOf; // osrd's relay "IP:PORT" -> bytes/s
      for (std::size_t r = 0; r < s.k && r < s.pathRates.size(); ++r) {
        rateOf[plan_.router(s.relays[r])->osrAddress + ":" + std::to_string(kOsrPort)] =
            s.pathRates[r];
      }
      std::vector<std::pair<std::string, std::string>> ends{{s.ingress, s.name}};
      if (s.reverse) {
        ends.emplace_back(s.egress, s.name + "-back");
      }
      for (const auto &[router, osrdName] : ends) {
        if (rateOf.empty() || !keptRouter(router) ||
            (!startedRouter(router) &&
             recordedPathRates(existing_.at(router).info.metadata.plan, s.name) == s.pathRates)) {
          continue;
        }
        OsrdClient osrd(planned, router);
        for (const auto &st :
             osrd.call({{"cmd", "status"}})["status"].value("stripes", nlohmann::json::array())) {
          const std::string name = st.value("name", "");
          if (name != osrdName && !name.starts_with(osrdName + ".")) {
            continue;
          }
          for (const auto &p : st.value("paths", nlohmann::json::array())) {
            const auto it = rateOf.find(p.value("relay", ""));
            if (it != rateOf.end() && p.value("rate", std::uint64_t{0}) != it->second) {
              osrd.call({{"cmd", "set_rate"},
                         {"stripe", name},
                         {"path", p.value("id", 0)},
                         {"rate", it->second}});
            }
          }
        }
        report_.rerated.push_back(osrdName + "@" + router);
        log_("stripe '" + osrdName + "' at router '" + router + "' re-rated");
      }
    }
  }

  static std::vector<std::uint64_t> recordedPathRates(const std::string &planJson,
                                                      const std::string &stripe) {
    const auto recorded = nlohmann::json::parse(planJson, nullptr, false);
    if (recorded.is_object() && recorded.contains("stripes") && recorded["stripes"].is_array()) {
      for (const auto &s : recorded["stripes"]) {
        if (s.is_object() && s.value("name", "") == stripe && s.contains("path_rates") &&
            s["path_rates"].is_array()) {
          std::vector<std::uint64_t> rates;
          for (const auto &r : s["path_rates"]) {
            rates.push_back(r.is_number_unsigned() ? r.get<std::uint64_t>() : 0);
          }
          return rates;
        }
      }
    }
    return {};
  }

  // The shape a recorded plan gave a link (null when it had no such link).
  static nlohmann::json recordedShape(const std::string &planJson, const std::string &link) {
    const auto recorded = nlohmann::json::parse(planJson, nullptr, false);
    if (recorded.is_object() && recorded.contains("links") && recorded["links"].is_array()) {
      for (const auto &l : recorded["links"]) {
        if (l.is_object() && l.value("name", "") == link) {
          return l.value("shape", nlohmann::json());
        }
      }
    }
    return nullptr;
  }

  // Kept routers carry this plan from now on (inspect and the next deploy
  // read it).
  void recordPlan() {
    for (const auto &name : report_.kept) {
      const Found &found = existing_.at(name);
      if (found.info.metadata.plan != planJson_) {
        RouterMetadata m = found.info.metadata;
        m.plan = planJson_;
        manager(found.hostName).setMetadata(name, m);
      }
    }
  }

  void removeUnplanned() {
    for (const auto &[name, found] : existing_) {
      if (!plan_.router(name)) {
        manager(found.hostName).destroy(name);
        report_.removed.push_back(name);
        log_("router '" + name + "' removed from host '" + found.hostName + "'");
      }
    }
  }

  // Host links and endpoint namespaces the plan no longer names.
  void sweepHostLinks() {
    for (auto &[host, net] : nets_) {
      std::set<std::string> wanted;
      for (const auto &link : plan_.links) {
        for (auto &n : links::wiringFor(link.kind).names(link, host)) {
          wanted.insert(std::move(n));
        }
      }
      for (const auto &ep : plan_.endpoints) {
        if (ep.host == host) {
          for (auto &n : links::EndpointLink::names(ep)) {
            wanted.insert(std::move(n));
          }
        }
      }
      for (const auto &name : net.links(plan_.linkPrefix)) {
        if (!wanted.contains(name) && net.removeLink(name)) {
          report_.hostLinksRemoved.push_back(name + "@" + host);
        }
      }
    }
    std::set<std::string> wantedNs;
    for (const auto &ep : plan_.endpoints) {
      wantedNs.insert(ep.netns);
    }
    for (const auto &ns : netconfig::listNamespaces()) {
      if (ns.starts_with(namespacePrefix(plan_.overlay)) && !wantedNs.contains(ns)) {
        netconfig::removeNamespace(ns);
        report_.hostLinksRemoved.push_back(ns);
      }
    }
  }

  void rollback() {
    for (const auto &failure : undo_.rollback()) {
      log_("rollback: " + failure);
    }
  }

  const OverlayPlan &plan_;
  const images::ImageStore &store_;
  const DeployOptions &options_;
  const OverlayLog &log_;
  const std::string planJson_ = plan_.toJson().dump();
  std::map<std::string, virt::Connection> conns_;
  std::map<std::string, HostRef> hostRefs_;
  links::HostNetworks nets_;
  links::UndoLog undo_;
  std::map<std::string, Found> existing_;
  std::string key_;
  DeployReport report_;
};

// The hosts named by plans in the metadata of `routers`.
void addPlanHosts(const std::vector<RouterInfo> &routers, std::vector<HostRef> &hosts,
                  std::vector<PlannedHost> *networks) {
  for (const auto &r : routers) {
    const auto plan = nlohmann::json::parse(r.metadata.plan, nullptr, false);
    if (!plan.is_object() || !plan.contains("hosts")) {
      continue;
    }
    for (const auto &h : plan["hosts"]) {
      const HostRef ref{h.value("name", ""), h.value("uri", "")};
      if (std::find(hosts.begin(), hosts.end(), ref) == hosts.end()) {
        hosts.push_back(ref);
      }
      if (networks && h.value("network_reachable", false)) {
        PlannedHost net{ref.name, ref.uri, h.value("underlay", ""), h.value("netns", ""), true};
        if (std::none_of(networks->begin(), networks->end(),
                         [&](const PlannedHost &n) { return n.netns == net.netns; })) {
          networks->push_back(net);
        }
      }
    }
  }
}

nlohmann::json osrdStatus(const virt::Connection &conn, virDomainPtr dom, std::string &error) {
  try {
    GuestAgent agent(conn, dom);
    const auto reply =
        agent.request({{"cmd", "osrd"}, {"request", {{"cmd", "status"}}}}, std::chrono::seconds(5));
    if (reply.value("ok", false) && reply.contains("reply") && reply["reply"].value("ok", false)) {
      return reply["reply"].value("status", nlohmann::json());
    }
    error = reply.value("error", std::string("osrd did not answer"));
  } catch (const Error &e) {
    error = e.what();
  }
  return nullptr;
}

} // namespace

bool DeployReport::changed() const {
  return !created.empty() || !replaced.empty() || !started.empty() || !removed.empty() ||
         !reshaped.empty() || !rerated.empty() || !hostLinksCreated.empty() ||
         !hostLinksRemoved.empty();
}

nlohmann::json DeployReport::toJson() const {
  return {{"overlay", overlay},
          {"created", created},
          {"replaced", replaced},
          {"kept", kept},
          {"started", started},
          {"removed", removed},
          {"reshaped", reshaped},
          {"rerated", rerated},
          {"host_links_created", hostLinksCreated},
          {"host_links_removed", hostLinksRemoved},
          {"changed", changed()},
          {"seconds", this->seconds}};
}

nlohmann::json DestroyReport::toJson() const {
  return {{"overlay", overlay},       {"routers", routers},   {"host_links", hostLinks},
          {"namespaces", namespaces}, {"failures", failures}, {"seconds", seconds}};
}

nlohmann::json OverlayStatus::toJson() const {
  nlohmann::json j = {{"overlay", overlay},
                      {"plan", plan},
                      {"routers", nlohmann::json::array()},
                      {"last_run", lastRun},
                      {"unreachable", unreachable}};
  for (const auto &r : routers) {
    j["routers"].push_back({{"name", r.name},
                            {"host", r.host},
                            {"state", toString(r.state)},
                            {"role", r.role},
                            {"digest", r.digest},
                            {"current", r.current},
                            {"osrd", r.osrd},
                            {"osrd_error", r.osrdError}});
  }
  return j;
}

std::vector<HostRef> planHosts(const OverlayPlan &plan) {
  std::vector<HostRef> out;
  for (const auto &[name, h] : plan.hosts) {
    out.push_back({name, h.uri});
  }
  return out;
}

std::string overlayKeyOf(const virt::Connection & /*conn*/, virDomainPtr domain) {
  // The key is in the domain's fw_cfg entries, which only a full
  // (VIR_DOMAIN_XML_SECURE) description shows.
  char *raw = virDomainGetXMLDesc(domain, VIR_DOMAIN_XML_SECURE | VIR_DOMAIN_XML_INACTIVE);
  if (!raw) {
    return {};
  }
  const std::string xml(raw);
  std::free(raw); // NOLINT: libvirt's allocation
  const auto encoded =
      XmlDocument(xml, "domain").first("/domain/sysinfo/entry[@name='opt/org.nvbox/key']");
  if (!encoded) {
    return {};
  }
  std::string decoded(encoded->size(), '\0');
  std::size_t length = 0;
  if (sodium_base642bin(reinterpret_cast<unsigned char *>(decoded.data()), decoded.size(),
                        encoded->c_str(), encoded->size(), nullptr, &length, nullptr,
                        sodium_base64_VARIANT_ORIGINAL) != 0) {
    return {};
  }
  decoded.resize(length);
  while (!decoded.empty() && (decoded.back() == '\n' || decoded.back() == ' ')) {
    decoded.pop_back();
  }
  return decoded.size() == 64 ? decoded : std::string();
}

DeployReport deployOverlay(const OverlayPlan &plan, const images::ImageStore &store,
                           const DeployOptions &options, const OverlayLog &log) {
  return Deployer(plan, store, options, log).run();
}

DestroyReport destroyOverlay(const std::string &overlay, const std::vector<HostRef> &hosts,
                             const std::vector<PlannedHost> &networks, const OverlayLog &log) {
  const auto start = Clock::now();
  DestroyReport report;
  report.overlay = overlay;
  std::vector<HostRef> todo = hosts;
  std::vector<PlannedHost> nets = networks;
  for (std::size_t i = 0; i < todo.size(); ++i) { // grows as plans name more hosts
    const HostRef host = todo[i];
    try {
      const auto conn = virt::Connection::open(host.uri);
      const auto routers = overlayRouters(conn, host, overlay);
      addPlanHosts(routers, todo, &nets);
      RouterManager manager(conn, host);
      for (const auto &r : routers) {
        try {
          manager.destroy(r.name);
          report.routers.push_back(r.name + "@" + host.name);
          log("router '" + r.name + "' destroyed on host '" + host.name + "'");
        } catch (const Error &e) {
          report.failures.push_back(e.what());
        }
      }
    } catch (const Error &e) {
      report.failures.push_back("host '" + host.name + "': " + e.what());
    }
  }
  const std::string prefix = overlayLinkPrefix(overlay);
  for (const auto &net : nets) {
    try {
      netconfig::HostNetwork hn = networkOf(net);
      for (const auto &name : hn.links(prefix)) {
        if (hn.removeLink(name)) {
          report.hostLinks.push_back(name + "@" + net.name);
        }
      }
    } catch (const Error &e) {
      report.failures.push_back("host '" + net.name + "' network: " + e.what());
    }
  }
  for (const auto &ns : netconfig::listNamespaces()) {
    if (ns.starts_with(namespacePrefix(overlay))) {
      netconfig::removeNamespace(ns);
      report.namespaces.push_back(ns);
    }
  }
  report.seconds = since(start);
  return report;
}

OverlayStatus inspectOverlay(const std::string &overlay, const std::vector<HostRef> &hosts,
                             bool live) {
  OverlayStatus status;
  status.overlay = overlay;
  std::vector<HostRef> todo = hosts;
  for (std::size_t i = 0; i < todo.size(); ++i) {
    const HostRef host = todo[i];
    try {
      const auto conn = virt::Connection::open(host.uri);
      const auto routers = overlayRouters(conn, host, overlay);
      addPlanHosts(routers, todo, nullptr);
      RouterManager manager(conn, host);
      for (const auto &r : routers) {
        OverlayRouterStatus rs;
        rs.name = r.name;
        rs.host = host.name;
        rs.state = r.state;
        rs.role = r.metadata.role;
        rs.digest = r.metadata.spec;
        const auto plan = nlohmann::json::parse(r.metadata.plan, nullptr, false);
        if (plan.is_object() && status.plan.is_null()) {
          status.plan = plan;
        }
        if (plan.is_object()) {
          for (const auto &pr : plan.value("routers", nlohmann::json::array())) {
            rs.current |= pr.value("name", "") == r.name && pr.value("digest", "") == rs.digest;
          }
        }
        const auto run = nlohmann::json::parse(r.metadata.run, nullptr, false);
        if (run.is_object() && (status.lastRun.is_null() ||
                                run.value("started", "") > status.lastRun.value("started", ""))) {
          status.lastRun = run;
        }
        if (live && r.state == RouterState::Running) {
          const auto dom = manager.domain(r.name);
          rs.osrd = osrdStatus(conn, dom.get(), rs.osrdError);
        }
        status.routers.push_back(std::move(rs));
      }
    } catch (const Error &e) {
      status.unreachable.push_back(host.name + ": " + e.what());
    }
  }
  return status;
}

} // namespace nvbox
