// tun_tcp_bench — one TCP stream from ingress TUN to egress TUN through osrd,
// next to the kernel forwarding the same stream over the same veth.
//
//   tun_tcp_bench [DIR]     (writes DIR/tun_tcp.csv; default: bench)
//
// Lab (network namespaces, unshaped veth, MTU 1500):
//
//   src 10.10.0.1 ─ ing ══ 10.9.0.0/24 ══ egr ─ 10.20.0.2 sink
//                   osrd                  osrd
//
// iperf3 (-c in src, -s in sink) sends one TCP stream for 3 s after 1 s of
// warm-up (-O 1). Three forwarders, switched by the routes in ing and egr:
//   kernel      ing routes 10.20.0.0/24 via egr's veth address: plain IP
//               forwarding, the baseline (a veth TCP flow is ~10 Gbit/s here);
//   osrd        into ing's TUN osr0; osrd (--offload true: UDP GSO/GRO and TUN
//               TSO/coalescing on) tunnels it over a direct one-path stripe to
//               egr's osrd, which writes it to its TUN; the ACKs come back the
//               same way through a stripe of egr's;
//   osrd-plain  the same through a second osrd pair run with --offload false
//               (TUN osr1, port 7401): one packet per read and write.
// Each forwarder runs 3 times, interleaved; figures are medians. Exits
// non-zero only when something fails, not when the 5 Gbit/s goal is missed.
#include "lab.hpp"
#include "process.hpp"
#include "transfer.hpp"

#include "bench_stats.hpp"

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

using nvbox::test::Child;
using nvbox::test::ip;
using nvbox::test::NetLab;
using nvbox::test::osrdControl;
using nvbox::test::waitFor;

constexpr const char *kKey = "8899aabbccddeeff00112233445566778899aabbccddeeff0011223344556677";
constexpr int kRuns = 3;
constexpr double kGoalGbps = 5;

enum class Forwarder { Kernel, Osrd, OsrdPlain };
constexpr std::array kForwarders{Forwarder::Kernel, Forwarder::Osrd, Forwarder::OsrdPlain};

const char *toString(Forwarder f) {
  switch (f) {
  case Forwarder::Kernel:
    return "kernel";
  case Forwarder::Osrd:
    return "osrd";
  case Forwarder::OsrdPlain:
    return "osrd-plain";
  }
  return "?";
}

class TunLab {
public:
  TunLab() {
    src_ = lab_.makeNamespace();
    ing_ = lab_.makeNamespace();
    egr_ = lab_.makeNamespace();
    sink_ = lab_.makeNamespace();
    lab_.link(src_, "v-ing", "10.10.0.1/24", ing_, "v-src", "10.10.0.254/24");
    lab_.link(ing_, "v-egr", "10.9.0.1/24", egr_, "v-ing", "10.9.0.2/24");
    lab_.link(egr_, "v-sink", "10.20.0.254/24", sink_, "v-egr", "10.20.0.2/24");
    lab_.route(src_, "10.20.0.0/24", "10.10.0.254");
    lab_.route(sink_, "10.10.0.0/24", "10.20.0.254");
    for (const auto &ns : {ing_, egr_}) {
      lab_.sysctl(ns, "net.ipv4.ip_forward", "1");
    }
    for (const Forwarder f : {Forwarder::Osrd, Forwarder::OsrdPlain}) {
      const bool offload = f == Forwarder::Osrd;
      const std::string port = offload ? "7400" : "7401";
      start(ing_, f, "ing", "10.9.0.1:" + port,
            "name=fwd,flow=1,dst=10.20.0.0/24,egress=10.9.0.2:" + port +
                ",relays=10.9.0.2:" + port);
      start(egr_, f, "egr", "10.9.0.2:" + port,
            "name=back,flow=2,dst=10.10.0.0/24,egress=10.9.0.1:" + port +
                ",relays=10.9.0.1:" + port);
    }
    for (const Forwarder f : {Forwarder::Osrd, Forwarder::OsrdPlain}) {
      for (const auto *role : {"ing", "egr"}) {
        waitFor(
            [&] {
              const auto st = osrdControl(sock(f, role), {{"cmd", "status"}});
              return st["status"]["stripes"][0]["k"].get<int>() == 1;
            },
            std::string(role) + " (" + toString(f) + ") path up");
      }
    }
    server_ = std::make_unique<Child>(nvbox::test::spawnIn(
        sink_, {"/usr/bin/iperf3", "-s", "-B", "10.20.0.2", "-p", "5201", "--forceflush"}));
    nvbox::test::sleepFor(std::chrono::milliseconds(300));
  }

  void use(Forwarder f) {
    if (f == Forwarder::Kernel) {
      ip({"-n", ing_, "route", "replace", "10.20.0.0/24", "via", "10.9.0.2"});
      ip({"-n", egr_, "route", "replace", "10.10.0.0/24", "via", "10.9.0.1"});
    } else {
      ip({"-n", ing_, "route", "replace", "10.20.0.0/24", "dev", tun(f)});
      ip({"-n", egr_, "route", "replace", "10.10.0.0/24", "dev", tun(f)});
    }
    // A path MTU learnt through a TUN (1400) must not cap the next run.
    ip({"-n", src_, "route", "flush", "cache"});
  }

