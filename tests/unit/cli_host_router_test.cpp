// `nvbox host …` and `nvbox router …` as a user meets them.
//
// Across processes (the real binary, each test with its own hosts file in
// $NVBOX_HOSTS): help texts, the hosts file round trip, usage errors, and
// what works against libvirt's test driver from a fresh process. The test
// driver's state lives only as long as a process holds a connection to it,
// so the router lifecycle runs in-process: a router is defined through the
// library while this process holds test:///default open, then the CLI
// (cli::runApp) sees it on its own connection to the same driver state.
#include "app.hpp"
#include "command_router.hpp"
#include "golden.hpp"
#include "nvbox/error.hpp"
#include "nvbox/router.hpp"
#include "process.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <sstream>
#include <unistd.h>

namespace nvbox::test {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

constexpr const char *kTestUri = "test:///default";
// Nothing listens on port 1 of loopback: refused at once.
constexpr const char *kDownUri = "qemu+tcp://127.0.0.1:1/system";

// Sets an environment variable for the life of the object (children started
// meanwhile inherit it).
class ScopedEnv {
public:
  ScopedEnv(const char *name, const std::string &value) : name_(name) {
    if (const char *old = std::getenv(name)) {
      old_ = old;
    }
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv &) = delete;
  ScopedEnv &operator=(const ScopedEnv &) = delete;

private:
  const char *name_;
  std::optional<std::string> old_;
};

// A temporary directory with a hosts file named by $NVBOX_HOSTS.
class HostsFile : public ::testing::Test {
protected:
  void SetUp() override {
    std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::replace(test.begin(), test.end(), '/', '_'); // parameterised tests: "Name/3"
    dir_ = fs::temp_directory_path() / ("nvbox-cli-hr-" + std::to_string(::getpid()) + "-" + test);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    hosts_ = dir_ / "hosts.json";
    env_.emplace("NVBOX_HOSTS", hosts_.string());
  }
  void TearDown() override {
    env_.reset();
    fs::remove_all(dir_);
  }

  [[nodiscard]] std::string hostsText() const {
    std::ifstream in(hosts_);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }

  // Registers hosts through the CLI; fails the test when one is refused.
  void add(const std::string &name, const std::string &uri) {
    const auto r = nvbox({"host", "add", name, uri});
    ASSERT_EQ(r.exitCode, 0) << r.err;
  }

