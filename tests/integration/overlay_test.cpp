// A five-router overlay across two hosts of the one-machine testbed (label
// vm), driven through the real `nvbox` binary the way a user drives it:
// deploy → a TCP transfer from the source endpoint to the sink endpoint
// through the stripe (byte-identical, faster than the best single path) →
// deploy again (nothing changes) → a relay suspended: the stripe carries
// over the other paths, naming the one out; resumed, it carries again → a
// changed link shaped anew with every router kept → scheduled link events
// (a link down and up, the ingress's and the egress's links slowed) while a
// stream runs (`nvbox run`), with an inspect from another process waiting
// for the agent the run holds → destroy (no domain, volume, bridge, VXLAN,
// veth or namespace of the overlay remains on either host). Then a stripe whose relays the path
// oracle names; and nvbox killed in the middle of a deploy, after which destroy still leaves
// nothing.
#include "libvirtd_fixture.hpp"
#include "process.hpp"
#include "test_image.hpp"
#include "testbed.hpp"

#include "nvbox/libvirt.hpp"
#include "nvbox/netconfig/host_network.hpp"
#include "nvbox/netconfig/netns.hpp"
#include "nvbox/overlay_plan.hpp"
#include "nvbox/overlay_transfer.hpp"
#include "nvbox/router.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <future>
#include <gtest/gtest.h>
#include <optional>
#include <set>
#include <sstream>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace nvbox {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const std::string kNvbox = fs::path(NVBOX_BINARY_DIR) / "bin/nvbox";

