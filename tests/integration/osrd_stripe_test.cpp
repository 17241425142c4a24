// osrd in network namespaces, end to end:
//
//   src ─ ing ═╦═ r1 ═╦═ egr ─ sink        ing → rX shaped with tbf:
//              ╠═ r2 ═╣                    32, 16 and 8 Mbit/s
//              ╚═ r3 ═╝
//
// ing stripes src→sink traffic over the three relays (weighted by the path
// rates); egr re-sequences it and stripes the ACKs back. A real TCP transfer
// of pseudo-random bytes must arrive complete and byte-identical (SHA-256),
// faster than the same transfer over the best single path measured in the
// same run; a path cut in the middle of a transfer must not stop it. With
// 25 ms of extra delay on r3 (osrd's --relay-delay), the egress's playout
// must hold what crossed r1 and r2 so that every packet, even a lone one,
// sees r3's latency.
#include "lab.hpp"
#include "process.hpp"
#include "transfer.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <array>
#include <chrono>
#include <future>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <random>
#include <sodium.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>

namespace nvbox::test {
namespace {

constexpr const char *kKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

class OsrdStripe : public Lab {
protected:
  void SetUp() override {
    ASSERT_EQ(sodium_init() >= 0, true);
    src_ = makeNamespace();
    ing_ = makeNamespace();
    egr_ = makeNamespace();
    sink_ = makeNamespace();
    for (int i = 0; i < 3; ++i) {
      relays_.push_back(makeNamespace());
    }
    link(src_, "v-ing", "10.10.0.1/24", ing_, "v-src", "10.10.0.2/24");
    link(egr_, "v-sink", "10.20.0.1/24", sink_, "v-egr", "10.20.0.2/24");
    route(src_, "10.20.0.0/24", "10.10.0.2");
    route(sink_, "10.10.0.0/24", "10.20.0.1");
    loopbackAddress(ing_, "10.9.0.1/32");
    loopbackAddress(egr_, "10.9.0.2/32");
    const std::uint64_t rates[] = {32'000'000, 16'000'000, 8'000'000};
    for (int i = 0; i < 3; ++i) {
      const std::string n = std::to_string(i + 1);
      const std::string &r = relays_[static_cast<std::size_t>(i)];
      link(ing_, "v-r" + n, "10.1." + n + ".1/24", r, "v-ing", "10.1." + n + ".2/24");
      link(r, "v-egr", "10.2." + n + ".1/24", egr_, "v-r" + n, "10.2." + n + ".2/24");
      route(r, "10.9.0.2/32", "10.2." + n + ".2");
      route(r, "10.9.0.1/32", "10.1." + n + ".1");
      shape(ing_, "v-r" + n, rates[i]);
      shape(egr_, "v-r" + n, rates[i]);
    }
    for (const auto &ns : {ing_, egr_}) {
      sysctl(ns, "net.ipv4.ip_forward", "1");
    }
    const std::string osrd = builtBinary("osrd");
    auto start = [&](const std::string &ns, const std::string &name,
                     std::vector<std::string> extra) {
      std::vector<std::string> argv{osrd,   "--name",    name,          "--key",
                                    kKey,   "--control", sock(name),    "--tun",
                                    "osr0", "--listen",  listenOf(name)};
      argv.insert(argv.end(), extra.begin(), extra.end());
      daemons_.push_back(std::make_unique<Child>(spawnIn(ns, argv)));
    };
    const std::string forward =
        "name=fwd,flow=1,dst=10.20.0.0/24,egress=10.9.0.2:7400,"
        "relays=10.1.1.2:7400+10.1.2.2:7400+10.1.3.2:7400,scheduler=weighted,"
        "rates=4000000+2000000+1000000";
    const std::string back = "name=back,flow=2,dst=10.10.0.0/24,egress=10.9.0.1:7400,"
                             "relays=10.2.1.1:7400+10.2.2.1:7400+10.2.3.1:7400,scheduler=weighted,"
                             "rates=4000000+2000000+1000000";
    start(ing_, "ing", {"--stripe", forward, "--tun-address", "10.99.0.1/32"});
    start(egr_, "egr", {"--stripe", back, "--tun-address", "10.99.0.2/32"});
    for (std::size_t i = 0; i < 3; ++i) {
      start(relays_[i], "r" + std::to_string(i + 1),
            {"--relay-delay", std::to_string(relayDelayMs_[i])});
    }
    waitForSockets();
    route(ing_, "10.20.0.0/24", "", "osr0");
    route(egr_, "10.10.0.0/24", "", "osr0");
    waitForPaths("ing", 3);
    waitForPaths("egr", 3);
  }