  fs::path dir_;
  fs::path hosts_;
  std::optional<ScopedEnv> env_;
};

void expectOneErrorLine(const RunResult &r, int code, const std::string &start) {
  EXPECT_EQ(r.exitCode, code) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(lineCount(r.err), 1U) << r.err;
  EXPECT_EQ(r.err.substr(0, start.size()), start) << r.err;
}

// ---------------------------------------------------------------------------
// Help

TEST(CliHostRouterHelp, NounHelpListsTheVerbs) {
  for (const std::string noun : {"host", "router"}) {
    const auto r = nvbox({noun, "--help"});
    EXPECT_EQ(r.exitCode, 0);
    EXPECT_EQ(r.err, "");
    expectGolden(r.out, "cli/" + noun + "-help.txt");
    EXPECT_EQ(nvbox({"--help", noun}).out, r.out);
    expectOneErrorLine(nvbox({noun}), 2, "nvbox: error: nvbox " + noun + ": missing verb");
  }
}

class CliHostRouterVerbHelp : public ::testing::TestWithParam<std::pair<std::string, std::string>> {
};

TEST_P(CliHostRouterVerbHelp, IsGolden) {
  const auto &[noun, verb] = GetParam();
  const auto r = nvbox({noun, verb, "--help"});
  EXPECT_EQ(r.exitCode, 0);
  EXPECT_EQ(r.err, "");
  expectGolden(r.out, "cli/" + noun + "-" + verb + "-help.txt");
  EXPECT_EQ(nvbox({"help", noun, verb}).out, r.out);
}

INSTANTIATE_TEST_SUITE_P(
    Verbs, CliHostRouterVerbHelp,
    ::testing::Values(std::pair<std::string, std::string>{"host", "add"},
                      std::pair<std::string, std::string>{"host", "list"},
                      std::pair<std::string, std::string>{"host", "inspect"},
                      std::pair<std::string, std::string>{"host", "rm"},
                      std::pair<std::string, std::string>{"router", "create"},
                      std::pair<std::string, std::string>{"router", "start"},
                      std::pair<std::string, std::string>{"router", "suspend"},
                      std::pair<std::string, std::string>{"router", "resume"},
                      std::pair<std::string, std::string>{"router", "stop"},
                      std::pair<std::string, std::string>{"router", "destroy"},
                      std::pair<std::string, std::string>{"router", "relocate"},
                      std::pair<std::string, std::string>{"router", "list"},
                      std::pair<std::string, std::string>{"router", "inspect"},
                      std::pair<std::string, std::string>{"router", "stats"},
                      std::pair<std::string, std::string>{"router", "console"}),
    [](const auto &p) { return p.param.first + "_" + p.param.second; });

TEST(CliRouterRelocate, UsageErrorsTouchNothing) {
  auto r = nvbox({"router", "relocate", "r1"});
  EXPECT_EQ(r.exitCode, 2);
  EXPECT_EQ(r.err, "nvbox: error: nvbox router relocate: missing --to HOST; see 'nvbox router "
                   "relocate --help'\n");
  r = nvbox({"router", "relocate", "r1", "--to", "nowhere"});
  EXPECT_EQ(r.exitCode, 2);
  EXPECT_EQ(lineCount(r.err), 1U) << r.err;
  EXPECT_NE(r.err.find("unknown host 'nowhere'"), std::string::npos) << r.err;
}

TEST(CliRouterRelocate, ModeIsAutoLiveOrOffline) {
  const auto r = nvbox({"router", "relocate", "r1", "--to", "qemu:///system", "--mode", "fast"});
  EXPECT_EQ(r.exitCode, 2);
  EXPECT_EQ(r.err, "nvbox: error: nvbox router relocate: invalid --mode 'fast': use auto, live "
                   "or offline; see 'nvbox router relocate --help'\n");
  EXPECT_EQ(nvbox::parseRelocateMode("live"), nvbox::RelocateMode::Live);
  EXPECT_EQ(nvbox::parseRelocateMode("offline"), nvbox::RelocateMode::Offline);
  EXPECT_EQ(nvbox::parseRelocateMode("auto"), nvbox::RelocateMode::Auto);
  EXPECT_EQ(nvbox::toString(nvbox::RelocateMode::Live), "live");
}

TEST(CliRouterRelocate, CompressIsXzOrGzip) {
  const auto r =
      nvbox({"router", "relocate", "r1", "--to", "qemu:///system", "--compress", "zstd"});
  EXPECT_EQ(r.exitCode, 2);
  EXPECT_EQ(r.err, "nvbox: error: nvbox router relocate: invalid --compress 'zstd': use xz or "
                   "gzip; see 'nvbox router relocate --help'\n");
  EXPECT_TRUE(r.out.empty()) << r.out;
}

// ---------------------------------------------------------------------------
// host

TEST_F(HostsFile, AddListRmRoundTrip) {
  const auto added = nvbox({"host", "add", "h1", "qemu+ssh://root@h1/system"});
  EXPECT_EQ(added.exitCode, 0) << added.err;
  EXPECT_EQ(added.out, "added host 'h1' (qemu+ssh://root@h1/system)\n");
  EXPECT_EQ(added.err, "");
  add("h2", "qemu+tcp://10.0.0.2/system");

  const auto list = nvbox({"host", "list"});
  EXPECT_EQ(list.exitCode, 0) << list.err;
  expectGolden(list.out, "cli/host-list.txt");
  auto json = nvbox({"host", "list", "--json"});
  EXPECT_EQ(json.exitCode, 0) << json.err;
  // The hosts file is a temporary one; the golden file names it HOSTS_FILE.
  json.out = std::regex_replace(json.out, std::regex(hosts_.string()), "HOSTS_FILE");
  expectGolden(json.out, "cli/host-list.json");
  EXPECT_EQ(nvbox({"--json", "host", "list"}).exitCode, 0);

  const auto removed = nvbox({"host", "rm", "h1"});
  EXPECT_EQ(removed.exitCode, 0) << removed.err;
  EXPECT_EQ(removed.out, "removed host 'h1' (qemu+ssh://root@h1/system)\n");
  EXPECT_EQ(nvbox({"host", "list"}).out, "NAME   URI\n"
                                         "local  qemu:///system\n"
                                         "h2     qemu+tcp://10.0.0.2/system\n");
  EXPECT_EQ(Json::parse(hostsText()),
            Json::parse(R"({"hosts":{"h2":"qemu+tcp://10.0.0.2/system"}})"));
}

TEST_F(HostsFile, AddRefusesBadNamesNonUrisAndDuplicatesWithExitTwo) {
  add("h1", "qemu+ssh://root@h1/system");
  const std::string before = hostsText();
  expectOneErrorLine(nvbox({"host", "add", "Bad_Name", "qemu:///system"}), 2,
                     "nvbox: error: host name 'Bad_Name' is not 1-32 of [a-z0-9-]");
  expectOneErrorLine(nvbox({"host", "add", "h2", "h2.example.org"}), 2,
                     "nvbox: error: 'h2.example.org' is not a libvirt URI; give one such as ");
  expectOneErrorLine(nvbox({"host", "add", "h1", "qemu+ssh://root@other/system"}), 2,
                     "nvbox: error: host 'h1' exists already (qemu+ssh://root@h1/system); "
                     "remove it first with 'nvbox host rm h1'");
  expectOneErrorLine(nvbox({"host", "add", "h1", "qemu+ssh://root@other/system", "--check"}), 2,
                     "nvbox: error: host 'h1' exists already");
  expectOneErrorLine(nvbox({"host", "add", "h3"}), 2, "nvbox: error: nvbox host add: missing URI");
  expectOneErrorLine(nvbox({"host", "add"}), 2, "nvbox: error: nvbox host add: missing host NAME");
  EXPECT_EQ(hostsText(), before);
}

TEST_F(HostsFile, RmUnknownIsAUsageError) {
  expectOneErrorLine(nvbox({"host", "rm", "nope"}), 2,
                     "nvbox: error: host 'nope' is not registered; see 'nvbox host list'");
  EXPECT_FALSE(fs::exists(hosts_));
}

TEST_F(HostsFile, HostVerbsRefuseTheGlobalHost) {
  expectOneErrorLine(nvbox({"--host", "h1", "host", "list"}), 2,
                     "nvbox: error: nvbox host list: --host does not apply");
  expectOneErrorLine(nvbox({"host", "inspect", "local", "--host", kTestUri}), 2,
                     "nvbox: error: nvbox host inspect: --host does not apply");
}

TEST_F(HostsFile, AddCheckRefusesAnUnreachableHostAndWritesNothing) {
  expectOneErrorLine(nvbox({"host", "add", "down", kDownUri, "--check"}), 1,
                     std::string("nvbox: error: cannot connect to host 'down' (") + kDownUri +
                         "): ");
  EXPECT_FALSE(fs::exists(hosts_));
  const auto ok = nvbox({"host", "add", "t", kTestUri, "--check"});
  EXPECT_EQ(ok.exitCode, 0) << ok.err;
  EXPECT_EQ(ok.out.rfind("added host 't' (test:///default); it answers with libvirt ", 0), 0U)
      << ok.out;
}

TEST_F(HostsFile, ListCheckShowsUnreachableHostsWithoutFailing) {
  add("local", kTestUri); // a registered local overrides qemu:///system
  add("down", kDownUri);
  const auto r = nvbox({"host", "list", "--check"});
  EXPECT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.err, "");
  // Registered hosts are listed by name.
  std::istringstream lines(r.out);
  std::string header;
  std::string down;
  std::string local;
  std::getline(lines, header);
  std::getline(lines, down);
  std::getline(lines, local);
  EXPECT_EQ(header, "NAME   URI                            ROUTERS  STATUS");
  EXPECT_EQ(down.rfind("down   qemu+tcp://127.0.0.1:1/system  -        unreachable: ", 0), 0U)
      << down;
  EXPECT_EQ(local, "local  test:///default                0        ok");
  const Json json = Json::parse(nvbox({"host", "list", "--check", "--json"}).out);
  ASSERT_EQ(json.at("hosts").size(), 2U);
  EXPECT_EQ(json["hosts"][1].at("reachable"), true);
  EXPECT_EQ(json["hosts"][1].at("routers"), 0);
  EXPECT_EQ(json["hosts"][0].at("reachable"), false);
  EXPECT_NE(json["hosts"][0].at("error").get<std::string>().find("127.0.0.1:1"), std::string::npos);
}

TEST_F(HostsFile, InspectTheTestDriverWithoutProbe) {
  const auto r = nvbox({"host", "inspect", kTestUri, "--no-probe"});
  EXPECT_EQ(r.exitCode, 0) << r.err;
  for (const char *line :
       {"host:          test:///default\n", "uri:           test:///default\n",
        "hypervisor:    TEST ", "cpus:          16 ", "accelerator:   not probed (--no-probe)\n",
        "storage pool:  'nvbox' does not exist", "routers:       0\n"}) {
    EXPECT_NE(r.out.find(line), std::string::npos) << line << "\n" << r.out;
  }
  const Json json = Json::parse(nvbox({"--json", "host", "inspect", kTestUri, "--no-probe"}).out);
  EXPECT_EQ(json.at("uri"), kTestUri);
  EXPECT_EQ(json.at("cpus"), 16);
  EXPECT_TRUE(json.at("accelerator").is_null());
  EXPECT_TRUE(json.at("storage_pool").is_null());
  EXPECT_EQ(json.at("routers"), Json::array());
  EXPECT_GT(json.at("memory_mib").get<int>(), 0);
}

TEST_F(HostsFile, InspectAnUnreachableHostIsOneLineNamingHostAndUri) {
  add("down", kDownUri);
  expectOneErrorLine(nvbox({"host", "inspect", "down", "--no-probe"}), 1,
                     std::string("nvbox: error: cannot connect to host 'down' (") + kDownUri +
                         "): ");
  expectOneErrorLine(nvbox({"host", "inspect", "nowhere"}), 2,
                     "nvbox: error: unknown host 'nowhere'");
  expectOneErrorLine(nvbox({"host", "inspect"}), 2,
                     "nvbox: error: nvbox host inspect: missing host NAME");
}

// ---------------------------------------------------------------------------
// router, across processes

TEST_F(HostsFile, RouterListOnTheTestDriverShowsNoRouters) {
  const auto r = nvbox({"--host", kTestUri, "router", "list"});
  EXPECT_EQ(r.exitCode, 0) << r.err;
  expectGolden(r.out, "cli/router-list-test-driver.txt");
  const auto json = nvbox({"--host", kTestUri, "router", "list", "--json"});
  EXPECT_EQ(json.exitCode, 0) << json.err;
  expectGolden(json.out, "cli/router-list-test-driver.json");
}

TEST_F(HostsFile, RouterListWithoutHostCoversEveryHostAndShowsTheUnreachable) {
  add("local", kTestUri);
  EXPECT_EQ(nvbox({"router", "list"}).out, "no routers on host 'local'\n");
  add("down", kDownUri);
  const auto r = nvbox({"router", "list"});
  EXPECT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.out.rfind("NAME  HOST  STATE  IMAGE  ROLE  MEMORY  CPUS\n"
                        "-     down  unreachable: ",
                        0),
            0U)
      << r.out;
  EXPECT_EQ(lineCount(r.out), 2U);
  // With --host, an unreachable host is an error.
  expectOneErrorLine(nvbox({"--host", "down", "router", "list"}), 1,
                     "nvbox: error: cannot connect to host 'down' (");
}

TEST_F(HostsFile, RouterInspectOfAnUnknownRouterIsAUsageError) {
  expectOneErrorLine(nvbox({"--host", kTestUri, "router", "inspect", "nope"}), 2,
                     "nvbox: error: cannot find router 'nope' on host 'test:///default'");
  expectOneErrorLine(nvbox({"--host", kTestUri, "router", "start", "nope"}), 2,
                     "nvbox: error: cannot find router 'nope' on host 'test:///default'");
  expectOneErrorLine(nvbox({"--host", "nowhere", "router", "inspect", "r1"}), 2,
                     "nvbox: error: unknown host 'nowhere'");
}

struct CreateCase {
  std::vector<std::string> args;
  std::string error;
};

class CliRouterCreateUsage : public HostsFile, public ::testing::WithParamInterface<CreateCase> {};

// Refused before any host is contacted: the host given does not answer.
TEST_P(CliRouterCreateUsage, IsOneLineExitTwoAndTouchesNothing) {
  std::vector<std::string> args{"--host", kDownUri, "router", "create"};
  args.insert(args.end(), GetParam().args.begin(), GetParam().args.end());
  expectOneErrorLine(nvbox(args), 2, "nvbox: error: " + GetParam().error);
  EXPECT_FALSE(fs::exists(hosts_));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, CliRouterCreateUsage,
    ::testing::Values(
        CreateCase{{}, "nvbox router create: missing router NAME"},
        CreateCase{{"Bad_Name"},
                   "router name 'Bad_Name' is not 1-32 of [a-z0-9-] starting with "
                   "a letter or digit; choose another name"},
        CreateCase{{"r1", "--nic", "bogus"},
                   "--nic 'bogus': it starts with 'bogus', not bridge=, network= or tap"},
        CreateCase{{"r1", "--nic", "bridge="}, "--nic 'bridge=': bridge needs a name"},
        CreateCase{{"r1", "--nic", "bridge=br0,mac=zz"},
                   "--nic 'bridge=br0,mac=zz': MAC address 'zz' is not six hex bytes"},
        CreateCase{{"r1", "--nic", "bridge=br0,mac=01:00:5e:00:00:01"},
                   "--nic 'bridge=br0,mac=01:00:5e:00:00:01': MAC address '01:00:5e:00:00:01' "
                   "is a multicast address"},
        CreateCase{{"r1", "--nic", "network=default,mtu=20"},
                   "--nic 'network=default,mtu=20': MTU '20' is not between 68 and 65535"},
        CreateCase{{"r1", "--nic", "tap=t0,rate=fast"},
                   "--nic 'tap=t0,rate=fast': rate 'fast' is not a number"},
        CreateCase{{"r1", "--nic", "bridge=br0,colour=red"},
                   "--nic 'bridge=br0,colour=red': unknown field 'colour'"},
        CreateCase{{"r1", "--nic", "bridge=br0,mac=52:54:00:00:00:01", "--nic",
                    "tap,mac=52:54:00:00:00:01"},
                   "--nic 'tap,mac=52:54:00:00:00:01': MAC address '52:54:00:00:00:01' is "
                   "already another NIC's"},
        CreateCase{{"r1", "--config", "colour=red"},
                   "--config 'colour=red': unknown key 'colour', not net, osrd or key"},
        CreateCase{{"r1", "--config", "net"}, "--config 'net': expected KEY=VALUE"},
        CreateCase{{"r1", "--config", "net=a", "--config", "net=@b"},
                   "--config key 'net' given twice"},
        CreateCase{{"r1", "--memory", "32M"},
                   "nvbox router create: --memory '32M' is below the minimum of 64M"},
        CreateCase{{"r1", "--memory", "lots"}, "nvbox: --memory 'lots' is not a size"},
        CreateCase{{"r1", "--accel", "xen"},
                   "nvbox router create: --accel 'xen' is not auto, kvm or tcg"},
        CreateCase{{"r1", "--cpus", "0"}, "nvbox router create: --cpus must be between 1 and 64"},
        CreateCase{{"r1", "--role", "Relay!"}, "nvbox router create: --role 'Relay!' is not"},
        CreateCase{{"r1", "--timeout", "-1"},
                   "nvbox router create: --timeout must be between 0 and 3600 seconds"},
        CreateCase{{"r1", "--image", "../osr"}, "invalid image name '../osr'"}));

TEST_F(HostsFile, RouterCreateReadsConfigFilesBeforeContactingTheHost) {
  const auto r = nvbox({"--host", kDownUri, "router", "create", "r1", "--config",
                        "net=@" + (dir_ / "missing.conf").string()});
  expectOneErrorLine(r, 1,
                     "nvbox: error: --config net: cannot read file '" +
                         (dir_ / "missing.conf").string() + "': ");
}

TEST_F(HostsFile, RouterCreateFailsWithTheLibrarysReasonAndCreatesNothing) {
  // The test driver's node has 3 MiB free, less than any router needs.
  const auto r = nvbox({"--host", kTestUri, "router", "create", "r1", "--accel", "tcg", "--store",
                        (dir_ / "store").string()});
  expectOneErrorLine(r, 1,
                     "nvbox: error: not enough memory on host 'test:///default': router 'r1' "
                     "needs 128 MiB, ");
}

TEST_F(HostsFile, RouterConsoleNeedsVirshAndRefusesJson) {
  {
    const ScopedEnv path("PATH", dir_.string());
    expectOneErrorLine(nvbox({"--host", kTestUri, "router", "console", "r1"}), 1,
                       "nvbox: error: cannot find 'virsh' on PATH");
  }
  expectOneErrorLine(nvbox({"--json", "--host", kTestUri, "router", "console", "r1"}), 2,
                     "nvbox: error: nvbox router console: --json does not apply");
}

// ---------------------------------------------------------------------------
// Parsing (in-process)

TEST(CliRouterNic, ParsesTheThreeKindsAndTheirFields) {
  const RouterNic b =
      cli::parseNicSpec("bridge=br0,mac=52:54:00:AA:bb:01,tap=t1,rate=1250,mtu=9000");
  EXPECT_EQ(b.kind, RouterNic::Kind::Bridge);
  EXPECT_EQ(b.source, "br0");
  EXPECT_EQ(b.mac, "52:54:00:aa:bb:01");
  EXPECT_EQ(b.tap, "t1");
  EXPECT_EQ(b.rateKbps, 1250U);
  EXPECT_EQ(b.mtu, 9000U);
  const RouterNic n = cli::parseNicSpec("network=default");
  EXPECT_EQ(n.kind, RouterNic::Kind::Network);
  EXPECT_EQ(n.source, "default");
  EXPECT_EQ(n.mac, "");
  EXPECT_FALSE(n.rateKbps);
  const RouterNic t = cli::parseNicSpec("tap");
  EXPECT_EQ(t.kind, RouterNic::Kind::Ethernet);
  EXPECT_EQ(t.tap, "");
  EXPECT_EQ(cli::parseNicSpec("tap=nv-r1-0,mtu=1400").tap, "nv-r1-0");
  for (const char *bad :
       {"", "bridge", "bridge=br0,", "bridge=br0,mac", "bridge=a/b", "bridge=sixteen-chars-xx",
        "tap=t0,tap=t1", "network=n,mtu=70000", "bridge=b,rate=0",
        "bridge=b,mac=52:54:00:00:00:01,mac=52:54:00:00:00:02"}) {
    EXPECT_THROW((void)cli::parseNicSpec(bad), UsageError) << bad;
  }
}

TEST(CliRouterNic, DerivedMacsAreStableLocalAndDistinct) {
  const std::string mac = cli::derivedMac("local", "r1", 0);
  EXPECT_TRUE(std::regex_match(mac, std::regex("52:54:00(:[0-9a-f]{2}){3}"))) << mac;
  EXPECT_EQ(cli::derivedMac("local", "r1", 0), mac);
  EXPECT_NE(cli::derivedMac("local", "r1", 1), mac);
  EXPECT_NE(cli::derivedMac("h2", "r1", 0), mac);
  EXPECT_NE(cli::derivedMac("local", "r2", 0), mac);
}

TEST(CliRouterConfig, LiteralsStayAsGivenAndFilesAreReadLater) {
  const auto values = cli::parseConfigArguments({"net=hostname = r1\\n", "osrd=@/x/osrd.conf"});
  ASSERT_EQ(values.size(), 2U);
  EXPECT_EQ(values.at("net").text, "hostname = r1\\n");
  EXPECT_EQ(values.at("net").file, "");
  EXPECT_EQ(values.at("osrd").file, "/x/osrd.conf");
  EXPECT_THROW((void)cli::parseConfigArguments({"key="}), UsageError);
  EXPECT_THROW((void)cli::parseConfigArguments({"key=@"}), UsageError);

  const fs::path file =
      fs::temp_directory_path() / ("nvbox-cli-config-" + std::to_string(::getpid()));
  std::ofstream(file) << "name = r1\nlisten = 0.0.0.0:7400\n";
  const auto texts = cli::readConfigValues({{"osrd", {"", file.string()}}, {"key", {"k", ""}}});
  EXPECT_EQ(texts.at("osrd"), "name = r1\nlisten = 0.0.0.0:7400\n");
  EXPECT_EQ(texts.at("key"), "k");
  fs::remove(file);
  try {
    (void)cli::readConfigValues({{"osrd", {"", file.string()}}});
    FAIL() << "expected an error";
  } catch (const Error &e) {
    EXPECT_NE(std::string(e.what()).find("'" + file.string() + "'"), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------------------
// Agent and osrd status (in-process)

const char *kAgentStatus = R"({
  "hostname": "r1",
  "interfaces": [
    {"addresses": ["10.0.1.1/24", "fe80::5054:ff:fe6e:7601/64"], "mac": "52:54:00:6e:76:01",
     "mtu": 1500, "name": "eth0", "up": true},
    {"addresses": [], "mac": "", "mtu": 1400, "name": "osr0", "up": false}
  ],
  "ok": true,
  "osrd": {"listen": "0.0.0.0:7400", "name": "r1", "tun": "osr0", "version": "0.1.0",
           "counters": {}},
  "ready": true
})";

const char *kOsrdStatus = R"({
  "name": "r1", "version": "0.1.0", "listen": "0.0.0.0:7400", "tun": "osr0",
  "counters": {"rx": 120, "tx": 118, "relayed": 40, "send_drops": 0, "tun_packets": 200,
               "tun_unrouted": 1, "relay_delay_ms": 0, "relay_delay_dropped": 0,
               "rejected": {"bad_key": 2, "too_short": 1}},
  "stripes": [{"name": "s1", "flow": 7, "dst": "10.0.3.0/24", "egress": "10.0.2.2:7400",
               "scheduler": "weighted", "k": 2, "packets": 100, "bytes": 150000, "no_path": 0,
               "paths_went_down": 1,
               "paths": [{"id": 0, "relay": "10.0.1.2:7400", "up": true, "rtt_us": 10250,
                          "min_rtt_us": 9800, "loss": 0.005, "parts": 60, "bytes": 90000,
                          "probes_sent": 50, "probe_replies": 49, "went_down": 0, "went_up": 1},
                         {"id": 1, "relay": "10.0.4.2:7400", "up": false, "rtt_us": -1,
                          "min_rtt_us": -1, "loss": 1.0, "parts": 40, "bytes": 60000,
                          "probes_sent": 50, "probe_replies": 0, "went_down": 1, "went_up": 1}]}],
  "egress": {"flows": [{"flow": 7, "buffer": 64, "buffer_auto": true, "gap_timeout_ms": 15.5,
                        "gap_timeout_auto": false, "occupancy": 3, "delivered": 95,
                        "reordered": 12, "held": 20, "playout_active": true,
                        "peak_occupancy": 9, "lost_overflow": 0,
                        "lost_timeout": 1, "duplicates": 0, "too_old": 0,
                        "paths": [{"id": 0, "parts": 55, "bytes": 82500,
                                   "rate_bytes_per_s": 1200000, "relative_delay_us": 0,
                                   "playout_hold_us": 4150},
                                  {"id": 1, "parts": 40, "bytes": 60000,
                                   "rate_bytes_per_s": 800000, "relative_delay_us": 4200,
                                   "playout_hold_us": 0}]}],
             "flows_refused": 0, "tun_write_errors": 0}
})";

