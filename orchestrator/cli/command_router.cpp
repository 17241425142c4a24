#include "command_router.hpp"

#include "command_host.hpp"
#include "command_image.hpp"
#include "command_image_build.hpp"

#include "nvbox/error.hpp"
#include "nvbox/guest_agent.hpp"
#include "nvbox/images/digest.hpp"
#include "nvbox/images/manifest.hpp"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <optional>
#include <ostream>
#include <regex>
#include <set>
#include <sstream>
#include <unistd.h>

namespace po = boost::program_options;

namespace nvbox::cli {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

constexpr std::uint64_t kMinMemoryMiB = 64;
constexpr unsigned kMaxVcpus = 64;
constexpr double kMaxTimeoutSeconds = 3600;
// A config text larger than this does not belong in fw_cfg.
constexpr std::uintmax_t kMaxConfigBytes = std::uintmax_t{1} << 20U;
constexpr auto kAgentTimeout = 5s;

bool matches(const std::string &text, const char *pattern) {
  return std::regex_match(text, std::regex(pattern));
}

// A JSON value as a table cell: strings as they are, numbers in decimal,
// null as "-".
std::string cell(const Json &v) {
  if (v.is_string()) {
    return v.get<std::string>();
  }
  if (v.is_null()) {
    return "-";
  }
  if (v.is_boolean()) {
    return v.get<bool>() ? "yes" : "no";
  }
  if (v.is_number_float()) {
    std::ostringstream s;
    s << std::fixed << std::setprecision(2) << v.get<double>();
    return s.str();
  }
  return v.dump();
}

// obj[key], null when obj is no object or lacks it.
Json member(const Json &obj, const char *key) {
  if (!obj.is_object()) {
    return nullptr;
  }
  const auto it = obj.find(key);
  return it == obj.end() ? Json() : *it;
}

// obj[key] as a cell, "-" when absent.
std::string field(const Json &obj, const char *key) {
  if (!obj.is_object()) {
    return "-";
  }
  const auto it = obj.find(key);
  return it == obj.end() ? "-" : cell(*it);
}

// obj[key] as a string, `fallback` when absent or not a string.
std::string text(const Json &obj, const char *key, const std::string &fallback = {}) {
  if (obj.is_object()) {
    const auto it = obj.find(key);
    if (it != obj.end() && it->is_string()) {
      return it->get<std::string>();
    }
  }
  return fallback;
}

// obj[key] when it is an array, else an empty one.
const Json &arrayAt(const Json &obj, const char *key) {
  static const Json empty = Json::array();
  if (obj.is_object()) {
    const auto it = obj.find(key);
    if (it != obj.end() && it->is_array()) {
      return *it;
    }
  }
  return empty;
}

std::string vcpuText(unsigned vcpus) {
  return std::to_string(vcpus) + (vcpus == 1 ? " vCPU" : " vCPUs");
}

// The directory entry of `program` on $PATH, empty when there is none.
std::string findInPath(const std::string &program) {
  const char *path = std::getenv("PATH");
  std::istringstream dirs(path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return {};
}

void checkRouterName(const std::string &name, const std::string &hint) {
  if (!isValidRouterName(name)) {
    throw UsageError("router name " + quote(name) +
                         " is not 1-32 of [a-z0-9-] starting with a letter or digit",
                     hint);
  }
}

// The router's agent, asked `request`; the reply object. Throws nvbox::Error
// when the agent cannot be reached or says the request failed.
Json askAgent(const virt::Connection &conn, const RouterManager &routers, const std::string &router,
              const Json &request) {
  const virt::DomainPtr dom = routers.domain(router);
  GuestAgent agent(conn, dom.get());
  Json reply = agent.request(request, kAgentTimeout);
  if (member(reply, "ok") != true) {
    throw Error("the agent of router " + quote(router) + " refused '" + request.value("cmd", "") +
                "': " + text(reply, "error", reply.dump()));
  }
  reply.erase("id");
  return reply;
}

// Starts the router and, with `wait`, waits until osrd answers; prints a line
// per step unless `json`. Returns the wait's report when it waited.
std::optional<ReadyReport> startRouter(Terminal &term, RouterManager &routers,
                                       const std::string &router, const std::string &where,
                                       bool wait, std::chrono::milliseconds timeout, bool json) {
  term.progress("starting " + where);
  routers.start(router);
  if (!json) {
    term.out() << "started " << where << "\n";
  }
  if (!wait) {
    return std::nullopt;
  }
  term.progress("waiting for " + where + " to be ready (osrd answering its agent)");
  ReadyReport report = routers.waitReady(router, timeout);
  term.clearProgress();
  if (report.ready && !json) {
    term.out() << "router " << quote(router) << " ready in " << formatDuration(report.seconds);
    const std::string listen = text(member(report.status, "osrd"), "listen");
    if (!listen.empty()) {
      term.out() << " (osrd listening on " << listen << ")";
    }
    term.out() << "\n";
  }
  return report;
}

// Adds the wait's outcome to a router's JSON.
void addReady(Json &out, const std::optional<ReadyReport> &report) {
  if (report) {
    out["ready"] = report->ready;
    out["ready_seconds"] = report->seconds;
    if (!report->ready) {
      out["ready_error"] = report->reason;
    }
  }
}

// Throws the error of a router that did not get ready in time.
void requireReady(const std::optional<ReadyReport> &report, const std::string &where,
                  const std::string &router, std::chrono::milliseconds timeout,
                  const std::string &hostFlag) {
  if (report && !report->ready) {
    throw Error(where + " is not ready after " +
                    formatDuration(std::chrono::duration<double>(timeout).count()) + ": " +
                    (report->reason.empty() ? "osrd did not answer" : report->reason),
                "look at its console with 'nvbox router console " + router + hostFlag + "'");
  }
}

} // namespace

// ---------------------------------------------------------------------------
// --nic, --config

RouterNic parseNicSpec(const std::string &spec) {
  const auto fail = [&](const std::string &why) {
    throw UsageError("--nic " + quote(spec) + ": " + why, "see 'nvbox router create --help'");
  };
  std::vector<std::pair<std::string, std::optional<std::string>>> fields;
  std::istringstream in(spec);
  std::string item;
  while (std::getline(in, item, ',')) {
    const auto eq = item.find('=');
    if (eq == std::string::npos) {
      fields.emplace_back(item, std::nullopt);
    } else {
      fields.emplace_back(item.substr(0, eq), item.substr(eq + 1));
    }
  }
  if (spec.empty() || spec.back() == ',' || fields.empty()) {
    fail("empty field");
  }
  RouterNic nic;
  const auto &[kind, source] = fields.front();
  const char *ifname = "[A-Za-z0-9_.-]{1,15}";
  if (kind == "bridge" || kind == "network") {
    if (!source || source->empty()) {
      fail(kind + " needs a name");
    }
    if (!matches(*source, kind == "bridge" ? ifname : "[A-Za-z0-9_.-]{1,64}")) {
      fail(kind + " name " + quote(*source) + " is not " +
           (kind == "bridge" ? "1-15" : std::string("1-64")) + " of [A-Za-z0-9_.-]");
    }
    nic.kind = kind == "bridge" ? RouterNic::Kind::Bridge : RouterNic::Kind::Network;
    nic.source = *source;
  } else if (kind == "tap") {
    nic.kind = RouterNic::Kind::Ethernet;
    if (source) {
      if (!matches(*source, ifname)) {
        fail("tap name " + quote(*source) + " is not 1-15 of [A-Za-z0-9_.-]");
      }
      nic.tap = *source;
    }
  } else {
    fail("it starts with " + quote(kind) + ", not bridge=, network= or tap");
  }
  std::set<std::string> seen;
  for (std::size_t i = 1; i < fields.size(); ++i) {
    const auto &[key, value] = fields[i];
    if (!value) {
      fail("field " + quote(key) + " has no value");
    }
    if (!seen.insert(key).second || (key == "tap" && kind == "tap")) {
      fail(quote(key) + " given twice");
    }
    if (key == "mac") {
      std::string mac = *value;
      for (char &c : mac) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      }
      if (!matches(mac, "([0-9a-f]{2}:){5}[0-9a-f]{2}")) {
        fail("MAC address " + quote(*value) + " is not six hex bytes like 52:54:00:12:34:56");
      }
      if ((std::stoul(mac.substr(0, 2), nullptr, 16) & 1U) != 0) {
        fail("MAC address " + quote(*value) + " is a multicast address");
      }
      nic.mac = mac;
    } else if (key == "tap") {
      if (!matches(*value, ifname)) {
        fail("tap name " + quote(*value) + " is not 1-15 of [A-Za-z0-9_.-]");
      }
      nic.tap = *value;
    } else if (key == "rate") {
      if (!matches(*value, "[1-9][0-9]{0,9}")) {
        fail("rate " + quote(*value) + " is not a number of kilobytes per second (1-9999999999)");
      }
      nic.rateKbps = std::stoull(*value);
    } else if (key == "mtu") {
      const bool ok = matches(*value, "[1-9][0-9]{1,4}");
      const unsigned long mtu = ok ? std::stoul(*value) : 0;
      if (!ok || mtu < 68 || mtu > 65535) {
        fail("MTU " + quote(*value) + " is not between 68 and 65535");
      }
      nic.mtu = static_cast<unsigned>(mtu);
    } else {
      fail("unknown field " + quote(key));
    }
  }
  return nic;
}

