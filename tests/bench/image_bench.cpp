// image_bench — what an OSR router image costs: its size, its build, its
// upload to a host, and its boot.
//
//   image_bench [DIR]        (writes DIR/image.csv; default: bench)
//
// Figures, each next to a baseline measured in the same run:
//   size      each part stored vs raw; the bundle vs the raw disk and vs the
//             same root disk as an uncompressed qcow2 (what zstd clusters buy)
//   build     `nvbox image build --force` (one run) vs one libguestfs appliance
//             launch, the floor of any build
//   push      pushImage to the local libvirtd, fresh pool (median of 3) vs
//             copying the same files on the local disk; and a second push,
//             where every part is "already there" (read back and hashed)
//   boot      virDomainCreate -> agent reports ready (median of 3) vs
//             virDomainCreate -> the kernel runs /init (console)
// Exits non-zero only when a measured step fails.
#include "bench_stats.hpp"
#include "libvirtd_fixture.hpp"
#include "process.hpp"

#include "nvbox/guest_agent.hpp"
#include "nvbox/image_push.hpp"
#include "nvbox/images/guestfs_session.hpp"
#include "nvbox/images/image_builder.hpp"
#include "nvbox/images/image_store.hpp"
#include "nvbox/router_domain.hpp"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>
#include <unistd.h>

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using nvbox::test::median;
using nvbox::test::repeat;

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

double mib(std::uint64_t bytes) {
  return static_cast<double>(bytes) / (1024.0 * 1024.0);
}

