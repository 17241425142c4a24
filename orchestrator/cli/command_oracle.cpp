#include "command_oracle.hpp"

#include "format.hpp"
#include "nvbox/error.hpp"
#include "nvbox/oracle_client.hpp"
#include "nvbox/oracle_server.hpp"

#include <csignal>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>

namespace po = boost::program_options;

namespace nvbox::cli {
namespace {

namespace oracle = osr::oracle;
using Json = nlohmann::json;

OracleServer *g_server = nullptr;

extern "C" void stopServer(int /*signal*/) {
  if (g_server != nullptr) {
    g_server->stop(); // writes an eventfd: async-signal-safe
  }
}

osr::Endpoint endpointArg(const std::string &command, const std::string &what,
                          const std::string &text) {
  const auto ep = osr::Endpoint::parse(text);
  if (!ep || ep->port == 0) {
    throw UsageError("nvbox " + command + ": " + what + " must be IPv4:PORT, not " + quote(text),
                     "see 'nvbox " + command + " --help'");
  }
  return *ep;
}

osr::OverlayKey loadKey(const std::string &path) {
  std::ifstream in(path);
  if (!in) {
    throw Error("cannot read key file " + quote(path), "the overlay key osrd uses (64 hex digits)");
  }
  std::string hex;
  in >> hex;
  const auto key = osr::OverlayKey::fromHex(hex);
  if (!key) {
    throw Error("key file " + quote(path) + " does not hold 64 hex digits");
  }
  return *key;
}

std::string delayText(std::uint64_t us) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(1) << static_cast<double>(us) / 1000.0 << " ms";
  return out.str();
}

std::string rateText(std::uint64_t bytesPerSecond) {
  if (bytesPerSecond == 0) {
    return "unknown";
  }
  std::ostringstream out;
  out << std::fixed << std::setprecision(1) << static_cast<double>(bytesPerSecond) * 8 / 1e6
      << " Mbit/s";
  return out.str();
}

std::string lossText(double fraction) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(1) << fraction * 100 << " %";
  return out.str();
}

std::optional<oracle::Objective> parseObjective(const std::string &text) {
  if (text == "delay") {
    return oracle::Objective::Delay;
  }
  if (text == "rate") {
    return oracle::Objective::Rate;
  }
  if (text == "disjoint") {
    return oracle::Objective::Disjoint;
  }
  return std::nullopt;
}

} // namespace

// ---------------------------------------------------------------------------
// OracleCommand

void OracleCommand::addOptions(po::options_description & /*options*/,
                               po::positional_options_description & /*positional*/) {}

void OracleCommand::addClientOptions(po::options_description &options) {
  options.add_options()("oracle", po::value(&oracle_)->value_name("IP:PORT"),
                        "the oracle (default 127.0.0.1:7500)")(
      "key-file", po::value(&keyFile_)->value_name("FILE"), "the overlay key (64 hex digits)");
}

void OracleCommand::validate(const po::variables_map & /*vm*/) {
  if (!host().empty()) {
    throw UsageError("nvbox " + name() + ": --host does not apply; the oracle is not a host",
                     "give its address with --oracle IP:PORT");
  }
  if (keyFile_.empty()) {
    throw UsageError("nvbox " + name() + ": --key-file is required",
                     "see 'nvbox " + name() + " --help'");
  }
}

// ---------------------------------------------------------------------------
// serve

std::string OracleServeCommand::synopsis() const {
  return "oracle serve --key-file FILE [--listen IP:PORT] [--max-age S]";
}

std::string OracleServeCommand::description() const {
  return "Runs the path oracle in the foreground until SIGINT or SIGTERM. OSRs started\n"
         "with --oracle report their measurements of their peers (delay, rate, loss) to\n"
         "it, and ingress OSRs whose stripes say relays=oracle ask it for their relays.\n"
         "It keeps the latest measurement of each pair and ignores those older than\n"
         "--max-age. Every message must carry the overlay key's MAC and be fresh;\n"
         "anything else is dropped and counted.";
}

void OracleServeCommand::addOptions(po::options_description &options,
                                    po::positional_options_description & /*positional*/) {
  options.add_options()("listen", po::value(&listen_)->value_name("IP:PORT"),
                        "UDP endpoint to serve on (default 0.0.0.0:7500)")(
      "key-file", po::value(&keyFile_)->value_name("FILE"),
      "the overlay key (64 hex digits)")("max-age", po::value(&maxAge_)->value_name("S"),
                                         "ignore measurements older than S seconds (default 10)");
}