  // Gbit/s received by the sink over 3 s, after 1 s omitted.
  double stream() {
    const auto r = nvbox::test::run({"ip", "netns", "exec", src_, "iperf3", "-c", "10.20.0.2", "-p",
                                     "5201", "-t", "3", "-O", "1", "-J"});
    if (r.exitCode != 0) {
      throw std::runtime_error("iperf3 failed: " + r.out + r.err);
    }
    const auto j = nlohmann::json::parse(r.out);
    if (j.contains("error")) {
      throw std::runtime_error("iperf3: " + j["error"].get<std::string>() +
                               "; server: " + server_->output());
    }
    return j.at("end").at("sum_received").at("bits_per_second").get<double>() / 1e9;
  }

  nlohmann::json status(Forwarder f, const char *role) {
    return osrdControl(sock(f, role), {{"cmd", "status"}})["status"];
  }

private:
  static std::string tun(Forwarder f) { return f == Forwarder::Osrd ? "osr0" : "osr1"; }

  std::string sock(Forwarder f, const std::string &role) const {
    return "/tmp/nvbox-test-" + std::to_string(::getpid()) + "-tuntcp-" + toString(f) + "-" + role +
           ".sock";
  }

  void start(const std::string &ns, Forwarder f, const std::string &role, const std::string &listen,
             const std::string &stripe) {
    daemons_.push_back(std::make_unique<Child>(nvbox::test::spawnIn(
        ns, {nvbox::test::builtBinary("osrd"), "--name", role, "--key", kKey, "--control",
             sock(f, role), "--listen", listen, "--tun", tun(f), "--offload",
             f == Forwarder::Osrd ? "true" : "false", "--stripe", stripe})));
  }

  NetLab lab_;
  std::string src_, ing_, egr_, sink_;
  std::vector<std::unique_ptr<Child>> daemons_;
  std::unique_ptr<Child> server_;
};

} // namespace

int main(int argc, char **argv) {
  const std::filesystem::path dir = argc > 1 ? argv[1] : "bench";
  nvbox::test::catchTermination();
  try {
    std::filesystem::create_directories(dir);
    TunLab lab;
    std::map<Forwarder, std::vector<double>> gbps;
    for (int run = 0; run < kRuns; ++run) {
      for (const Forwarder f : kForwarders) {
        lab.use(f);
        gbps[f].push_back(lab.stream());
      }
    }
    std::ofstream csv(dir / "tun_tcp.csv");
    csv << "forwarder,run,gbps\n";
    const double kernel = nvbox::test::median(gbps[Forwarder::Kernel]);
    std::printf("one TCP stream (iperf3, 3 s after 1 s warm-up), src -> ing -> egr -> sink, "
                "unshaped veth; medians of %d\n",
                kRuns);
    std::printf("%-11s %8s %10s   %s\n", "forwarder", "Gbit/s", "/ kernel", "runs");
    for (const Forwarder f : kForwarders) {
      std::string runs;
      for (std::size_t i = 0; i < gbps[f].size(); ++i) {
        csv << toString(f) << ',' << i + 1 << ',' << gbps[f][i] << '\n';
        char one[32];
        std::snprintf(one, sizeof one, "%s%.2f", i == 0 ? "" : " ", gbps[f][i]);
        runs += one;
      }
      const double m = nvbox::test::median(gbps[f]);
      csv << toString(f) << ",median," << m << '\n';
      std::printf("%-11s %8.2f %10.2f   %s\n", toString(f), m, m / kernel, runs.c_str());
    }
    const double on = nvbox::test::median(gbps[Forwarder::Osrd]);
    const double off = nvbox::test::median(gbps[Forwarder::OsrdPlain]);
    std::printf("offloads: osrd %.2f Gbit/s against osrd-plain %.2f (%.2fx)\n", on, off,
                off > 0 ? on / off : 0.0);
    for (const Forwarder f : {Forwarder::Osrd, Forwarder::OsrdPlain}) {
      for (const auto *role : {"ing", "egr"}) {
        const auto st = lab.status(f, role);
        std::printf("%s %s: counters %s offload %s\n", toString(f), role,
                    st["counters"].dump().c_str(),
                    st.contains("offload") ? st["offload"].dump().c_str() : "-");
      }
    }
    std::printf("goal >= %.0f Gbit/s ingress to egress over TUN: osrd %.2f -> %s\n", kGoalGbps, on,
                on >= kGoalGbps ? "met" : "NOT met");
    std::printf("csv: %s\n", (dir / "tun_tcp.csv").c_str());
    if (!csv.flush()) {
      throw std::runtime_error("cannot write " + (dir / "tun_tcp.csv").string());
    }
  } catch (const std::exception &e) {
    std::cerr << "tun_tcp_bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
