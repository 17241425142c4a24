#include "stripe_lab.hpp"

#include "process.hpp"

#include "nvbox/netconfig/netns.hpp"
#include "tun_device.hpp"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <poll.h>
#include <stdexcept>
#include <unistd.h>

namespace nvbox::test {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char *kKey = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

std::string pathNumber(std::size_t path) {
  return std::to_string(path + 1);
}

} // namespace

double StripeScenario::sumMbit() const {
  double sum = 0;
  for (const auto r : mbit) {
    sum += static_cast<double>(r);
  }
  return sum;
}

// --- KernelPathDelay -------------------------------------------------------

KernelPathDelay::KernelPathDelay(const std::string &ns, std::chrono::milliseconds delay)
    : delay_(delay) {
  netconfig::runIn(ns,
                   [&] { tun_ = std::make_unique<osr::TunDevice>("dly0", 1500, std::nullopt); });
  for (const auto *iif : {"v-ing", "v-egr"}) {
    ip({"-n", ns, "rule", "add", "iif", iif, "lookup", "200"});
  }
  for (const auto *prefix : {"10.20.0.0/24", "10.10.0.0/24"}) {
    ip({"-n", ns, "route", "add", prefix, "dev", "dly0", "table", "200"});
  }
  // Packets come back in on dly0, not on the veth their source is behind.
  for (const auto *conf : {"all", "default", "dly0"}) {
    ip({"netns", "exec", ns, "sysctl", "-qw",
        std::string("net.ipv4.conf.") + conf + ".rp_filter=0"});
  }
  thread_ = std::thread([this] { run(); });
}

KernelPathDelay::~KernelPathDelay() {
  stop_ = true;
  thread_.join();
}

void KernelPathDelay::run() {
  std::deque<std::pair<Clock::time_point, std::vector<std::uint8_t>>> held;
  std::vector<std::uint8_t> buf(2048);
  while (!stop_) {
    pollfd p{tun_->fd(), POLLIN, 0};
    ::poll(&p, 1, 1); // 1 ms: the release granularity, as osrd's delay line
    osr::VirtioNetHdr hdr{};
    for (std::size_t n = tun_->read(hdr, buf); n > 0; n = tun_->read(hdr, buf)) {
      held_.fetch_add(1, std::memory_order_relaxed);
      held.emplace_back(Clock::now() + delay_,
                        std::vector<std::uint8_t>(buf.data(), buf.data() + n));
    }
    const auto now = Clock::now();
    while (!held.empty() && held.front().first <= now) {
      tun_->write(held.front().second);
      held.pop_front();
    }
  }
}

// --- StripeLab -------------------------------------------------------------

