#include "command_overlay.hpp"

#include "command_image_build.hpp"
#include "command_run.hpp"
#include "format.hpp"
#include "nvbox/error.hpp"
#include "nvbox/overlay.hpp"
#include "nvbox/overlay_transfer.hpp"
#include "nvbox/process.hpp"
#include "nvbox/topology.hpp"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <ostream>
#include <sstream>

namespace nvbox::cli {

namespace po = boost::program_options;
using Json = nlohmann::json;

namespace {

bool looksLikeFile(const std::string &arg) {
  return arg.ends_with(".yaml") || arg.ends_with(".yml") || arg.find('/') != std::string::npos ||
         std::filesystem::is_regular_file(arg);
}

OverlayPlan loadPlan(const std::string &file) {
  return planOverlay(loadTopology(file));
}

std::string rateLabel(const Json &shape) {
  std::ostringstream out;
  if (shape.contains("rate_bps")) {
    out << shape["rate_bps"].get<double>() / 1e6 << " Mbit/s";
  }
  if (shape.contains("delay_us")) {
    out << (out.tellp() > 0 ? ", " : "") << shape["delay_us"].get<double>() / 1000 << " ms";
  }
  if (shape.contains("loss_percent")) {
    out << (out.tellp() > 0 ? ", " : "") << shape["loss_percent"].get<double>() << " % loss";
  }
  return out.str();
}

// DOT identifiers: quoted, with quotes and backslashes escaped.
std::string dotId(const std::string &text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
    }
    out += c;
  }
  return out + "\"";
}

} // namespace

// ---------------------------------------------------------------------------
// OverlayCommand

void OverlayCommand::addOptions(po::options_description &options,
                                po::positional_options_description &positional) {
  options.add_options()("overlay", po::value<std::string>(&target_)->value_name("NAME|FILE"),
                        "the overlay's name or topology file (also the first argument)");
  positional.add("overlay", 1);
}

void OverlayCommand::validate(const po::variables_map & /*vm*/) {
  if (target_.empty()) {
    throw UsageError("nvbox " + name() + ": missing the overlay's NAME or FILE",
                     "see 'nvbox " + name() + " --help'");
  }
  if (!host().empty()) {
    throw UsageError("nvbox " + name() + ": --host does not apply; the topology names the hosts",
                     "see 'nvbox " + name() + " --help'");
  }
}

OverlayTarget OverlayCommand::target() const {
  OverlayTarget t;
  if (looksLikeFile(target_)) {
    t.plan = loadPlan(target_);
    t.name = t.plan->overlay;
    t.hosts = planHosts(*t.plan);
    for (const auto &[name, h] : t.plan->hosts) {
      if (h.reachable) {
        t.networks.push_back(h);
      }
    }
    return t;
  }
  t.name = target_;
  t.hosts = HostRegistry(HostRegistry::defaultFile()).list();
  for (const auto &h : t.hosts) {
    if (hostNetworkReachable(h.uri, "")) {
      t.networks.push_back({h.name, h.uri, "", "", true});
      break; // one entry for this machine's own namespace
    }
  }
  return t;
}

// ---------------------------------------------------------------------------
// deploy

std::string DeployCommand::synopsis() const {
  return "deploy FILE [--dry-run] [--boots-per-host N] [--timeout SECONDS] [--store DIR] "
         "[--json]";
}

std::string DeployCommand::description() const {
  return "Lays the overlay described by the topology FILE (docs/topology.md) across its\n"
         "hosts: validates the file (every error with file:line:col), plans addresses,\n"
         "link kinds and each router's configuration, then pushes the image where it is\n"
         "missing, wires bridges, VXLANs and endpoint namespaces, creates the routers and\n"
         "boots them (at most --boots-per-host at a time per host), each waited on until\n"
         "its osrd answers. Running it again changes nothing; a changed file converges\n"
         "(a link's new rate, delay, jitter or loss is applied to the running routers;\n"
         "changed routers are replaced, removed ones destroyed). When a step fails, what\n"
         "this run created is removed again. --dry-run prints the plan and touches nothing.";
}

