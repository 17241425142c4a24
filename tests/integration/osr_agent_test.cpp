// osr-agent against the running kernel, inside Lab namespaces:
//
// - `osr-agent apply` (the real static binary) gives a veth pair, one end
//   found by MAC and one by name, its addresses, MTU, up state, routes, a
//   sysctl and tbf shaping; applying again changes nothing;
// - a bad configuration, or one naming a missing interface, changes nothing;
// - netem, which the guest kernel has and this host may not, either works or
//   fails with one line naming the interface;
// - status and osrd forwarding against a real osrd, in-process and through
//   `osr-agent serve` on a Unix socket that the agent reconnects to.
//
// iproute2 observes the result (test code only): an observer independent of
// the libnl code under test.
#include "agent_server.hpp"
#include "lab.hpp"
#include "process.hpp"

#include "nvbox/netconfig/fd.hpp"
#include "nvbox/netconfig/netns.hpp"

#include <algorithm>
#include <chrono>
#include <fcntl.h>
#include <fstream>
#include <gtest/gtest.h>
#include <map>
#include <nlohmann/json.hpp>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace nvbox::test {
namespace {

using json = nlohmann::json;

constexpr const char *kKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
constexpr const char *kMac = "52:54:00:6e:76:01";

// The configuration under test: r-a by MAC (written in upper case), r-b by
// name. `extra` is appended to r-a's iface line.
std::string config(const std::string &extra = ",rate=20M") {
  return "# written by osr_agent_test\n"
         "hostname = r1\n"
         "iface = mac=52:54:00:6E:76:01,addr=10.0.1.1/24,mtu=1400" +
         extra +
         "\n"
         "iface = name=r-b,addr=10.0.2.1/24+10.0.9.1/24\n"
         "route = dst=10.0.3.0/24,via=10.0.1.2\n"
         "route = dst=default,via=10.0.1.254,dev=r-a\n"
         "sysctl = net.ipv4.ip_forward=1\n";
}

// A path under /tmp removed when the test ends, failed or not.
class TempPath {
public:
  explicit TempPath(const std::string &name)
      : path_("/tmp/nvbox-test-" + std::to_string(::getpid()) + "-" + name) {
    ::unlink(path_.c_str());
  }
  ~TempPath() { ::unlink(path_.c_str()); }
  TempPath(const TempPath &) = delete;
  TempPath &operator=(const TempPath &) = delete;