std::map<std::string, ConfigValue> parseConfigArguments(const std::vector<std::string> &args) {
  std::map<std::string, ConfigValue> out;
  for (const auto &arg : args) {
    const auto eq = arg.find('=');
    const std::string key = arg.substr(0, eq);
    const auto fail = [&](const std::string &why) {
      throw UsageError("--config " + quote(arg) + ": " + why, "see 'nvbox router create --help'");
    };
    if (eq == std::string::npos) {
      fail("expected KEY=VALUE");
    }
    if (key != "net" && key != "osrd" && key != "key") {
      fail("unknown key " + quote(key) + ", not net, osrd or key");
    }
    const std::string value = arg.substr(eq + 1);
    if (value.empty() || value == "@") {
      fail(value.empty() ? "no value" : "no file after '@'");
    }
    ConfigValue v;
    if (value.front() == '@') {
      v.file = value.substr(1);
    } else {
      v.text = value;
    }
    if (!out.emplace(key, v).second) {
      throw UsageError("--config key " + quote(key) + " given twice",
                       "give each of net, osrd and key at most once");
    }
  }
  return out;
}

std::map<std::string, std::string>
readConfigValues(const std::map<std::string, ConfigValue> &values) {
  std::map<std::string, std::string> out;
  for (const auto &[key, value] : values) {
    if (value.file.empty()) {
      out[key] = value.text;
      continue;
    }
    std::error_code ec;
    const auto size = std::filesystem::file_size(value.file, ec);
    if (!ec && size > kMaxConfigBytes) {
      throw Error("--config " + key + ": file " + quote(value.file) + " is larger than 1 MiB",
                  "router configuration files are small text files");
    }
    std::ifstream in(value.file, std::ios::binary);
    std::ostringstream text;
    if (in) {
      text << in.rdbuf();
    }
    if (!in || ec) {
      throw Error("--config " + key + ": cannot read file " + quote(value.file) + ": " +
                      (ec ? ec.message() : std::strerror(errno)),
                  "check the path after '@'");
    }
    out[key] = text.str();
  }
  return out;
}

// ---------------------------------------------------------------------------
// Agent and osrd status