void DeployCommand::addOptions(po::options_description &options,
                               po::positional_options_description &positional) {
  OverlayCommand::addOptions(options, positional);
  options.add_options()("dry-run", po::bool_switch(&dryRun_),
                        "print the plan, host by host, and change nothing")(
      "boots-per-host", po::value<unsigned>(&boots_)->value_name("N"),
      "routers booting at once on one host (default 4)")(
      "timeout", po::value<double>(&timeout_)->value_name("SECONDS"),
      "how long each router may take to become ready (default 300)")(
      "store", po::value<std::string>(&storeDir_)->value_name("DIR"),
      "the image store (default: as for 'nvbox image')");
}

void DeployCommand::validate(const po::variables_map &vm) {
  OverlayCommand::validate(vm);
  if (boots_ < 1 || boots_ > 64) {
    throw UsageError("--boots-per-host must be from 1 to 64", "see 'nvbox deploy --help'");
  }
  if (!(timeout_ > 0)) {
    throw UsageError("--timeout must be positive", "see 'nvbox deploy --help'");
  }
}

int DeployCommand::run(Terminal &term) {
  const OverlayPlan plan = loadPlan(target_);
  if (dryRun_) {
    if (json()) {
      term.out() << plan.toJson().dump(2) << "\n";
    } else {
      term.out() << plan.describe();
    }
    return 0;
  }
  const images::ImageStore store(storeDir_.empty() ? images::ImageStore::defaultRoot()
                                                   : std::filesystem::path(storeDir_));
  DeployOptions options;
  options.bootsPerHost = boots_;
  options.readyTimeout = std::chrono::milliseconds(static_cast<long>(timeout_ * 1000));
  std::mutex mutex;
  const OverlayLog log = [&](const std::string &line) {
    const std::lock_guard lock(mutex);
    if (!json()) {
      term.out() << line << "\n" << std::flush;
    }
  };
  log("deploying overlay " + quote(plan.overlay) + ": " + std::to_string(plan.routers.size()) +
      " routers on " + std::to_string(plan.hosts.size()) + " host(s)");
  const DeployReport report = deployOverlay(plan, store, options, log);
  if (json()) {
    term.out() << report.toJson().dump(2) << "\n";
    return 0;
  }
  if (!report.changed()) {
    term.out() << "overlay " << quote(plan.overlay) << " is up to date (" << report.kept.size()
               << " routers); nothing changed\n";
    return 0;
  }
  term.out() << "overlay " << quote(plan.overlay) << " deployed in "
             << formatDuration(report.seconds) << ": " << report.created.size() << " created, "
             << report.replaced.size() << " replaced, " << report.kept.size() << " kept, "
             << report.removed.size() << " removed; " << report.reshaped.size()
             << " links shaped anew, " << report.rerated.size() << " stripes re-rated\n";
  return 0;
}

// ---------------------------------------------------------------------------
// destroy

std::string DestroyCommand::synopsis() const {
  return "destroy NAME|FILE [--json]";
}

std::string DestroyCommand::description() const {
  return "Removes every router (domain and overlay volume), bridge, tap, VXLAN, veth and\n"
         "endpoint namespace of the overlay on every host, also after nvbox was killed in\n"
         "the middle of a deploy: routers are found by their libvirt metadata, host links\n"
         "by the overlay's name prefix. With NAME, the registered hosts (and those the\n"
         "routers' plans name) are searched; with FILE, the file's hosts. The shared base\n"
         "image stays in each host's pool.";
}