  [[nodiscard]] const std::string &path() const { return path_; }
  void write(const std::string &text) const { std::ofstream(path_) << text; }

private:
  std::string path_;
};

// Runs osr-agent in namespace ns and in a UTS namespace of its own, so that
// `hostname = r1` cannot rename the machine running the tests.
RunResult runAgent(const std::string &ns, const std::vector<std::string> &args) {
  std::vector<std::string> argv{builtBinary("osr-agent")};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char *> cargs;
  cargs.reserve(argv.size() + 1);
  for (auto &a : argv) {
    cargs.push_back(a.data());
  }
  cargs.push_back(nullptr);
  const netconfig::Fd nsFd(::open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC));
  int pipeFds[2];
  if (!nsFd || ::pipe2(pipeFds, O_CLOEXEC) != 0) {
    throw std::runtime_error("cannot prepare to run osr-agent in '" + ns + "'");
  }
  const netconfig::Fd readEnd(pipeFds[0]);
  netconfig::Fd writeEnd(pipeFds[1]);
  const pid_t pid = ::fork();
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec.
    if (::setns(nsFd.get(), CLONE_NEWNET) != 0 || ::unshare(CLONE_NEWUTS) != 0) {
      ::_exit(126);
    }
    ::dup2(writeEnd.get(), STDOUT_FILENO);
    ::dup2(writeEnd.get(), STDERR_FILENO);
    ::execv(cargs[0], cargs.data());
    ::_exit(127);
  }
  ::close(writeEnd.release());
  if (pid < 0) {
    throw std::runtime_error("cannot fork");
  }
  RunResult result;
  char buf[4096];
  ssize_t got = 0;
  while ((got = ::read(readEnd.get(), buf, sizeof buf)) > 0) {
    result.err.append(buf, static_cast<std::size_t>(got));
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  result.exitCode = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

json ipJson(const std::vector<std::string> &argv) {
  const RunResult r = run(argv);
  if (r.exitCode != 0) {
    throw std::runtime_error(argv.at(0) + " failed: " + r.err);
  }
  return json::parse(r.out);
}

// What the kernel has in ns, reduced to what the configuration decides (no
// auto-assigned qdisc handles, no IPv6 link-local state).
json facts(const std::string &ns) {
  json out;
  for (const auto &link : ipJson({"ip", "-n", ns, "-j", "addr", "show"})) {
    json v4 = json::array();
    for (const auto &a : link["addr_info"]) {
      if (a["family"] == "inet") {
        v4.push_back(a["local"].get<std::string>() + "/" +
                     std::to_string(a["prefixlen"].get<int>()));
      }
    }
    const auto &flags = link["flags"];
    out["links"][link["ifname"].get<std::string>()] = {
        {"mtu", link["mtu"]},
        {"up", std::find(flags.begin(), flags.end(), "UP") != flags.end()},
        {"mac", link.value("address", "")},
        {"ipv4", v4}};
  }
  out["routes"] = json::array();
  for (const auto &r : ipJson({"ip", "-n", ns, "-j", "-4", "route", "show"})) {
    if (r.contains("gateway")) {
      out["routes"].push_back(r["dst"].get<std::string>() + " via " +
                              r["gateway"].get<std::string>() + " dev " +
                              r["dev"].get<std::string>());
    }
  }
  std::sort(out["routes"].begin(), out["routes"].end());
  out["qdiscs"] = json::array();
  for (const auto &q : ipJson({"tc", "-n", ns, "-j", "qdisc", "show"})) {
    if (q["kind"] == "noqueue" || q["kind"] == "noop") {
      continue;
    }
    out["qdiscs"].push_back({{"dev", q["dev"]},
                             {"kind", q["kind"]},
                             {"root", q.value("root", false)},
                             {"parent", q.value("parent", "")},
                             {"rate", q["options"].value("rate", 0)}});
  }
  std::string forward;
  netconfig::runIn(ns, [&] {
    // /proc/sys/net is resolved against the opening thread's namespace.
    std::ifstream("/proc/sys/net/ipv4/ip_forward") >> forward;
  });
  out["ip_forward"] = forward;
  return out;
}

class OsrAgent : public Lab {
protected:
  void SetUp() override {
    ns_ = makeNamespace();
    const RunResult veth = run({"ip", "-n", ns_, "link", "add", "r-a", "address", kMac, "type",
                                "veth", "peer", "name", "r-b"});
    ASSERT_EQ(veth.exitCode, 0) << veth.err;
  }

  void TearDown() override {
    children_.clear(); // stop the processes before their namespace goes
    Lab::TearDown();
  }

  RunResult apply(const std::string &text) {
    net_.write(text);
    return runAgent(ns_, {"apply", "--net", net_.path()});
  }

  // osrd in the namespace, its control socket ready.
  void startOsrd() {
    children_.push_back(std::make_unique<Child>(
        spawnIn(ns_, {builtBinary("osrd"), "--name", "r1", "--key", kKey, "--control",
                      osrdSocket_.path(), "--tun", "osr0", "--listen", "0.0.0.0:7400"})));
    for (int i = 0; i < 200 && ::access(osrdSocket_.path().c_str(), F_OK) != 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_EQ(::access(osrdSocket_.path().c_str(), F_OK), 0) << children_.back()->output();
  }

  std::string ns_;
  TempPath net_{"agent-net.conf"};
  TempPath osrdSocket_{"agent-osrd.sock"};
  std::vector<std::unique_ptr<Child>> children_;
};

TEST_F(OsrAgent, ApplySetsUpTheNetworkAndIsIdempotent) {
  const RunResult first = apply(config());
  ASSERT_EQ(first.exitCode, 0) << first.err;
  EXPECT_EQ(first.err, "");
  const json after = facts(ns_);
  const json &a = after["links"]["r-a"];
  EXPECT_EQ(a["mac"], kMac);
  EXPECT_EQ(a["mtu"], 1400);
  EXPECT_EQ(a["up"], true);
  EXPECT_EQ(a["ipv4"], json({"10.0.1.1/24"}));
  const json &b = after["links"]["r-b"];
  EXPECT_EQ(b["up"], true);
  EXPECT_EQ(b["mtu"], 1500);
  EXPECT_EQ(b["ipv4"], json({"10.0.2.1/24", "10.0.9.1/24"}));
  EXPECT_EQ(after["links"]["lo"]["up"], true);
  EXPECT_EQ(after["routes"],
            json({"10.0.3.0/24 via 10.0.1.2 dev r-a", "default via 10.0.1.254 dev r-a"}));
  EXPECT_EQ(after["qdiscs"], json({{{"dev", "r-a"},
                                    {"kind", "tbf"},
                                    {"root", true},
                                    {"parent", ""},
                                    {"rate", 2'500'000}}})); // 20 Mbit/s in bytes/s
  EXPECT_EQ(after["ip_forward"], "1");

  const RunResult second = apply(config());
  ASSERT_EQ(second.exitCode, 0) << second.err;
  EXPECT_EQ(facts(ns_), after);

  // A changed rate replaces the qdisc; without one the root qdisc is reset.
  ASSERT_EQ(apply(config(",rate=5M")).exitCode, 0);
  EXPECT_EQ(facts(ns_)["qdiscs"][0]["rate"], 625'000);
  ASSERT_EQ(apply(config("")).exitCode, 0);
  EXPECT_EQ(facts(ns_)["qdiscs"], json::array());
}

TEST_F(OsrAgent, ABadConfigurationChangesNothing) {
  const json before = facts(ns_);
  const RunResult bad = apply("iface = name=r-b,addr=10.0.2.1/24\n"
                              "\n"
                              "route = dst=10.0.3.0/24,via=10.0.1\n");
  EXPECT_EQ(bad.exitCode, 1);
  EXPECT_EQ(bad.err, "osr-agent: error: net config line 3: route 'dst=10.0.3.0/24,via=10.0.1': "
                     "bad gateway '10.0.1' (IPv4 A.B.C.D)\n");
  EXPECT_EQ(facts(ns_), before);

  const RunResult missing = apply("iface = name=r-b,addr=10.0.2.1/24\n"
                                  "iface = mac=52:54:00:00:00:99,addr=10.0.1.1/24\n");
  EXPECT_EQ(missing.exitCode, 1);
  EXPECT_EQ(missing.err, "osr-agent: error: iface 'mac=52:54:00:00:00:99': no interface has "
                         "this MAC address\n");
  EXPECT_EQ(facts(ns_), before);

  EXPECT_EQ(runAgent(ns_, {"apply"}).exitCode, 2);
  EXPECT_EQ(runAgent(ns_, {"apply", "--net", net_.path() + ".missing"}).exitCode, 1);
}

TEST_F(OsrAgent, NetemWorksOrFailsNamingTheInterface) {
  const RunResult r = apply(config(",rate=20M,delay=10ms,jitter=2ms,loss=0.5%"));
  if (r.exitCode == 0) {
    json qdiscs = facts(ns_)["qdiscs"];
    std::sort(qdiscs.begin(), qdiscs.end(), [](const json &x, const json &y) {
      return x["kind"] < y["kind"]; // netem, tbf
    });
    ASSERT_EQ(qdiscs.size(), 2U) << qdiscs;
    EXPECT_EQ(qdiscs[0]["kind"], "netem");
    EXPECT_EQ(qdiscs[0]["root"], true);
    EXPECT_EQ(qdiscs[1]["kind"], "tbf");
    EXPECT_EQ(qdiscs[1]["parent"], "1:1");
    EXPECT_EQ(apply(config(",rate=20M,delay=10ms")).exitCode, 0);
    return;
  }
  // This host's kernel has no sch_netem (the guest kernel does).
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_EQ(lineCount(r.err), 1U) << r.err;
  EXPECT_EQ(r.err.rfind("osr-agent: error: iface 'r-a': cannot add netem qdisc: ", 0), 0U) << r.err;
}

// What deploy and scheduled link events do to a running router: the shape
// command replaces one NIC's shaping and MTU, and nothing else.
TEST_F(OsrAgent, ShapeReplacesOneNicsShapingLive) {
  ASSERT_EQ(apply(config()).exitCode, 0);
  const json before = facts(ns_);
  const agent::AgentServer server(agent::AgentOptions{});
  const auto shape = [&](const std::string &iface) {
    json reply;
    netconfig::runIn(ns_, [&] { reply = server.handle({{"cmd", "shape"}, {"iface", iface}}); });
    return reply;
  };
  json reply = shape(std::string("mac=") + kMac + ",mtu=1300,rate=4M");
  ASSERT_EQ(reply["ok"], true) << reply;
  json after = facts(ns_);
  ASSERT_EQ(after["qdiscs"].size(), 1U) << after;
  EXPECT_EQ(after["qdiscs"][0]["kind"], "tbf");
  EXPECT_EQ(after["qdiscs"][0]["rate"], 500000); // bytes/s
  EXPECT_EQ(after["links"]["r-a"]["mtu"], 1300);
  EXPECT_EQ(after["links"]["r-b"], before["links"]["r-b"]);
  EXPECT_EQ(after["routes"], before["routes"]);
  EXPECT_EQ(after["links"]["r-a"]["ipv4"], before["links"]["r-a"]["ipv4"]);

  reply = shape("name=r-a"); // no shaping at all
  ASSERT_EQ(reply["ok"], true) << reply;
  EXPECT_TRUE(facts(ns_)["qdiscs"].empty()) << facts(ns_);

  const json before2 = facts(ns_);
  reply = shape("name=r-a,addr=10.9.9.9/24");
  EXPECT_EQ(reply["ok"], false);
  reply = shape("name=r-missing,rate=1M");
  EXPECT_EQ(reply["ok"], false);
  EXPECT_EQ(reply["error"], "iface 'r-missing': unknown interface");
  EXPECT_EQ(facts(ns_), before2);
}

TEST_F(OsrAgent, StatusReportsTheInterfacesAndOsrd) {
  ASSERT_EQ(apply(config()).exitCode, 0);
  startOsrd();
  agent::AgentOptions options;
  options.osrdSocket = osrdSocket_.path();
  options.netFile = net_.path();
  const agent::AgentServer server(options);
  json status;
  json forwarded;
  netconfig::runIn(ns_, [&] {
    status = server.handle({{"id", "s1"}, {"cmd", "status"}});
    forwarded = server.handle({{"id", 3}, {"cmd", "osrd"}, {"request", {{"cmd", "status"}}}});
  });
  EXPECT_EQ(status["id"], "s1");
  EXPECT_EQ(status["ok"], true) << status;
  EXPECT_EQ(status["ready"], true) << status;
  EXPECT_EQ(status["osrd"]["name"], "r1");
  EXPECT_FALSE(status.contains("osrd_error"));
  std::map<std::string, json> links;
  for (const auto &link : status["interfaces"]) {
    links[link["name"].get<std::string>()] = link;
  }
  EXPECT_EQ(links.count("lo"), 0U);
  EXPECT_EQ(links["r-a"]["mac"], kMac);
  EXPECT_EQ(links["r-a"]["mtu"], 1400);
  EXPECT_EQ(links["r-a"]["up"], true);
  const json &addresses = links["r-a"]["addresses"]; // and IPv6 link-local
  EXPECT_NE(std::find(addresses.begin(), addresses.end(), "10.0.1.1/24"), addresses.end());
  EXPECT_EQ(links["osr0"]["mac"], ""); // osrd's TUN device
  EXPECT_EQ(forwarded["ok"], true) << forwarded;
  EXPECT_EQ(forwarded["id"], 3);
  EXPECT_EQ(forwarded["reply"]["status"]["name"], "r1");

  children_.clear(); // osrd stops
  netconfig::runIn(ns_, [&] { status = server.handle({{"cmd", "status"}}); });
  EXPECT_EQ(status["ok"], true);
  EXPECT_EQ(status["ready"], false);
  EXPECT_TRUE(status["osrd"].is_null());
  EXPECT_EQ(status["osrd_error"].get<std::string>().rfind("cannot connect to osrd at '", 0), 0U)
      << status;
}

// The host's end of `serve --device SOCKET`: a listening Unix socket.
class HostEnd {
public:
  explicit HostEnd(const std::string &path) : listener_(::socket(AF_UNIX, SOCK_STREAM, 0)) {
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    path.copy(sa.sun_path, sizeof sa.sun_path - 1);
    if (::bind(listener_.get(), reinterpret_cast<const sockaddr *>(&sa), sizeof sa) != 0 ||
        ::listen(listener_.get(), 4) != 0) {
      throw std::runtime_error("cannot listen on " + path);
    }
  }

  // Waits up to 5 s for the agent to connect.
  void accept() {
    pollfd p{listener_.get(), POLLIN, 0};
    if (::poll(&p, 1, 5000) != 1) {
      throw std::runtime_error("the agent did not connect");
    }
    conn_ = std::make_unique<netconfig::Fd>(::accept(listener_.get(), nullptr, nullptr));
    buffer_.clear();
  }
  void hangUp() { conn_.reset(); }

  json request(const json &req) {
    const std::string line = req.dump() + "\n";
    if (::write(conn_->get(), line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
      throw std::runtime_error("cannot write to the agent");
    }
    while (buffer_.find('\n') == std::string::npos) {
      pollfd p{conn_->get(), POLLIN, 0};
      if (::poll(&p, 1, 5000) != 1) {
        throw std::runtime_error("no reply from the agent within 5 s");
      }
      char buf[65536];
      const ssize_t got = ::read(conn_->get(), buf, sizeof buf);
      if (got <= 0) {
        throw std::runtime_error("the agent closed the connection");
      }
      buffer_.append(buf, static_cast<std::size_t>(got));
    }
    const std::string reply = buffer_.substr(0, buffer_.find('\n'));
    buffer_.erase(0, reply.size() + 1);
    return json::parse(reply);
  }

private:
  netconfig::Fd listener_;
  std::unique_ptr<netconfig::Fd> conn_;
  std::string buffer_;
};

TEST_F(OsrAgent, ServeAnswersTheHostAndReconnects) {
  ASSERT_EQ(apply(config()).exitCode, 0);
  startOsrd();
  const TempPath port("agent-port.sock");
  HostEnd host(port.path());
  children_.push_back(std::make_unique<Child>(
      spawnIn(ns_, {builtBinary("osr-agent"), "serve", "--device", port.path(), "--osrd-socket",
                    osrdSocket_.path(), "--net", net_.path()})));
  host.accept();
  const json status = host.request({{"id", 1}, {"cmd", "status"}});
  EXPECT_EQ(status["ready"], true) << status;
  EXPECT_EQ(status["osrd"]["name"], "r1");
  EXPECT_EQ(host.request({{"id", 2}, {"cmd", "net"}}),
            json({{"id", 2}, {"ok", true}, {"config", config()}}));

  // The host side goes away and comes back: the agent opens the port again.
  host.hangUp();
  host.accept();
  EXPECT_EQ(host.request({{"id", 3}, {"cmd", "ping"}}), json({{"id", 3}, {"ok", true}}));
  EXPECT_NE(children_.back()->output().find("osr-agent: serving on " + port.path()),
            std::string::npos)
      << children_.back()->output();
}

} // namespace
} // namespace nvbox::test
