// examples/testbed/testbed against this machine: `up` makes simulated hosts
// that each answer with a libvirtd of their own (own hostname, own domains,
// QEMU inside the host's network namespace, TCP on the underlay), the hosts
// reach each other over the underlay, `down` leaves nothing behind, both verbs
// are idempotent, a half-made testbed is cleaned by `down`, and the sweeper
// removes a testbed whose owner process is gone. The machine's own libvirtd
// at qemu:///system must not see any of it.
#include "libvirtd_fixture.hpp"
#include "nvbox/netconfig/netns.hpp"
#include "nvbox/netconfig/rtnetlink.hpp"
#include "process.hpp"

#include <csignal>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sstream>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace nvbox::test {
namespace {

namespace fs = std::filesystem;

constexpr const char *kTestbed = NVBOX_SOURCE_DIR "/examples/testbed/testbed";
constexpr const char *kStateDir = "/run/nvbox-testbed";

RunResult testbed(std::vector<std::string> args) {
  args.insert(args.begin(), kTestbed);
  return run(args);
}

struct Host {
  std::string name;
  std::string uri;
  std::string address;
};

// `up` prints one line per host: NAME URI ADDRESS.
std::vector<Host> parseHosts(const std::string &out) {
  std::vector<Host> hosts;
  std::istringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    Host h;
    std::string extra;
    if (fields >> h.name >> h.uri >> h.address && !(fields >> extra)) {
      hosts.push_back(h);
    }
  }
  return hosts;
}

// A live process (a zombie counts as gone: nobody may reap it soon).
bool pidAlive(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (pid <= 0 || !std::getline(in, stat)) {
    return false;
  }
  const auto close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z' &&
         stat[close + 2] != 'X';
}

pid_t pidFrom(const fs::path &file) {
  std::ifstream in(file);
  pid_t pid = 0;
  in >> pid;
  return pid;
}