int DestroyCommand::run(Terminal &term) {
  const OverlayTarget t = target();
  const OverlayLog log = [&](const std::string &line) {
    if (!json()) {
      term.out() << line << "\n" << std::flush;
    }
  };
  const DestroyReport report = destroyOverlay(t.name, t.hosts, t.networks, log);
  if (json()) {
    term.out() << report.toJson().dump(2) << "\n";
  } else {
    term.out() << "overlay " << quote(t.name) << " destroyed: " << report.routers.size()
               << " routers, " << report.hostLinks.size() << " host links, "
               << report.namespaces.size() << " namespaces removed in "
               << formatDuration(report.seconds) << "\n";
  }
  if (!report.failures.empty()) {
    std::string all;
    for (const auto &f : report.failures) {
      all += (all.empty() ? "" : "; ") + f;
    }
    throw Error("overlay " + quote(t.name) + " was not destroyed completely: " + all,
                "run 'nvbox destroy' again once the hosts answer");
  }
  return 0;
}

// ---------------------------------------------------------------------------
// inspect

void printLiveStatus(std::ostream &out, const std::string &router, const Json &osrd) {
  // A figure with its unit; "-" stands alone.
  const auto withUnit = [](const std::string &figure, const char *unit) {
    return figure == "-" ? figure : figure + unit;
  };
  for (const auto &s : osrd.value("stripes", Json::array())) {
    out << "\nstripe " << s.value("name", "") << " at " << router << " (k = " << s.value("k", 0)
        << ", " << s.value("scheduler", "") << "): " << s.value("packets", 0) << " packets, "
        << formatMiB(s.value("bytes", 0ULL)) << "\n";
    std::vector<std::vector<std::string>> paths{{"PATH", "RELAY", "UP", "RTT", "LOSS", "PARTS",
                                                 "BYTES", "MEASURED", "QUEUE", "SHARE", "DOWNS"}};
    for (const auto &p : s.value("paths", Json::array())) {
      paths.push_back({std::to_string(p.value("id", 0)), p.value("relay", ""),
                       p.value("up", false) ? "yes" : "no",
                       withUnit(microsAsMillis(p.value("rtt_us", Json())), " ms"),
                       formatFixed(p.value("loss", 0.0), 3), std::to_string(p.value("parts", 0)),
                       formatMiB(p.value("bytes", 0ULL)),
                       withUnit(bytesPerSecondAsMbit(p.value("measured_rate", Json())), " Mbit/s"),
                       withUnit(microsAsMillis(p.value("queue_us", Json())), " ms"),
                       fractionAsPercent(p.value("share", Json())),
                       std::to_string(p.value("went_down", 0))});
    }
    printTable(out, paths);
  }
  const Json egress = osrd.value("egress", Json::object());
  for (const auto &f : egress.value("flows", Json::array())) {
    out << "\nflow " << f.value("flow", 0) << " at " << router << ": delivered "
        << f.value("delivered", 0) << ", reordered " << f.value("reordered", 0) << ", held "
        << f.value("held", 0) << ", peak occupancy " << f.value("peak_occupancy", 0) << " of "
        << f.value("buffer", 0) << ", lost to overflow " << f.value("lost_overflow", 0)
        << ", to timeout " << f.value("lost_timeout", 0) << ", duplicates "
        << f.value("duplicates", 0) << "\n";
  }
}

std::string InspectCommand::synopsis() const {
  return "inspect NAME|FILE [--no-live] [--json]";
}

std::string InspectCommand::description() const {
  return "Shows an overlay as its hosts have it: routers with host, state and role, and\n"
         "whether each is the one the plan asks for; links with kind and shaping; stripes\n"
         "with their paths and live counters from the ingress osrd (through the guest\n"
         "agents), and the egress re-sequencing counters. --no-live skips the agents.";
}

void InspectCommand::addOptions(po::options_description &options,
                                po::positional_options_description &positional) {
  OverlayCommand::addOptions(options, positional);
  options.add_options()("no-live", po::bool_switch(&noLive_),
                        "do not ask the routers' agents for osrd's counters");
}

