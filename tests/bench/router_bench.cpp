// router_bench — what a virtual router costs on an NV-box (TCG here).
//
//   router_bench [DIR]        (writes DIR/router.csv; default: bench)
//
// Figures, each next to a baseline measured in the same run:
//   create_to_ready  create + start + agent ready (median of 3)
//                    vs start -> ready of a router already created
//   overlay_bytes    disk bytes one more router adds before boot
//                    vs the image's compressed root disk (a full copy)
//   concurrent_8     8 routers created and started at once, until all ready
//                    vs one router's create_to_ready
//   relocate         bytes moved per byte of guest memory, and downtime, of a
//                    running router moved offline (saved, moved, restored)
//                    between two testbed hosts (median of 3 moves)
//                    vs stop + start -> ready on one host
//                    (the state compressed with xz, the default)
//   relocate_gzip    the same offline moves with the state compressed with
//                    gzip (median of 3) vs the xz moves
//   relocate_live    the same for live migrations of the same router in the
//                    same run (median of 3 moves) vs the offline moves
// Exits non-zero only when a measured step fails.
#include "bench_stats.hpp"
#include "libvirtd_fixture.hpp"
#include "process.hpp"
#include "test_image.hpp"
#include "testbed.hpp"

#include "nvbox/images/image_store.hpp"
#include "nvbox/router.hpp"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <unistd.h>

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
using nvbox::test::median;

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

nvbox::RouterCreateOptions options(const std::string &name, const nvbox::PoolSpec &pool) {
  nvbox::RouterCreateOptions o;
  o.name = name;
  o.domainType = "qemu";
  o.pool = pool;
  o.config = {{"osrd", "name = " + name + "\nkey-file = /run/nvbox/key\nlisten = 127.0.0.1:7400\n"},
              {"key", std::string(64, 'e') + "\n"}};
  return o;
}

void requireReady(const nvbox::ReadyReport &r, const std::string &name) {
  if (!r.ready) {
    throw std::runtime_error("router '" + name + "' not ready: " + r.reason);
  }
}

// Removes whatever the benchmark made on the local host.
struct LocalCleanup {
  const nvbox::virt::Connection &conn;
  std::string prefix;
  std::string pool;
  fs::path poolDir;
  ~LocalCleanup() {
    nvbox::test::removeDomains(conn, prefix);
    nvbox::test::removeStoragePool(conn, pool);
    std::error_code ec;
    fs::remove_all(poolDir, ec);
  }
};

} // namespace

