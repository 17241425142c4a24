// osrd — entry point: parse the configuration, run the daemon until SIGINT
// or SIGTERM. Exit codes: 0 clean stop, 1 failure, 2 bad configuration.
#include "osrd.hpp"

#include <csignal>
#include <iostream>

namespace {

nvbox::osr::Osrd *running = nullptr;

extern "C" void onSignal(int /*sig*/) {
  if (running != nullptr) {
    running->stop(); // async-signal-safe: one write(2) to an eventfd
  }
}

} // namespace

int main(int argc, char **argv) {
  std::optional<nvbox::osr::OsrdConfig> config;
  try {
    config =
        nvbox::osr::parseOsrdConfig(std::vector<std::string>(argv + 1, argv + argc), std::cout);
  } catch (const std::exception &e) {
    std::cerr << "osrd: error: " << e.what() << "; see 'osrd --help'\n";
    return 2;
  }
  if (!config) {
    return 0;
  }
  try {
    nvbox::osr::Osrd daemon(*config);
    running = &daemon;
    std::signal(SIGINT, onSignal);
    std::signal(SIGTERM, onSignal);
    std::signal(SIGPIPE, SIG_IGN);
    std::cerr << "osrd: " << config->name << " ready on " << config->listen.toString() << ", tun "
              << config->tunName << ", control " << config->controlPath << "\n";
    daemon.run();
    running = nullptr;
    return 0;
  } catch (const std::exception &e) {
    std::cerr << "osrd: error: " << e.what() << "\n";
    return 1;
  }
}
