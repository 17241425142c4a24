// osrd — entry point: parse the configuration, run the daemon (and the path
// oracle, with --oracle-serve) until SIGINT or SIGTERM. Exit codes: 0 clean stop, 1 failure, 2 bad
// configuration.
#include "nvbox/oracle_server.hpp"
#include "osrd.hpp"

#include <csignal>
#include <iostream>
#include <optional>
#include <thread>

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
    // The path oracle, when this router hosts it: its own socket and thread
    // beside the daemon's, for as long as the daemon runs.
    std::optional<nvbox::OracleServer> oracle;
    std::thread oracleThread;
    if (config->oracleServe) {
      oracle.emplace(nvbox::OracleServer::Config{*config->oracleServe, config->key});
      oracleThread = std::thread([&oracle] { oracle->run(); });
    }
    const struct StopOracle {
      std::optional<nvbox::OracleServer> &server;
      std::thread &thread;
      ~StopOracle() {
        if (thread.joinable()) {
          server->stop();
          thread.join();
        }
      }
    } stopOracle{oracle, oracleThread};
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
