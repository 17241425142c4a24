#include "osrd_config.hpp"

#include "udp_socket.hpp"

#include <boost/program_options.hpp>

#include <charconv>
#include <fstream>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <unistd.h>

namespace po = boost::program_options;

namespace nvbox::osr {
namespace {

std::vector<std::string> split(const std::string &text, char sep) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string item;
  while (std::getline(in, item, sep)) {
    out.push_back(item);
  }
  return out;
}

template <typename T> T number(const std::string &text, const std::string &what, T min, T max) {
  T value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < min ||
      value > max) {
    throw std::invalid_argument(what + " must be a number from " + std::to_string(min) + " to " +
                                std::to_string(max) + ", not '" + text + "'");
  }
  return value;
}

Endpoint endpoint(const std::string &text, const std::string &what) {
  const auto ep = Endpoint::parse(text);
  if (!ep) {
    throw std::invalid_argument(what + " must be IPv4:PORT, not '" + text + "'");
  }
  return *ep;
}

std::string readKeyFile(const std::string &path) {
  std::ifstream in(path);
  if (!in) {
    throw std::invalid_argument("cannot read key file '" + path + "'");
  }
  std::string hex;
  in >> hex;
  return hex;
}

} // namespace

std::string toString(StripePolicy policy) {
  switch (policy) {
  case StripePolicy::Equal:
    return "equal";
  case StripePolicy::Weighted:
    return "weighted";
  case StripePolicy::DelayAware:
    return "delay";
  case StripePolicy::Adaptive:
    return "adaptive";
  }
  return "adaptive";
}

std::optional<StripePolicy> parsePolicy(const std::string &text) {
  if (text == "adaptive") {
    return StripePolicy::Adaptive;
  }
  if (text == "equal") {
    return StripePolicy::Equal;
  }
  if (text == "weighted") {
    return StripePolicy::Weighted;
  }
  if (text == "delay" || text == "delay-aware") {
    return StripePolicy::DelayAware;
  }
  return std::nullopt;
}

StripeSpec parseStripeSpec(const std::string &text) {
  StripeSpec spec;
  bool haveFlow = false;
  bool haveDst = false;
  bool haveEgress = false;
  std::string label = "stripe '" + text + "'";
  for (const auto &field : split(text, ',')) {
    const auto eq = field.find('=');
    if (eq == std::string::npos) {
      throw std::invalid_argument(label + ": field '" + field + "' is not KEY=VALUE");
    }
    const std::string key = field.substr(0, eq);
    const std::string value = field.substr(eq + 1);
    if (key == "name") {
      if (value.empty() || value.size() > 32) {
        throw std::invalid_argument(label + ": name must be 1-32 characters");
      }
      spec.name = value;
      label = "stripe '" + value + "'";
    } else if (key == "flow") {
      spec.flow = number<std::uint32_t>(value, label + ": flow", 0, kMeasureFlow - 1);
      haveFlow = true;
    } else if (key == "dst") {
      const auto prefix = Prefix::parse(value);
      if (!prefix) {
        throw std::invalid_argument(label + ": dst must be an IPv4 prefix, not '" + value + "'");
      }
      spec.dst = *prefix;
      haveDst = true;
    } else if (key == "egress") {
      spec.egress = endpoint(value, label + ": egress");
      haveEgress = true;
    } else if (key == "relays" && value == "oracle") {
      spec.fromOracle = true;
    } else if (key == "k") {
      spec.k = number<std::uint8_t>(value, label + ": k", 1, kMaxK);
    } else if (key == "objective") {
      if (value == "delay") {
        spec.objective = oracle::Objective::Delay;
      } else if (value == "rate") {
        spec.objective = oracle::Objective::Rate;
      } else if (value == "disjoint") {
        spec.objective = oracle::Objective::Disjoint;
      } else {
        throw std::invalid_argument(label + ": objective must be delay, rate or disjoint, not '" +
                                    value + "'");
      }
    } else if (key == "relays") {
      for (const auto &relay : split(value, '+')) {
        spec.relays.push_back(endpoint(relay, label + ": relay"));
      }
    } else if (key == "rates") {
      for (const auto &rate : split(value, '+')) {
        spec.rates.push_back(
            number<std::uint64_t>(rate, label + ": rate", 1, StripeScheduler::kMaxRate));
      }
    } else if (key == "scheduler") {
      const auto policy = parsePolicy(value);
      if (!policy) {
        throw std::invalid_argument(
            label + ": scheduler must be adaptive, equal, weighted or delay, not '" + value + "'");
      }
      spec.policy = *policy;
    } else if (key == "acks") {
      if (value != "express" && value != "striped") {
        throw std::invalid_argument(label + ": acks must be express or striped, not '" + value +
                                    "'");
      }
      spec.expressAcks = value == "express";
    } else {
      throw std::invalid_argument(label + ": unknown field '" + key + "'");
    }
  }
  if (spec.name.empty() || !haveFlow || !haveDst || !haveEgress ||
      (spec.relays.empty() && !spec.fromOracle)) {
    throw std::invalid_argument(label + ": needs name, flow, dst, egress and relays");
  }
  if (spec.fromOracle != (spec.k != 0) || (spec.fromOracle && !spec.relays.empty())) {
    throw std::invalid_argument(label + ": k goes with relays=oracle, and only with it");
  }
  if (spec.fromOracle && !spec.rates.empty()) {
    throw std::invalid_argument(label + ": rates do not apply to relays=oracle");
  }
  if (spec.relays.size() > kMaxPaths) {
    throw std::invalid_argument(label + ": at most " + std::to_string(kMaxPaths) + " relays");
  }
  if (!spec.rates.empty() && spec.rates.size() != spec.relays.size()) {
    throw std::invalid_argument(label + ": rates must list one value per relay");
  }
  return spec;
}

