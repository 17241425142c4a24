// overlay_bench — what deploying an overlay costs, and what the demo stripe
// gains (TCG here).
//
//   overlay_bench [DIR]       (writes DIR/overlay.csv; default: bench)
//
// Figures, each next to a baseline measured in the same run:
//   deploy_N / destroy_N   a chain of N routers (N = 4, 8, 16; 4, 8 with
//                          NVBOX_BENCH_QUICK=1; override with
//                          NVBOX_BENCH_OVERLAY_SIZES=4,8) deployed and
//                          destroyed on the local host and across two
//                          testbed hosts, vs deploying a single router (the
//                          growth is time(N) / time(1))
//   demo_goodput           examples/cmp.yaml on the local host: a striped TCP
//                          transfer vs the best single path (each path alone)
//                          and vs the sum of the path rates
//   demo_failover          its events played while a stream runs (nvbox run):
//                          how long after a link went down osrd took its
//                          path out, the longest stall, and the goodput while
//                          it was down vs before
//   demo_window            the same run: goodput in each window between
//                          events vs that window's sum of path rates (each
//                          path as fast as the slower of its relay's links,
//                          a link that is down carrying nothing)
// Exits non-zero only when a measured step fails.
#include "bench_stats.hpp"
#include "libvirtd_fixture.hpp"
#include "process.hpp"
#include "test_image.hpp"
#include "testbed.hpp"

#include "nvbox/images/image_store.hpp"
#include "nvbox/overlay.hpp"
#include "nvbox/overlay_plan.hpp"
#include "nvbox/overlay_run.hpp"
#include "nvbox/overlay_transfer.hpp"
#include "nvbox/topology.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <unistd.h>

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

struct Host {
  std::string name, uri, underlay, netns;
};

// A chain r0 - r1 - ... of n routers spread round-robin over the hosts.
std::string chain(const std::string &overlay, int n, const std::vector<Host> &hosts) {
  std::ostringstream y;
  y << "overlay: " << overlay << "\nhosts:\n";
  for (const auto &h : hosts) {
    y << "  " << h.name << ": {uri: \"" << h.uri << "\"";
    if (!h.underlay.empty()) {
      y << ", underlay: " << h.underlay;
    }
    if (!h.netns.empty()) {
      y << ", netns: " << h.netns;
    }
    y << "}\n";
  }
  y << "routers:\n";
  for (int i = 0; i < n; ++i) {
    y << "  r" << i << ": {host: " << hosts[static_cast<std::size_t>(i) % hosts.size()].name
      << ", memory: 96M}\n";
  }
  if (n > 1) {
    y << "links:\n";
    for (int i = 0; i + 1 < n; ++i) {
      y << "  - {between: [r" << i << ", r" << i + 1 << "], rate: 10M}\n";
    }
  }
  return y.str();
}

struct Timing {
  double deploy = 0;
  double destroy = 0;
};

Timing deployAndDestroy(const std::string &yaml, const nvbox::images::ImageStore &store) {
  const nvbox::OverlayPlan plan = nvbox::planOverlay(nvbox::parseTopology(yaml, "bench.yaml"));
  nvbox::DeployOptions options;
  options.bootsPerHost = 8;
  const auto quiet = [](const std::string &) {};
  Timing t;
  std::vector<nvbox::PlannedHost> nets;
  for (const auto &[name, h] : plan.hosts) {
    nets.push_back(h);
  }
  nvbox::test::throwIfInterrupted();
  auto start = Clock::now();
  try {
    (void)nvbox::deployOverlay(plan, store, options, quiet);
  } catch (...) {
    // deploy rolls back through its own connections; when one of them broke,
    // destroy over fresh ones so that a failed run leaves nothing behind.
    (void)nvbox::destroyOverlay(plan.overlay, nvbox::planHosts(plan), nets, quiet);
    throw;
  }
  t.deploy = since(start);
  start = Clock::now();
  const auto report = nvbox::destroyOverlay(plan.overlay, nvbox::planHosts(plan), nets, quiet);
  t.destroy = since(start);
  if (!report.failures.empty()) {
    throw std::runtime_error("destroy failed: " + report.failures.front());
  }
  return t;
}