int InspectCommand::run(Terminal &term) {
  const OverlayTarget t = target();
  const OverlayStatus status = inspectOverlay(t.name, t.hosts, !noLive_);
  if (json()) {
    term.out() << status.toJson().dump(2) << "\n";
    return status.routers.empty() ? 1 : 0;
  }
  if (status.routers.empty()) {
    throw Error("cannot find overlay " + quote(t.name) + " on " + std::to_string(t.hosts.size()) +
                    " host(s)",
                "deploy it with 'nvbox deploy FILE', or give its FILE to search its hosts");
  }
  auto &out = term.out();
  out << "overlay " << quote(t.name) << "\n\nrouters\n";
  std::vector<std::vector<std::string>> rows{{"NAME", "HOST", "STATE", "ROLE", "SPEC"}};
  for (const auto &r : status.routers) {
    rows.push_back({r.name, r.host, toString(r.state), r.role, r.current ? "current" : "stale"});
  }
  printTable(out, rows);
  const Json &plan = status.plan;
  if (plan.is_object()) {
    out << "\nlinks\n";
    std::vector<std::vector<std::string>> links{{"NAME", "KIND", "A", "B", "SHAPE"}};
    for (const auto &l : plan["links"]) {
      links.push_back({l.value("name", ""), l.value("kind", ""),
                       l["a"].value("router", "") + " " + l["a"].value("address", ""),
                       l["b"].value("router", "") + " " + l["b"].value("address", ""),
                       rateLabel(l.value("shape", Json::object()))});
    }
    printTable(out, links);
    if (!plan["endpoints"].empty()) {
      out << "\nendpoints\n";
      std::vector<std::vector<std::string>> eps{{"NAME", "ROUTER", "NAMESPACE", "ADDRESS"}};
      for (const auto &e : plan["endpoints"]) {
        eps.push_back({e.value("name", ""), e.value("router", ""), e.value("netns", ""),
                       e.value("address", "")});
      }
      printTable(out, eps);
    }
  }
  for (const auto &r : status.routers) {
    if (!r.osrd.is_null()) {
      printLiveStatus(out, r.name, r.osrd);
    }
  }
  if (status.lastRun.is_object()) {
    out << "\nlast ";
    printRunSummary(out, status.lastRun);
  }
  for (const auto &u : status.unreachable) {
    out << "\nunreachable: " << u << "\n";
  }
  return 0;
}

// ---------------------------------------------------------------------------
// graph

std::string overlayDot(const Json &plan) {
  std::ostringstream dot;
  dot << "graph " << dotId(plan.value("overlay", "overlay")) << " {\n"
      << "  graph [fontname=\"Helvetica\", label=" << dotId("overlay " + plan.value("overlay", ""))
      << ", labelloc=t];\n"
      << "  node [fontname=\"Helvetica\", shape=ellipse];\n"
      << "  edge [fontname=\"Helvetica\", fontsize=10];\n";
  for (const auto &h : plan["hosts"]) {
    const std::string host = h.value("name", "");
    dot << "  subgraph " << dotId("cluster_" + host) << " {\n"
        << "    label=" << dotId("host " + host) << "; style=rounded;\n";
    for (const auto &r : plan["routers"]) {
      if (r.value("host", "") == host) {
        dot << "    " << dotId(r.value("name", "")) << " [label="
            << dotId(r.value("name", "") + "\\n" + r.value("role", "") + "\\n" +
                     r.value("osr_address", ""))
            << "];\n";
      }
    }
    for (const auto &e : plan["endpoints"]) {
      if (e.value("host", "") == host) {
        dot << "    " << dotId("ep:" + e.value("name", ""))
            << " [shape=box, label=" << dotId(e.value("name", "") + "\\n" + e.value("address", ""))
            << "];\n";
      }
    }
    dot << "  }\n";
  }
  for (const auto &l : plan["links"]) {
    dot << "  " << dotId(l["a"].value("router", "")) << " -- " << dotId(l["b"].value("router", ""))
        << " [label=" << dotId(rateLabel(l.value("shape", Json::object())))
        << (l.value("kind", "") == "bridge" ? "" : ", style=dashed") << "];\n";
  }
  for (const auto &e : plan["endpoints"]) {
    dot << "  " << dotId("ep:" + e.value("name", "")) << " -- " << dotId(e.value("router", ""))
        << " [style=dotted];\n";
  }
  dot << "}\n";
  return dot.str();
}