int main(int argc, char **argv) {
  const fs::path csv = fs::path(argc > 1 ? argv[1] : "bench") / "router.csv";
  nvbox::test::catchTermination();
  try {
    const std::string problem = nvbox::test::ensureLibvirtd();
    if (!problem.empty()) {
      throw std::runtime_error(problem);
    }
    const nvbox::images::ImageStore store(nvbox::test::testImageStore());
    const auto conn = nvbox::virt::Connection::open("qemu:///system");
    const std::string tag = "test-" + std::to_string(::getpid());
    LocalCleanup cleanup{conn, "nvbox-" + tag, "nvbox-" + tag + "-pool",
                         fs::temp_directory_path() / ("nvbox-" + tag + "-pool")};
    const nvbox::PoolSpec pool{cleanup.pool, cleanup.poolDir.string()};
    nvbox::RouterManager local(conn, nvbox::HostRef{"local", "qemu:///system"});
    (void)nvbox::pushImage(conn, store, "osr", pool); // the base, once

    // create -> ready, and start -> ready of the same router.
    std::vector<double> createReady;
    std::vector<double> startReady;
    std::vector<double> overlay;
    for (int i = 0; i < 3; ++i) {
      nvbox::test::throwIfInterrupted();
      const std::string name = tag + "-s" + std::to_string(i);
      auto t = Clock::now();
      const auto info = local.create(store, options(name, pool));
      overlay.push_back(
          static_cast<double>(fs::file_size(fs::path(pool.path) / info.metadata.volume)));
      local.start(name);
      requireReady(local.waitReady(name, 180s), name);
      createReady.push_back(since(t));
      (void)local.stop(name, 60s);
      t = Clock::now();
      local.start(name);
      requireReady(local.waitReady(name, 180s), name);
      startReady.push_back(since(t));
      local.destroy(name);
    }
    const double base =
        static_cast<double>(store.get("osr").part(nvbox::images::PartRole::Disk)->storedSize);

    // Eight at once.
    nvbox::test::throwIfInterrupted();
    auto t = Clock::now();
    std::vector<std::future<void>> boots;
    for (int i = 0; i < 8; ++i) {
      boots.push_back(std::async(std::launch::async, [&, i] {
        nvbox::RouterManager m(conn, nvbox::HostRef{"local", "qemu:///system"});
        const std::string name = tag + "-c" + std::to_string(i);
        (void)m.create(store, options(name, pool));
        m.start(name);
        requireReady(m.waitReady(name, 600s), name);
      }));
    }
    for (auto &b : boots) {
      b.get();
    }
    const double concurrent = since(t);
    for (int i = 0; i < 8; ++i) {
      local.destroy(tag + "-c" + std::to_string(i));
    }

    // Relocation between two testbed hosts, there and back.
    nvbox::test::throwIfInterrupted();
    const nvbox::test::Testbed tb("b" + std::to_string(::getpid() % 10000), 2);
    std::vector<std::string> addresses;
    for (const auto &h : tb.hosts()) {
      addresses.push_back(h.address);
    }
    const std::vector<std::string> uris = tb.uris();
    const auto c1 = nvbox::virt::Connection::open(uris[0]);
    const auto c2 = nvbox::virt::Connection::open(uris[1]);
    nvbox::RouterManager h1(c1, nvbox::HostRef{"h1", uris[0]});
    nvbox::RouterManager h2(c2, nvbox::HostRef{"h2", uris[1]});
    const nvbox::PoolSpec tbPool{};
    (void)h1.create(store, options("mover", tbPool));
    h1.start("mover");
    requireReady(h1.waitReady("mover", 180s), "mover");
    std::vector<nvbox::RelocateReport> moves;
    std::vector<nvbox::RelocateReport> liveMoves;
    std::vector<nvbox::RelocateReport> gzipMoves;
    nvbox::RouterManager *from = &h1;
    nvbox::RouterManager *to = &h2;
    const std::string *toAddress = &addresses[1];
    const std::string *fromAddress = &addresses[0];
    for (int i = 0; i < 9; ++i) {
      // Offline (xz), live and offline (gzip) moves take turns, so all see
      // the same guest.
      nvbox::RelocateOptions how;
      how.mode = i % 3 == 1 ? nvbox::RelocateMode::Live : nvbox::RelocateMode::Offline;
      how.compression = i % 3 == 2 ? nvbox::StateCompression::Gzip : nvbox::StateCompression::Xz;
      how.migrationAddress = *toAddress;
      auto &kind = i % 3 == 0 ? moves : (i % 3 == 1 ? liveMoves : gzipMoves);
      kind.push_back(from->relocate("mover", *to, store, how));
      requireReady(to->waitReady("mover", 60s), "mover");
      std::swap(from, to);
      std::swap(fromAddress, toAddress);
    }
    t = Clock::now();
    (void)from->stop("mover", 60s);
    from->start("mover");
    requireReady(from->waitReady("mover", 180s), "mover");
    const double restart = since(t);
    from->destroy("mover");

    std::vector<double> ratio;
    std::vector<double> downtime;
    for (const auto &m : moves) {
      ratio.push_back(m.toJson().at("moved_per_memory").get<double>());
      downtime.push_back(m.downtime);
    }
    std::vector<double> gzipRatio;
    std::vector<double> gzipDowntime;
    for (const auto &m : gzipMoves) {
      gzipRatio.push_back(m.toJson().at("moved_per_memory").get<double>());
      gzipDowntime.push_back(m.downtime);
    }
    std::vector<double> liveRatio;
    std::vector<double> liveDowntime;
    std::vector<double> liveSeconds;
    std::vector<double> offlineSeconds;
    for (const auto &m : moves) {
      offlineSeconds.push_back(m.seconds);
    }
    for (const auto &m : liveMoves) {
      if (!m.live) {
        throw std::runtime_error("a live relocation moved offline: " + m.reason);
      }
      liveRatio.push_back(m.toJson().at("moved_per_memory").get<double>());
      liveDowntime.push_back(m.downtime);
      liveSeconds.push_back(m.seconds);
    }

    fs::create_directories(csv.parent_path().empty() ? "." : csv.parent_path());
    std::ofstream out(csv);
    out << "figure,run,value,unit,baseline,baseline_unit\n";
    for (std::size_t i = 0; i < createReady.size(); ++i) {
      out << "create_to_ready," << i << "," << createReady[i] << ",s," << startReady[i]
          << ",start_to_ready_s\n";
      out << "overlay_bytes," << i << "," << overlay[i] << ",bytes," << base
          << ",base_disk_bytes\n";
    }
    out << "concurrent_8,0," << concurrent << ",s," << median(createReady)
        << ",one_create_to_ready_s\n";
    for (std::size_t i = 0; i < moves.size(); ++i) {
      out << "relocate_ratio," << i << "," << ratio[i] << ",bytes_per_memory_byte,"
          << moves[i].stateBytes + moves[i].diskBytes << ",bytes_moved\n";
      out << "relocate_downtime," << i << "," << downtime[i] << ",s," << restart
          << ",stop_start_to_ready_s\n";
    }
    for (std::size_t i = 0; i < gzipMoves.size(); ++i) {
      out << "relocate_gzip_ratio," << i << "," << gzipRatio[i] << ",bytes_per_memory_byte,"
          << median(ratio) << ",xz_bytes_per_memory_byte\n";
      out << "relocate_gzip_downtime," << i << "," << gzipDowntime[i] << ",s," << median(downtime)
          << ",xz_downtime_s\n";
    }
    for (std::size_t i = 0; i < liveMoves.size(); ++i) {
      out << "relocate_live_ratio," << i << "," << liveRatio[i] << ",bytes_per_memory_byte,"
          << median(ratio) << ",offline_bytes_per_memory_byte\n";
      out << "relocate_live_downtime," << i << "," << liveDowntime[i] << ",s," << median(downtime)
          << ",offline_downtime_s\n";
      out << "relocate_live_seconds," << i << "," << liveSeconds[i] << ",s," << moves[i].seconds
          << ",offline_seconds\n";
    }
    std::printf("%-18s %12s %14s %8s  baseline\n", "figure", "value", "baseline", "ratio");
    std::printf("%-18s %11.2fs %13.2fs %8.2f  start -> ready of a created router\n",
                "create_to_ready", median(createReady), median(startReady),
                median(createReady) / median(startReady));
    std::printf("%-18s %10.0fKiB %12.0fKiB %8.3f  the image's root disk (goal < 1 MiB)\n",
                "overlay_bytes", median(overlay) / 1024, base / 1024, median(overlay) / base);
    std::printf("%-18s %11.2fs %13.2fs %8.2f  one router's create -> ready\n", "concurrent_8",
                concurrent, median(createReady), concurrent / median(createReady));
    std::printf("%-18s %11.1f%% %14s %8s  moved %.1f MiB of state+disk for %llu MiB memory "
                "(goal <= 5%%)\n",
                "relocate_bytes", 100 * median(ratio), "", "",
                static_cast<double>(moves[0].stateBytes + moves[0].diskBytes) / 1048576.0,
                static_cast<unsigned long long>(moves[0].memoryMiB));
    std::printf("%-18s %11.2fs %13.2fs %8.2f  stop + start -> ready on one host\n",
                "relocate_downtime", median(downtime), restart, median(downtime) / restart);
    std::printf("%-18s %11.1f%% %13.1f%% %8.2f  offline with xz (the default)\n", "relocate_gzip",
                100 * median(gzipRatio), 100 * median(ratio), median(gzipRatio) / median(ratio));
    std::printf("%-18s %11.2fs %13.2fs %8.2f  offline with xz: downtime\n", "relocate_gzip_down",
                median(gzipDowntime), median(downtime), median(gzipDowntime) / median(downtime));
    std::printf("%-18s %11.1f%% %13.1f%% %8.2f  offline: moved %.1f MiB memory + %.1f MiB disk "
                "live (goal <= 5%%)\n",
                "relocate_live", 100 * median(liveRatio), 100 * median(ratio),
                median(liveRatio) / median(ratio),
                static_cast<double>(liveMoves[0].stateBytes) / 1048576.0,
                static_cast<double>(liveMoves[0].diskBytes) / 1048576.0);
    std::printf("%-18s %11.3fs %13.2fs %8.3f  offline downtime (save -> restored)\n",
                "relocate_live_down", median(liveDowntime), median(downtime),
                median(liveDowntime) / median(downtime));
    std::printf("%-18s %11.2fs %13.2fs %8.2f  offline relocation, whole\n", "relocate_live_total",
                median(liveSeconds), median(offlineSeconds),
                median(liveSeconds) / median(offlineSeconds));
    std::printf("csv: %s\n", csv.c_str());
    return 0;
  } catch (const std::exception &e) {
    std::cerr << "router_bench: " << e.what() << "\n";
    return 1;
  }
}
