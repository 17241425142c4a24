// The path oracle end to end, six OSRs in network namespaces:
//
//             ┌─ r1 (relay delay 30 ms) ─┐
//   src ─ ing ┼─ r2 (relay delay  0)    ─┼ egr ─ sink      oracle: in ing's
//             ├─ r3 (relay delay 10 ms) ─┤                 namespace, on
//             └─ r4 (relay delay 20 ms) ─┘                 10.9.0.1:7500
//
// Every OSR measures its peers with loop probes and reports to the oracle;
// ing's and egr's stripes say relays=oracle,k=2 (objective delay). The
// oracle must rank r2, r3 first; the stripes must form over them (HELLO /
// HELLO_ACK) and carry a real TCP transfer byte-identical; killing r2's
// osrd in the middle of a transfer must make both ends re-query and carry
// on over another relay, the transfer still complete and identical.
#include "lab.hpp"
#include "process.hpp"
#include "transfer.hpp"

#include "nvbox/netconfig/netns.hpp"
#include "nvbox/oracle_client.hpp"
#include "nvbox/oracle_server.hpp"

#include <chrono>
#include <gtest/gtest.h>
#include <memory>
#include <set>
#include <thread>
#include <unistd.h>

namespace nvbox::test {
namespace {

constexpr const char *kKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const int kRelayDelayMs[] = {30, 0, 10, 20};

class OracleLab : public Lab {
protected:
  void SetUp() override {
    src_ = makeNamespace();
    ing_ = makeNamespace();
    egr_ = makeNamespace();
    sink_ = makeNamespace();
    for (int i = 0; i < 4; ++i) {
      relays_.push_back(makeNamespace());
    }
    link(src_, "v-ing", "10.10.0.1/24", ing_, "v-src", "10.10.0.2/24");
    link(egr_, "v-sink", "10.20.0.1/24", sink_, "v-egr", "10.20.0.2/24");
    route(src_, "10.20.0.0/24", "10.10.0.2");
    route(sink_, "10.10.0.0/24", "10.20.0.1");
    loopbackAddress(ing_, "10.9.0.1/32");
    loopbackAddress(egr_, "10.9.0.2/32");
    for (int i = 0; i < 4; ++i) {
      const std::string n = std::to_string(i + 1);
      const std::string &r = relays_[static_cast<std::size_t>(i)];
      link(ing_, "v-r" + n, "10.1." + n + ".1/24", r, "v-ing", "10.1." + n + ".2/24");
      link(r, "v-egr", "10.2." + n + ".1/24", egr_, "v-r" + n, "10.2." + n + ".2/24");
      loopbackAddress(r, "10.8.0." + n + "/32");
      route(r, "10.9.0.1/32", "10.1." + n + ".1");
      route(r, "10.9.0.2/32", "10.2." + n + ".2");
      route(ing_, "10.8.0." + n + "/32", "10.1." + n + ".2");
      route(egr_, "10.8.0." + n + "/32", "10.2." + n + ".1");
      sysctl(r, "net.ipv4.ip_forward", "1");
    }
    route(egr_, "10.9.0.1/32", "10.2.1.1"); // egr reaches the oracle through r1's kernel
    route(ing_, "10.9.0.2/32", "10.1.1.2"); // and the answers come back the same way
    for (const auto &ns : {ing_, egr_}) {
      sysctl(ns, "net.ipv4.ip_forward", "1");
    }
    // The oracle, in-process, its socket in ing's namespace.
    netconfig::runIn(ing_, [&] {
      server_ = std::make_unique<OracleServer>(
          OracleServer::Config{.listen = *osr::Endpoint::parse("10.9.0.1:7500"),
                               .key = *osr::OverlayKey::fromHex(kKey)});
    });
    serverThread_ = std::thread([this] { server_->run(); });

    const std::string osrd = builtBinary("osrd");
    const std::vector<std::string> relayEps{"10.8.0.1:7400", "10.8.0.2:7400", "10.8.0.3:7400",
                                            "10.8.0.4:7400"};
    auto start = [&](const std::string &ns, const std::string &name, const std::string &listen,
                     std::vector<std::string> peers, std::vector<std::string> extra) {
      std::vector<std::string> argv{
          osrd,    "--name", name,       "--key", kKey,       "--control",     sock(name),
          "--tun", "osr0",   "--listen", listen,  "--oracle", "10.9.0.1:7500", "--report-interval",
          "300"};
      for (const auto &p : peers) {
        argv.insert(argv.end(), {"--peer", p});
      }
      argv.insert(argv.end(), extra.begin(), extra.end());
      daemons_[name] = std::make_unique<Child>(spawnIn(ns, argv));
    };
    start(ing_, "ing", "10.9.0.1:7400", relayEps,
          {"--tun-address", "10.99.0.1/32", "--stripe",
           "name=fwd,flow=1,dst=10.20.0.0/24,egress=10.9.0.2:7400,relays=oracle,k=2"});
    start(egr_, "egr", "10.9.0.2:7400", relayEps,
          {"--tun-address", "10.99.0.2/32", "--stripe",
           "name=back,flow=2,dst=10.10.0.0/24,egress=10.9.0.1:7400,relays=oracle,k=2"});
    for (int i = 0; i < 4; ++i) {
      const std::string n = std::to_string(i + 1);
      start(relays_[static_cast<std::size_t>(i)], "r" + n, relayEps[static_cast<std::size_t>(i)],
            {"10.9.0.1:7400", "10.9.0.2:7400"},
            {"--relay-delay", std::to_string(kRelayDelayMs[i]), "--group", "host" + n});
    }
    for (const auto &name : {"ing", "egr", "r1", "r2", "r3", "r4"}) {
      bool up = false;
      for (int i = 0; i < 300 && !up; ++i) {
        up = ::access(sock(name).c_str(), F_OK) == 0;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      ASSERT_TRUE(up) << name << " did not start:\n" << outputs();
    }
    route(ing_, "10.20.0.0/24", "", "osr0");
    route(egr_, "10.10.0.0/24", "", "osr0");
  }

  void TearDown() override {
    daemons_.clear();
    if (server_) {
      server_->stop();
    }
    if (serverThread_.joinable()) {
      serverThread_.join();
    }
    server_.reset();
    Lab::TearDown();
  }

  std::string sock(const std::string &name) const {
    return "/tmp/nvbox-test-" + std::to_string(::getpid()) + "-oracle-" + name + ".sock";
  }
  std::string outputs() const {
    std::string all;
    for (const auto &[name, d] : daemons_) {
      all += "--- " + name + "\n" + d->output();
    }
    return all;
  }
  // Relays of a stripe's up paths.
  std::set<std::string> upRelays(const std::string &name) {
    std::set<std::string> relays;
    const auto st = osrdControl(sock(name), {{"cmd", "status"}});
    for (const auto &p : st["status"]["stripes"][0]["paths"]) {
      if (p["up"].get<bool>()) {
        relays.insert(p["relay"].get<std::string>());
      }
    }
    return relays;
  }
  bool waitFor(const std::function<bool()> &cond, int seconds) {
    for (int i = 0; i < seconds * 10; ++i) {
      if (cond()) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return cond();
  }
  osr::oracle::Answer ask(const std::string &src, const std::string &dst, std::uint8_t k) {
    osr::oracle::Answer a;
    netconfig::runIn(ing_, [&] {
      OracleClient client(*osr::Endpoint::parse("10.9.0.1:7500"), *osr::OverlayKey::fromHex(kKey));
      a = client.query(*osr::Endpoint::parse(src), *osr::Endpoint::parse(dst), k,
                       osr::oracle::Objective::Delay);
    });
    return a;
  }

  std::string src_, ing_, egr_, sink_;
  std::vector<std::string> relays_;
  std::map<std::string, std::unique_ptr<Child>> daemons_;
  std::unique_ptr<OracleServer> server_;
  std::thread serverThread_;
};

TEST_F(OracleLab, OraclePicksTheFastRelaysAndTheStripeSurvivesLosingOne) {
  const std::set<std::string> best{"10.8.0.2:7400", "10.8.0.3:7400"};
  ASSERT_TRUE(waitFor([&] { return upRelays("ing") == best && upRelays("egr") == best; }, 30))
      << "ing: " << upRelays("ing").size() << " up\n"
      << osrdControl(sock("ing"), {{"cmd", "status"}}).dump() << "\n"
      << server_->status().dump() << "\n"
      << outputs();
  // The ingress calls its stripe settled once it carries over the relays the
  // oracle ranks best.
  const auto settled = [&] {
    const auto st = osrdControl(sock("ing"), {{"cmd", "status"}})["status"];
    return st["oracle"]["signaling"]["stripes"][0].value("settled", false);
  };
  EXPECT_TRUE(waitFor(settled, 30)) << osrdControl(sock("ing"), {{"cmd", "status"}}).dump();
  const auto a = ask("10.9.0.1:7400", "10.9.0.2:7400", 4);
  ASSERT_EQ(a.status, osr::oracle::AnswerStatus::Ok);
  ASSERT_EQ(a.count, 4);
  EXPECT_EQ(a.relays[0].relay.toString(), "10.8.0.2:7400");
  EXPECT_EQ(a.relays[1].relay.toString(), "10.8.0.3:7400");
  EXPECT_EQ(a.relays[2].relay.toString(), "10.8.0.4:7400");
  EXPECT_EQ(a.relays[3].relay.toString(), "10.8.0.1:7400");
  EXPECT_LT(a.relays[0].delay_us + 4000, a.relays[1].delay_us); // 0 vs 10 ms relay delay
  EXPECT_FALSE(a.direct_known);                                 // ing and egr have no direct link
  EXPECT_EQ(a.relays[0].group.view(), "host2");
  const auto map = server_->map(osr::Nanos(std::chrono::steady_clock::now().time_since_epoch()));
  EXPECT_EQ(map["network-map"].size(), 6U);

  TransferOptions o;
  o.clientNs = src_;
  o.serverNs = sink_;
  o.serverAddress = "10.20.0.2";
  o.bytes = 6 << 20;
  const auto [sent, got] = transfer(o);
  EXPECT_EQ(got.bytes, o.bytes);
  EXPECT_EQ(got.digest, sent.digest);

  // r2 dies mid-transfer: both ends must re-query and use another relay.
  o.bytes = 8 << 20;
  o.port = 5002;
  o.midway = [&] { daemons_.erase("r2"); };
  const auto [sent2, got2] = transfer(o);
  EXPECT_EQ(got2.bytes, o.bytes);
  EXPECT_EQ(got2.digest, sent2.digest);
  const std::set<std::string> after{"10.8.0.3:7400", "10.8.0.4:7400"};
  EXPECT_TRUE(waitFor([&] { return upRelays("ing") == after && upRelays("egr") == after; }, 20))
      << osrdControl(sock("ing"), {{"cmd", "status"}}).dump();
  const auto st = osrdControl(sock("ing"), {{"cmd", "status"}})["status"];
  const auto &sig = st["oracle"]["signaling"]["stripes"][0];
  EXPECT_GE(sig["paths_failed"].get<int>(), 1) << sig.dump();
  EXPECT_TRUE(waitFor(settled, 30)) << osrdControl(sock("ing"), {{"cmd", "status"}}).dump();
  EXPECT_GE(sig["queries"].get<int>(), 2);
  EXPECT_GE(sig["hellos_acked"].get<int>(), 3);
  EXPECT_GE(st["hello"]["accepted"].get<int>(), 0);
}

} // namespace
} // namespace nvbox::test