TEST(CliRouterStatus, AgentStatusIsGolden) {
  std::ostringstream out;
  cli::printAgentStatus(Json::parse(kAgentStatus), out);
  expectGolden(out.str(), "cli/router-agent-status.txt");
  std::ostringstream notReady;
  cli::printAgentStatus(Json::parse(R"({"hostname":"r1","interfaces":[],"osrd":null,
      "osrd_error":"cannot connect to osrd at '/run/osrd.sock': No such file or directory"})"),
                        notReady);
  EXPECT_EQ(notReady.str(), "  hostname:    r1\n"
                            "  osrd:        not ready: cannot connect to osrd at "
                            "'/run/osrd.sock': No such file or directory\n"
                            "  interfaces:  none\n");
}

TEST(CliRouterStatus, OsrdStatusIsGolden) {
  std::ostringstream out;
  cli::printOsrdStatus(Json::parse(kOsrdStatus), out);
  expectGolden(out.str(), "cli/router-stats.txt");
  // An idle osrd as the agent documentation shows it.
  std::ostringstream idle;
  cli::printOsrdStatus(
      Json::parse(R"({"counters":{"rejected":{},"relay_delay_dropped":0,"relay_delay_ms":0,
          "relayed":0,"rx":0,"send_drops":0,"tun_packets":1,"tun_unrouted":1,"tx":0},
          "egress":{"flows":[],"flows_refused":0,"tun_write_errors":0},"listen":"0.0.0.0:7400",
          "name":"r1","stripes":[],"tun":"osr0","version":"0.1.0"})"),
      idle);
  expectGolden(idle.str(), "cli/router-stats-idle.txt");
  // The closed-loop scheduler's per-path measurements (docs/osrd.md): the
  // rate a path delivers, its queueing delay, its share; 0 and -1 unknown.
  auto measured = Json::parse(kOsrdStatus);
  auto &stripe = measured["stripes"][0];
  stripe["scheduler"] = "adaptive";
  stripe["feedback"] = {{"accepted", 120}, {"stale", 3}, {"clamped", 0}};
  stripe["paths"][0].update(Json{{"measured_rate", 1187500},
                                 {"queue_us", 2350},
                                 {"share", 0.6},
                                 {"lost", 1},
                                 {"feedback", true}});
  stripe["paths"][1].update(Json{
      {"measured_rate", 0}, {"queue_us", -1}, {"share", 0.0}, {"lost", 4}, {"feedback", false}});
  std::ostringstream withMeasurements;
  cli::printOsrdStatus(measured, withMeasurements);
  expectGolden(withMeasurements.str(), "cli/router-stats-measured.txt");
  // Whatever osrd sends, printing does not throw.
  for (const char *odd : {"null", "[]", R"({"counters":5,"stripes":{},"egress":[]})",
                          R"({"stripes":[{"paths":[null,{"up":"maybe"}]}]})",
                          R"({"stripes":[{"paths":[{"measured_rate":"x","queue_us":[],
                              "share":null}]}]})"}) {
    std::ostringstream sink;
    EXPECT_NO_THROW(cli::printOsrdStatus(Json::parse(odd), sink)) << odd;
  }
}