std::string GraphCommand::synopsis() const {
  return "graph NAME|FILE -o OUTPUT.{dot,svg,png}";
}

std::string GraphCommand::description() const {
  return "Draws the overlay: routers grouped by host, links labelled with rate, delay and\n"
         "loss (dashed when they cross hosts), endpoints as boxes. OUTPUT.dot is Graphviz\n"
         "source; .svg and .png are rendered by Graphviz's 'dot' program.";
}

void GraphCommand::addOptions(po::options_description &options,
                              po::positional_options_description &positional) {
  OverlayCommand::addOptions(options, positional);
  options.add_options()("output,o", po::value<std::string>(&output_)->value_name("FILE"),
                        "where to write the picture (.dot, .svg or .png)");
}

void GraphCommand::validate(const po::variables_map &vm) {
  OverlayCommand::validate(vm);
  if (output_.empty()) {
    throw UsageError("nvbox graph: missing -o OUTPUT", "see 'nvbox graph --help'");
  }
  if (!output_.ends_with(".dot") && !output_.ends_with(".svg") && !output_.ends_with(".png")) {
    throw UsageError("nvbox graph: " + quote(output_) + " does not end in .dot, .svg or .png",
                     "name the picture e.g. overlay.svg");
  }
}

int GraphCommand::run(Terminal &term) {
  const OverlayTarget t = target();
  Json plan;
  if (t.plan) {
    plan = t.plan->toJson();
  } else {
    plan = inspectOverlay(t.name, t.hosts, false).plan;
    if (plan.is_null()) {
      throw Error("cannot find overlay " + quote(t.name),
                  "give its topology FILE instead of its name");
    }
  }
  const std::string dot = overlayDot(plan);
  const std::string dotFile = output_.ends_with(".dot") ? output_ : output_ + ".dot.tmp";
  {
    std::ofstream out(dotFile);
    out << dot;
    if (!out.flush()) {
      throw Error("cannot write " + quote(dotFile));
    }
  }
  if (dotFile != output_) {
    const std::string format = output_.substr(output_.size() - 3);
    ProcessResult r;
    try {
      r = runProgram({"dot", "-T" + format, dotFile, "-o", output_});
    } catch (const Error &) {
      std::filesystem::remove(dotFile);
      throw;
    }
    std::filesystem::remove(dotFile);
    if (r.exitCode != 0) {
      throw Error("Graphviz 'dot' could not draw " + quote(output_) + ": " + r.err,
                  "install graphviz, or write OUTPUT.dot");
    }
  }
  if (json()) {
    term.out() << Json{{"overlay", t.name}, {"output", output_}}.dump(2) << "\n";
  } else {
    term.out() << "wrote " << output_ << "\n";
  }
  return 0;
}

// ---------------------------------------------------------------------------
// transfer

std::string TransferCommand::synopsis() const {
  return "transfer NAME|FILE --from ENDPOINT --to ENDPOINT [--bytes SIZE] [--compare] [--json]";
}

std::string TransferCommand::description() const {
  return "Measures a stripe with a real TCP transfer of SIZE pseudo-random bytes (default\n"
         "32M) from one endpoint namespace to another, checked byte for byte (SHA-256), and\n"
         "prints its goodput, each path's share (from the ingress osrd's counters) and the\n"
         "egress's re-sequencing counters. --compare then repeats the transfer over each\n"
         "path of the stripe alone (the others taken out and put back), which gives the best\n"
         "single path to compare with. Run it where nvbox deployed the overlay: the\n"
         "endpoint namespaces are there.";
}