void OracleServeCommand::validate(const po::variables_map &vm) {
  OracleCommand::validate(vm);
  const auto ep = osr::Endpoint::parse(listen_);
  if (!ep || ep->port == 0) {
    throw UsageError("nvbox oracle serve: --listen must be IPv4:PORT, not " + quote(listen_),
                     "see 'nvbox oracle serve --help'");
  }
  if (maxAge_ < 1 || maxAge_ > 3600) {
    throw UsageError("nvbox oracle serve: --max-age must be 1-3600 seconds, not " +
                         quote(std::to_string(maxAge_)),
                     "see 'nvbox oracle serve --help'");
  }
}

int OracleServeCommand::run(Terminal &term) {
  OracleServer server(OracleServer::Config{.listen = *osr::Endpoint::parse(listen_),
                                           .key = loadKey(keyFile_),
                                           .maxAge = std::chrono::seconds(maxAge_)});
  g_server = &server;
  struct sigaction sa {};
  sa.sa_handler = stopServer;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  if (json()) {
    term.out() << Json{{"listening", server.local().toString()}, {"max_age_s", maxAge_}}.dump()
               << std::endl;
  } else {
    term.out() << "oracle listening on " << server.local().toString() << " (max age " << maxAge_
               << " s)" << std::endl;
  }
  server.run();
  g_server = nullptr;
  const Json status = server.status();
  if (json()) {
    term.out() << status.dump() << "\n";
  } else {
    term.out() << "oracle stopped: " << status["members"] << " members, " << status["reports"]
               << " reports, " << status["queries"] << " queries\n";
  }
  return 0;
}

// ---------------------------------------------------------------------------
// query

std::string OracleQueryCommand::synopsis() const {
  return "oracle query SRC DST [-k K] [--objective delay|rate|disjoint]\n"
         "                    [--oracle IP:PORT] --key-file FILE [--json]";
}

std::string OracleQueryCommand::description() const {
  return "Asks the oracle for the best K relays from SRC to DST (OSR tunnel endpoints,\n"
         "IPv4:PORT): 'delay' minimises delay(SRC,R) + delay(R,DST) and marks one-hop\n"
         "detours faster than the direct path (triangle-inequality violations); 'rate'\n"
         "maximises min(rate(SRC,R), rate(R,DST)); 'disjoint' picks relays of pairwise\n"
         "distinct groups (hosts, providers), best by delay. Each relay comes with its\n"
         "expected metrics and the age of the older of its two measurements.";
}

void OracleQueryCommand::addOptions(po::options_description &options,
                                    po::positional_options_description &positional) {
  options.add_options()("src", po::value(&src_)->value_name("IP:PORT"),
                        "source OSR (also the first argument)")(
      "dst", po::value(&dst_)->value_name("IP:PORT"), "destination OSR (also the second)")(
      ",k", po::value(&k_)->value_name("K"), "how many relays, 1-16 (default 1)")(
      "objective", po::value(&objective_)->value_name("OBJ"), "delay (default), rate or disjoint");
  addClientOptions(options);
  positional.add("src", 1).add("dst", 1);
}

void OracleQueryCommand::validate(const po::variables_map &vm) {
  if (src_.empty() || dst_.empty()) {
    throw UsageError("nvbox oracle query: missing SRC and DST", "see 'nvbox oracle query --help'");
  }
  endpointArg(name(), "SRC", src_);
  endpointArg(name(), "DST", dst_);
  endpointArg(name(), "--oracle", oracle_);
  if (k_ < 1 || k_ > osr::kMaxK) {
    throw UsageError("nvbox oracle query: -k must be 1-16, not " + quote(std::to_string(k_)),
                     "see 'nvbox oracle query --help'");
  }
  if (!parseObjective(objective_)) {
    throw UsageError("nvbox oracle query: --objective must be delay, rate or disjoint, not " +
                         quote(objective_),
                     "see 'nvbox oracle query --help'");
  }
  OracleCommand::validate(vm);
}