std::optional<OsrdConfig> parseOsrdConfig(const std::vector<std::string> &args, std::ostream &out) {
  OsrdConfig config;
  std::string configFile;
  std::string keyFile;
  std::string key;
  std::string listen = "0.0.0.0:7400";
  std::string buffer = "auto";
  std::string mtu = "auto";
  std::string gapTimeout = "auto";
  std::vector<std::string> stripes;
  unsigned probeMs = 100;
  unsigned downMs = 500;
  unsigned relayDelayMs = 0;
  std::string oracleAddr;
  std::string oracleServeAddr;
  std::vector<std::string> peers;
  unsigned reportMs = 1000;
  unsigned requeryMs = 5000;

  po::options_description options("osrd options", 100, 50);
  options.add_options()("help,h", "show this help")("version", "print the version")(
      "config", po::value(&configFile)->value_name("FILE"),
      "read options from FILE (key = value lines)")(
      "name", po::value(&config.name)->value_name("NAME"),
      "router name (default: host name)")("key-file", po::value(&keyFile)->value_name("FILE"),
                                          "overlay key: 64 hex digits (required unless --key)")(
      "key", po::value(&key)->value_name("HEX"),
      "overlay key inline (tests only)")("listen", po::value(&listen)->value_name("IP:PORT"),
                                         "UDP tunnel endpoint (default 0.0.0.0:7400)")(
      "tun", po::value(&config.tunName)->value_name("NAME"), "TUN device (default osr0)")(
      "tun-address", po::value<std::string>()->value_name("CIDR"),
      "address of the TUN device")("path-mtu", po::value(&config.pathMtu)->value_name("BYTES"),
                                   "largest IP packet between OSRs: parts fill it (default 1500)")(
      "mtu", po::value(&mtu)->value_name("BYTES|auto"),
      "TUN MTU (default auto: path MTU - 68, one part per packet)")(
      "control", po::value(&config.controlPath)->value_name("PATH"),
      "control socket (default /run/osrd.sock)")(
      "stripe", po::value(&stripes)->composing()->value_name("SPEC"),
      "a stripe this router is ingress of (repeatable; see docs/osrd.md)")(
      "buffer", po::value(&buffer)->value_name("N|auto"),
      "re-sequencing buffer size in parts (default auto)")(
      "gap-timeout", po::value(&gapTimeout)->value_name("MS|auto"),
      "how long a gap may hold delivery (default auto)")(
      "probe-interval", po::value(&probeMs)->value_name("MS"), "path probe interval (default 100)")(
      "down-after", po::value(&downMs)->value_name("MS"),
      "a path without replies this long is down (default 500)")(
      "relay-delay", po::value(&relayDelayMs)->value_name("MS"),
      "delay relayed datagrams this long (experiments without netem; default 0)")(
      "tun-routes", po::value(&config.tunRoutes)->value_name("BOOL"),
      "route every stripe's destination prefix into the TUN device (default false)")(
      "offload", po::value(&config.offload)->value_name("BOOL"),
      "UDP GSO/GRO and TUN TSO where the kernel has them (default true)")(
      "playout", po::value(&config.playout)->value_name("BOOL"),
      "as egress, deliver at the slowest path's latency (default true)")(
      "oracle", po::value(&oracleAddr)->value_name("IP:PORT"),
      "the path oracle: report measurements, ask for relays (docs/oracle.md)")(
      "oracle-serve", po::value(&oracleServeAddr)->value_name("IP:PORT"),
      "also run the path oracle, on IP:PORT")(
      "peer", po::value(&peers)->composing()->value_name("IP:PORT"),
      "an overlay member to measure and report (repeatable)")(
      "group", po::value(&config.group)->value_name("LABEL"),
      "this router's group (host or provider) for disjoint relays")(
      "report-interval", po::value(&reportMs)->value_name("MS"),
      "measure peers and report every MS (default 1000)")(
      "requery-interval", po::value(&requeryMs)->value_name("MS"),
      "ask the oracle again every MS (default 5000)");

  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(options).run(), vm);
    if (vm.count("config") != 0U) {
      const auto file = vm["config"].as<std::string>();
      std::ifstream in(file);
      if (!in) {
        throw std::invalid_argument("cannot read config file '" + file + "'");
      }
      po::store(po::parse_config_file(in, options), vm);
    }
    po::notify(vm);
  } catch (const po::error &e) {
    throw std::invalid_argument(e.what());
  }
  if (vm.count("help") != 0U) {
    out << "Usage: osrd [OPTIONS]\n\nThe One-hop Source Router: ingress, relay and egress of "
           "striped overlay flows.\n\n"
        << options;
    return std::nullopt;
  }
  if (vm.count("version") != 0U) {
    out << "osrd " << NVBOX_VERSION << "\n";
    return std::nullopt;
  }
  if (keyFile.empty() == key.empty()) {
    throw std::invalid_argument("give exactly one of --key-file and --key");
  }
  const auto parsedKey = OverlayKey::fromHex(key.empty() ? readKeyFile(keyFile) : key);
  if (!parsedKey) {
    throw std::invalid_argument("the overlay key must be 64 hex digits");
  }
  config.key = *parsedKey;
  config.listen = endpoint(listen, "--listen");
  if (vm.count("tun-address") != 0U) {
    config.tunAddress = vm["tun-address"].as<std::string>();
    if (!Prefix::parse(*config.tunAddress)) {
      throw std::invalid_argument("--tun-address must be A.B.C.D/LEN, not '" + *config.tunAddress +
                                  "'");
    }
  }
  // A part must fit one of the socket's batch buffers.
  if (config.pathMtu < 576 || config.pathMtu > static_cast<int>(PacketBatch::kBufferSize)) {
    throw std::invalid_argument("--path-mtu must be from 576 to " +
                                std::to_string(PacketBatch::kBufferSize));
  }
  config.mtu = mtu == "auto" ? config.pathMtu - static_cast<int>(wire::kIpUdpOverhead)
                             : number<int>(mtu, "--mtu", 576, 9000);
  if (config.name.empty()) {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    config.name = host;
  }
  if (buffer != "auto") {
    config.buffer = number<std::size_t>(buffer, "--buffer", 1, std::size_t{1} << 20);
  }
  if (gapTimeout != "auto") {
    config.gapTimeout =
        std::chrono::milliseconds(number<unsigned>(gapTimeout, "--gap-timeout", 1, 60'000));
  }
  if (probeMs < 10 || probeMs > 10'000 || downMs < 2 * probeMs) {
    throw std::invalid_argument(
        "--probe-interval must be 10-10000 ms and --down-after at least twice it");
  }
  config.probeInterval = std::chrono::milliseconds(probeMs);
  config.downAfter = std::chrono::milliseconds(downMs);
  if (relayDelayMs > 10'000) {
    throw std::invalid_argument("--relay-delay must be at most 10000 ms");
  }
  config.relayDelay = std::chrono::milliseconds(relayDelayMs);
  for (const auto &text : stripes) {
    config.stripes.push_back(parseStripeSpec(text));
  }
  if (!oracleAddr.empty()) {
    config.oracle = endpoint(oracleAddr, "--oracle");
  }
  if (!oracleServeAddr.empty()) {
    config.oracleServe = endpoint(oracleServeAddr, "--oracle-serve");
  }
  for (const auto &peer : peers) {
    config.peers.push_back(endpoint(peer, "--peer"));
  }
  if (config.peers.size() > 1024) {
    throw std::invalid_argument("at most 1024 --peer");
  }
  oracle::Group group;
  if (!group.assign(config.group)) {
    throw std::invalid_argument("--group must be at most 16 of [A-Za-z0-9._-], not '" +
                                config.group + "'");
  }
  if (reportMs < 100 || reportMs > 60'000 || requeryMs < 100 || requeryMs > 600'000) {
    throw std::invalid_argument(
        "--report-interval must be 100-60000 ms and --requery-interval 100-600000 ms");
  }
  config.reportInterval = std::chrono::milliseconds(reportMs);
  config.requeryInterval = std::chrono::milliseconds(requeryMs);
  bool wantsOracle = !config.peers.empty();
  for (const auto &s : config.stripes) {
    wantsOracle = wantsOracle || s.fromOracle;
  }
  if (wantsOracle && !config.oracle) {
    throw std::invalid_argument("relays=oracle and --peer need --oracle IP:PORT");
  }
  if (config.oracle && config.listen.addr == 0) {
    throw std::invalid_argument(
        "--oracle needs --listen with this router's own address (its identity in the overlay)");
  }
  for (std::size_t i = 0; i < config.stripes.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (config.stripes[i].name == config.stripes[j].name ||
          config.stripes[i].flow == config.stripes[j].flow) {
        throw std::invalid_argument("stripe '" + config.stripes[i].name +
                                    "': name and flow must be unique");
      }
    }
  }
  return config;
}

} // namespace nvbox::osr
