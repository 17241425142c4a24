#include "command.hpp"

#include "command_doctor.hpp"
#include "command_host.hpp"
#include "command_image.hpp"
#include "command_image_build.hpp"
#include "command_oracle.hpp"
#include "command_overlay.hpp"
#include "command_router.hpp"
#include "command_run.hpp"
#include "nvbox/error.hpp"

#include <iomanip>
#include <ostream>

namespace po = boost::program_options;

namespace nvbox::cli {

Command::Command() = default;

void Command::initialise() {
  if (initialised_) {
    return;
  }
  initialised_ = true;
  addOptions(options_, positional_);
  options_.add_options()("json", po::bool_switch(&json_), "print machine-readable JSON")(
      "host", po::value<std::string>(&host_)->value_name("NAME|URI"),
      "act on this host (default: local = qemu:///system)")("help,h", "show this help");
}

void Command::addOptions(po::options_description & /*options*/,
                         po::positional_options_description & /*positional*/) {}

void Command::validate(const po::variables_map & /*vm*/) {}

void Command::printHelp(std::ostream &out) {
  initialise();
  out << "Usage: nvbox " << synopsis() << "\n\n" << description() << "\n\n" << options_;
  out << "\nExit codes: 0 ok, 1 failure, 2 usage error.\n";
}

bool Command::setup(const std::vector<std::string> &args, const GlobalOptions &global,
                    std::ostream &out) {
  initialise();
  json_ = global.json;
  host_ = global.host;
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(options_).positional(positional_).run(), vm);
    if (vm.count("help") != 0U) {
      printHelp(out);
      return false;
    }
    po::notify(vm);
  } catch (const po::error &e) {
    throw UsageError("nvbox " + name() + ": " + e.what(), "see 'nvbox " + name() + " --help'");
  }
  // --json given before the command stays on even if not repeated after it.
  json_ = json_ || global.json;
  validate(vm);
  return true;
}

void CommandFactory::add(const std::string &name, std::string summary, Creator creator) {
  entries_.emplace(name, Entry{std::move(summary), std::move(creator)});
}

bool CommandFactory::isNoun(const std::string &word) const {
  const auto it = entries_.lower_bound(word + " ");
  return it != entries_.end() && it->first.starts_with(word + " ");
}

std::unique_ptr<Command> CommandFactory::create(std::vector<std::string> &args) const {
  if (args.empty()) {
    return nullptr;
  }
  if (args.size() >= 2) {
    const auto it = entries_.find(args[0] + " " + args[1]);
    if (it != entries_.end()) {
      args.erase(args.begin(), args.begin() + 2);
      return it->second.creator();
    }
  }
  const auto it = entries_.find(args[0]);
  if (it != entries_.end()) {
    args.erase(args.begin());
    return it->second.creator();
  }
  return nullptr;
}

void CommandFactory::list(std::ostream &out, const std::string &noun) const {
  for (const auto &[name, entry] : entries_) {
    if (noun.empty() || name.starts_with(noun + " ")) {
      out << "  " << std::left << std::setw(18) << name << entry.summary << "\n";
    }
  }
}

const CommandFactory &commands() {
  static const CommandFactory factory = [] {
    CommandFactory f;
    f.add("doctor", "check whether a host can run NV-box routers, and how to fix it",
          [] { return std::make_unique<DoctorCommand>(); });
    f.add("image build", "build the OSR router image into the local store",
          [] { return std::make_unique<ImageBuildCommand>(); });
    f.add("image list", "list the images in the local store",
          [] { return std::make_unique<ImageListCommand>(); });
    f.add("image inspect", "show an image's manifest: versions, parts, digests",
          [] { return std::make_unique<ImageInspectCommand>(); });
    f.add("image verify", "check every part of an image against its sha256",
          [] { return std::make_unique<ImageVerifyCommand>(); });
    f.add("image rm", "remove an image from the local store",
          [] { return std::make_unique<ImageRmCommand>(); });
    f.add("image export", "write an image to one bundle file (zstd-compressed tar)",
          [] { return std::make_unique<ImageExportCommand>(); });
    f.add("image import", "add the image in a bundle to the local store",
          [] { return std::make_unique<ImageImportCommand>(); });
    f.add("image push", "upload an image to a host's storage pool",
          [] { return std::make_unique<ImagePushCommand>(); });
    f.add("host add", "register a host by name (its libvirt URI)",
          [] { return std::make_unique<HostAddCommand>(); });
    f.add("host list", "list the hosts nvbox knows; --check connects to each",
          [] { return std::make_unique<HostListCommand>(); });
    f.add("host inspect", "show a host: libvirt, memory, pool, routers, accelerator",
          [] { return std::make_unique<HostInspectCommand>(); });
    f.add("host rm", "forget a registered host", [] { return std::make_unique<HostRmCommand>(); });
    f.add("router create", "instantiate a router on a host from an image",
          [] { return std::make_unique<RouterCreateCommand>(); });
    f.add("router start", "start a router; --wait until osrd answers",
          [] { return std::make_unique<RouterStartCommand>(); });
    f.add("router suspend", "pause a running router",
          [] { return std::make_unique<RouterSuspendCommand>(); });
    f.add("router resume", "continue a suspended router",
          [] { return std::make_unique<RouterResumeCommand>(); });
    f.add("router stop", "power a router off (forced after a timeout)",
          [] { return std::make_unique<RouterStopCommand>(); });
    f.add("router relocate", "move a router to another host with its running state",
          [] { return std::make_unique<RouterRelocateCommand>(); });
    f.add("router destroy", "remove a router and its overlay volume",
          [] { return std::make_unique<RouterDestroyCommand>(); });
    f.add("router list", "list the routers on a host, or on every host",
          [] { return std::make_unique<RouterListCommand>(); });
    f.add("router inspect", "show a router and what its agent reports",
          [] { return std::make_unique<RouterInspectCommand>(); });
    f.add("router stats", "show a running router's osrd counters, paths and flows",
          [] { return std::make_unique<RouterStatsCommand>(); });
    f.add("router console", "attach to a router's serial console (Ctrl-] leaves)",
          [] { return std::make_unique<RouterConsoleCommand>(); });
    f.add("oracle serve", "run the path oracle: collect measurements, name relays",
          [] { return std::make_unique<OracleServeCommand>(); });
    f.add("oracle query", "ask the oracle for the best k relays from SRC to DST",
          [] { return std::make_unique<OracleQueryCommand>(); });
    f.add("oracle map", "show the oracle's network and cost maps (ALTO style)",
          [] { return std::make_unique<OracleMapCommand>(); });
    f.add("deploy", "lay an overlay from a topology file across its hosts",
          [] { return std::make_unique<DeployCommand>(); });
    f.add("destroy", "remove everything of an overlay from every host",
          [] { return std::make_unique<DestroyCommand>(); });
    f.add("inspect", "show an overlay: routers, links, stripes and live counters",
          [] { return std::make_unique<InspectCommand>(); });
    f.add("graph", "draw an overlay (Graphviz: .dot, .svg, .png)",
          [] { return std::make_unique<GraphCommand>(); });
    f.add("transfer", "measure a stripe with a real TCP transfer between endpoints",
          [] { return std::make_unique<TransferCommand>(); });
    f.add("run", "play a topology's link events while a stream runs through the stripe",
          [] { return std::make_unique<RunCommand>(); });
    return f;
  }();
  return factory;
}

} // namespace nvbox::cli