int OracleQueryCommand::run(Terminal &term) {
  const auto src = endpointArg(name(), "SRC", src_);
  const auto dst = endpointArg(name(), "DST", dst_);
  OracleClient client(endpointArg(name(), "--oracle", oracle_), loadKey(keyFile_));
  const oracle::Answer a =
      client.query(src, dst, static_cast<std::uint8_t>(k_), *parseObjective(objective_));
  if (a.status == oracle::AnswerStatus::UnknownSource) {
    throw Error("the oracle at " + quote(oracle_) + " has no fresh report from " + quote(src_),
                "is osrd running there with --oracle " + oracle_ + "?");
  }
  if (a.status == oracle::AnswerStatus::UnknownDestination) {
    throw Error("the oracle at " + quote(oracle_) + " does not know " + quote(dst_));
  }
  if (json()) {
    Json relays = Json::array();
    for (std::size_t i = 0; i < a.count; ++i) {
      const auto &r = a.relays[i];
      relays.push_back({{"relay", r.relay.toString()},
                        {"delay_us", r.delay_us},
                        {"rate", r.rate},
                        {"loss", static_cast<double>(r.loss) / oracle::kLossScale},
                        {"age_ms", r.age_ms},
                        {"group", std::string(r.group.view())},
                        {"beats_direct", r.beats_direct}});
    }
    Json direct = nullptr;
    if (a.direct_known) {
      direct = {
          {"delay_us", a.direct_delay_us}, {"rate", a.direct_rate}, {"age_ms", a.direct_age_ms}};
    }
    term.out() << Json{{"src", src_},
                       {"dst", dst_},
                       {"objective", objective_},
                       {"direct", direct},
                       {"relays", relays}}
                      .dump(2)
               << "\n";
    return 0;
  }
  term.out() << "from " << src_ << " to " << dst_ << ", objective " << objective_ << "\n";
  if (a.direct_known) {
    term.out() << "direct path: " << delayText(a.direct_delay_us) << ", " << rateText(a.direct_rate)
               << " (measured " << a.direct_age_ms << " ms ago)\n";
  } else {
    term.out() << "direct path: not measured\n";
  }
  if (a.count == 0) {
    term.out() << "no relay has fresh measurements both ways\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows{
      {"RELAY", "DELAY", "RATE", "LOSS", "AGE", "GROUP", "NOTE"}};
  for (std::size_t i = 0; i < a.count; ++i) {
    const auto &r = a.relays[i];
    rows.push_back({r.relay.toString(), delayText(r.delay_us), rateText(r.rate),
                    lossText(static_cast<double>(r.loss) / oracle::kLossScale),
                    std::to_string(r.age_ms) + " ms",
                    r.group.size == 0 ? "-" : std::string(r.group.view()),
                    r.beats_direct ? "beats direct (triangle inequality violated)" : ""});
  }
  printTable(term.out(), rows);
  return 0;
}

// ---------------------------------------------------------------------------
// map

std::string OracleMapCommand::synopsis() const {
  return "oracle map [--oracle IP:PORT] --key-file FILE [--json]";
}

std::string OracleMapCommand::description() const {
  return "Shows what the oracle knows, in the spirit of IETF ALTO: the network map\n"
         "(members: address, port, group, age of their last report) and the cost map\n"
         "(per measured pair: one-way delay, rate, loss, age, and whether it is fresh).";
}

void OracleMapCommand::addOptions(po::options_description &options,
                                  po::positional_options_description & /*positional*/) {
  addClientOptions(options);
}

void OracleMapCommand::validate(const po::variables_map &vm) {
  endpointArg(name(), "--oracle", oracle_);
  OracleCommand::validate(vm);
}

int OracleMapCommand::run(Terminal &term) {
  OracleClient client(endpointArg(name(), "--oracle", oracle_), loadKey(keyFile_));
  const Json map = client.map();
  if (json()) {
    term.out() << map.dump(2) << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> members{{"MEMBER", "GROUP", "LAST REPORT"}};
  for (const auto &[ep, m] : map["network-map"].items()) {
    const std::string group = m.value("group", "");
    members.push_back({ep, group.empty() ? "-" : group,
                       m["report_age_ms"].is_null()
                           ? "never"
                           : std::to_string(m["report_age_ms"].get<std::int64_t>()) + " ms ago"});
  }
  printTable(term.out(), members);
  term.out() << "\n";
  std::vector<std::vector<std::string>> costs{{"SRC", "DST", "DELAY", "RATE", "LOSS", "AGE"}};
  for (const auto &[src, row] : map["cost-map"].items()) {
    for (const auto &[dst, c] : row.items()) {
      costs.push_back({src, dst, delayText(c["delay_us"].get<std::uint64_t>()),
                       rateText(c["rate"].get<std::uint64_t>()), lossText(c["loss"].get<double>()),
                       std::to_string(c["age_ms"].get<std::int64_t>()) + " ms" +
                           (c["fresh"].get<bool>() ? "" : " (stale)")});
    }
  }
  printTable(term.out(), costs);
  return 0;
}

} // namespace nvbox::cli