class OverlayTest : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_EQ(test::ensureLibvirtd(), "");
    store_ = test::testImageStore();
    tb_ = "o" + std::to_string(::getpid() % 10000);
    overlay_ = "t" + std::to_string(::getpid());
    ASSERT_NO_THROW(testbed_.emplace(tb_, 2));
    for (const auto &h : testbed_->hosts()) {
      uris_.push_back(h.uri);
      underlays_.push_back(h.address);
    }
    file_ = fs::temp_directory_path() / (overlay_ + ".yaml");
    std::ofstream(file_) << topology();
  }

  void TearDown() override {
    if (testbed_) {
      (void)nvbox({"destroy", file_.string()});
      const auto down = testbed_->down();
      EXPECT_EQ(down.exitCode, 0) << down.out << down.err;
    }
    fs::remove(file_);
  }

  // `changed`: the ing-r1 link slower and delayed, and events that take the
  // ing-r2 link (a VXLAN across the hosts) down and back up, then slow the
  // ing-r3 and r3-egr links.
  std::string topology(bool changed = false) const {
    std::ostringstream y;
    y << "overlay: " << overlay_ << "\n"
      << "hosts:\n";
    for (std::size_t i = 0; i < 2; ++i) {
      y << "  h" << i + 1 << ": {uri: \"" << uris_[i] << "\", underlay: " << underlays_[i]
        << ", netns: nvbox-tb-" << tb_ << "-h" << i + 1 << "}\n";
    }
    // Paths of 4, 3 and 2 Mbit/s: slow enough that five TCG guests on two
    // cores forward them at full rate, so the stripe's sum shows.
    y << "routers:\n"
         "  ing: {host: h1, role: ingress}\n"
         "  r1: {host: h1}\n"
         "  r2: {host: h2}\n"
         "  r3: {host: h1}\n"
         "  egr: {host: h2, role: egress}\n"
         "links:\n"
      << (changed ? "  - {between: [ing, r1], rate: 1M, delay: 3ms}\n"
                  : "  - {between: [ing, r1], rate: 4M}\n")
      << "  - {between: [r1, egr], rate: 4M}\n"
         "  - {between: [ing, r2], rate: 3M}\n"
         "  - {between: [r2, egr], rate: 3M}\n"
         "  - {between: [ing, r3], rate: 2M}\n"
         "  - {between: [r3, egr], rate: 2M}\n"
         "endpoints:\n"
         "  src: {router: ing}\n"
         "  sink: {router: egr}\n"
         // weighted, with the links' rates: under TCG the adaptive default
         // measures these guests' paths at about half their rate
         // (docs/osrd-benchmarks.md, "Through router VMs") and was once
         // slower than its best single path here; this test is about the
         // overlay, the namespaces' osrd tests about the scheduler.
         "stripes:\n"
         "  fwd: {ingress: ing, egress: egr, relays: [r1, r2, r3], scheduler: weighted}\n";
    if (changed) {
      // Then one of the ingress's links and one of the egress's slower: both
      // go through the routers' agents, the ingress's while the run polls
      // its osrd through the same channel.
      y << "events:\n"
           "  - {at: 2s, link: ing-r2, state: down}\n"
           "  - {at: 5s, link: ing-r2, state: up}\n"
           "  - {at: 8s, link: ing-r3, rate: 1M}\n"
           "  - {at: 10s, link: r3-egr, rate: 1M}\n";
    }
    return y.str();
  }

  test::RunResult nvbox(std::vector<std::string> args) const {
    // The subcommand may follow global options (--json).
    if (std::find(args.begin(), args.end(), std::string("deploy")) != args.end()) {
      args.insert(args.end(), {"--store", store_.string()});
    }
    args.insert(args.begin(), kNvbox);
    return test::run(args);
  }

  // What of the overlay is left on the hosts: domains, volumes, host links,
  // namespaces; empty when clean.
  std::vector<std::string> leftovers() const {
    std::vector<std::string> out;
    const std::string prefix = overlayLinkPrefix(overlay_);
    for (std::size_t i = 0; i < 2; ++i) {
      const auto conn = virt::Connection::open(uris_[i]);
      for (const auto &r : RouterManager(conn, HostRef{"h", uris_[i]}).list()) {
        out.push_back("router " + r.name);
      }
      const virt::StoragePoolPtr pool(virStoragePoolLookupByName(conn.get(), "nvbox"));
      if (pool) {
        virStoragePoolRefresh(pool.get(), 0);
        char **names = nullptr;
        const int n = virStoragePoolListVolumes(pool.get(), names, 0);
        std::vector<char *> list(static_cast<std::size_t>(std::max(n, 0)));
        const int got = virStoragePoolListVolumes(pool.get(), list.data(), n);
        for (int v = 0; v < got; ++v) {
          const std::string name = list[static_cast<std::size_t>(v)];
          std::free(list[static_cast<std::size_t>(v)]); // NOLINT: libvirt's allocation
          if (name.find(".qcow2") != std::string::npos &&
              name.find("root.qcow2") == std::string::npos) {
            out.push_back("volume " + name); // a router overlay (base parts stay)
          }
        }
      }
      const netconfig::HostNetwork net("nvbox-tb-" + tb_ + "-h" + std::to_string(i + 1));
      for (const auto &link : net.links(prefix)) {
        out.push_back("link " + link);
      }
    }
    for (const auto &ns : netconfig::listNamespaces()) {
      if (ns.starts_with("nvbox-" + overlay_ + ".")) {
        out.push_back("namespace " + ns);
      }
    }
    return out;
  }

  fs::path store_;
  fs::path file_;
  std::string tb_;
  std::string overlay_;
  std::optional<test::Testbed> testbed_;
  std::vector<std::string> uris_;
  std::vector<std::string> underlays_;
};

