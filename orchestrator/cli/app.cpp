#include "app.hpp"

#include "command.hpp"
#include "nvbox/error.hpp"
#include "nvbox/guest_agent.hpp"

#include <functional>
#include <ostream>

namespace nvbox::cli {
namespace {

void printUsage(std::ostream &out) {
  out << "Usage: nvbox [--json] [--host NAME|URI] COMMAND [ARGS...]\n"
         "\n"
         "nvbox turns Linux hosts running libvirt and QEMU into NV-boxes that run virtual\n"
         "routers, and lays routing overlays of One-hop Source Routers across them.\n"
         "\n"
         "Commands:\n";
  commands().list(out);
  out << "\n"
         "Global options:\n"
         "  --json                print machine-readable JSON\n"
         "  --host NAME|URI       act on this host (default: local = qemu:///system)\n"
         "  -h [ --help ]         show this help\n"
         "  --version             print the version and exit\n"
         "\n"
         "Exit codes: 0 ok, 1 failure, 2 usage error.\n"
         "Run 'nvbox COMMAND --help' for a command's options.\n";
}

// Consumes global options up to the first word that is not one.
GlobalOptions parseGlobal(std::vector<std::string> &args, bool &help, bool &version) {
  GlobalOptions global;
  std::size_t i = 0;
  for (; i < args.size(); ++i) {
    const std::string &arg = args[i];
    if (arg == "--json") {
      global.json = true;
    } else if (arg == "--help" || arg == "-h") {
      help = true;
    } else if (arg == "--version") {
      version = true;
    } else if (arg == "--host") {
      if (i + 1 >= args.size()) {
        throw UsageError("option '--host' needs a value", "see 'nvbox --help'");
      }
      global.host = args[++i];
    } else if (arg.starts_with("--host=")) {
      global.host = arg.substr(7);
    } else if (arg.starts_with("-")) {
      throw UsageError("unknown option '" + arg + "'", "see 'nvbox --help'");
    } else {
      break;
    }
  }
  args.erase(args.begin(), args.begin() + static_cast<std::ptrdiff_t>(i));
  return global;
}

int dispatch(std::vector<std::string> args, Terminal &term) {
  bool help = false;
  bool version = false;
  const GlobalOptions global = parseGlobal(args, help, version);
  if (version) {
    term.out() << "nvbox " << NVBOX_VERSION << "\n";
    return kExitOk;
  }
  if (args.empty()) {
    if (help) {
      printUsage(term.out());
      return kExitOk;
    }
    printUsage(term.err());
    return kExitUsage;
  }
  if (args[0] == "help") {
    args.erase(args.begin());
    if (args.empty()) {
      printUsage(term.out());
      return kExitOk;
    }
    args.emplace_back("--help");
  }
  const std::string word = args[0];
  auto command = commands().create(args);
  if (!command) {
    if (commands().isNoun(word)) {
      if (help || (args.size() == 2 && (args[1] == "--help" || args[1] == "-h"))) {
        term.out() << "Usage: nvbox " << word << " VERB [ARGS...]\n\nVerbs:\n";
        commands().list(term.out(), word);
        return kExitOk;
      }
      throw UsageError(args.size() == 1 ? "nvbox " + word + ": missing verb"
                                        : "nvbox " + word + ": unknown verb '" + args[1] + "'",
                       "see 'nvbox " + word + " --help'");
    }
    throw UsageError("unknown command '" + word + "'", "see 'nvbox --help'");
  }
  if (help) {
    command->printHelp(term.out());
    return kExitOk;
  }
  if (!command->setup(args, global, term.out())) {
    return kExitOk; // --help was printed
  }
  return command->run(term);
}

// While a command runs, a wait for a router's agent that another process
// holds is told on stderr: the command may sit there for seconds.
class AgentNotices {
public:
  explicit AgentNotices(Terminal &term)
      : previous_(setAgentNotice(
            [&term](const std::string &line) { term.err() << "nvbox: " << line << "\n"; })) {}
  ~AgentNotices() { setAgentNotice(std::move(previous_)); }
  AgentNotices(const AgentNotices &) = delete;
  AgentNotices &operator=(const AgentNotices &) = delete;

private:
  std::function<void(const std::string &)> previous_;
};

} // namespace

int runApp(std::vector<std::string> args, std::ostream &out, std::ostream &err, bool interactive) {
  Terminal term(out, err, interactive);
  const AgentNotices notices(term);
  try {
    return dispatch(std::move(args), term);
  } catch (const Error &e) {
    std::ostream &to = term.err();
    to << "nvbox: error: " << e.what();
    if (!e.hint().empty()) {
      to << "; " << e.hint();
    }
    to << "\n";
    return e.kind() == Error::Kind::Usage ? kExitUsage : kExitFailure;
  } catch (const std::exception &e) {
    term.err() << "nvbox: error: " << e.what() << "\n";
    return kExitFailure;
  }
}

} // namespace nvbox::cli