// ---------------------------------------------------------------------------
// The router lifecycle through the CLI, in-process on the test driver

struct AppResult {
  int exitCode = -1;
  std::string out;
  std::string err;
};

AppResult app(std::vector<std::string> args) {
  std::ostringstream out;
  std::ostringstream err;
  const int code = cli::runApp(std::move(args), out, err, false);
  return {code, out.str(), err.str()};
}

AppResult onTest(std::vector<std::string> args) {
  args.insert(args.begin(), {"--host", kTestUri});
  return app(std::move(args));
}

class CliRouterLifecycle : public HostsFile {
protected:
  void SetUp() override {
    HostsFile::SetUp();
    conn_.emplace(virt::Connection::open(kTestUri));
  }
  void TearDown() override {
    conn_.reset();
    HostsFile::TearDown();
  }

  // A router as RouterManager::create would leave it (the test driver can
  // neither upload images nor give a router the memory create checks for).
  void defineRouter(const std::string &name) {
    virt::StoragePoolPtr pool(virStoragePoolLookupByName(conn_->get(), "default-pool"));
    ASSERT_TRUE(pool);
    const std::string volXml = "<volume><name>" + routerDomainName(name) +
                               ".qcow2</name><capacity>1048576</capacity></volume>";
    virt::StorageVolPtr vol(virStorageVolCreateXML(pool.get(), volXml.c_str(), 0));
    ASSERT_TRUE(vol) << virt::lastError();
    RouterDomainSpec spec;
    spec.name = routerDomainName(name);
    spec.kernel = "/k";
    spec.initrd = "/i";
    spec.disk = "/d";
    spec.nics = {{RouterNic::Kind::Ethernet, "", "", "52:54:00:00:00:01", {}, {}, "", "", {}},
                 {RouterNic::Kind::Bridge, "br0", "", "52:54:00:00:00:02", {}, {}, "", "", {}}};
    spec.metadata = {"osr",          "0123abcd", "ov1", "relay", routerDomainName(name) + ".qcow2",
                     "default-pool", "",         "",    ""};
    virt::DomainPtr dom(virDomainDefineXML(conn_->get(), routerDomainXml(spec).c_str()));
    ASSERT_TRUE(dom) << virt::lastError();
  }

