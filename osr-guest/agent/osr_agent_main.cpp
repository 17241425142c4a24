// osr-agent — the guest side of an nvbox router (docs/guest.md).
//
//   osr-agent apply --net FILE
//       validate the network configuration, then apply it; exit 0, or one
//       error line on stderr and exit 1
//   osr-agent serve (--port NAME | --device PATH) [--osrd-socket PATH] [--net FILE]
//       answer the host on a virtio-serial port, forever
//
// Exit 2 on usage errors.
#include "agent_server.hpp"
#include "net_apply.hpp"
#include "net_config.hpp"

#include <boost/program_options.hpp>

#include <chrono>
#include <csignal>
#include <iostream>
#include <thread>

namespace po = boost::program_options;

namespace {

constexpr auto kRetryOpen = std::chrono::milliseconds(200);
constexpr auto kReopen = std::chrono::milliseconds(100);

int usageError(const std::string &what) {
  std::cerr << "osr-agent: error: " << what << "; see 'osr-agent --help'\n";
  return 2;
}

int apply(const std::string &netFile) {
  try {
    nvbox::agent::applyNetConfig(
        nvbox::agent::parseNetConfig(nvbox::agent::readNetConfigFile(netFile)));
    return 0;
  } catch (const std::exception &e) {
    std::cerr << "osr-agent: error: " << e.what() << "\n";
    return 1;
  }
}

// The port's descriptor, or an invalid one (and why) while it is not there.
nvbox::netconfig::Fd openPort(const std::string &port, const std::string &device, std::string &path,
                              std::string &why) {
  if (!port.empty()) {
    const auto found = nvbox::agent::findVirtioPort(port);
    if (!found) {
      why = "no virtio-serial port named '" + port + "'";
      return nvbox::netconfig::Fd();
    }
    path = *found;
  } else {
    path = device;
  }
  try {
    return nvbox::agent::openDevice(path);
  } catch (const std::exception &e) {
    why = e.what();
    return nvbox::netconfig::Fd();
  }
}

[[noreturn]] void serve(const nvbox::agent::AgentServer &server, const std::string &port,
                        const std::string &device) {
  // Say once that the agent waits and once that it serves, not at every
  // reconnection: while the host side is closed, the port hangs up at once.
  bool announced = false;
  bool waiting = false;
  while (true) {
    std::string path;
    std::string why;
    const nvbox::netconfig::Fd fd = openPort(port, device, path, why);
    if (!fd) {
      if (!waiting) {
        std::cerr << "osr-agent: waiting: " << why << "\n";
        waiting = true;
        announced = false;
      }
      std::this_thread::sleep_for(kRetryOpen);
      continue;
    }
    if (!announced) {
      std::cerr << "osr-agent: serving on " << path << "\n";
      announced = true;
      waiting = false;
    }
    server.serveFd(fd.get());
    std::this_thread::sleep_for(kReopen);
  }
}

} // namespace

int main(int argc, char **argv) {
  std::string command;
  std::string netFile;
  std::string port;
  std::string device;
  nvbox::agent::AgentOptions options;
  po::options_description visible("osr-agent options", 100, 50);
  visible.add_options()("help,h", "show this help")("version", "print the version")(
      "net", po::value(&netFile)->value_name("FILE"), "network configuration (key = value lines)")(
      "port", po::value(&port)->value_name("NAME"),
      "serve: the virtio-serial port's name")("device", po::value(&device)->value_name("PATH"),
                                              "serve: a device or Unix socket instead of --port")(
      "osrd-socket", po::value(&options.osrdSocket)->value_name("PATH"),
      "serve: osrd's control socket (default /run/osrd.sock)");
  po::options_description all;
  all.add(visible).add_options()("command", po::value(&command));
  po::positional_options_description positional;
  positional.add("command", 1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
    po::notify(vm);
  } catch (const po::error &e) {
    return usageError(e.what());
  }
  if (vm.count("help") != 0U) {
    std::cout << "Usage: osr-agent apply --net FILE\n"
                 "       osr-agent serve (--port NAME | --device PATH) [--osrd-socket PATH] "
                 "[--net FILE]\n\nThe guest agent of an nvbox router: applies the network "
                 "configuration the host gave it, then answers the host.\n\n"
              << visible;
    return 0;
  }
  if (vm.count("version") != 0U) {
    std::cout << "osr-agent " << NVBOX_VERSION << "\n";
    return 0;
  }
  if (command == "apply") {
    if (netFile.empty() || !port.empty() || !device.empty() || vm.count("osrd-socket") != 0U) {
      return usageError("apply takes --net FILE and nothing else");
    }
    return apply(netFile);
  }
  if (command == "serve") {
    if (port.empty() == device.empty()) {
      return usageError("serve needs exactly one of --port and --device");
    }
    options.netFile = netFile;
    std::signal(SIGPIPE, SIG_IGN); // a vanished peer is a write error, not death
    serve(nvbox::agent::AgentServer(std::move(options)), port, device);
  }
  return usageError(command.empty() ? "no command given" : "unknown command '" + command + "'");
}