void printAgentStatus(const Json &status, std::ostream &out) {
  std::vector<std::vector<std::string>> head{{"hostname:", field(status, "hostname")}};
  const Json osrd = member(status, "osrd");
  if (osrd.is_object()) {
    head.push_back({"osrd:", field(osrd, "name") + " " + field(osrd, "version") +
                                 ", listening on " + field(osrd, "listen") + ", tun " +
                                 field(osrd, "tun")});
  } else {
    head.push_back({"osrd:", "not ready: " + text(status, "osrd_error", "no status")});
  }
  const Json &interfaces = arrayAt(status, "interfaces");
  head.push_back({"interfaces:", interfaces.empty() ? "none" : ""});
  printTable(out, head, "  ");
  if (interfaces.empty()) {
    return;
  }
  std::vector<std::vector<std::string>> rows{{"NAME", "MAC", "MTU", "STATE", "ADDRESSES"}};
  for (const auto &i : interfaces) {
    std::string addresses;
    for (const auto &a : arrayAt(i, "addresses")) {
      addresses += (addresses.empty() ? "" : ", ") + cell(a);
    }
    const Json up = member(i, "up");
    rows.push_back({field(i, "name"), text(i, "mac").empty() ? "-" : text(i, "mac"),
                    field(i, "mtu"), up.is_boolean() ? (up.get<bool>() ? "up" : "down") : cell(up),
                    addresses.empty() ? "-" : addresses});
  }
  printTable(out, rows, "    ");
}

void printOsrdStatus(const Json &status, std::ostream &out) {
  out << "osrd " << field(status, "name") << " " << field(status, "version") << ": listening on "
      << field(status, "listen") << ", tun " << field(status, "tun") << "\n";

  out << "counters:\n";
  const Json counters = member(status, "counters");
  std::vector<std::vector<std::string>> rows;
  const std::vector<std::string> order{
      "rx",          "tx",           "relayed",        "send_drops",
      "tun_packets", "tun_unrouted", "relay_delay_ms", "relay_delay_dropped"};
  for (const auto &key : order) {
    if (counters.is_object() && counters.contains(key)) {
      rows.push_back({key, cell(counters[key])});
    }
  }
  if (counters.is_object()) {
    for (const auto &[key, value] : counters.items()) {
      if (key != "rejected" && std::find(order.begin(), order.end(), key) == order.end()) {
        rows.push_back({key, cell(value)});
      }
    }
    if (counters.contains("rejected")) {
      std::string rejected;
      if (counters["rejected"].is_object()) {
        for (const auto &[reason, count] : counters["rejected"].items()) {
          rejected += (rejected.empty() ? "" : ", ") + reason + " " + cell(count);
        }
      }
      rows.push_back({"rejected", rejected.empty() ? "none" : rejected});
    }
  }
  printTable(out, rows, "  ");

  const Json &stripes = arrayAt(status, "stripes");
  if (stripes.empty()) {
    out << "stripes: none\n";
  } else {
    out << "stripes:\n";
    std::vector<std::vector<std::string>> s{{"STRIPE", "FLOW", "DST", "EGRESS", "SCHEDULER", "K",
                                             "PACKETS", "BYTES", "NO_PATH", "PATHS_DOWN"}};
    std::vector<std::vector<std::string>> p{
        {"STRIPE", "PATH", "RELAY", "STATE", "RTT_MS", "MIN_RTT_MS", "LOSS", "PARTS", "BYTES",
         "MEASURED_MBIT_S", "QUEUE_MS", "SHARE", "PROBES", "REPLIES", "WENT_DOWN", "WENT_UP"}};
    for (const auto &stripe : stripes) {
      s.push_back({field(stripe, "name"), field(stripe, "flow"), field(stripe, "dst"),
                   field(stripe, "egress"), field(stripe, "scheduler"), field(stripe, "k"),
                   field(stripe, "packets"), field(stripe, "bytes"), field(stripe, "no_path"),
                   field(stripe, "paths_went_down")});
      for (const auto &path : arrayAt(stripe, "paths")) {
        const Json up = member(path, "up");
        p.push_back(
            {field(stripe, "name"), field(path, "id"), field(path, "relay"),
             up.is_boolean() ? (up.get<bool>() ? "up" : "down") : cell(up),
             microsAsMillis(member(path, "rtt_us")), microsAsMillis(member(path, "min_rtt_us")),
             fractionAsPercent(member(path, "loss")), field(path, "parts"), field(path, "bytes"),
             bytesPerSecondAsMbit(member(path, "measured_rate")),
             microsAsMillis(member(path, "queue_us")), fractionAsPercent(member(path, "share")),
             field(path, "probes_sent"), field(path, "probe_replies"), field(path, "went_down"),
             field(path, "went_up")});
      }
    }
    printTable(out, s, "  ");
    if (p.size() > 1) {
      out << "paths:\n";
      printTable(out, p, "  ");
    }
  }

  const Json egress = member(status, "egress");
  const Json &flows = arrayAt(egress, "flows");
  out << "egress: " << flows.size() << (flows.size() == 1 ? " flow" : " flows") << ", "
      << field(egress, "flows_refused") << " refused, " << field(egress, "tun_write_errors")
      << " TUN write errors\n";
  if (flows.empty()) {
    return;
  }
  std::vector<std::vector<std::string>> f{
      {"FLOW", "BUFFER", "GAP_TIMEOUT_MS", "OCCUPANCY", "DELIVERED", "REORDERED", "HELD", "PEAK",
       "LOST_OVERFLOW", "LOST_TIMEOUT", "DUPLICATES", "TOO_OLD"}};
  std::vector<std::vector<std::string>> fp{{"FLOW", "PATH", "PARTS", "BYTES", "RATE_BYTES_PER_S",
                                            "RELATIVE_DELAY_MS", "PLAYOUT_HOLD_MS"}};
  for (const auto &flow : flows) {
    const bool bufferAuto = member(flow, "buffer_auto") == true;
    const bool timeoutAuto = member(flow, "gap_timeout_auto") == true;
    f.push_back({field(flow, "flow"), field(flow, "buffer") + (bufferAuto ? " (auto)" : ""),
                 field(flow, "gap_timeout_ms") + (timeoutAuto ? " (auto)" : ""),
                 field(flow, "occupancy"), field(flow, "delivered"), field(flow, "reordered"),
                 field(flow, "held"), field(flow, "peak_occupancy"), field(flow, "lost_overflow"),
                 field(flow, "lost_timeout"), field(flow, "duplicates"), field(flow, "too_old")});
    for (const auto &path : arrayAt(flow, "paths")) {
      fp.push_back({field(flow, "flow"), field(path, "id"), field(path, "parts"),
                    field(path, "bytes"), field(path, "rate_bytes_per_s"),
                    microsAsMillis(member(path, "relative_delay_us")),
                    microsAsMillis(member(path, "playout_hold_us"))});
    }
  }
  printTable(out, f, "  ");
  if (fp.size() > 1) {
    out << "egress paths:\n";
    printTable(out, fp, "  ");
  }
}