  std::optional<virt::Connection> conn_;
};

TEST_F(CliRouterLifecycle, ListAndInspectShowARouterDefinedElsewhere) {
  defineRouter("r1");
  const auto list = onTest({"router", "list"});
  EXPECT_EQ(list.exitCode, 0) << list.err;
  EXPECT_EQ(list.out, "NAME  HOST             STATE    IMAGE  ROLE   MEMORY   CPUS\n"
                      "r1    test:///default  shutoff  osr    relay  128 MiB  1\n");
  const Json listJson = Json::parse(onTest({"--json", "router", "list"}).out);
  ASSERT_EQ(listJson.at("routers").size(), 1U);
  EXPECT_EQ(listJson["routers"][0].at("name"), "r1");
  EXPECT_EQ(listJson["routers"][0].at("overlay"), "ov1");

  const auto inspect = onTest({"router", "inspect", "r1"});
  EXPECT_EQ(inspect.exitCode, 0) << inspect.err;
  expectGolden(inspect.out, "cli/router-inspect-test-driver.txt");
  const Json json = Json::parse(onTest({"router", "inspect", "r1", "--json"}).out);
  EXPECT_EQ(json.at("state"), "shutoff");
  EXPECT_TRUE(json.at("agent").is_null());
  EXPECT_EQ(json.at("macs"), Json({"52:54:00:00:00:01", "52:54:00:00:00:02"}));

  // The host verbs see it too.
  add("local", kTestUri);
  const auto hosts = app({"host", "list", "--check"});
  EXPECT_NE(hosts.out.find("local  test:///default  1        ok\n"), std::string::npos)
      << hosts.out;
  const auto host = app({"host", "inspect", "local", "--no-probe"});
  EXPECT_NE(host.out.find("routers:       1 (1 shutoff)\n"
                          "  NAME  STATE    IMAGE  ROLE   MEMORY   CPUS\n"
                          "  r1    shutoff  osr    relay  128 MiB  1\n"),
            std::string::npos)
      << host.out;
  EXPECT_EQ(app({"router", "list"}).out, "NAME  HOST   STATE    IMAGE  ROLE   MEMORY   CPUS\n"
                                         "r1    local  shutoff  osr    relay  128 MiB  1\n");
}