TEST_F(OverlayTest, DeployTransferRedeployDestroy) {
  const auto deployed = nvbox({"deploy", file_.string()});
  ASSERT_EQ(deployed.exitCode, 0) << deployed.out << deployed.err;
  EXPECT_NE(deployed.out.find("5 created"), std::string::npos) << deployed.out;

  const auto inspect = nvbox({"--json", "inspect", file_.string()});
  ASSERT_EQ(inspect.exitCode, 0) << inspect.err;
  const auto status = nlohmann::json::parse(inspect.out);
  ASSERT_EQ(status["routers"].size(), 5U);
  for (const auto &r : status["routers"]) {
    EXPECT_EQ(r["state"], "running") << r.dump();
    EXPECT_TRUE(r["current"].get<bool>()) << r.dump();
  }
  // Links across the hosts are VXLANs, the others bridges.
  for (const auto &l : status["plan"]["links"]) {
    const bool across = l["a"]["host"] != l["b"]["host"];
    EXPECT_EQ(l["kind"], across ? "vxlan" : "bridge") << l.dump();
  }

  const auto measured = nvbox({"--json", "transfer", file_.string(), "--from", "src", "--to",
                               "sink", "--bytes", "3M", "--compare"});
  ASSERT_EQ(measured.exitCode, 0) << measured.out << measured.err;
  const auto m = nlohmann::json::parse(measured.out);
  std::cout << measured.out << "\n";
  EXPECT_TRUE(m["identical"].get<bool>());
  EXPECT_EQ(m["bytes"], 3U << 20);
  ASSERT_EQ(m["paths"].size(), 3U);
  for (const auto &p : m["paths"]) {
    EXPECT_GT(p["bytes"].get<std::uint64_t>(), 0U) << "every path carries a share";
  }
  EXPECT_GT(m["mbps"].get<double>(), m["best_single_mbps"].get<double>())
      << "the stripe is faster than its best single path";

  const auto again = nvbox({"--json", "deploy", file_.string()});
  ASSERT_EQ(again.exitCode, 0) << again.err;
  EXPECT_FALSE(nlohmann::json::parse(again.out)["changed"].get<bool>()) << again.out;

  // With a relay suspended the stripe carries over its other paths, at
  // once rather than after waiting 60 s for the dead one, and names it.
  const auto suspended = test::run({kNvbox, "router", "suspend", "r1", "--host", uris_[0]});
  ASSERT_EQ(suspended.exitCode, 0) << suspended.err;
  // osrd takes the path out 0.5 s after r1's last probe reply: the transfer
  // then finds it down, as it would some time after a relay failed. (One
  // started sooner sees it go down on the way, and names it too.)
  std::this_thread::sleep_for(1500ms);
  const auto started = std::chrono::steady_clock::now();
  const auto partial = nvbox(
      {"--json", "transfer", file_.string(), "--from", "src", "--to", "sink", "--bytes", "2M"});
  const auto took = std::chrono::steady_clock::now() - started;
  // A relay suspended and resumed keeps its links: its path carries again.
  const auto resumed = test::run({kNvbox, "router", "resume", "r1", "--host", uris_[0]});
  ASSERT_EQ(partial.exitCode, 0) << partial.out << partial.err;
  const auto pt = nlohmann::json::parse(partial.out);
  std::cout << partial.out << "\n";
  EXPECT_TRUE(pt["identical"].get<bool>());
  EXPECT_EQ(pt["paths_down"], nlohmann::json::array({"r1"})) << pt;
  for (const auto &p : pt["paths"]) {
    if (p["relay"] == "r1") {
      EXPECT_EQ(p["bytes"], 0U) << p;
    } else {
      EXPECT_GT(p["bytes"].get<std::uint64_t>(), 0U) << "with r1 out: " << p.dump();
    }
  }
  EXPECT_LT(took, 40s) << "the transfer waited for the dead path";
  ASSERT_EQ(resumed.exitCode, 0) << resumed.err;
  const auto after = nvbox(
      {"--json", "transfer", file_.string(), "--from", "src", "--to", "sink", "--bytes", "2M"});
  ASSERT_EQ(after.exitCode, 0) << after.out << after.err;
  const auto a = nlohmann::json::parse(after.out);
  EXPECT_TRUE(a["identical"].get<bool>());
  EXPECT_EQ(a["paths_down"], nlohmann::json::array()) << a;
  for (const auto &p : a["paths"]) {
    EXPECT_GT(p["bytes"].get<std::uint64_t>(), 0U) << "after resume: " << p.dump();
  }

  // A changed link is shaped anew on the running routers; none is replaced.
  std::ofstream(file_) << topology(true);
  const auto rewired = nvbox({"--json", "deploy", file_.string()});
  ASSERT_EQ(rewired.exitCode, 0) << rewired.err;
  const auto rw = nlohmann::json::parse(rewired.out);
  EXPECT_EQ(rw["created"].size() + rw["replaced"].size() + rw["removed"].size(), 0U) << rw;
  EXPECT_EQ(rw["kept"].size(), 5U) << rw;
  EXPECT_EQ(rw["reshaped"], nlohmann::json::array({"ing-r1"})) << rw;
  EXPECT_EQ(rw["rerated"], nlohmann::json::array({"fwd@ing", "fwd-back@egr"})) << rw;
  const auto link = status["plan"]["links"][0]; // ing-r1, both ends on h1
  const auto tc = test::run({"tc", "-n", "nvbox-tb-" + tb_ + "-h1", "-j", "qdisc", "show", "dev",
                             link["a"]["tap"].get<std::string>()});
  ASSERT_EQ(tc.exitCode, 0) << tc.err;
  EXPECT_EQ(nlohmann::json::parse(tc.out)[0]["options"]["rate"], 125000) << tc.out; // 1 Mbit/s
  const auto steady = nvbox({"--json", "deploy", file_.string()});
  EXPECT_FALSE(nlohmann::json::parse(steady.out)["changed"].get<bool>()) << steady.out;

  // Scheduled events: ing-r2 down at 2 s, up at 5 s, ing-r3 and r3-egr
  // slower at 8 and 10 s, while a stream runs. Meanwhile an inspect from
  // another process waits for the ingress's agent, which the run holds, and
  // gives up without taking it.
  auto running = std::async(std::launch::async, [&] {
    return nvbox({"--json", "run", file_.string(), "--tail", "4"});
  });
  std::this_thread::sleep_for(5s);
  const auto during = nvbox({"--json", "inspect", file_.string()});
  const auto ran = running.get();
  ASSERT_EQ(ran.exitCode, 0) << ran.out << ran.err;
  const auto run = nlohmann::json::parse(ran.out);
  std::cout << run.dump() << "\n";
  EXPECT_TRUE(run["identical"].get<bool>());
  ASSERT_EQ(during.exitCode, 0) << during.err;
  for (const auto &r : nlohmann::json::parse(during.out)["routers"]) {
    if (r["name"] == "ing") {
      EXPECT_NE(r["osrd_error"].get<std::string>().find("held by another process"),
                std::string::npos)
          << r.dump();
    }
  }
  EXPECT_NE(during.err.find("waiting for the agent of router"), std::string::npos) << during.err;
  ASSERT_EQ(run["events"].size(), 4U);
  ASSERT_EQ(run["windows"].size(), 5U);
  for (const auto &e : run["events"]) {
    const double at = e["at_ms"].get<double>() / 1000;
    EXPECT_GE(e["applied_s"].get<double>(), at) << e;
    EXPECT_LT(e["applied_s"].get<double>(), at + 1.0) << "on time: " << e;
  }
  for (std::size_t i = 0; i < 2; ++i) {
    const auto &e = run["events"][i];
    const bool up = i == 1;
    EXPECT_TRUE(std::any_of(e["paths"].begin(), e["paths"].end(),
                            [&](const nlohmann::json &p) {
                              return p["relay"] == "r2" && p["up"] == up &&
                                     p["after_s"].get<double>() < 3.0;
                            }))
        << "osrd took the path via r2 " << (up ? "back" : "out") << ": " << e;
  }
  const auto &before = run["windows"][0];
  const auto &down = run["windows"][1];
  const auto &back = run["windows"][2];
  EXPECT_GT(down["mbps"].get<double>(), 0.0) << "the stream went on over r1 and r3";
  EXPECT_LT(down["paths_mbps"]["r2"].get<double>(), 0.5 * before["paths_mbps"]["r2"].get<double>());
  EXPECT_GT(back["paths_mbps"]["r2"].get<double>(), 0.0) << "r2 carries again";
  const auto shown = nlohmann::json::parse(nvbox({"--json", "inspect", file_.string()}).out);
  EXPECT_EQ(shown["last_run"]["started"], run["started"]);

  const auto destroyed = nvbox({"destroy", file_.string()});
  ASSERT_EQ(destroyed.exitCode, 0) << destroyed.out << destroyed.err;
  EXPECT_EQ(leftovers(), std::vector<std::string>{});
}