// ---------------------------------------------------------------------------
// RouterCommand

void RouterCommand::addOptions(po::options_description &options,
                               po::positional_options_description &positional) {
  if (takesName()) {
    options.add_options()("name", po::value<std::string>(&router_)->value_name("NAME"),
                          "the router (also the first argument)");
    positional.add("name", 1);
  }
}

void RouterCommand::addTimeout(po::options_description &options, double seconds, const char *help) {
  timeoutSeconds_ = seconds;
  options.add_options()("timeout", po::value<double>(&timeoutSeconds_)->value_name("SECONDS"),
                        help);
}

std::chrono::milliseconds RouterCommand::timeout() const {
  return std::chrono::milliseconds(static_cast<long>(std::lround(timeoutSeconds_ * 1000.0)));
}

void RouterCommand::validate(const po::variables_map &vm) {
  if (takesName()) {
    if (router_.empty()) {
      throw UsageError("nvbox " + name() + ": missing router NAME",
                       "see 'nvbox " + name() + " --help'");
    }
    checkRouterName(router_,
                    name() == "router create" ? "choose another name" : "see 'nvbox router list'");
  }
  if (vm.count("timeout") != 0U && (!std::isfinite(timeoutSeconds_) || timeoutSeconds_ <= 0 ||
                                    timeoutSeconds_ > kMaxTimeoutSeconds)) {
    std::ostringstream s;
    s << timeoutSeconds_;
    throw UsageError("nvbox " + name() + ": --timeout must be between 0 and 3600 seconds, not " +
                         quote(s.str()),
                     "see 'nvbox " + name() + " --help'");
  }
  target_ = resolveHost(host());
}

std::string RouterCommand::hostFlag() const {
  return host().empty() ? "" : " --host " + target_.name;
}

std::string RouterCommand::where() const {
  return "router " + quote(router_) + " on host " + quote(target_.name);
}

// ---------------------------------------------------------------------------
// router create

std::string RouterCreateCommand::synopsis() const {
  return "router create NAME [--image NAME] [--memory SIZE] [--cpus N] [--nic SPEC ...]\n"
         "       [--config KEY=VALUE ...] [--role ROLE] [--accel auto|kvm|tcg] [--start]\n"
         "       [--wait] [--timeout SECONDS] [--store DIR] [--host NAME|URI] [--json]";
}

std::string RouterCreateCommand::description() const {
  return "Instantiates a router on the host: a persistent libvirt domain 'nvbox-NAME'\n"
         "booting image --image from the local store (pushed to the host first when it\n"
         "lacks it) with its own copy-on-write overlay volume, not started unless --start\n"
         "or --wait is given. --wait waits until osrd answers the router's agent and fails\n"
         "(exit 1) when it does not within --timeout.\n"
         "\n"
         "--nic SPEC, repeatable, one virtio NIC each:\n"
         "  bridge=BR[,mac=MAC][,tap=NAME][,rate=KBYTES_PER_S][,mtu=N]  a tap on bridge BR\n"
         "  network=NET[,...]                                          libvirt network NET\n"
         "  tap[=NAME][,mac=MAC][,rate=...][,mtu=...]                  a bare tap\n"
         "A NIC without mac= gets 52:54:00 and three bytes of sha256(HOST/NAME/INDEX), the\n"
         "same each time. --config KEY=TEXT or KEY=@FILE (KEY net, osrd or key, each once)\n"
         "reaches the guest through fw_cfg as /run/nvbox/KEY; FILE is read when the\n"
         "command runs. --accel auto boots probe guests to choose KVM or TCG.";
}

void RouterCreateCommand::addOptions(po::options_description &options,
                                     po::positional_options_description &positional) {
  RouterCommand::addOptions(options, positional);
  options.add_options()("image", po::value<std::string>(&options_.image)->value_name("NAME"),
                        "the image from the local store (default osr)")(
      "memory", po::value<std::string>(&memory_)->value_name("SIZE"),
      "guest memory, e.g. 128M or 1G (default 128M, at least 64M)")(
      "cpus", po::value<unsigned>(&options_.vcpus)->value_name("N"), "vCPUs, 1-64 (default 1)")(
      "nic", po::value<std::vector<std::string>>(&nicSpecs_)->value_name("SPEC"),
      "add a NIC (repeatable; see above)")(
      "config", po::value<std::vector<std::string>>(&configArgs_)->value_name("KEY=VALUE"),
      "guest configuration: net, osrd or key; VALUE is text or @FILE (repeatable)")(
      "role", po::value<std::string>(&options_.role)->value_name("ROLE"),
      "recorded role: ingress, relay, egress, ... (default router)")(
      "accel", po::value<std::string>(&accel_)->value_name("auto|kvm|tcg"),
      "accelerator (default auto: probe the host)")("start", po::bool_switch(&start_),
                                                    "start the router once created")(
      "wait", po::bool_switch(&wait_), "start it and wait until osrd answers (implies --start)");
  addTimeout(options, 180, "how long --wait waits (default 180)");
  options.add_options()("store", po::value<std::string>(&storeDir_)->value_name("DIR"),
                        "the image store (default: as for 'nvbox image')");
}