ino_t inodeOf(const std::string &path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

bool hasDomain(const virt::Connection &conn, const std::string &name) {
  const virt::DomainPtr dom(virDomainLookupByName(conn.get(), name.c_str()));
  return dom != nullptr;
}

std::string tinyDomain(const std::string &name) {
  return "<domain type='qemu'><name>" + name +
         "</name><memory unit='MiB'>32</memory><vcpu>1</vcpu><os><type "
         "arch='x86_64'>hvm</type></os><devices><memballoon model='none'/></devices></domain>";
}

std::vector<std::string> namespacesOf(const std::string &tb) {
  std::vector<std::string> found;
  for (const auto &ns : netconfig::listNamespaces()) {
    if (ns.starts_with("nvbox-tb-" + tb + "-")) {
      found.push_back(ns);
    }
  }
  return found;
}

// Nothing of testbed tb remains: namespaces, links, state directory.
void expectGone(const std::string &tb, int hosts) {
  EXPECT_TRUE(namespacesOf(tb).empty()) << ::testing::PrintToString(namespacesOf(tb));
  netconfig::Rtnetlink nl;
  EXPECT_FALSE(nl.linkExists("nvtb-" + tb));
  for (int i = 1; i <= hosts; ++i) {
    EXPECT_FALSE(nl.linkExists("nvtb-" + tb + "-h" + std::to_string(i))) << i;
  }
  EXPECT_FALSE(fs::exists(fs::symlink_status(std::string(kStateDir) + "/" + tb)))
      << kStateDir << "/" << tb;
}

class Testbed : public ::testing::Test {
protected:
  void SetUp() override {
    // The test keeps connections open while `down` stops their daemons: a
    // libvirt client must ignore SIGPIPE (libvirt's advice) to see errors.
    std::signal(SIGPIPE, SIG_IGN);
    ASSERT_EQ(ensureLibvirtd(), "");
    // Short (interface names are at most 15 characters) and unique per
    // process. No --subnet: `up` takes the first free 10.250.K.0/24, clear
    // of any testbed already on the machine.
    name_ = "t" + std::to_string(::getpid() % 10000);
  }
  void TearDown() override {
    for (const auto &tb : made_) {
      const auto r = testbed({"down", "--name", tb});
      EXPECT_EQ(r.exitCode, 0) << r.err;
    }
  }
  // `up` with this test's owner pid; remembers tb for TearDown.
  RunResult up(const std::string &tb, std::vector<std::string> extra) {
    made_.push_back(tb);
    std::vector<std::string> args{"up", "--name", tb, "--owner", std::to_string(::getpid())};
    args.insert(args.end(), extra.begin(), extra.end());
    return testbed(args);
  }

  std::string name_;
  std::vector<std::string> made_;
};

TEST_F(Testbed, HostsHaveTheirOwnLibvirtdAndDownLeavesNothing) {
  const auto r = up(name_, {"--hosts", "2", "--tcp"});
  ASSERT_EQ(r.exitCode, 0) << r.out << r.err;
  const auto hosts = parseHosts(r.out);
  ASSERT_EQ(hosts.size(), 2U) << r.out;
  // Address plan: the bridge has .1 of the subnet, host hI has .(I+1).
  const std::string base = hosts[0].address.substr(0, hosts[0].address.rfind('.') + 1);
  EXPECT_TRUE(base.starts_with("10.250.")) << base;
  const std::string dir = std::string(kStateDir) + "/" + name_;
  for (int i = 0; i < 2; ++i) {
    const auto &h = hosts[static_cast<std::size_t>(i)];
    EXPECT_EQ(h.name, "h" + std::to_string(i + 1));
    EXPECT_EQ(h.uri,
              "qemu+unix:///system?socket=" + dir + "/" + h.name + "/run/libvirt/libvirt-sock");
    EXPECT_EQ(h.address, base + std::to_string(i + 2));
    const auto u = testbed({"uri", h.name, "--name", name_});
    EXPECT_EQ(u.exitCode, 0) << u.err;
    EXPECT_EQ(u.out, h.uri + "\n");
  }
  EXPECT_EQ(namespacesOf(name_).size(), 2U);
  {
    std::ifstream owner(dir + "/owner");
    pid_t pid = 0;
    owner >> pid;
    EXPECT_EQ(pid, ::getpid());
  }

  // Idempotent `up`; a different host count is an error in one line.
  const auto again = testbed({"up", "--name", name_, "--hosts", "2"});
  EXPECT_EQ(again.exitCode, 0) << again.err;
  EXPECT_NE(again.err.find("already up"), std::string::npos) << again.err;
  EXPECT_EQ(parseHosts(again.out).size(), 2U);
  const auto three = testbed({"up", "--name", name_, "--hosts", "3"});
  EXPECT_EQ(three.exitCode, 1);
  EXPECT_EQ(lineCount(three.err), 1U) << three.err;
  EXPECT_EQ(namespacesOf(name_).size(), 2U);

  const auto status = testbed({"status", "--name", name_, "--json"});
  EXPECT_EQ(status.exitCode, 0) << status.out << status.err;
  const auto report = nlohmann::json::parse(status.out);
  EXPECT_EQ(report["healthy"], true);
  EXPECT_EQ(report["hosts"].size(), 2U);
  EXPECT_EQ(report["bridge_address"], base + "1");
  EXPECT_EQ(report["bridge"], "nvtb-" + name_);

  // Every host answers with a hostname of its own, not the machine's.
  const auto h1 = virt::Connection::open(hosts[0].uri);
  const auto h2 = virt::Connection::open(hosts[1].uri);
  const auto machine = virt::Connection::open("qemu:///system");
  EXPECT_FALSE(h1.libvirtVersion().empty());
  EXPECT_FALSE(h2.libvirtVersion().empty());
  EXPECT_EQ(h1.hostname(), "nvbox-tb-" + name_ + "-h1");
  EXPECT_EQ(h2.hostname(), "nvbox-tb-" + name_ + "-h2");
  EXPECT_NE(machine.hostname(), h1.hostname());

  // A domain made on h1 exists on h1 only, and its QEMU runs in h1's netns.
  const std::string dom = "nvbox-test-tb-" + std::to_string(::getpid()) + "-1";
  const virt::DomainPtr made(virDomainCreateXML(
      h1.get(), tinyDomain(dom).c_str(), VIR_DOMAIN_START_PAUSED | VIR_DOMAIN_START_AUTODESTROY));
  ASSERT_TRUE(made) << virt::lastError();
  EXPECT_TRUE(hasDomain(h1, dom));
  EXPECT_FALSE(hasDomain(h2, dom));
  EXPECT_FALSE(hasDomain(machine, dom));
  const pid_t qemu = pidFrom(dir + "/h1/run/libvirt/qemu/" + dom + ".pid");
  ASSERT_TRUE(pidAlive(qemu)) << qemu;
  EXPECT_EQ(inodeOf("/proc/" + std::to_string(qemu) + "/ns/net"),
            inodeOf("/run/netns/nvbox-tb-" + name_ + "-h1"));
  // A persistent domain on h2, running: `down` must remove it too.
  const std::string dom2 = "nvbox-test-tb-" + std::to_string(::getpid()) + "-2";
  const virt::DomainPtr defined(virDomainDefineXML(h2.get(), tinyDomain(dom2).c_str()));
  ASSERT_TRUE(defined) << virt::lastError();
  ASSERT_EQ(virDomainCreateWithFlags(defined.get(), VIR_DOMAIN_START_PAUSED), 0)
      << virt::lastError();
  const pid_t qemu2 = pidFrom(dir + "/h2/run/libvirt/qemu/" + dom2 + ".pid");
  EXPECT_TRUE(pidAlive(qemu2)) << qemu2;

  // libvirtd listens on the underlay: the machine reaches h2 over TCP.
  const auto h2tcp = virt::Connection::open("qemu+tcp://" + hosts[1].address + "/system");
  EXPECT_EQ(h2tcp.hostname(), h2.hostname());
  EXPECT_TRUE(hasDomain(h2tcp, dom2));

  // h1 reaches h2 over the underlay.
  std::vector<std::string> ping{"exec", "h1", "--name", name_, "--"};
  if (run({"sh", "-c", "command -v ping"}).exitCode != 0) {
    ping.emplace_back("busybox");
  }
  for (const char *arg : {"ping", "-c1", "-W2"}) {
    ping.emplace_back(arg);
  }
  ping.push_back(hosts[1].address);
  const auto p = testbed(ping);
  EXPECT_EQ(p.exitCode, 0) << p.out << p.err;

  std::vector<pid_t> daemons;
  for (const auto &h : hosts) {
    for (const char *d : {"libvirtd", "virtlogd"}) {
      const pid_t pid = pidFrom(dir + "/" + h.name + "/run/libvirt/" + d + ".pid");
      EXPECT_TRUE(pidAlive(pid)) << h.name << " " << d;
      daemons.push_back(pid);
    }
  }
  daemons.push_back(qemu);
  daemons.push_back(qemu2);

  const auto down = testbed({"down", "--name", name_});
  EXPECT_EQ(down.exitCode, 0) << down.err;
  for (const pid_t pid : daemons) {
    EXPECT_FALSE(pidAlive(pid)) << pid;
  }
  expectGone(name_, 2);
  EXPECT_FALSE(machine.libvirtVersion().empty()) << "the machine's libvirtd must keep answering";
  const auto twice = testbed({"down", "--name", name_});
  EXPECT_EQ(twice.exitCode, 0) << twice.err;
}

TEST_F(Testbed, DownRemovesAHalfMadeTestbed) {
  // What an `up` killed early leaves: a namespace and the bridge.
  made_.push_back(name_);
  netconfig::NetworkNamespace("nvbox-tb-" + name_ + "-h2").release();
  netconfig::Rtnetlink().addBridge("nvtb-" + name_);
  const auto r = testbed({"up", "--name", name_});
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_NE(r.err.find("half made"), std::string::npos) << r.err;
  EXPECT_EQ(lineCount(r.err), 1U) << r.err;
  const auto down = testbed({"down", "--name", name_});
  EXPECT_EQ(down.exitCode, 0) << down.err;
  expectGone(name_, 2);
}

TEST_F(Testbed, SweeperRemovesATestbedWhoseOwnerIsGone) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::_exit(0);
  }
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);
  made_.push_back(name_);
  const auto r = testbed({"up", "--name", name_, "--hosts", "1", "--owner", std::to_string(child)});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  const auto sweep = run({builtBinary("nvbox-test-sweep")});
  EXPECT_EQ(sweep.exitCode, 0) << sweep.out << sweep.err;
  EXPECT_NE(sweep.out.find("removed leftover testbed " + name_ + "\n"), std::string::npos)
      << sweep.out << sweep.err;
  expectGone(name_, 1);
}

TEST_F(Testbed, RejectsBadArgumentsInOneLine) {
  const std::vector<std::vector<std::string>> bad{
      {"up", "--name", "Bad!"},
      {"up", "--name", "toolong1"},
      {"up", "--hosts", "17"},
      {"up", "--subnet", "10.250.0.1/24"},
      {"up", "--dir", "relative/dir"},
      {"uri", "h0"},
      {"exec", "h1"},
      {"frobnicate"},
  };
  for (const auto &args : bad) {
    const auto r = testbed(args);
    EXPECT_EQ(r.exitCode, 2) << ::testing::PrintToString(args) << r.err;
    EXPECT_EQ(lineCount(r.err), 1U) << r.err;
    EXPECT_EQ(r.err.rfind("testbed: ", 0), 0U) << r.err;
  }
  const auto help = testbed({"--help"});
  EXPECT_EQ(help.exitCode, 0);
  EXPECT_NE(help.out.find("Usage: testbed"), std::string::npos);
  const auto none = testbed({"status", "--name", name_});
  EXPECT_EQ(none.exitCode, 1);
  EXPECT_EQ(none.out, "testbed " + name_ + ": not up\n");
}

} // namespace
} // namespace nvbox::test
