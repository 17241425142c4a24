#include "command_host.hpp"

#include "nvbox/accelerator.hpp"
#include "nvbox/naming.hpp"
#include "nvbox/router.hpp"

#include <algorithm>
#include <iomanip>
#include <map>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>

namespace po = boost::program_options;

namespace nvbox::cli {
namespace {

using Json = nlohmann::json;

std::string connectPrefix(const std::string &uri) {
  return "cannot connect to host '" + uri + "': ";
}

std::string poolState(int state) {
  switch (state) {
  case VIR_STORAGE_POOL_INACTIVE:
    return "inactive";
  case VIR_STORAGE_POOL_BUILDING:
    return "building";
  case VIR_STORAGE_POOL_RUNNING:
    return "active";
  case VIR_STORAGE_POOL_DEGRADED:
    return "degraded";
  case VIR_STORAGE_POOL_INACCESSIBLE:
    return "inaccessible";
  default:
    return "unknown";
  }
}

// "2 (1 running, 1 shutoff)"
std::string routerSummary(const std::vector<RouterInfo> &routers) {
  std::map<std::string, std::size_t> states;
  for (const auto &r : routers) {
    ++states[toString(r.state)];
  }
  std::string text = std::to_string(routers.size());
  if (!states.empty()) {
    text += " (";
    bool first = true;
    for (const auto &[state, count] : states) {
      text += (first ? "" : ", ") + std::to_string(count) + " " + state;
      first = false;
    }
    text += ")";
  }
  return text;
}

std::string hostRefusal(const std::string &command) {
  return "nvbox " + command +
         ": --host does not apply; the host verbs name the host as an argument";
}

} // namespace

// ---------------------------------------------------------------------------
// What host and router verbs share

virt::Connection connectHost(const HostRef &host) {
  try {
    return virt::Connection::open(host.uri);
  } catch (const Error &e) {
    if (host.name == host.uri) {
      throw;
    }
    throw Error("cannot connect to host '" + host.name + "' (" + host.uri +
                    "): " + unreachableReason(e, host),
                e.hint());
  }
}

std::string unreachableReason(const Error &error, const HostRef &host) {
  const std::string what = error.what();
  for (const std::string &prefix :
       {connectPrefix(host.uri),
        "cannot connect to host '" + host.name + "' (" + host.uri + "): "}) {
    if (what.starts_with(prefix)) {
      return what.substr(prefix.size());
    }
  }
  return what;
}

// ---------------------------------------------------------------------------
// HostCommand

void HostCommand::addOptions(po::options_description & /*options*/,
                             po::positional_options_description & /*positional*/) {}

void HostCommand::addName(po::options_description &options,
                          po::positional_options_description &positional, const char *help) {
  options.add_options()("name", po::value<std::string>(&name_)->value_name("NAME"), help);
  positional.add("name", 1);
}

void HostCommand::validate(const po::variables_map & /*vm*/) {
  if (!host().empty()) {
    throw UsageError(hostRefusal(name()),
                     "give the host as NAME, e.g. 'nvbox host inspect " + host() + "'");
  }
}

void HostCommand::requireName() const {
  if (name_.empty()) {
    throw UsageError("nvbox " + name() + ": missing host NAME",
                     "see 'nvbox " + name() + " --help'");
  }
}

HostRegistry HostCommand::registry() {
  return HostRegistry(HostRegistry::defaultFile());
}

// ---------------------------------------------------------------------------
// host add

std::string HostAddCommand::synopsis() const {
  return "host add NAME URI [--check] [--json]";
}

std::string HostAddCommand::description() const {
  return "Registers a host under NAME in the hosts file ($NVBOX_HOSTS, else\n"
         "/etc/nvbox/hosts.json as root, else ~/.config/nvbox/hosts.json), so that\n"
         "--host NAME reaches URI. NAME is 1-32 of [a-z0-9-]; URI is any libvirt URI\n"
         "(qemu+ssh://root@h1/system, qemu+tcp://10.0.0.2/system, ...). Registering\n"
         "'local' overrides the built-in local host (qemu:///system). The host is not\n"
         "contacted (it may be down) unless --check is given; then an unreachable host\n"
         "is refused and nothing is written.";
}

void HostAddCommand::addOptions(po::options_description &options,
                                po::positional_options_description &positional) {
  HostCommand::addOptions(options, positional);
  options.add_options()("check", po::bool_switch(&check_),
                        "connect first and refuse a host that does not answer");
  addName(options, positional, "the host's name (also the first argument)");
  options.add_options()("uri", po::value<std::string>(&uri_)->value_name("URI"),
                        "its libvirt URI (also the second argument)");
  positional.add("uri", 1);
}

void HostAddCommand::validate(const po::variables_map &vm) {
  HostCommand::validate(vm);
  requireName();
  if (uri_.empty()) {
    throw UsageError("nvbox host add: missing URI", "see 'nvbox host add --help'");
  }
  if (!isValidHostName(name_)) {
    throw UsageError("host name " + quote(name_) +
                         " is not 1-32 of [a-z0-9-] starting with a letter or digit",
                     "choose another name");
  }
  if (uri_.find("://") == std::string::npos) {
    throw UsageError(quote(uri_) + " is not a libvirt URI",
                     "give one such as qemu+ssh://root@HOST/system");
  }
}

int HostAddCommand::run(Terminal &term) {
  HostRegistry hosts = registry();
  std::string version;
  if (check_) {
    // A name taken is refused before the host is contacted (add() would
    // refuse it after).
    for (const auto &ref : hosts.list()) {
      if (ref.name == name_ && (name_ != kLocalHostName || ref.uri != kLocalHostUri)) {
        throw UsageError("host " + quote(name_) + " exists already (" + ref.uri + ")",
                         "remove it first with 'nvbox host rm " + name_ + "'");
      }
    }
    const HostRef ref{name_, uri_};
    term.progress("connecting to " + uri_);
    const virt::Connection conn = connectHost(ref);
    version = conn.libvirtVersion();
  }
  hosts.add(name_, uri_);
  if (json()) {
    Json out{{"added", name_}, {"uri", uri_}, {"file", hosts.file().string()}};
    if (check_) {
      out["libvirt_version"] = version;
    }
    term.out() << out.dump(2) << "\n";
    return 0;
  }
  term.out() << "added host " << quote(name_) << " (" << uri_ << ")";
  if (check_) {
    term.out() << "; it answers with libvirt " << version;
  }
  term.out() << "\n";
  return 0;
}

// ---------------------------------------------------------------------------
// host list

std::string HostListCommand::synopsis() const {
  return "host list [--check] [--json]";
}

std::string HostListCommand::description() const {
  return "Lists the hosts nvbox knows: 'local' (qemu:///system unless registered\n"
         "otherwise) and every host in the hosts file, with its URI. With --check,\n"
         "connects to each and adds how many routers it has and whether it answers; a\n"
         "host that does not is shown as 'unreachable: REASON' and the list goes on.";
}

void HostListCommand::addOptions(po::options_description &options,
                                 po::positional_options_description &positional) {
  HostCommand::addOptions(options, positional);
  options.add_options()("check", po::bool_switch(&check_),
                        "connect to every host and count its routers");
}

int HostListCommand::run(Terminal &term) {
  const HostRegistry hosts = registry();
  const std::vector<HostRef> refs = hosts.list();
  Json list = Json::array();
  std::vector<std::vector<std::string>> rows{{"NAME", "URI"}};
  if (check_) {
    rows[0].insert(rows[0].end(), {"ROUTERS", "STATUS"});
  }
  for (const auto &ref : refs) {
    Json entry{{"name", ref.name}, {"uri", ref.uri}};
    std::vector<std::string> row{ref.name, ref.uri};
    if (check_) {
      term.progress("connecting to " + ref.uri);
      try {
        const virt::Connection conn = connectHost(ref);
        const std::size_t routers = RouterManager(conn, ref).list().size();
        entry["reachable"] = true;
        entry["routers"] = routers;
        entry["libvirt_version"] = conn.libvirtVersion();
        row.insert(row.end(), {std::to_string(routers), "ok"});
      } catch (const Error &e) {
        const std::string reason = unreachableReason(e, ref);
        entry["reachable"] = false;
        entry["error"] = reason;
        row.insert(row.end(), {"-", "unreachable: " + reason});
      }
    }
    list.push_back(std::move(entry));
    rows.push_back(std::move(row));
  }
  if (json()) {
    term.out() << Json{{"file", hosts.file().string()}, {"hosts", list}}.dump(2) << "\n";
    return 0;
  }
  printTable(term.out(), rows);
  return 0;
}

// ---------------------------------------------------------------------------
// host inspect

std::string HostInspectCommand::synopsis() const {
  return "host inspect NAME [--no-probe] [--json]";
}

std::string HostInspectCommand::description() const {
  return "Connects to a host (a registered NAME, 'local' or a libvirt URI) and shows its\n"
         "host name, libvirt and hypervisor versions, CPUs, memory (total and free),\n"
         "nvbox's storage pool, the routers defined there with their states, and the\n"
         "accelerator that really runs guests there: a tiny probe guest is booted under\n"
         "KVM and TCG (up to about 30 s; --no-probe skips it). An unreachable host is\n"
         "one error line naming the host and its URI.";
}

void HostInspectCommand::addOptions(po::options_description &options,
                                    po::positional_options_description &positional) {
  HostCommand::addOptions(options, positional);
  options.add_options()("no-probe", po::bool_switch(&noProbe_),
                        "do not boot probe guests to find the accelerator");
  addName(options, positional, "the host: NAME, local or a URI (also the first argument)");
}

void HostInspectCommand::validate(const po::variables_map &vm) {
  HostCommand::validate(vm);
  requireName();
}

int HostInspectCommand::run(Terminal &term) {
  const HostRef ref = registry().resolve(name_);
  term.progress("connecting to " + ref.uri);
  const virt::Connection conn = connectHost(ref);

  Json out{{"name", ref.name}, {"uri", ref.uri}};
  out["hostname"] = conn.hostname();
  out["libvirt_version"] = conn.libvirtVersion();
  out["hypervisor"] = {{"type", conn.driverType()}, {"version", conn.hypervisorVersion()}};
  virNodeInfo node{};
  if (virNodeGetInfo(conn.get(), &node) != 0) {
    throw Error("cannot read the node information of host " + quote(ref.name) + ": " +
                virt::lastError());
  }
  out["cpus"] = node.cpus;
  out["cpu_model"] = std::string(node.model);
  out["cpu_mhz"] = node.mhz;
  out["memory_mib"] = node.memory / 1024;
  out["free_memory_mib"] = virNodeGetFreeMemory(conn.get()) >> 20U;

  const virt::StoragePoolPtr pool(virStoragePoolLookupByName(conn.get(), naming::kStoragePool));
  Json poolJson = nullptr;
  if (pool) {
    virStoragePoolInfo info{};
    const bool haveInfo = virStoragePoolGetInfo(pool.get(), &info) == 0;
    poolJson = {{"name", naming::kStoragePool},
                {"state", haveInfo ? poolState(info.state) : "unknown"},
                {"capacity_bytes", info.capacity},
                {"allocation_bytes", info.allocation},
                {"available_bytes", info.available},
                {"volumes", std::max(virStoragePoolNumOfVolumes(pool.get()), 0)}};
  }
  out["storage_pool"] = poolJson;

  const std::vector<RouterInfo> routers = RouterManager(conn, ref).list();
  Json routerJson = Json::array();
  for (const auto &r : routers) {
    routerJson.push_back(r.toJson());
  }
  out["routers"] = routerJson;

  Json accel = nullptr;
  std::string accelText = "not probed (--no-probe)";
  if (!noProbe_) {
    term.progress("probing the accelerator of host " + quote(ref.name) + " with a tiny guest");
    try {
      const AcceleratorReport report = probeAccelerator(conn);
      accel = {{"chosen", report.chosen()},
               {"domain_type", report.domainType()},
               {"kvm_unusable_reason", report.kvmUnusableReason()}};
      if (report.chosen() == "none") {
        accelText = "none: no probe guest ran (" + report.tcg.reason + ")";
      } else {
        accelText = report.chosen() + " (domain type " + quote(report.domainType()) + ")";
        if (!report.kvmUnusableReason().empty()) {
          accelText += "; KVM unusable: " + report.kvmUnusableReason();
        }
      }
    } catch (const Error &e) {
      accel = {{"error", e.what()}};
      accelText = std::string("probe failed: ") + e.what();
    }
  }
  out["accelerator"] = accel;
  term.clearProgress();

  if (json()) {
    term.out() << out.dump(2) << "\n";
    return 0;
  }
  std::ostream &o = term.out();
  std::string hypervisor = out["hypervisor"]["type"].get<std::string>();
  if (const std::string v = out["hypervisor"]["version"]; !v.empty()) {
    hypervisor += " " + v;
  }
  std::string poolText =
      quote(naming::kStoragePool) + " does not exist (made by the first " + "'nvbox image push')";
  if (!poolJson.is_null()) {
    poolText = quote(naming::kStoragePool) + " " + poolJson["state"].get<std::string>();
    if (poolJson["state"] == "active") {
      poolText += ", " + std::to_string(poolJson["volumes"].get<int>()) + " volumes, " +
                  formatSizeMiB(poolJson["available_bytes"].get<std::uint64_t>() >> 20U) +
                  " available";
    }
  }
  std::string cpus = std::to_string(node.cpus);
  if (node.model[0] != '\0') {
    cpus += " (" + std::string(node.model) +
            (node.mhz != 0 ? ", " + std::to_string(node.mhz) + " MHz" : "") + ")";
  }
  printTable(o,
             {{"host:", ref.name},
              {"uri:", ref.uri},
              {"hostname:", out["hostname"]},
              {"libvirt:", out["libvirt_version"]},
              {"hypervisor:", hypervisor},
              {"cpus:", cpus},
              {"memory:", formatSizeMiB(out["memory_mib"].get<std::uint64_t>()) + ", " +
                              formatSizeMiB(out["free_memory_mib"].get<std::uint64_t>()) + " free"},
              {"storage pool:", poolText},
              {"accelerator:", accelText},
              {"routers:", routerSummary(routers)}});
  if (!routers.empty()) {
    std::vector<std::vector<std::string>> rows{
        {"NAME", "STATE", "IMAGE", "ROLE", "MEMORY", "CPUS"}};
    for (const auto &r : routers) {
      rows.push_back({r.name, toString(r.state), r.metadata.image, r.metadata.role,
                      std::to_string(r.memoryMiB) + " MiB", std::to_string(r.vcpus)});
    }
    printTable(o, rows, "  ");
  }
  return 0;
}

// ---------------------------------------------------------------------------
// host rm

std::string HostRmCommand::synopsis() const {
  return "host rm NAME [--json]";
}

std::string HostRmCommand::description() const {
  return "Removes a registered host from the hosts file. Its routers are not touched;\n"
         "they stay reachable with --host URI.";
}

void HostRmCommand::addOptions(po::options_description &options,
                               po::positional_options_description &positional) {
  HostCommand::addOptions(options, positional);
  addName(options, positional, "the host's name (also the first argument)");
}

void HostRmCommand::validate(const po::variables_map &vm) {
  HostCommand::validate(vm);
  requireName();
}

int HostRmCommand::run(Terminal &term) {
  HostRegistry hosts = registry();
  std::string uri;
  for (const auto &ref : hosts.list()) {
    if (ref.name == name_) {
      uri = ref.uri;
    }
  }
  hosts.remove(name_);
  if (json()) {
    term.out() << Json{{"removed", name_}, {"uri", uri}, {"file", hosts.file().string()}}.dump(2)
               << "\n";
  } else {
    term.out() << "removed host " << quote(name_) << " (" << uri << ")\n";
  }
  return 0;
}

} // namespace nvbox::cli