StripeLab::StripeLab(const StripeScenario &s) : s_(s) {
  src_ = lab_.makeNamespace();
  ing_ = lab_.makeNamespace();
  egr_ = lab_.makeNamespace();
  sink_ = lab_.makeNamespace();
  lab_.link(src_, "v-ing", "10.10.0.1/24", ing_, "v-src", "10.10.0.2/24");
  lab_.link(egr_, "v-sink", "10.20.0.1/24", sink_, "v-egr", "10.20.0.2/24");
  lab_.route(src_, "10.20.0.0/24", "10.10.0.2");
  lab_.route(sink_, "10.10.0.0/24", "10.20.0.1");
  lab_.loopbackAddress(ing_, "10.9.0.1/32");
  lab_.loopbackAddress(egr_, "10.9.0.2/32");
  for (const auto &ns : {ing_, egr_}) {
    lab_.sysctl(ns, "net.ipv4.ip_forward", "1");
  }
  std::string fwdRelays;
  std::string backRelays;
  std::string rates;
  for (std::size_t i = 0; i < s.mbit.size(); ++i) {
    const std::string n = pathNumber(i);
    const std::string r = lab_.makeNamespace();
    relays_.push_back(r);
    lab_.link(ing_, "v-r" + n, "10.1." + n + ".1/24", r, "v-ing", "10.1." + n + ".2/24");
    lab_.link(r, "v-egr", "10.2." + n + ".1/24", egr_, "v-r" + n, "10.2." + n + ".2/24");
    lab_.sysctl(r, "net.ipv4.ip_forward", "1");
    lab_.route(r, "10.9.0.1/32", "10.1." + n + ".1");
    lab_.route(r, "10.10.0.0/24", "10.1." + n + ".1");
    relayRoutes(i);
    reshape(i, static_cast<double>(s.mbit[i]));
    const std::string sep = i == 0 ? "" : "+";
    fwdRelays += sep + "10.1." + n + ".2:7400";
    backRelays += sep + "10.2." + n + ".1:7400";
    rates += sep + std::to_string(s.mbit[i] * 125'000);
    // MPTCP: subflow i leaves src from 10.10.0.(10+i) and is routed
    // through relay i by source; the sink answers it by destination.
    const std::string subflow = "10.10.0." + std::to_string(10 + i);
    const std::string table = std::to_string(100 + i);
    ip({"-n", src_, "addr", "add", subflow + "/24", "dev", "v-ing"});
    ip({"-n", ing_, "rule", "add", "from", subflow, "table", table});
    ip({"-n", ing_, "route", "add", "10.20.0.0/24", "via", "10.1." + n + ".2", "table", table});
    ip({"-n", egr_, "route", "add", subflow + "/32", "via", "10.2." + n + ".1"});
    if (i > 0) {
      ip({"-n", src_, "mptcp", "endpoint", "add", subflow, "dev", "v-ing", "subflow"});
    }
  }
  for (const auto &ns : {src_, sink_}) {
    ip({"-n", ns, "mptcp", "limits", "set", "subflows", "8", "add_addr_accepted", "8"});
  }
  std::string options;
  if (!s.scheduler.empty()) {
    options += ",scheduler=" + s.scheduler;
  }
  if (s.declareRates) {
    options += ",rates=" + rates;
  }
  start(ing_, "ing", "10.9.0.1:7400",
        {"--stripe",
         "name=fwd,flow=1,dst=10.20.0.0/24,egress=10.9.0.2:7400,relays=" + fwdRelays + options});
  start(egr_, "egr", "10.9.0.2:7400",
        {"--stripe",
         "name=back,flow=2,dst=10.10.0.0/24,egress=10.9.0.1:7400,relays=" + backRelays + options});
  for (std::size_t i = 0; i < relays_.size(); ++i) {
    const unsigned delay = i < s.delayMs.size() ? s.delayMs[i] : 0;
    if (delay > 0) {
      delays_.push_back(
          std::make_unique<KernelPathDelay>(relays_[i], std::chrono::milliseconds(delay)));
    }
    start(relays_[i], "r" + pathNumber(i), "0.0.0.0:7400",
          {"--relay-delay", std::to_string(delay)});
  }
  try {
    for (const auto &name : names_) {
      waitFor([&] { return ::access(sock(name).c_str(), F_OK) == 0; }, name + " start");
    }
    lab_.route(ing_, "10.20.0.0/24", "", "osr0");
    lab_.route(egr_, "10.10.0.0/24", "", "osr0");
  } catch (const std::exception &e) {
    throw std::runtime_error(s.name + ": " + e.what() + "\n" + outputs());
  }
  waitForAllPaths();
}

void StripeLab::waitForAllPaths() const {
  try {
    for (const auto &name : {"ing", "egr"}) {
      waitFor(
          [&] {
            const auto st = control(name, {{"cmd", "status"}});
            return st["status"]["stripes"][0]["k"].get<std::size_t>() == s_.mbit.size();
          },
          std::string(name) + "'s paths up");
    }
  } catch (const std::exception &e) {
    throw std::runtime_error(s_.name + ": " + e.what() + "\n" + outputs());
  }
}

StripeLab::~StripeLab() = default;

TransferOptions StripeLab::transferOptions(bool mptcp) {
  TransferOptions o;
  o.clientNs = src_;
  o.serverNs = sink_;
  o.serverAddress = "10.20.0.2";
  o.clientAddress = mptcp ? "10.10.0.10" : "10.10.0.1";
  o.port = static_cast<std::uint16_t>(5001 + port_++);
  o.mptcp = mptcp;
  return o;
}

std::pair<Transfer, Transfer> StripeLab::checkedTransfer(const TransferOptions &o) {
  auto result = transfer(o);
  const auto &[sent, got] = result;
  if (got.digest != sent.digest || got.bytes != sent.bytes ||
      (o.duration.count() == 0 && got.bytes != o.bytes)) {
    throw std::runtime_error(s_.name + ": the transfer arrived damaged (" +
                             std::to_string(got.bytes) + " of " + std::to_string(sent.bytes) +
                             " bytes, SHA-256 " +
                             (got.digest == sent.digest ? "equal" : "differs") + ")");
  }
  return result;
}

double StripeLab::goodput(bool mptcp, std::size_t bytes, std::chrono::milliseconds duration) {
  TransferOptions o = transferOptions(mptcp);
  o.bytes = bytes;
  o.duration = duration;
  return checkedTransfer(o).first.mbps();
}

void StripeLab::reshape(std::size_t path, double mbit) {
  // NetLab::shape replaces the root tbf in place (NLM_F_REPLACE on a qdisc of
  // the same kind is a change, not a new qdisc: its queue is kept), with
  // burst and queue limit computed from the new rate.
  for (const auto &ns : {ing_, egr_}) {
    lab_.shape(ns, "v-r" + pathNumber(path), static_cast<std::uint64_t>(mbit * 1e6));
  }
}

void StripeLab::relayRoutes(std::size_t path) {
  // Routes through the relay's link towards the egress: the tunnel (to egr's
  // OSR address) and MPTCP's kernel-forwarded packets (to the sink's prefix).
  const std::string via = "10.2." + pathNumber(path) + ".2";
  for (const auto *dst : {"10.9.0.2/32", "10.20.0.0/24"}) {
    ip({"-n", relays_.at(path), "route", "replace", dst, "via", via, "dev", "v-egr"});
  }
}

void StripeLab::cut(std::size_t path) {
  ip({"-n", relays_.at(path), "link", "set", "v-egr", "down"});
}

void StripeLab::restore(std::size_t path) {
  ip({"-n", relays_.at(path), "link", "set", "v-egr", "up"});
  // A link going down takes the routes through it along; up, only its
  // connected prefix comes back.
  relayRoutes(path);
}

nlohmann::json StripeLab::control(const std::string &daemon, const nlohmann::json &request) const {
  return osrdControl(sock(daemon), request);
}

nlohmann::json StripeLab::egressFlow() const {
  return control("egr", {{"cmd", "status"}})["status"]["egress"]["flows"][0];
}

void StripeLab::setBuffer(std::optional<std::size_t> n) {
  nlohmann::json request{{"cmd", "set_buffer"}};
  if (n) {
    request["n"] = *n;
  }
  if (!control("egr", request)["ok"].get<bool>()) {
    throw std::runtime_error("the egress refused set_buffer");
  }
}

std::string StripeLab::kernelDelays() const {
  std::string out;
  for (std::size_t i = 0; i < delays_.size(); ++i) {
    out += (i == 0 ? "" : ", ") + std::string("relay ") +
           std::to_string(delays_[i]->delay().count()) +
           " ms: " + std::to_string(delays_[i]->held()) + " packets";
  }
  return out;
}

std::string StripeLab::outputs() const {
  std::string all;
  for (std::size_t i = 0; i < daemons_.size(); ++i) {
    all += "--- " + names_[i] + ":\n" + daemons_[i]->output();
  }
  return all;
}

std::string StripeLab::sock(const std::string &name) const {
  return "/tmp/nvbox-test-" + std::to_string(::getpid()) + "-stripe-" + name + ".sock";
}

void StripeLab::start(const std::string &ns, const std::string &name, const std::string &listen,
                      std::vector<std::string> extra) {
  std::vector<std::string> argv{
      builtBinary("osrd"), "--name", name,    "--key", kKey,        "--control", sock(name),
      "--listen",          listen,   "--tun", "osr0",  "--offload", "true"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  if (!s_.playout) {
    argv.insert(argv.end(), {"--playout", "false"});
  }
  names_.push_back(name);
  daemons_.push_back(std::make_unique<Child>(spawnIn(ns, argv)));
}

// --- ActionSchedule --------------------------------------------------------

ActionSchedule::ActionSchedule(Clock::time_point start, std::vector<Action> actions) {
  std::sort(actions.begin(), actions.end(),
            [](const Action &a, const Action &b) { return a.at < b.at; });
  thread_ = std::jthread([this, start, actions = std::move(actions)](std::stop_token stop) {
    std::mutex m;
    std::condition_variable_any wake;
    std::unique_lock lock(m);
    for (const Action &a : actions) {
      // Returns early only when stopped: the predicate never holds.
      wake.wait_until(lock, stop, start + a.at, [] { return false; });
      if (stop.stop_requested()) {
        return;
      }
      const auto began = Clock::now() - start;
      try {
        a.run();
      } catch (...) {
        error_ = std::current_exception();
        return;
      }
      done_.push_back({began, Clock::now() - start});
    }
  });
}

ActionSchedule::~ActionSchedule() = default; // jthread: request_stop() and join()

std::vector<ActionSchedule::Done> ActionSchedule::finish() {
  if (thread_.joinable()) {
    thread_.join();
  }
  if (error_) {
    std::rethrow_exception(error_);
  }
  return done_;
}

// --- timelines -------------------------------------------------------------

double bytesAt(const Transfer &received, Clock::time_point t) {
  const auto &tl = received.timeline;
  if (tl.empty() || t < tl.front().first) {
    return 0;
  }
  const auto after = std::upper_bound(
      tl.begin(), tl.end(), t, [](Clock::time_point v, const auto &s) { return v < s.first; });
  if (after == tl.end()) {
    return static_cast<double>(tl.back().second);
  }
  const auto before = std::prev(after);
  const double span = std::chrono::duration<double>(after->first - before->first).count();
  const double part = std::chrono::duration<double>(t - before->first).count();
  return static_cast<double>(before->second) +
         static_cast<double>(after->second - before->second) * (span > 0 ? part / span : 0);
}

double goodputBetween(const Transfer &received, Clock::time_point from, Clock::time_point to) {
  const double seconds = std::chrono::duration<double>(to - from).count();
  return (bytesAt(received, to) - bytesAt(received, from)) * 8 / seconds / 1e6;
}

Stall longestStall(const Transfer &received, Clock::time_point from, Clock::time_point to) {
  Stall longest;
  const auto &tl = received.timeline;
  for (std::size_t i = 1; i < tl.size(); ++i) {
    const auto gap = tl[i].first - tl[i - 1].first;
    if (tl[i].first >= from && tl[i - 1].first <= to && gap > longest.length) {
      longest = {gap, tl[i - 1].first};
    }
  }
  return longest;
}

} // namespace nvbox::test
