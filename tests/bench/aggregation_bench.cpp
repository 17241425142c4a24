// aggregation_bench — how much of k overlay paths one striped TCP stream gets.
//
//   aggregation_bench [DIR [FILTER]]   (writes DIR/aggregation.csv and
//                                       DIR/buffer_curve.{csv,svg}; FILTER: run
//                                       only scenarios whose name contains it)
//
// Lab: src ─ ing ═ r1..rk ═ egr ─ sink in network namespaces; the ing→ri and
// egr→ri veths are shaped with tbf (rate_i); relay i may add a one-way delay
// with osrd's userspace delay stage (--relay-delay; the host has no netem).
// Figure: aggregation efficiency = TCP goodput / sum of path rates, median of
// 3 transfers, for
//   equal-k      k = 1..4 paths of 16 Mbit/s, scheduler equal (the paper's)
//   unequal      32+16 and 32+16+8 Mbit/s, scheduler weighted
//   delay        2 × 24 Mbit/s, relay delays 5 and 30 ms, weighted vs delay-aware,
//                re-sequencing buffer sized automatically; weighted once more
//                with the egress's playout off (--playout false), its baseline
//   buffer-curve the delay lab, weighted, for a fixed re-sequencing buffer of
//                N = 8 .. 512 parts and then auto: goodput and part loss of a
//                3 s TCP stream per N (osrd benchmark 2 on real paths, beside
//                resequencing_bench's open-loop simulation), next to the
//                model's smallest lossless N = R × D / S + 2k
// Baseline in the same run and lab: one Linux MPTCP connection whose subflows
// take the same shaped paths (policy routing by source address through the
// relays, kernel forwarding). In the delay rows the relays delay MPTCP's
// packets too, by the same amount and at the same place as osrd's relay delay:
// the host has no netem, so a relay policy-routes kernel-forwarded packets
// through a TUN device where a thread holds them (KernelPathDelay).
#include "lab.hpp"
#include "process.hpp"
#include "transfer.hpp"

#include "bench_stats.hpp"
#include "svg.hpp"

#include "nvbox/netconfig/netns.hpp"
#include "tun_device.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <poll.h>
#include <thread>
#include <unistd.h>