// relays: oracle across the two hosts: the oracle (in the ingress's osrd)
// names the two relays with the least delay, r3's 15 ms links lose.
TEST_F(OverlayTest, AnOracleStripeFormsOverTheRelaysTheOracleNames) {
  std::ostringstream y;
  y << "overlay: " << overlay_ << "\nhosts:\n";
  for (std::size_t i = 0; i < 2; ++i) {
    y << "  h" << i + 1 << ": {uri: \"" << uris_[i] << "\", underlay: " << underlays_[i]
      << ", netns: nvbox-tb-" << tb_ << "-h" << i + 1 << "}\n";
  }
  y << "routers:\n"
       "  ing: {host: h1, role: ingress}\n"
       "  r1: {host: h1}\n"
       "  r2: {host: h2}\n"
       "  r3: {host: h1}\n"
       "  egr: {host: h2, role: egress}\n"
       "links:\n"
       "  - {between: [ing, r1], rate: 3M, delay: 1ms}\n"
       "  - {between: [r1, egr], rate: 3M, delay: 1ms}\n"
       "  - {between: [ing, r2], rate: 3M, delay: 2ms}\n"
       "  - {between: [r2, egr], rate: 3M, delay: 2ms}\n"
       "  - {between: [ing, r3], rate: 3M, delay: 15ms}\n"
       "  - {between: [r3, egr], rate: 3M, delay: 15ms}\n"
       "endpoints:\n"
       "  src: {router: ing}\n"
       "  sink: {router: egr}\n"
       "stripes:\n"
       "  fwd: {ingress: ing, egress: egr, relays: oracle, k: 2}\n";
  std::ofstream(file_) << y.str();
  const auto deployed = nvbox({"deploy", file_.string()});
  ASSERT_EQ(deployed.exitCode, 0) << deployed.out << deployed.err;

  const auto measured = nvbox(
      {"--json", "transfer", file_.string(), "--from", "src", "--to", "sink", "--bytes", "2M"});
  ASSERT_EQ(measured.exitCode, 0) << measured.out << measured.err;
  const auto m = nlohmann::json::parse(measured.out);
  std::cout << measured.out << "\n";
  EXPECT_TRUE(m["identical"].get<bool>());
  std::set<std::string> relays;
  for (const auto &p : m["paths"]) {
    relays.insert(p["relay"].get<std::string>());
    EXPECT_GT(p["bytes"].get<std::uint64_t>(), 0U) << p.dump();
  }
  EXPECT_EQ(relays, (std::set<std::string>{"r1", "r2"}));
  // What the ingress's oracle signalling saw (answers, re-stripes), for a
  // failure's reader.
  const auto shown = nlohmann::json::parse(nvbox({"--json", "inspect", file_.string()}).out);
  for (const auto &r : shown["routers"]) {
    if (r.value("name", "") == "ing" && r.contains("osrd") && r["osrd"].is_object()) {
      std::cout << r["osrd"].value("oracle", nlohmann::json()).dump() << "\n";
    }
  }

  const auto destroyed = nvbox({"destroy", file_.string()});
  ASSERT_EQ(destroyed.exitCode, 0) << destroyed.out << destroyed.err;
  EXPECT_EQ(leftovers(), std::vector<std::string>{});
}

TEST_F(OverlayTest, DestroyAfterNvboxWasKilledMidDeployLeavesNothing) {
  std::vector<std::string> args = {kNvbox, "deploy", file_.string(), "--store", store_.string()};
  std::vector<char *> argv;
  for (auto &a : args) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  // Wait until some routers are defined (the host side is wired by then),
  // then kill it without a chance to clean up.
  const auto conn = virt::Connection::open(uris_[0]);
  const auto deadline = std::chrono::steady_clock::now() + 120s;
  while (RouterManager(conn, HostRef{"h1", uris_[0]}).list().size() < 2 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(100ms);
  }
  ::kill(pid, SIGKILL);
  int st = 0;
  ::waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFSIGNALED(st)) << "the deploy finished before it could be killed";
  EXPECT_FALSE(leftovers().empty()) << "the killed deploy had made nothing";

  const auto destroyed = nvbox({"destroy", file_.string()});
  ASSERT_EQ(destroyed.exitCode, 0) << destroyed.out << destroyed.err;
  EXPECT_EQ(leftovers(), std::vector<std::string>{});
}

} // namespace
} // namespace nvbox