// A scratch directory and a throwaway pool, removed whatever happens.
struct Scratch {
  fs::path dir;
  const nvbox::virt::Connection *conn = nullptr;
  std::string pool;
  ~Scratch() {
    if (conn != nullptr) {
      nvbox::test::removeDomains(*conn, pool);
      nvbox::test::removeStoragePool(*conn, pool);
    }
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

struct Boot {
  double toInit = 0;
  double toReady = 0;
};

// Boots one router from the pushed image and times it; the console is read
// on a thread to see when the kernel hands over to /init.
Boot bootOnce(const nvbox::virt::Connection &conn, const nvbox::PushReport &pushed,
              const nvbox::images::Manifest &m, const std::string &pool, int run) {
  auto path = [&](nvbox::images::PartRole role) {
    for (const auto &p : pushed.parts) {
      if (p.role == role) {
        return p.path;
      }
    }
    throw std::runtime_error("part missing from the push report");
  };
  const std::string name = pool + "-boot" + std::to_string(run);
  nvbox::virt::StoragePoolPtr p(virStoragePoolLookupByName(conn.get(), pool.c_str()));
  const std::string volXml =
      nvbox::overlayVolumeXml(name + ".qcow2", path(nvbox::images::PartRole::Disk),
                              m.part(nvbox::images::PartRole::Disk)->rawSize);
  nvbox::virt::StorageVolPtr vol(virStorageVolCreateXML(p.get(), volXml.c_str(), 0));
  if (!vol) {
    throw std::runtime_error("overlay: " + nvbox::virt::lastError());
  }
  nvbox::RouterDomainSpec spec;
  spec.name = name;
  spec.kernel = path(nvbox::images::PartRole::Kernel);
  spec.initrd = path(nvbox::images::PartRole::Initrd);
  spec.cmdline = "console=ttyS0 panic=-1"; // not quiet: the console shows "Run /init"
  spec.disk = virStorageVolGetPath(vol.get());
  spec.config = {{"osrd", "name = bench\nkey-file = /run/nvbox/key\nlisten = 127.0.0.1:7400\n"},
                 {"key", std::string(64, 'b') + "\n"}};
  const std::string xml = nvbox::routerDomainXml(spec);

  const auto start = Clock::now();
  nvbox::virt::DomainPtr dom(virDomainCreateXML(
      conn.get(), xml.c_str(), VIR_DOMAIN_START_PAUSED | VIR_DOMAIN_START_AUTODESTROY));
  if (!dom) {
    throw std::runtime_error("router: " + nvbox::virt::lastError());
  }
  // The console is read on its own connection: a blocking stream read must
  // not share a connection with the agent's calls.
  const auto consoleConn = nvbox::virt::Connection::open("qemu:///system");
  unsigned char uuid[VIR_UUID_BUFLEN];
  virDomainGetUUID(dom.get(), uuid);
  nvbox::virt::DomainPtr consoleDom(virDomainLookupByUUID(consoleConn.get(), uuid));
  nvbox::virt::StreamPtr console(virStreamNew(consoleConn.get(), 0));
  if (!consoleDom || virDomainOpenConsole(consoleDom.get(), nullptr, console.get(),
                                          VIR_DOMAIN_CONSOLE_FORCE) != 0) {
    throw std::runtime_error("console: " + nvbox::virt::lastError());
  }
  double toInit = -1;
  std::thread reader([&] {
    std::string text;
    char buf[4096];
    int n = 0;
    while ((n = virStreamRecv(console.get(), buf, sizeof buf)) > 0) {
      text.append(buf, static_cast<std::size_t>(n));
      if (toInit < 0 && text.find("Run /init") != std::string::npos) {
        toInit = since(start);
      }
      if (text.size() > 1 << 20) {
        text.erase(0, text.size() - 4096);
      }
    }
  });
  // On every way out (a throw too): destroying the domain ends the console
  // stream, so the reader can be joined.
  struct Stop {
    virDomainPtr dom;
    std::thread &reader;
    ~Stop() {
      virDomainDestroy(dom);
      reader.join();
    }
  };
  nvbox::ReadyReport ready;
  {
    const Stop stop{dom.get(), reader};
    if (virDomainResume(dom.get()) != 0) {
      throw std::runtime_error("resume: " + nvbox::virt::lastError());
    }
    ready = nvbox::waitUntilReady(conn, dom.get(), std::chrono::seconds(180));
  }
  virStorageVolDelete(vol.get(), 0);
  if (!ready.ready) {
    throw std::runtime_error("router not ready: " + ready.reason);
  }
  return {toInit, since(start)};
}

} // namespace

int main(int argc, char **argv) {
  const fs::path csv = fs::path(argc > 1 ? argv[1] : "bench") / "image.csv";
  try {
    const std::string problem = nvbox::test::ensureLibvirtd();
    if (!problem.empty()) {
      throw std::runtime_error(problem);
    }
    const auto conn = nvbox::virt::Connection::open("qemu:///system");
    Scratch scratch;
    scratch.dir = fs::temp_directory_path() / ("nvbox-test-bench-" + std::to_string(::getpid()));
    fs::create_directories(scratch.dir);
    const fs::path storeDir = scratch.dir / "store";

    // Build (forced, so a cached store does not hide the cost) vs one launch.
    auto t = Clock::now();
    const auto built =
        nvbox::test::nvbox({"--json", "image", "build", "--force", "--store", storeDir.string()});
    const double buildSeconds = since(t);
    if (built.exitCode != 0) {
      throw std::runtime_error("image build: " + built.err);
    }
    t = Clock::now();
    {
      nvbox::images::GuestfsSession session;
      session.addScratchDisk(std::int64_t{64} << 20);
      session.launch();
    }
    const double launchSeconds = since(t);

    const nvbox::images::ImageStore store(storeDir);
    const nvbox::images::Manifest m = store.get("osr");

    // Sizes: the bundle, and the root disk without compressed clusters.
    const fs::path bundle = scratch.dir / "osr.nvbox";
    const auto exported = nvbox::test::nvbox(
        {"image", "export", "osr", "-o", bundle.string(), "--store", storeDir.string()});
    if (exported.exitCode != 0) {
      throw std::runtime_error("image export: " + exported.err);
    }
    const fs::path plain = scratch.dir / "plain.qcow2";
    const auto converted =
        nvbox::test::run({"qemu-img", "convert", "-O", "qcow2",
                          (storeDir / "osr" / "root.qcow2").string(), plain.string()});
    if (converted.exitCode != 0) {
      throw std::runtime_error("qemu-img: " + converted.err);
    }
    const std::uint64_t bundleBytes = fs::file_size(bundle);
    const std::uint64_t plainBytes = fs::file_size(plain);
    const std::uint64_t rawDisk = m.part(nvbox::images::PartRole::Disk)->rawSize;

    // Push: fresh pool each run vs copying the files locally.
    scratch.conn = &conn;
    scratch.pool = "nvbox-test-" + std::to_string(::getpid()) + "-bench";
    nvbox::PoolSpec pool{scratch.pool, (scratch.dir / "pool").string()};
    nvbox::PushReport pushed;
    const auto push = repeat(3, [&] {
      nvbox::test::removeStoragePool(conn, pool.name);
      const auto start = Clock::now();
      pushed = nvbox::pushImage(conn, store, "osr", pool);
      return since(start);
    });
    const auto copy = repeat(3, [&] {
      const fs::path to = scratch.dir / "copy";
      fs::remove_all(to);
      fs::create_directories(to);
      const auto start = Clock::now();
      for (const auto &p : m.parts) {
        fs::copy_file(store.imageDir("osr") / p.file, to / p.file);
      }
      ::sync();
      return since(start);
    });
    const auto repush = repeat(3, [&] {
      const auto start = Clock::now();
      const auto r = nvbox::pushImage(conn, store, "osr", pool);
      if (r.bytesUploaded != 0) {
        throw std::runtime_error("a second push uploaded again");
      }
      return since(start);
    });

    // Boot to ready vs boot to /init.
    std::vector<double> ready;
    std::vector<double> init;
    for (int run = 0; run < 3; ++run) {
      const Boot b = bootOnce(conn, pushed, m, pool.name, run);
      ready.push_back(b.toReady);
      init.push_back(b.toInit);
    }

    fs::create_directories(csv.parent_path().empty() ? "." : csv.parent_path());
    std::ofstream out(csv);
    out << "figure,value,unit,baseline,baseline_unit\n";
    for (const auto &p : m.parts) {
      out << "size_" << nvbox::images::toString(p.role) << "," << p.storedSize << ",bytes,"
          << p.rawSize << ",raw_bytes\n";
    }
    out << "size_bundle," << bundleBytes << ",bytes," << rawDisk << ",raw_disk_bytes\n";
    out << "size_disk_plain_qcow2," << m.part(nvbox::images::PartRole::Disk)->storedSize
        << ",bytes," << plainBytes << ",uncompressed_qcow2_bytes\n";
    out << "build," << buildSeconds << ",s," << launchSeconds << ",guestfs_launch_s\n";
    for (std::size_t i = 0; i < push.size(); ++i) {
      out << "push," << push[i] << ",s," << copy[i] << ",local_copy_s\n";
      out << "repush," << repush[i] << ",s," << push[i] << ",push_s\n";
    }
    for (std::size_t i = 0; i < ready.size(); ++i) {
      out << "boot_to_ready," << ready[i] << ",s," << init[i] << ",boot_to_init_s\n";
    }

    std::printf("%-8s %-11s %11s %11s %7s\n", "size", "part", "stored_MiB", "raw_MiB", "ratio");
    for (const auto &p : m.parts) {
      std::printf("%-8s %-11s %11.2f %11.2f %6.1f%%\n", "", p.file.c_str(), mib(p.storedSize),
                  mib(p.rawSize),
                  100.0 * static_cast<double>(p.storedSize) / static_cast<double>(p.rawSize));
    }
    std::printf(
        "%-8s %-11s %11.2f %11.2f %6.1f%%   (bundle vs raw disk; goal <= 16 MiB, <= 10%%)\n", "",
        "bundle", mib(bundleBytes), mib(rawDisk),
        100.0 * static_cast<double>(bundleBytes) / static_cast<double>(rawDisk));
    std::printf("%-8s %-11s %11.2f %11.2f %6.1f%%   (zstd clusters vs uncompressed qcow2)\n", "",
                "root disk", mib(m.part(nvbox::images::PartRole::Disk)->storedSize),
                mib(plainBytes),
                100.0 * static_cast<double>(m.part(nvbox::images::PartRole::Disk)->storedSize) /
                    static_cast<double>(plainBytes));
    std::printf("%-14s %10s %12s %8s  baseline\n", "figure", "value_s", "baseline_s", "ratio");
    std::printf("%-14s %10.2f %12.2f %8.2f  one libguestfs launch\n", "build", buildSeconds,
                launchSeconds, buildSeconds / launchSeconds);
    std::printf("%-14s %10.3f %12.3f %8.2f  local file copy (median of 3; %.1f MiB)\n", "push",
                median(push), median(copy), median(push) / median(copy), mib(m.storedSize()));
    std::printf("%-14s %10.3f %12.3f %8.2f  first push (all parts already there)\n", "repush",
                median(repush), median(push), median(repush) / median(push));
    std::printf("%-14s %10.2f %12.2f %8.2f  create -> kernel runs /init (TCG, median of 3)\n",
                "boot_to_ready", median(ready), median(init), median(ready) / median(init));
    std::printf("csv: %s\n", csv.c_str());
    return 0;
  } catch (const std::exception &e) {
    std::cerr << "image_bench: " << e.what() << "\n";
    return 1;
  }
}