void TransferCommand::addOptions(po::options_description &options,
                                 po::positional_options_description &positional) {
  OverlayCommand::addOptions(options, positional);
  options.add_options()("from", po::value<std::string>(&from_)->value_name("ENDPOINT"),
                        "the sending endpoint")(
      "to", po::value<std::string>(&to_)->value_name("ENDPOINT"), "the receiving endpoint")(
      "bytes", po::value<std::string>(&bytesText_)->value_name("SIZE"),
      "how much to send (default 32M)")("compare", po::bool_switch(&compare_),
                                        "also measure each path alone");
}

void TransferCommand::validate(const po::variables_map &vm) {
  OverlayCommand::validate(vm);
  if (from_.empty() || to_.empty()) {
    throw UsageError("nvbox transfer: give --from and --to endpoints",
                     "see 'nvbox transfer --help'");
  }
  bytes_ = parseByteSize(bytesText_, "--bytes");
  if (bytes_ == 0) {
    throw UsageError("--bytes must be positive", "see 'nvbox transfer --help'");
  }
}

int TransferCommand::run(Terminal &term) {
  const OverlayTarget t = target();
  Json plan = t.plan ? t.plan->toJson() : inspectOverlay(t.name, t.hosts, false).plan;
  if (plan.is_null()) {
    throw Error("cannot find overlay " + quote(t.name),
                "deploy it with 'nvbox deploy FILE', or give its FILE");
  }
  const auto log = [&](const std::string &line) {
    if (!json()) {
      term.out() << line << "\n" << std::flush;
    }
  };
  const StripeMeasurement m = measureStripe(plan, {from_, to_, bytes_, compare_}, log);
  if (json()) {
    term.out() << m.toJson().dump(2) << "\n";
    return m.identical ? 0 : 1;
  }
  auto &out = term.out();
  out << "\nstripe " << quote(m.stripe) << ": " << formatMiB(m.received.bytes) << " in "
      << formatDuration(m.received.seconds) << " = " << formatMbps(m.mbps) << ", "
      << (m.identical ? "byte-identical (sha256 " + m.received.digest.substr(0, 16) + "…)"
                      : "NOT identical")
      << "\n";
  std::vector<std::vector<std::string>> rows{{"PATH VIA", "BYTES", "GOODPUT"}};
  for (const auto &p : m.paths) {
    rows.push_back({p.relay, formatMiB(p.bytes), formatMbps(p.mbps)});
  }
  printTable(out, rows);
  if (m.sumOfRatesMbps > 0) {
    out << "sum of path rates " << formatMbps(m.sumOfRatesMbps) << ": efficiency "
        << formatFixed(m.mbps / m.sumOfRatesMbps, 3) << "\n";
  }
  if (!m.singles.empty()) {
    out << "single paths:";
    for (const auto &s : m.singles) {
      out << " " << s.relay << " " << formatMbps(s.mbps) << ";";
    }
    out << " best " << formatMbps(m.bestSingleMbps()) << "; the stripe is "
        << formatFixed(m.mbps / std::max(1e-9, m.bestSingleMbps()), 2)
        << "x the best single path\n";
  }
  if (m.egressFlow.is_object()) {
    const Json &f = m.egressFlow;
    out << "re-sequencing at the egress: buffer " << f.value("buffer", 0) << " parts, delivered "
        << f.value("delivered", 0) << ", reordered " << f.value("reordered", 0) << ", held "
        << f.value("held", 0) << ", peak occupancy " << f.value("peak_occupancy", 0)
        << ", lost to overflow " << f.value("lost_overflow", 0) << ", to timeout "
        << f.value("lost_timeout", 0) << "\n";
  }
  if (!m.identical) {
    throw Error("the transfer arrived damaged: sent " + std::to_string(m.sent.bytes) +
                " bytes (sha256 " + m.sent.digest + "), received " +
                std::to_string(m.received.bytes) + " (sha256 " + m.received.digest + ")");
  }
  return 0;
}

} // namespace nvbox::cli