void RouterCreateCommand::validate(const po::variables_map &vm) {
  RouterCommand::validate(vm);
  options_.name = router_;
  images::checkImageName(options_.image);
  const std::uint64_t bytes = parseByteSize(memory_, "memory");
  if (bytes < (kMinMemoryMiB << 20U)) {
    throw UsageError("nvbox router create: --memory " + quote(memory_) +
                         " is below the minimum of 64M",
                     "routers need at least 64 MiB");
  }
  if (bytes % (std::uint64_t{1} << 20U) != 0) {
    throw UsageError("nvbox router create: --memory " + quote(memory_) +
                         " is not a whole number of MiB",
                     "give it as e.g. 128M or 1G");
  }
  options_.memoryMiB = bytes >> 20U;
  if (options_.vcpus < 1 || options_.vcpus > kMaxVcpus) {
    throw UsageError("nvbox router create: --cpus must be between 1 and 64, not " +
                         quote(std::to_string(options_.vcpus)),
                     "see 'nvbox router create --help'");
  }
  if (!matches(options_.role, "[a-z0-9][a-z0-9-]{0,31}")) {
    throw UsageError("nvbox router create: --role " + quote(options_.role) +
                         " is not 1-32 of [a-z0-9-] starting with a letter or digit",
                     "e.g. ingress, relay, egress or router");
  }
  if (accel_ == "auto") {
    options_.domainType.clear();
  } else if (accel_ == "kvm") {
    options_.domainType = "kvm";
  } else if (accel_ == "tcg") {
    options_.domainType = "qemu";
  } else {
    throw UsageError("nvbox router create: --accel " + quote(accel_) + " is not auto, kvm or tcg",
                     "see 'nvbox doctor' for what the host supports");
  }
  options_.nics.clear();
  std::set<std::string> macs;
  std::set<std::string> taps;
  for (std::size_t i = 0; i < nicSpecs_.size(); ++i) {
    RouterNic nic = parseNicSpec(nicSpecs_[i]);
    if (nic.mac.empty()) {
      nic.mac = derivedMac(target_.name, router_, i);
    }
    if (!macs.insert(nic.mac).second) {
      throw UsageError("--nic " + quote(nicSpecs_[i]) + ": MAC address " + quote(nic.mac) +
                           " is already another NIC's",
                       "give each NIC its own mac=");
    }
    if (!nic.tap.empty() && !taps.insert(nic.tap).second) {
      throw UsageError("--nic " + quote(nicSpecs_[i]) + ": tap " + quote(nic.tap) +
                           " is already another NIC's",
                       "give each NIC its own tap name");
    }
    options_.nics.push_back(std::move(nic));
  }
  config_ = parseConfigArguments(configArgs_);
  start_ = start_ || wait_;
}

int RouterCreateCommand::run(Terminal &term) {
  options_.config = readConfigValues(config_);
  const images::ImageStore store(storeDir_.empty() ? images::ImageStore::defaultRoot()
                                                   : std::filesystem::path(storeDir_));
  term.progress("connecting to " + target_.uri);
  const virt::Connection conn = connectHost(target_);
  RouterManager routers(conn, target_);
  term.progress(options_.domainType.empty()
                    ? "probing the accelerator of host " + quote(target_.name)
                    : "creating " + where());
  RouterInfo info = routers.create(store, options_, pushProgress(term));
  term.clearProgress();
  if (!json()) {
    term.out() << "created " << where() << " (image " << info.metadata.image << ", "
               << info.memoryMiB << " MiB, " << vcpuText(info.vcpus) << ", " << info.domainType
               << ")\n";
  }
  std::optional<ReadyReport> ready;
  if (start_) {
    ready = startRouter(term, routers, router_, where(), wait_, timeout(), json());
    info = routers.inspect(router_);
  }
  if (json()) {
    Json out = info.toJson();
    addReady(out, ready);
    term.out() << out.dump(2) << "\n";
  }
  requireReady(ready, where(), router_, timeout(), hostFlag());
  return 0;
}

// ---------------------------------------------------------------------------
// router start

std::string RouterStartCommand::synopsis() const {
  return "router start NAME [--wait] [--timeout SECONDS] [--host NAME|URI] [--json]";
}

std::string RouterStartCommand::description() const {
  return "Starts a router that is shut off. With --wait, waits until osrd answers the\n"
         "router's agent and fails (exit 1) when it does not within --timeout.";
}

void RouterStartCommand::addOptions(po::options_description &options,
                                    po::positional_options_description &positional) {
  RouterCommand::addOptions(options, positional);
  options.add_options()("wait", po::bool_switch(&wait_), "wait until osrd answers");
  addTimeout(options, 180, "how long --wait waits (default 180)");
}

int RouterStartCommand::run(Terminal &term) {
  term.progress("connecting to " + target_.uri);
  const virt::Connection conn = connectHost(target_);
  RouterManager routers(conn, target_);
  const std::optional<ReadyReport> ready =
      startRouter(term, routers, router_, where(), wait_, timeout(), json());
  if (json()) {
    Json out = routers.inspect(router_).toJson();
    addReady(out, ready);
    term.out() << out.dump(2) << "\n";
  }
  requireReady(ready, where(), router_, timeout(), hostFlag());
  return 0;
}

// ---------------------------------------------------------------------------
// router suspend, resume

std::string RouterSuspendCommand::synopsis() const {
  return "router suspend NAME [--host NAME|URI] [--json]";
}

std::string RouterSuspendCommand::description() const {
  return "Pauses a running router: its vCPUs stop, its memory stays. 'nvbox router\n"
         "resume' continues it where it was.";
}

int RouterSuspendCommand::run(Terminal &term) {
  const virt::Connection conn = connectHost(target_);
  RouterManager routers(conn, target_);
  routers.suspend(router_);
  if (json()) {
    term.out() << routers.inspect(router_).toJson().dump(2) << "\n";
  } else {
    term.out() << "suspended " << where() << "\n";
  }
  return 0;
}