std::vector<int> sizes() {
  std::vector<int> out;
  const char *env = std::getenv("NVBOX_BENCH_OVERLAY_SIZES");
  std::istringstream in(env ? env : nvbox::test::quickBench() ? "4,8" : "4,8,16");
  for (std::string item; std::getline(in, item, ',');) {
    out.push_back(std::stoi(item));
  }
  return out;
}

} // namespace

// The stripe's sum of path rates (Mbit/s) in each window of a run: the plan's
// link rates with the events applied up to the window's start.
std::vector<double> windowCapacities(const nvbox::OverlayPlan &plan,
                                     const nvbox::OverlayRunReport &run) {
  std::map<std::string, double> mbit; // link -> rate, 0 while down
  std::map<std::string, double> rate; // link -> rate when up
  for (const auto &l : plan.links) {
    rate[l.name] = mbit[l.name] = static_cast<double>(l.shape.rateBps.value_or(0)) / 1e6;
  }
  const auto linkBetween = [&](const std::string &a, const std::string &b) -> std::string {
    for (const auto &l : plan.links) {
      if ((l.a.router == a && l.b.router == b) || (l.a.router == b && l.b.router == a)) {
        return l.name;
      }
    }
    return {};
  };
  const nvbox::PlannedStripe &s = plan.stripes.front();
  const auto capacity = [&] {
    double sum = 0;
    for (const auto &relay : s.relays) {
      sum += std::min(mbit[linkBetween(s.ingress, relay)], mbit[linkBetween(relay, s.egress)]);
    }
    return sum;
  };
  std::vector<double> out{capacity()};
  for (std::size_t i = 0; i + 1 < run.windows.size() && i < plan.events.size(); ++i) {
    const nvbox::TopologyEvent &e = plan.events[i];
    if (e.shape.rateBps) {
      rate[e.link] = static_cast<double>(*e.shape.rateBps) / 1e6;
    }
    mbit[e.link] = e.up.value_or(mbit[e.link] > 0) ? rate[e.link] : 0;
    out.push_back(capacity());
  }
  return out;
}