namespace {

using nvbox::test::Child;
using nvbox::test::ip;
using nvbox::test::NetLab;
using nvbox::test::osrdControl;
using nvbox::test::spawnIn;
using nvbox::test::waitFor;

constexpr const char *kKey = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
constexpr int kRuns = 3;

struct Scenario {
  std::string name;
  std::vector<std::uint64_t> mbit; // per path
  std::vector<unsigned> delayMs;   // per path (relay delay)
  std::string scheduler;
  bool playout = true;
};

using nvbox::test::median;

// A userspace delay stage for what a relay forwards in the kernel (the host
// has no netem): packets arriving from either veth for the lab's end prefixes
// are policy-routed (table 200) into the TUN device dly0; a thread holds each
// for `delay` and writes it back, and the kernel, seeing it arrive on dly0,
// forwards it by the main table. osrd's own tunnel datagrams are addressed to
// the relay and never enter it.
class KernelPathDelay {
public:
  KernelPathDelay(const std::string &ns, std::chrono::milliseconds delay) : delay_(delay) {
    nvbox::netconfig::runIn(ns, [&] {
      tun_ = std::make_unique<nvbox::osr::TunDevice>("dly0", 1500, std::nullopt, false);
    });
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
  ~KernelPathDelay() {
    stop_ = true;
    thread_.join();
  }
  KernelPathDelay(const KernelPathDelay &) = delete;
  KernelPathDelay &operator=(const KernelPathDelay &) = delete;

  // Packets delayed so far: evidence that the baseline's subflows took it.
  [[nodiscard]] std::uint64_t held() const { return held_.load(); }
  [[nodiscard]] std::chrono::milliseconds delay() const { return delay_; }

private:
  void run() {
    using Clock = std::chrono::steady_clock;
    std::deque<std::pair<Clock::time_point, std::vector<std::uint8_t>>> held;
    std::vector<std::uint8_t> buf(2048);
    while (!stop_) {
      pollfd p{tun_->fd(), POLLIN, 0};
      ::poll(&p, 1, 1); // 1 ms: the release granularity, as osrd's delay line
      nvbox::osr::VirtioNetHdr hdr{};
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

  std::chrono::milliseconds delay_;
  std::unique_ptr<nvbox::osr::TunDevice> tun_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> held_{0};
  std::thread thread_;
};

class StripeLab {
public:
  explicit StripeLab(const Scenario &s) : s_(s) {
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
      const std::string n = std::to_string(i + 1);
      const std::string r = lab_.makeNamespace();
      relays_.push_back(r);
      lab_.link(ing_, "v-r" + n, "10.1." + n + ".1/24", r, "v-ing", "10.1." + n + ".2/24");
      lab_.link(r, "v-egr", "10.2." + n + ".1/24", egr_, "v-r" + n, "10.2." + n + ".2/24");
      lab_.sysctl(r, "net.ipv4.ip_forward", "1");
      lab_.route(r, "10.9.0.2/32", "10.2." + n + ".2");
      lab_.route(r, "10.9.0.1/32", "10.1." + n + ".1");
      lab_.route(r, "10.20.0.0/24", "10.2." + n + ".2");
      lab_.route(r, "10.10.0.0/24", "10.1." + n + ".1");
      lab_.shape(ing_, "v-r" + n, s.mbit[i] * 1'000'000);
      lab_.shape(egr_, "v-r" + n, s.mbit[i] * 1'000'000);
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
    start(ing_, "ing", "10.9.0.1:7400",
          {"--stripe", "name=fwd,flow=1,dst=10.20.0.0/24,egress=10.9.0.2:7400,relays=" + fwdRelays +
                           ",scheduler=" + s.scheduler + ",rates=" + rates});
    start(egr_, "egr", "10.9.0.2:7400",
          {"--stripe", "name=back,flow=2,dst=10.10.0.0/24,egress=10.9.0.1:7400,relays=" +
                           backRelays + ",scheduler=" + s.scheduler + ",rates=" + rates});
    for (std::size_t i = 0; i < relays_.size(); ++i) {
      const unsigned delay = i < s.delayMs.size() ? s.delayMs[i] : 0;
      if (delay > 0) {
        delays_.push_back(
            std::make_unique<KernelPathDelay>(relays_[i], std::chrono::milliseconds(delay)));
      }
      start(relays_[i], "r" + std::to_string(i + 1), "0.0.0.0:7400",
            {"--relay-delay", std::to_string(delay)});
    }
    for (const auto &name : names_) {
      waitFor([&] { return ::access(sock(name).c_str(), F_OK) == 0; }, name + " start");
    }
    lab_.route(ing_, "10.20.0.0/24", "", "osr0");
    lab_.route(egr_, "10.10.0.0/24", "", "osr0");
    for (const auto &name : {"ing", "egr"}) {
      waitFor(
          [&] {
            const auto st = osrdControl(sock(name), {{"cmd", "status"}});
            return st["status"]["stripes"][0]["k"].get<std::size_t>() == s.mbit.size();
          },
          std::string(name) + " paths up");
    }
  }

  // Mbit/s of one checked transfer of `bytes`, or of a stream for `duration`.
  double goodput(bool mptcp, std::size_t bytes, std::chrono::milliseconds duration = {}) {
    nvbox::test::TransferOptions o;
    o.clientNs = src_;
    o.serverNs = sink_;
    o.serverAddress = "10.20.0.2";
    o.clientAddress = mptcp ? "10.10.0.10" : "10.10.0.1";
    o.port = static_cast<std::uint16_t>(5001 + port_++);
    o.bytes = bytes;
    o.duration = duration;
    o.mptcp = mptcp;
    const auto [sent, got] = nvbox::test::transfer(o);
    if (got.digest != sent.digest || got.bytes != sent.bytes ||
        (duration.count() == 0 && got.bytes != bytes)) {
      throw std::runtime_error(s_.name + ": the transfer arrived damaged");
    }
    return sent.mbps();
  }

  // "r1 5 ms: 1234 packets, …" for the relays that delay kernel-forwarded packets.
  std::string kernelDelays() const {
    std::string out;
    for (std::size_t i = 0; i < delays_.size(); ++i) {
      out += (i == 0 ? "" : ", ") + std::string("relay ") +
             std::to_string(delays_[i]->delay().count()) +
             " ms: " + std::to_string(delays_[i]->held()) + " packets";
    }
    return out;
  }

  nlohmann::json egressFlow() {
    return osrdControl(sock("egr"), {{"cmd", "status"}})["status"]["egress"]["flows"][0];
  }

  // The egress's N for every flow; nullopt: sized automatically again.
  void setBuffer(std::optional<std::size_t> n) {
    nlohmann::json request{{"cmd", "set_buffer"}};
    if (n) {
      request["n"] = *n;
    }
    if (!osrdControl(sock("egr"), request)["ok"].get<bool>()) {
      throw std::runtime_error("the egress refused set_buffer");
    }
  }

private:
  std::string sock(const std::string &name) const {
    return "/tmp/nvbox-test-" + std::to_string(::getpid()) + "-agg-" + name + ".sock";
  }

  void start(const std::string &ns, const std::string &name, const std::string &listen,
             std::vector<std::string> extra) {
    std::vector<std::string> argv{nvbox::test::builtBinary("osrd"),
                                  "--name",
                                  name,
                                  "--key",
                                  kKey,
                                  "--control",
                                  sock(name),
                                  "--listen",
                                  listen,
                                  "--tun",
                                  "osr0",
                                  "--offload",
                                  "true"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    if (!s_.playout) {
      argv.insert(argv.end(), {"--playout", "false"});
    }
    names_.push_back(name);
    daemons_.push_back(std::make_unique<Child>(spawnIn(ns, argv)));
  }

  Scenario s_;
  NetLab lab_;
  std::string src_, ing_, egr_, sink_;
  std::vector<std::string> relays_;
  std::vector<std::unique_ptr<KernelPathDelay>> delays_; // declared after lab_: gone before it
  std::vector<std::string> names_;
  std::vector<std::unique_ptr<Child>> daemons_;
  int port_ = 0;
};

// --- buffer curve ----------------------------------------------------------

struct CurvePoint {
  std::size_t n = 0;
  bool automatic = false;
  double mbit = 0;
  std::uint64_t parts = 0; // sequence numbers the egress accounted for
  std::uint64_t overflow = 0;
  std::uint64_t timeout = 0;
  double loss() const {
    return parts == 0 ? 0 : static_cast<double>(overflow + timeout) / static_cast<double>(parts);
  }
};

// The plot: efficiency and part loss against log2 N, the model's N marked.
void writeCurveSvg(const std::filesystem::path &path, const std::vector<CurvePoint> &points,
                   double sum, double modelN) {
  namespace svg = nvbox::bench::svg;
  constexpr double kLeft = 70, kTop = 50, kWidth = 560, kHeight = 300;
  const double xMin = 3, xMax = 9.5; // N = 8 .. ~724
  const auto x = [&](double n) { return kLeft + kWidth * (std::log2(n) - xMin) / (xMax - xMin); };
  const auto y = [&](double f) { return kTop + kHeight * (1 - std::clamp(f, 0.0, 1.0)); };
  std::ofstream out(path);
  out << "<svg xmlns='http://www.w3.org/2000/svg' width='700' height='420' "
         "font-family='sans-serif' font-size='12'>\n<rect width='700' height='420' "
         "fill='white'/>\n";
  svg::text(out, kLeft + kWidth / 2, 28,
            "2 x 24 Mbit/s, one-way delays 5 and 30 ms, weighted: one TCP stream per N", "middle",
            "font-weight='bold'");
  for (int k = 3; k <= 9; ++k) {
    const double gx = x(std::exp2(k));
    svg::line(out, gx, kTop, gx, kTop + kHeight, "stroke='#e4e4e4'");
    svg::text(out, gx, kTop + kHeight + 16, std::to_string(1 << k));
  }
  for (int k = 0; k <= 4; ++k) {
    const double gy = y(k / 4.0);
    svg::line(out, kLeft, gy, kLeft + kWidth, gy, "stroke='#e4e4e4'");
    svg::text(out, kLeft - 6, gy + 4, svg::num(k / 4.0), "end");
  }
  svg::text(out, kLeft + kWidth / 2, kTop + kHeight + 36,
            "re-sequencing buffer N (parts, log scale)");
  svg::line(out, x(modelN), kTop, x(modelN), kTop + kHeight,
            "stroke='#2ca02c' stroke-dasharray='5,4'");
  svg::text(out, x(modelN) + 4, kTop + 14, "model: R x D / S + 2k = " + svg::num(modelN), "start",
            "fill='#2ca02c'");
  svg::Points efficiency;
  svg::Points loss;
  for (const CurvePoint &p : points) {
    if (!p.automatic) {
      efficiency.emplace_back(x(static_cast<double>(p.n)), y(p.mbit / sum));
      loss.emplace_back(x(static_cast<double>(p.n)), y(p.loss()));
    }
  }
  svg::polyline(out, efficiency, "stroke='#1f77b4' stroke-width='2'");
  svg::markers(out, efficiency, "#1f77b4", false);
  svg::polyline(out, loss, "stroke='#d62728' stroke-width='2'");
  svg::markers(out, loss, "#d62728", true);
  for (const CurvePoint &p : points) {
    if (p.automatic) {
      const double px = x(static_cast<double>(std::max<std::size_t>(p.n, 8)));
      svg::markers(out, {{px, y(p.mbit / sum)}}, "#9467bd", false);
      svg::text(out, px, y(p.mbit / sum) - 8, "auto N = " + std::to_string(p.n), "middle",
                "fill='#9467bd'");
    }
  }
  svg::text(out, kLeft + 8, kTop + kHeight - 24, "efficiency (goodput / sum of rates)", "start",
            "fill='#1f77b4'");
  svg::text(out, kLeft + 8, kTop + kHeight - 8, "part loss (overflow + timeout) / parts", "start",
            "fill='#d62728'");
  out << "</svg>\n";
}

// Benchmark 2 on real paths (the file comment): one lab, N set through the
// control socket between streams.
void bufferCurve(const std::filesystem::path &dir) {
  const Scenario s{"buffer-curve", {24, 24}, {5, 30}, "weighted"};
  constexpr double kSum = 48;
  // The model's N: R parts/s (full parts of 1400 + 92 + 14 bytes on the
  // shaped veths) times the 25 ms delay spread, plus 2 per path. Queueing on
  // the slow path widens the real spread, so the real knee may sit above it.
  const double partsPerSecond = kSum * 1e6 / 8 / 1506;
  const double modelN =
      std::ceil(partsPerSecond * 0.025) + 2.0 * static_cast<double>(s.mbit.size());
  StripeLab lab(s);
  std::vector<CurvePoint> points;
  std::vector<std::optional<std::size_t>> sizes{8, 16, 32, 64, 128, 256, 512, std::nullopt};
  std::printf("\nbuffer curve: %s; model N = %.0f\n%8s %10s %10s %10s %10s %10s\n",
              "2 x 24 Mbit/s, delays 5 and 30 ms, weighted, 3 s TCP per N", modelN, "N",
              "osrd_Mb/s", "osrd_eff", "parts", "overflow", "timeout");
  for (const auto &n : sizes) {
    nvbox::test::throwIfInterrupted();
    lab.setBuffer(n);
    const auto before = lab.egressFlow();
    const auto count = [](const nlohmann::json &flow, const char *key) {
      return flow.is_object() ? flow.value(key, std::uint64_t{0}) : std::uint64_t{0};
    };
    CurvePoint p;
    p.automatic = !n.has_value();
    p.mbit = lab.goodput(false, 0, std::chrono::seconds(3));
    const auto after = lab.egressFlow();
    p.n = after["buffer"].get<std::size_t>();
    p.overflow = count(after, "lost_overflow") - count(before, "lost_overflow");
    p.timeout = count(after, "lost_timeout") - count(before, "lost_timeout");
    p.parts = count(after, "delivered") - count(before, "delivered") + p.overflow + p.timeout;
    std::printf("%8s %10.1f %10.3f %10llu %10llu %10llu\n",
                (p.automatic ? "auto " + std::to_string(p.n) : std::to_string(p.n)).c_str(), p.mbit,
                p.mbit / kSum, static_cast<unsigned long long>(p.parts),
                static_cast<unsigned long long>(p.overflow),
                static_cast<unsigned long long>(p.timeout));
    std::fflush(stdout);
    points.push_back(p);
  }
  std::ofstream csv(dir / "buffer_curve.csv");
  csv << "n,auto,osrd_mbit,efficiency,parts,lost_overflow,lost_timeout,part_loss,model_n\n";
  for (const CurvePoint &p : points) {
    csv << p.n << "," << (p.automatic ? 1 : 0) << "," << p.mbit << "," << p.mbit / kSum << ","
        << p.parts << "," << p.overflow << "," << p.timeout << "," << p.loss() << "," << modelN
        << "\n";
  }
  writeCurveSvg(dir / "buffer_curve.svg", points, kSum, modelN);
  std::printf("csv: %s, plot: %s\n", (dir / "buffer_curve.csv").c_str(),
              (dir / "buffer_curve.svg").c_str());
}

} // namespace

int main(int argc, char **argv) {
  const std::filesystem::path dir = argc > 1 ? argv[1] : "bench";
  nvbox::test::catchTermination();
  std::filesystem::create_directories(dir);
  std::vector<Scenario> scenarios;
  for (std::uint64_t k = 1; k <= 4; ++k) {
    scenarios.push_back(
        {"equal-k" + std::to_string(k), std::vector<std::uint64_t>(k, 16), {}, "equal"});
  }
  scenarios.push_back({"unequal-32+16", {32, 16}, {}, "weighted"});
  scenarios.push_back({"unequal-32+16+8", {32, 16, 8}, {}, "weighted"});
  scenarios.push_back({"delay-5/30ms-weighted", {24, 24}, {5, 30}, "weighted"});
  scenarios.push_back({"delay-5/30ms-weighted-noplayout", {24, 24}, {5, 30}, "weighted", false});
  scenarios.push_back({"delay-5/30ms-delayaware", {24, 24}, {5, 30}, "delay"});

  std::ofstream csv(dir / "aggregation.csv");
  csv << "scenario,paths,sum_mbit,run,osrd_mbit,osrd_efficiency,mptcp_mbit,mptcp_efficiency,"
         "buffer_n,reordered,lost_overflow,lost_timeout,too_old\n";
  std::printf("%-32s %8s %12s %10s %12s %10s %8s\n", "scenario", "sum_Mb/s", "osrd_Mb/s",
              "osrd_eff", "mptcp_Mb/s", "mptcp_eff", "N");
  try {
    for (const auto &s : scenarios) {
      if (argc > 2 && s.name.find(argv[2]) == std::string::npos) {
        continue;
      }
      double sum = 0;
      for (const auto r : s.mbit) {
        sum += static_cast<double>(r);
      }
      // About three seconds of the aggregate rate per transfer.
      const auto bytes = static_cast<std::size_t>(sum * 1e6 / 8 * 3);
      StripeLab lab(s);
      std::vector<double> osrd;
      std::vector<double> mptcp;
      for (int run = 0; run < kRuns; ++run) {
        nvbox::test::throwIfInterrupted();
        osrd.push_back(lab.goodput(false, bytes));
        mptcp.push_back(lab.goodput(true, bytes));
        const auto flow = lab.egressFlow();
        csv << s.name << "," << s.mbit.size() << "," << sum << "," << run << "," << osrd.back()
            << "," << osrd.back() / sum << "," << mptcp.back() << "," << mptcp.back() / sum << ","
            << flow["buffer"] << "," << flow["reordered"] << "," << flow["lost_overflow"] << ","
            << flow["lost_timeout"] << "," << flow["too_old"] << "\n";
      }
      const double o = median(osrd);
      const auto flow = lab.egressFlow();
      const double m = median(mptcp);
      std::printf("%-32s %8.0f %12.1f %10.3f %12.1f %10.3f %8s\n", s.name.c_str(), sum, o, o / sum,
                  m, m / sum, flow["buffer"].dump().c_str());
      if (const std::string held = lab.kernelDelays(); !held.empty()) {
        std::printf("  MPTCP's packets held by the relays' delay stage: %s\n", held.c_str());
      }
      std::fflush(stdout);
    }
  } catch (const std::exception &e) {
    std::cerr << "aggregation_bench: " << e.what() << "\n";
    return 1;
  }
  std::printf("efficiency = goodput / sum of path rates; medians of %d transfers; csv: %s\n", kRuns,
              (dir / "aggregation.csv").c_str());
  if (argc <= 2 || std::string("buffer-curve").find(argv[2]) != std::string::npos) {
    try {
      bufferCurve(dir);
    } catch (const std::exception &e) {
      std::cerr << "aggregation_bench: " << e.what() << "\n";
      return 1;
    }
  }
  return 0;
}