std::string RouterResumeCommand::synopsis() const {
  return "router resume NAME [--host NAME|URI] [--json]";
}

std::string RouterResumeCommand::description() const {
  return "Continues a router paused by 'nvbox router suspend'.";
}

int RouterResumeCommand::run(Terminal &term) {
  const virt::Connection conn = connectHost(target_);
  RouterManager routers(conn, target_);
  routers.resume(router_);
  if (json()) {
    term.out() << routers.inspect(router_).toJson().dump(2) << "\n";
  } else {
    term.out() << "resumed " << where() << "\n";
  }
  return 0;
}

// ---------------------------------------------------------------------------
// router stop

std::string RouterStopCommand::synopsis() const {
  return "router stop NAME [--timeout SECONDS] [--host NAME|URI] [--json]";
}

std::string RouterStopCommand::description() const {
  return "Stops a router: presses its ACPI power button and waits for the guest to power\n"
         "off, then forces it off after --timeout. A paused router is resumed first; a\n"
         "router that is shut off already is left as it is.";
}

void RouterStopCommand::addOptions(po::options_description &options,
                                   po::positional_options_description &positional) {
  RouterCommand::addOptions(options, positional);
  addTimeout(options, 30, "seconds before it is forced off (default 30)");
}

int RouterStopCommand::run(Terminal &term) {
  const virt::Connection conn = connectHost(target_);
  RouterManager routers(conn, target_);
  const bool wasOff = routers.inspect(router_).state == RouterState::Shutoff;
  term.progress("stopping " + where());
  const StopReport report = routers.stop(router_, timeout());
  term.clearProgress();
  if (json()) {
    Json out = routers.inspect(router_).toJson();
    out["was_shut_off"] = wasOff;
    out["graceful"] = report.graceful;
    out["stop_seconds"] = report.seconds;
    term.out() << out.dump(2) << "\n";
  } else if (wasOff) {
    term.out() << "router " << quote(router_) << " on host " << quote(target_.name)
               << " is shut off already\n";
  } else if (report.graceful) {
    term.out() << "stopped router " << quote(router_) << " gracefully in "
               << formatDuration(report.seconds) << "\n";
  } else {
    term.out() << "stopped router " << quote(router_) << ": forced off after "
               << formatDuration(report.seconds) << "\n";
  }
  return 0;
}

// ---------------------------------------------------------------------------
// router relocate

std::string RouterRelocateCommand::synopsis() const {
  return "router relocate NAME --to HOST [--mode auto|live|offline]\n"
         "       [--migrate-address ADDRESS] [--compress xz|gzip] [--store DIR]\n"
         "       [--host NAME|URI] [--json]";
}

std::string RouterRelocateCommand::description() const {
  return "Moves a router to another host with its state: pushes its image there when\n"
         "needed, saves the running guest into its pool, moves the state (compressed on\n"
         "the way) and its overlay through libvirt streams, restores it on HOST and removes\n"
         "it here. Needs nothing but libvirtd on both hosts. Reports the bytes moved per\n"
         "byte of guest memory and the downtime. When a step fails, the router is restored\n"
         "where it was.\n"
         "\n"
         "With --mode live or auto (the default) a running router is migrated live instead:\n"
         "libvirt copies its memory and its overlay's own blocks while it runs, and it\n"
         "pauses only for the last round. auto falls back to the offline way when libvirt\n"
         "refuses with the router still running here; live fails then.\n"
         "\n"
         "--compress chooses how the offline way compresses the saved state: xz (the\n"
         "default) moves about a fifth less than gzip; gzip takes seconds less downtime\n"
         "(3 s on a 2-core TCG host). The target's libvirt restores either.";
}

void RouterRelocateCommand::addOptions(po::options_description &options,
                                       po::positional_options_description &positional) {
  RouterCommand::addOptions(options, positional);
  options.add_options()("to", po::value<std::string>(&to_)->value_name("HOST"),
                        "the host to move to (a registered name or a libvirt URI)")(
      "mode", po::value<std::string>(&mode_)->value_name("auto|live|offline"),
      "live, offline, or auto: live when it can (default)")(
      "migrate-address", po::value<std::string>(&options_.migrationAddress)->value_name("ADDRESS"),
      "the address live migration connects to on HOST")(
      "compress", po::value<std::string>(&compress_)->value_name("xz|gzip"),
      "the saved state's compression, offline (default xz)")(
      "store", po::value<std::string>(&storeDir_)->value_name("DIR"),
      "the image store (default: as for 'nvbox image')");
}

void RouterRelocateCommand::validate(const po::variables_map &vm) {
  RouterCommand::validate(vm);
  if (to_.empty()) {
    throw UsageError("nvbox router relocate: missing --to HOST",
                     "see 'nvbox router relocate --help'");
  }
  const auto mode = parseRelocateMode(mode_);
  if (!mode) {
    throw UsageError("nvbox router relocate: invalid --mode '" + mode_ +
                         "': use auto, live or offline",
                     "see 'nvbox router relocate --help'");
  }
  options_.mode = *mode;
  const auto codec = parseStateCompression(compress_);
  if (!codec) {
    throw UsageError("nvbox router relocate: invalid --compress '" + compress_ +
                         "': use xz or gzip",
                     "see 'nvbox router relocate --help'");
  }
  options_.compression = *codec;
  toHost_ = resolveHost(to_);
}