int main(int argc, char **argv) {
  const fs::path csv = fs::path(argc > 1 ? argv[1] : "bench") / "overlay.csv";
  nvbox::test::catchTermination();
  const std::string missing = nvbox::test::ensureLibvirtd();
  if (!missing.empty()) {
    std::cerr << "overlay_bench: " << missing << "\n";
    return 1;
  }
  const nvbox::images::ImageStore store(nvbox::test::testImageStore());
  std::optional<nvbox::test::Testbed> testbed;
  const std::string overlay = "bench" + std::to_string(::getpid() % 100000);
  std::ostringstream rows;
  rows << "figure,where,routers,seconds,baseline_seconds,ratio\n";
  int status = 0;
  try {
    const std::vector<Host> local = {{"local", "qemu:///system", "", ""}};
    const Timing one = deployAndDestroy(chain(overlay, 1, local), store);
    std::printf("baseline: one router deployed in %.1f s, destroyed in %.1f s\n", one.deploy,
                one.destroy);

    testbed.emplace("b" + std::to_string(::getpid() % 10000), 2);
    std::vector<Host> two;
    for (const auto &h : testbed->hosts()) {
      two.push_back({h.name, h.uri, h.address, "nvbox-tb-" + testbed->name() + "-" + h.name});
    }

    std::printf("\n%-12s %8s %10s %10s %12s %12s\n", "where", "routers", "deploy_s", "destroy_s",
                "deploy/1", "per_router_s");
    for (const auto &[where, hosts] :
         {std::pair{std::string("one-host"), local}, std::pair{std::string("two-hosts"), two}}) {
      for (const int n : sizes()) {
        const Timing t = deployAndDestroy(chain(overlay, n, hosts), store);
        std::printf("%-12s %8d %10.1f %10.1f %12.2f %12.2f\n", where.c_str(), n, t.deploy,
                    t.destroy, t.deploy / one.deploy, t.deploy / n);
        rows << "deploy," << where << "," << n << "," << t.deploy << "," << one.deploy << ","
             << t.deploy / one.deploy << "\n";
        rows << "destroy," << where << "," << n << "," << t.destroy << "," << one.destroy << ","
             << t.destroy / one.destroy << "\n";
      }
    }

    // The demo stripe, measured like `nvbox transfer --compare`.
    const nvbox::OverlayPlan demo =
        nvbox::planOverlay(nvbox::loadTopology(fs::path(NVBOX_SOURCE_DIR) / "examples/cmp.yaml"));
    const auto quiet = [](const std::string &) {};
    nvbox::test::throwIfInterrupted();
    (void)nvbox::deployOverlay(demo, store, {}, quiet);
    nvbox::StripeMeasurement m;
    nvbox::OverlayRunReport run;
    try {
      m = nvbox::measureStripe(demo.toJson(), {"src", "sink", 4ULL << 20, true}, quiet);
      nvbox::RunOptions runOptions;
      runOptions.tail = std::chrono::seconds(4);
      run = nvbox::runOverlay(demo, runOptions, quiet);
    } catch (...) {
      (void)nvbox::destroyOverlay(demo.overlay, nvbox::planHosts(demo), {demo.hosts.at("local")},
                                  quiet);
      throw;
    }
    (void)nvbox::destroyOverlay(demo.overlay, nvbox::planHosts(demo), {demo.hosts.at("local")},
                                quiet);
    std::printf("\ndemo stripe (examples/cmp.yaml): %.2f Mbit/s, byte-identical %s\n", m.mbps,
                m.identical ? "yes" : "NO");
    for (const auto &s : m.singles) {
      std::printf("  single path via %s: %.2f Mbit/s\n", s.relay.c_str(), s.mbps);
    }
    std::printf("  vs best single path %.2f Mbit/s: %.2fx; vs sum of path rates %.1f Mbit/s: "
                "efficiency %.3f\n",
                m.bestSingleMbps(), m.mbps / m.bestSingleMbps(), m.sumOfRatesMbps,
                m.mbps / m.sumOfRatesMbps);
    rows << "demo_goodput_mbps,local,5," << m.mbps << "," << m.bestSingleMbps() << ","
         << m.mbps / m.bestSingleMbps() << "\n";
    rows << "demo_efficiency,local,5," << m.mbps << "," << m.sumOfRatesMbps << ","
         << m.mbps / m.sumOfRatesMbps << "\n";
    // The first event takes a link down: its path's exit, the stall, the
    // goodput while down against before.
    if (run.windows.size() >= 2 && !run.events.empty()) {
      const auto &down = run.events.front();
      const double out = down.paths.empty() ? -1 : down.paths.front().at;
      std::printf("\ndemo failover (%s %s at t=%.1f s): path out after %.2f s, longest stall "
                  "%.2f s; goodput %.2f Mbit/s before, %.2f while down (%.2fx), stream "
                  "byte-identical %s\n",
                  down.link.c_str(), down.change.c_str(), down.applied, out, down.stall,
                  run.windows[0].mbps, run.windows[1].mbps,
                  run.windows[1].mbps / std::max(1e-9, run.windows[0].mbps),
                  run.identical ? "yes" : "NO");
      rows << "demo_failover_path_out_s,local,5," << out << ",,\n";
      rows << "demo_failover_stall_s,local,5," << down.stall << ",,\n";
      rows << "demo_goodput_while_down_mbps,local,5," << run.windows[1].mbps << ","
           << run.windows[0].mbps << ","
           << run.windows[1].mbps / std::max(1e-9, run.windows[0].mbps) << "\n";
    }
    const std::vector<double> capacities = windowCapacities(demo, run);
    std::printf("\ndemo run windows (goodput / sum of the paths' rates in the window):\n");
    for (std::size_t i = 0; i < run.windows.size() && i < capacities.size(); ++i) {
      const auto &w = run.windows[i];
      const double eff = capacities[i] > 0 ? w.mbps / capacities[i] : 0;
      std::printf("  %-40s %5.1f-%5.1f s  %6.2f of %5.2f Mbit/s  %.3f\n", w.label.c_str(), w.from,
                  w.to, w.mbps, capacities[i], eff);
      rows << "demo_window_efficiency,local,5," << w.mbps << "," << capacities[i] << "," << eff
           << "\n";
    }
    if (!m.identical || !run.identical) {
      status = 1;
    }
  } catch (const std::exception &e) {
    std::cerr << "overlay_bench: " << e.what() << "\n";
    status = 1;
  }
  testbed.reset();
  fs::create_directories(csv.parent_path().empty() ? "." : csv.parent_path());
  std::ofstream(csv) << rows.str();
  std::printf("csv: %s\n", csv.c_str());
  return status;
}