TEST_F(CliRouterLifecycle, StartSuspendResumeStopDestroy) {
  defineRouter("r1");
  const std::string where = "router 'r1' on host 'test:///default'";
  auto r = onTest({"router", "stats", "r1"});
  EXPECT_EQ(r.exitCode, 2);
  EXPECT_EQ(r.err, "nvbox: error: " + where +
                       " is shutoff, not running; start it with 'nvbox router start r1 --host "
                       "test:///default'\n");

  r = onTest({"router", "start", "r1"});
  EXPECT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.out, "started " + where + "\n");
  r = onTest({"router", "start", "r1"});
  EXPECT_EQ(r.exitCode, 2);
  EXPECT_EQ(lineCount(r.err), 1U);

  // Running, but the test driver has no agent channel: shown, not an error.
  r = onTest({"router", "inspect", "r1"});
  EXPECT_EQ(r.exitCode, 0) << r.err;
  EXPECT_NE(r.out.find("state:        running\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("agent:        no answer: cannot open the agent channel of router "
                       "'nvbox-r1'"),
            std::string::npos)
      << r.out;
  const Json json = Json::parse(onTest({"router", "inspect", "r1", "--json"}).out);
  EXPECT_TRUE(json.at("agent").at("error").is_string());
  // stats needs the agent: a failure there is one error line.
  r = onTest({"router", "stats", "r1"});
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(lineCount(r.err), 1U) << r.err;

  r = onTest({"router", "suspend", "r1"});
  EXPECT_EQ(r.out, "suspended " + where + "\n");
  r = onTest({"router", "resume", "r1"});
  EXPECT_EQ(r.out, "resumed " + where + "\n");
  r = onTest({"router", "resume", "r1"});
  EXPECT_EQ(r.exitCode, 2);

  r = onTest({"router", "stop", "r1", "--timeout", "5"});
  EXPECT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.out.rfind("stopped router 'r1' gracefully in ", 0), 0U) << r.out;
  r = onTest({"router", "stop", "r1"});
  EXPECT_EQ(r.out, where + " is shut off already\n");

  // --wait on a guest without an agent fails with one line, the router runs.
  r = onTest({"router", "start", "r1", "--wait", "--timeout", "2"});
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_EQ(r.out, "started " + where + "\n");
  EXPECT_EQ(lineCount(r.err), 1U) << r.err;
  EXPECT_EQ(Json::parse(onTest({"router", "inspect", "r1", "--json"}).out).at("state"), "running");

  const Json stopped = Json::parse(onTest({"--json", "router", "stop", "r1"}).out);
  EXPECT_EQ(stopped.at("state"), "shutoff");
  EXPECT_EQ(stopped.at("graceful"), true);

  r = onTest({"router", "destroy", "r1"});
  EXPECT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.out, "destroyed router 'r1' and its overlay volume\n");
  EXPECT_EQ(onTest({"router", "list"}).out, "no routers on host 'test:///default'\n");
  virt::StoragePoolPtr pool(virStoragePoolLookupByName(conn_->get(), "default-pool"));
  EXPECT_FALSE(virt::StorageVolPtr(virStorageVolLookupByName(pool.get(), "nvbox-r1.qcow2")));
  r = onTest({"router", "destroy", "r1"});
  EXPECT_EQ(r.exitCode, 2);
}

TEST_F(CliRouterLifecycle, EachTestStartsFromTheDriversDefaultState) {
  // The routers of the tests before are gone with their connections.
  EXPECT_EQ(onTest({"router", "list"}).out, "no routers on host 'test:///default'\n");
}

} // namespace
} // namespace nvbox::test