int RouterRelocateCommand::run(Terminal &term) {
  const images::ImageStore store(storeDir_.empty() ? images::ImageStore::defaultRoot()
                                                   : std::filesystem::path(storeDir_));
  const virt::Connection from = connectHost(target_);
  const virt::Connection to = connectHost(toHost_);
  RouterManager source(from, target_);
  RouterManager destination(to, toHost_);
  const std::string doing = "relocating " + where() + " to host " + quote(toHost_.name);
  term.progress(doing);
  options_.progress = [&](const RelocateProgress &p) {
    std::string line = doing + " live: memory " + formatMiB(p.memoryDone);
    if (p.diskTotal > 0) {
      line += ", disk " + formatMiB(p.diskDone) + " of " + formatMiB(p.diskTotal);
    }
    term.progress(line + ", " + formatDuration(p.seconds));
  };
  const RelocateReport r = source.relocate(router_, destination, store, options_);
  term.clearProgress();
  if (json()) {
    term.out() << r.toJson().dump(2) << "\n";
    return 0;
  }
  const double moved = static_cast<double>(r.stateBytes + r.diskBytes);
  term.out() << "relocated router " << quote(router_) << " from host " << quote(r.from.name)
             << " to host " << quote(r.to.name) << (r.live ? " live" : "") << " in "
             << formatDuration(r.seconds) << " (downtime "
             << formatDuration(r.downtime, r.live ? 3 : 1) << ")\n";
  if (!r.live && options_.mode == RelocateMode::Auto && !r.reason.empty()) {
    term.out() << "  offline: " << r.reason << "\n";
  }
  if (r.live) {
    term.out() << "  memory " << formatMiB(r.stateBytes) << " moved\n";
  } else {
    term.out() << "  state  " << formatMiB(r.stateBytes) << " moved, " << toString(r.compression)
               << " (" << formatMiB(r.stateRawBytes) << " as saved)\n";
  }
  term.out() << "  disk   " << formatMiB(r.diskBytes) << " (the router's overlay)\n";
  if (r.imageBytes > 0) {
    term.out() << "  image  " << formatMiB(r.imageBytes) << " pushed first\n";
  }
  if (r.memoryMiB > 0) {
    std::ostringstream ratio;
    ratio << std::fixed << std::setprecision(1)
          << 100.0 * moved / (static_cast<double>(r.memoryMiB) * 1048576.0);
    term.out() << "  moved  " << ratio.str() << " % of the guest's " << r.memoryMiB
               << " MiB memory\n";
  }
  return 0;
}

// ---------------------------------------------------------------------------
// router destroy

std::string RouterDestroyCommand::synopsis() const {
  return "router destroy NAME [--host NAME|URI] [--json]";
}

std::string RouterDestroyCommand::description() const {
  return "Removes a router: powers it off at once if it runs, undefines its domain and\n"
         "deletes its overlay volume. The image's volumes stay for other routers.";
}

int RouterDestroyCommand::run(Terminal &term) {
  const virt::Connection conn = connectHost(target_);
  RouterManager routers(conn, target_);
  routers.destroy(router_);
  if (json()) {
    term.out() << Json{{"destroyed", router_}, {"host", target_.name}, {"uri", target_.uri}}.dump(2)
               << "\n";
  } else {
    term.out() << "destroyed router " << quote(router_) << " and its overlay volume\n";
  }
  return 0;
}

// ---------------------------------------------------------------------------
// router list

std::string RouterListCommand::synopsis() const {
  return "router list [--host NAME|URI] [--json]";
}

std::string RouterListCommand::description() const {
  return "Lists the routers on the host given by --host, or, without --host, on every\n"
         "host nvbox knows ('nvbox host list'). Everything shown is read from the\n"
         "hosts. Without --host, a host that does not answer is a row saying\n"
         "'unreachable: REASON' and the exit status stays 0.";
}

void RouterListCommand::validate(const po::variables_map &vm) {
  RouterCommand::validate(vm);
  allHosts_ = host().empty();
}

int RouterListCommand::run(Terminal &term) {
  const std::vector<HostRef> hosts =
      allHosts_ ? HostRegistry(HostRegistry::defaultFile()).list() : std::vector{target_};
  Json hostsJson = Json::array();
  Json routersJson = Json::array();
  std::vector<std::vector<std::string>> rows{
      {"NAME", "HOST", "STATE", "IMAGE", "ROLE", "MEMORY", "CPUS"}};
  std::vector<std::vector<std::string>> unreachable;
  for (const auto &ref : hosts) {
    term.progress("listing the routers on " + ref.uri);
    try {
      const virt::Connection conn = connectHost(ref);
      for (const auto &r : RouterManager(conn, ref).list()) {
        routersJson.push_back(r.toJson());
        rows.push_back({r.name, ref.name, toString(r.state), r.metadata.image, r.metadata.role,
                        std::to_string(r.memoryMiB) + " MiB", std::to_string(r.vcpus)});
      }
      hostsJson.push_back({{"name", ref.name}, {"uri", ref.uri}, {"reachable", true}});
    } catch (const Error &e) {
      if (!allHosts_) {
        throw;
      }
      const std::string reason = unreachableReason(e, ref);
      hostsJson.push_back(
          {{"name", ref.name}, {"uri", ref.uri}, {"reachable", false}, {"error", reason}});
      unreachable.push_back({"-", ref.name, "unreachable: " + reason});
    }
  }
  term.clearProgress();
  if (json()) {
    term.out() << Json{{"hosts", hostsJson}, {"routers", routersJson}}.dump(2) << "\n";
    return 0;
  }
  if (rows.size() == 1 && unreachable.empty()) {
    if (hosts.size() == 1) {
      term.out() << "no routers on host " << quote(hosts.front().name) << "\n";
    } else {
      std::string names;
      for (const auto &ref : hosts) {
        names += (names.empty() ? "" : ", ") + quote(ref.name);
      }
      term.out() << "no routers on any of " << hosts.size() << " hosts: " << names << "\n";
    }
    return 0;
  }
  rows.insert(rows.end(), unreachable.begin(), unreachable.end());
  printTable(term.out(), rows);
  return 0;
}

// ---------------------------------------------------------------------------
// router inspect

std::string RouterInspectCommand::synopsis() const {
  return "router inspect NAME [--host NAME|URI] [--json]";
}

