// doctor_bench — how long `nvbox doctor` and its accelerator probe take.
//
//   doctor_bench [DIR]        (writes DIR/doctor.csv; default: bench)
//
// Figures, each the median of 5 runs, next to same-run baselines:
//   doctor      `nvbox doctor --json` wall time   vs  `nvbox doctor --only libvirt`
//                                                     (connect + version only)
//   tcg_probe   probe guest, resume → firmware     vs  create + destroy of the same
//               banner (probeGuest)                   paused guest, no boot
// Exits non-zero only when a measured command fails.
#include "bench_stats.hpp"
#include "libvirtd_fixture.hpp"
#include "process.hpp"

#include "nvbox/accelerator.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>

namespace {

using Clock = std::chrono::steady_clock;

using nvbox::test::median;

using nvbox::test::repeat;

double timeCommand(const std::vector<std::string> &args) {
  const auto start = Clock::now();
  const auto r = nvbox::test::nvbox(args);
  if (r.exitCode != 0) {
    throw std::runtime_error("nvbox failed: " + r.err);
  }
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double bareCreateDestroy(const nvbox::virt::Connection &conn) {
  const std::string xml =
      "<domain type='qemu'><name>nvbox-probe-bench-baseline</name><memory unit='MiB'>32</memory>"
      "<vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os><devices><memballoon "
      "model='none'/></devices></domain>";
  const auto start = Clock::now();
  nvbox::virt::DomainPtr dom(virDomainCreateXML(
      conn.get(), xml.c_str(), VIR_DOMAIN_START_PAUSED | VIR_DOMAIN_START_AUTODESTROY));
  if (!dom) {
    throw std::runtime_error("baseline domain: " + nvbox::virt::lastError());
  }
  virDomainDestroy(dom.get());
  return std::chrono::duration<double>(Clock::now() - start).count();
}

} // namespace

int main(int argc, char **argv) {
  const std::filesystem::path csv =
      std::filesystem::path(argc > 1 ? argv[1] : "bench") / "doctor.csv";
  try {
    const std::string problem = nvbox::test::ensureLibvirtd();
    if (!problem.empty()) {
      throw std::runtime_error(problem);
    }
    const auto conn = nvbox::virt::Connection::open("qemu:///system");
    constexpr int kRuns = 5;
    const auto doctor = repeat(kRuns, [] { return timeCommand({"doctor", "--json"}); });
    const auto connectOnly = repeat(kRuns, [] {
      return timeCommand({"doctor", "--json", "--only", "libvirt"});
    });
    const auto probe = repeat(kRuns, [&] {
      const auto p = nvbox::probeGuest(conn, "qemu", "x86_64", std::chrono::seconds(30));
      if (!p.ran) {
        throw std::runtime_error("probe guest did not run: " + p.reason);
      }
      return p.seconds;
    });
    const auto bare = repeat(kRuns, [&] { return bareCreateDestroy(conn); });

    std::filesystem::create_directories(csv.parent_path().empty() ? "." : csv.parent_path());
    std::ofstream out(csv);
    out << "figure,run,seconds,baseline_seconds\n";
    for (int i = 0; i < kRuns; ++i) {
      const auto idx = static_cast<std::size_t>(i);
      out << "doctor," << i << "," << doctor[idx] << "," << connectOnly[idx] << "\n";
      out << "tcg_probe," << i << "," << probe[idx] << "," << bare[idx] << "\n";
    }
    std::printf("%-12s %12s %14s %8s\n", "figure", "median_s", "baseline_s", "ratio");
    std::printf("%-12s %12.3f %14.3f %8.1f\n", "doctor", median(doctor), median(connectOnly),
                median(doctor) / median(connectOnly));
    std::printf("%-12s %12.3f %14.3f %8.1f\n", "tcg_probe", median(probe), median(bare),
                median(probe) / median(bare));
    std::printf("baselines: doctor --only libvirt; create+destroy of a paused guest\n");
    std::printf("csv: %s\n", csv.c_str());
    return 0;
  } catch (const std::exception &e) {
    std::cerr << "doctor_bench: " << e.what() << "\n";
    return 1;
  }
}