  std::pair<Transfer, Transfer> send(std::size_t bytes, std::function<void()> midway = {}) {
    TransferOptions o;
    o.clientNs = src_;
    o.serverNs = sink_;
    o.serverAddress = "10.20.0.2";
    o.bytes = bytes;
    o.midway = std::move(midway);
    return transfer(o);
  }

  void TearDown() override {
    daemons_.clear(); // stop the daemons before their namespaces go
    Lab::TearDown();
  }

  std::string sock(const std::string &name) const {
    return "/tmp/nvbox-test-" + std::to_string(::getpid()) + "-" + name + ".sock";
  }
  static std::string listenOf(const std::string &name) {
    if (name == "ing") {
      return "10.9.0.1:7400";
    }
    if (name == "egr") {
      return "10.9.0.2:7400";
    }
    return "0.0.0.0:7400";
  }

  void waitForSockets() {
    for (const auto &name : {"ing", "egr", "r1", "r2", "r3"}) {
      bool up = false;
      for (int i = 0; i < 200 && !up; ++i) {
        up = ::access(sock(name).c_str(), F_OK) == 0;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      ASSERT_TRUE(up) << name << " did not start:\n" << outputs();
    }
  }

  void waitForPaths(const std::string &name, int want) {
    int up = 0;
    for (int i = 0; i < 100 && up != want; ++i) {
      const auto st = osrdControl(sock(name), {{"cmd", "status"}});
      up = 0;
      for (const auto &p : st["status"]["stripes"][0]["paths"]) {
        up += p["up"].get<bool>() ? 1 : 0;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ASSERT_EQ(up, want) << "paths of " << name << " did not come up:\n" << outputs();
  }

  std::string outputs() const {
    std::string all;
    for (const auto &d : daemons_) {
      all += d->output();
    }
    return all;
  }

  std::array<unsigned, 3> relayDelayMs_{}; // per relay, set before SetUp
  std::string src_, ing_, egr_, sink_;
  std::vector<std::string> relays_;
  std::vector<std::unique_ptr<Child>> daemons_;
};

class OsrdStripeDelayed : public OsrdStripe {
protected:
  void SetUp() override {
    relayDelayMs_ = {0, 0, 25};
    OsrdStripe::SetUp();
  }
};

// A UDP socket made in namespace `ns` (it stays there), bound to `addr`:0.
int udpSocketIn(const std::string &ns, const char *addr) {
  int fd = -1;
  netconfig::runIn(ns, [&] {
    fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    ::inet_pton(AF_INET, addr, &sa.sin_addr);
    if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr *>(&sa), sizeof sa) != 0) {
      ::close(fd);
      fd = -1;
    }
  });
  return fd;
}

TEST_F(OsrdStripe, StripedTcpTransferIsCompleteAndBeatsTheBestSinglePath) {
  constexpr std::size_t kBytes = 24 << 20;
  const auto [sent, got] = send(kBytes);
  EXPECT_EQ(got.bytes, kBytes);
  EXPECT_EQ(got.digest, sent.digest);
  const auto status = osrdControl(sock("egr"), {{"cmd", "status"}})["status"];
  const auto &flow = status["egress"]["flows"][0];
  EXPECT_EQ(flow["flow"], 1);
  EXPECT_GT(flow["reordered"].get<std::uint64_t>() + flow["delivered"].get<std::uint64_t>(), 0U);
  std::size_t pathsUsed = flow["paths"].size();
  EXPECT_EQ(pathsUsed, 3U) << flow.dump();

  // A path's rate changes in place (deploy does so when a link's rate changes).
  ASSERT_EQ(
      osrdControl(sock("ing"),
                  {{"cmd", "set_rate"}, {"stripe", "fwd"}, {"path", 2}, {"rate", 123456}})["ok"],
      true);
  EXPECT_EQ(
      osrdControl(sock("ing"), {{"cmd", "status"}})["status"]["stripes"][0]["paths"][2]["rate"],
      123456);
  EXPECT_EQ(osrdControl(sock("ing"), {{"cmd", "set_rate"}, {"stripe", "fwd"}, {"path", 2}})["ok"],
            false);
  EXPECT_EQ(osrdControl(sock("ing"),
                        {{"cmd", "set_rate"}, {"stripe", "fwd"}, {"path", 9}, {"rate", 1}})["ok"],
            false);

  // The same transfer over the best path alone (32 Mbit/s).
  for (int path : {1, 2}) {
    for (const auto &name : {"ing", "egr"}) {
      ASSERT_EQ(osrdControl(sock(name), {{"cmd", "remove_path"},
                                         {"stripe", std::string(name) == "ing" ? "fwd" : "back"},
                                         {"path", path}})["ok"],
                true);
    }
  }
  const auto [sentSingle, gotSingle] = send(kBytes / 2);
  EXPECT_EQ(gotSingle.digest, sentSingle.digest);
  std::printf("striped: %.1f Mbit/s, best single path: %.1f Mbit/s, sum of rates 56 Mbit/s\n",
              sent.mbps(), sentSingle.mbps());
  EXPECT_GT(sent.mbps(), sentSingle.mbps());
}

TEST_F(OsrdStripe, CuttingAPathMidTransferDoesNotStopIt) {
  constexpr std::size_t kBytes = 16 << 20;
  const auto [sent, got] = send(kBytes, [&] {
    // The 16 Mbit/s path dies in both directions.
    deleteLink(ing_, "v-r2");
  });
  EXPECT_EQ(got.bytes, kBytes);
  EXPECT_EQ(got.digest, sent.digest);
  const auto status = osrdControl(sock("ing"), {{"cmd", "status"}})["status"];
  const auto &paths = status["stripes"][0]["paths"];
  ASSERT_EQ(paths.size(), 3U);
  EXPECT_EQ(paths[1]["up"], false);
  EXPECT_GE(paths[1]["went_down"].get<int>(), 1);
  EXPECT_EQ(status["stripes"][0]["k"], 2);
}

TEST_F(OsrdStripe, ForgedAndTamperedPacketsAreDroppedAndCounted) {
  // Garbage to a relay's tunnel port, from the ingress namespace.
  netconfig::runIn(ing_, [] {
    const int s = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(7400);
    ::inet_pton(AF_INET, "10.1.1.2", &sa.sin_addr);
    std::vector<unsigned char> junk(100, 0x41);
    junk[0] = 0x4F; // right magic and version, wrong tag
    junk[1] = 0x53;
    junk[2] = 1;
    for (int i = 0; i < 10; ++i) {
      ::sendto(s, junk.data(), junk.size(), 0, reinterpret_cast<sockaddr *>(&sa), sizeof sa);
    }
    ::close(s);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const auto status = osrdControl(sock("r1"), {{"cmd", "status"}})["status"];
  const auto &rejected = status["counters"]["rejected"];
  std::uint64_t total = 0;
  for (const auto &[reason, n] : rejected.items()) {
    total += n.get<std::uint64_t>();
  }
  EXPECT_GE(total, 10U) << status.dump();
  EXPECT_TRUE(daemons_[2]->running());
}

TEST_F(OsrdStripeDelayed, TheEgressHoldsFastPartsToTheSlowestPathsLatency) {
  constexpr std::size_t kBytes = 8 << 20;
  const auto [sent, got] = send(kBytes);
  EXPECT_EQ(got.bytes, kBytes);
  EXPECT_EQ(got.digest, sent.digest);
  const auto flow = osrdControl(sock("egr"), {{"cmd", "status"}})["status"]["egress"]["flows"][0];
  EXPECT_EQ(flow["playout_active"], true) << flow.dump();
  EXPECT_GT(flow["held"].get<std::uint64_t>(), 0U) << flow.dump();
  ASSERT_EQ(flow["paths"].size(), 3U) << flow.dump();
  for (const auto &path : flow["paths"]) {
    const auto hold = path["playout_hold_us"].get<std::int64_t>();
    if (path["id"] == 2) {
      EXPECT_EQ(hold, 0) << "r3 is the slowest path: " << flow.dump();
    } else {
      EXPECT_GT(hold, 20'000) << flow.dump();
      EXPECT_LT(hold, 35'000) << flow.dump();
    }
  }

  // Lone datagrams, src -> sink -> src, each striped on its own: whichever
  // paths they take, both egresses hold them to r3's latency, so none comes
  // back in less than 2 x 25 ms (without playout, those over r1 and r2 take
  // about 1 ms).
  const int client = udpSocketIn(src_, "10.10.0.1");
  const int server = udpSocketIn(sink_, "10.20.0.2");
  ASSERT_GE(client, 0);
  ASSERT_GE(server, 0);
  sockaddr_in serverAddr{};
  socklen_t len = sizeof serverAddr;
  ::getsockname(server, reinterpret_cast<sockaddr *>(&serverAddr), &len);
  ::inet_pton(AF_INET, "10.20.0.2", &serverAddr.sin_addr);
  const timeval wait{.tv_sec = 2, .tv_usec = 0};
  ::setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
  ::setsockopt(server, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
  std::vector<double> rtts;
  for (int i = 0; i < 12; ++i) {
    const auto start = std::chrono::steady_clock::now();
    char byte = static_cast<char>(i);
    ::sendto(client, &byte, 1, 0, reinterpret_cast<sockaddr *>(&serverAddr), sizeof serverAddr);
    sockaddr_in from{};
    socklen_t fromLen = sizeof from;
    if (::recvfrom(server, &byte, 1, 0, reinterpret_cast<sockaddr *>(&from), &fromLen) != 1) {
      continue;
    }
    ::sendto(server, &byte, 1, 0, reinterpret_cast<sockaddr *>(&from), fromLen);
    if (::recv(client, &byte, 1, 0) == 1) {
      rtts.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
  }
  ::close(client);
  ::close(server);
  ASSERT_GE(rtts.size(), 8U) << "echoes lost";
  const double fastest = *std::min_element(rtts.begin(), rtts.end());
  std::printf("lone datagram RTT through the stripe: min %.1f ms over %zu echoes\n", fastest,
              rtts.size());
  EXPECT_GE(fastest, 45.0);
}

// The sink's ACKs are pure ACKs: egr sends them EXPRESS on its fastest path
// (r1 or r2, never r3 with its 25 ms), and ing writes them at once, so the
// RTT TCP sees holds r3's delay once (the data's way), not twice.
TEST_F(OsrdStripeDelayed, PureAcksGoExpressOnTheFastestPath) {
  constexpr std::size_t kBytes = 8 << 20;
  const auto [sent, got] = send(kBytes);
  EXPECT_EQ(got.bytes, kBytes);
  EXPECT_EQ(got.digest, sent.digest);
  const auto back = osrdControl(sock("egr"), {{"cmd", "status"}})["status"]["stripes"][0];
  EXPECT_EQ(back["acks"], "express") << back.dump();
  const auto express = back["express"].get<std::uint64_t>();
  EXPECT_GT(express, 1000U) << back.dump();
  std::uint64_t onPaths = 0;
  for (const auto &path : back["paths"]) {
    onPaths += path["express"].get<std::uint64_t>();
  }
  EXPECT_EQ(onPaths, express) << back.dump();
  EXPECT_EQ(back["paths"][2]["express"], 0) << "r3 is the slow path: " << back.dump();
  const auto egress = osrdControl(sock("ing"), {{"cmd", "status"}})["status"]["egress"];
  EXPECT_EQ(egress["express"], express) << egress.dump();
}

} // namespace
} // namespace nvbox::test