std::string RouterInspectCommand::description() const {
  return "Shows a router as the host knows it: domain, state, accelerator, memory, vCPUs,\n"
         "image and its digest, role, overlay, volume and MACs. When it runs, also what\n"
         "its agent reports: host name, interfaces with their addresses, and osrd's name\n"
         "and listen address. An agent that does not answer is shown, not an error.";
}

int RouterInspectCommand::run(Terminal &term) {
  const virt::Connection conn = connectHost(target_);
  const RouterManager routers(conn, target_);
  const RouterInfo info = routers.inspect(router_);
  Json agent = nullptr;
  std::string agentError;
  if (info.state == RouterState::Running) {
    term.progress("asking the agent of " + where());
    try {
      agent = askAgent(conn, routers, router_, {{"cmd", "status"}});
    } catch (const Error &e) {
      agentError = e.what();
    }
    term.clearProgress();
  }
  if (json()) {
    Json out = info.toJson();
    out["agent"] = agentError.empty() ? agent : Json{{"error", agentError}};
    term.out() << out.dump(2) << "\n";
    return 0;
  }
  std::string macs;
  for (const auto &mac : info.macs) {
    macs += (macs.empty() ? "" : ", ") + mac;
  }
  const RouterMetadata &m = info.metadata;
  std::string agentText;
  if (info.state != RouterState::Running) {
    agentText = "not asked: the router is " + toString(info.state);
  } else if (!agentError.empty()) {
    agentText = "no answer: " + agentError;
  }
  std::ostream &out = term.out();
  printTable(out,
             {{"router:", info.name},
              {"host:", info.host.name +
                            (info.host.uri != info.host.name ? " (" + info.host.uri + ")" : "")},
              {"domain:", info.domain},
              {"state:", toString(info.state)},
              {"domain type:", info.domainType},
              {"memory:", std::to_string(info.memoryMiB) + " MiB"},
              {"vcpus:", std::to_string(info.vcpus)},
              {"image:", m.image + (m.imageDigest.empty() ? "" : " (" + m.imageDigest + ")")},
              {"role:", m.role.empty() ? "-" : m.role},
              {"overlay:", m.overlay.empty() ? "-" : m.overlay},
              {"volume:", m.volume.empty() ? "-" : m.volume + " (pool " + m.pool + ")"},
              {"macs:", macs.empty() ? "-" : macs},
              {"agent:", agentText}});
  if (agentText.empty()) {
    printAgentStatus(agent, out);
  }
  return 0;
}

// ---------------------------------------------------------------------------
// router stats

std::string RouterStatsCommand::synopsis() const {
  return "router stats NAME [--host NAME|URI] [--json]";
}

std::string RouterStatsCommand::description() const {
  return "Asks a running router's osrd, through its agent, for its status and prints its\n"
         "counters (rx, tx, relayed, drops, rejected packets by reason), its stripes with\n"
         "each path's state, RTT, loss and traffic (and, from an osrd that measures them,\n"
         "the rate the path delivers, its queueing delay and its share of the stripe), and\n"
         "its egress flows with their re-sequencing buffers. --json prints osrd's status\n"
         "object as it came.";
}

int RouterStatsCommand::run(Terminal &term) {
  const virt::Connection conn = connectHost(target_);
  const RouterManager routers(conn, target_);
  const RouterInfo info = routers.inspect(router_);
  if (info.state != RouterState::Running) {
    throw UsageError(where() + " is " + toString(info.state) + ", not running",
                     "start it with 'nvbox router start " + router_ + hostFlag() + "'");
  }
  term.progress("asking osrd on " + where());
  const Json reply =
      askAgent(conn, routers, router_, {{"cmd", "osrd"}, {"request", {{"cmd", "status"}}}});
  term.clearProgress();
  const Json osrd = member(reply, "reply");
  if (!osrd.is_object() || member(osrd, "ok") != true || !osrd.contains("status")) {
    throw Error("osrd on " + where() + " gave no status: " + text(osrd, "error", osrd.dump()),
                "see 'nvbox router inspect " + router_ + hostFlag() + "'");
  }
  if (json()) {
    term.out() << osrd["status"].dump(2) << "\n";
    return 0;
  }
  printOsrdStatus(osrd["status"], term.out());
  return 0;
}

// ---------------------------------------------------------------------------
// router console

std::string RouterConsoleCommand::synopsis() const {
  return "router console NAME [--host NAME|URI]";
}

std::string RouterConsoleCommand::description() const {
  return "Attaches the terminal to a running router's serial console by running\n"
         "'virsh -c URI console nvbox-NAME' (from libvirt-clients). Ctrl-] leaves.";
}

void RouterConsoleCommand::validate(const po::variables_map &vm) {
  RouterCommand::validate(vm);
  if (json()) {
    throw UsageError("nvbox router console: --json does not apply to an interactive console",
                     "see 'nvbox router inspect " + router_ + " --json'");
  }
}

int RouterConsoleCommand::run(Terminal &term) {
  if (findInPath("virsh").empty()) {
    throw Error("cannot find 'virsh' on PATH; 'nvbox router console' runs it",
                "install it (Debian: apt-get install libvirt-clients)");
  }
  std::string domain;
  {
    const virt::Connection conn = connectHost(target_);
    const RouterInfo info = RouterManager(conn, target_).inspect(router_);
    if (info.state == RouterState::Shutoff) {
      throw UsageError(where() + " is shut off; it has no console",
                       "start it with 'nvbox router start " + router_ + hostFlag() + "'");
    }
    domain = info.domain;
  }
  term.err() << "console of " << where() << "; Ctrl-] leaves\n";
  term.out().flush();
  term.err().flush();
  std::cout.flush();
  std::cerr.flush();
  std::vector<std::string> args{"virsh", "-c", target_.uri, "console", domain};
  std::vector<char *> argv;
  for (auto &a : args) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);
  ::execvp("virsh", argv.data());
  const int err = errno;
  throw Error("cannot run 'virsh': " + std::string(std::strerror(err)),
              err == ENOENT ? "install it (Debian: apt-get install libvirt-clients)" : "");
}

} // namespace nvbox::cli
