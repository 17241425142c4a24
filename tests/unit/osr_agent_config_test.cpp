// osr-agent without a guest: the network configuration parser (every field
// accepted and refused, errors naming the line and the value), the request
// handler, and the line protocol over a socketpair.
#include "agent_server.hpp"
#include "net_config.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>

namespace nvbox::agent {
namespace {

using json = nlohmann::json;

const char *const kExample = R"(# the router r1
hostname = r1
iface = mac=52:54:00:6E:76:01,addr=10.0.1.1/24,mtu=1500,rate=20M,delay=10ms,jitter=2ms,loss=0.5%
iface = name=eth1,addr=10.0.2.1/24+10.0.9.1/24

route = dst=10.0.3.0/24,via=10.0.1.2
route = dst=default,via=10.0.1.254,dev=eth0
sysctl = net.ipv4.ip_forward=1
)";

// The parser's message for `text`, or "" when it accepts it.
std::string errorOf(const std::string &text) {
  try {
    (void)parseNetConfig(text);
    return "";
  } catch (const std::invalid_argument &e) {
    return e.what();
  }
}

class TempDir {
public:
  TempDir() {
    std::string pattern = "/tmp/nvbox-test-agent-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
      throw std::runtime_error("mkdtemp failed");
    }
    path_ = pattern;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir &) = delete;
  TempDir &operator=(const TempDir &) = delete;

  [[nodiscard]] std::string file(const std::string &name, const std::string &text = {}) const {
    const auto path = path_ / name;
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path) << text;
    return path.string();
  }
  [[nodiscard]] std::string path() const { return path_.string(); }

private:
  std::filesystem::path path_;
};

TEST(NetConfig, ParsesTheDocumentedExample) {
  const NetConfig config = parseNetConfig(kExample);
  EXPECT_EQ(config.hostname, "r1");
  ASSERT_EQ(config.ifaces.size(), 2U);
  const IfaceSpec &first = config.ifaces[0];
  EXPECT_EQ(first.mac, "52:54:00:6e:76:01"); // matched case-insensitively
  EXPECT_EQ(first.name, "");
  EXPECT_EQ(first.addresses, std::vector<std::string>{"10.0.1.1/24"});
  EXPECT_EQ(first.mtu, 1500U);
  EXPECT_EQ(first.rate, 20'000'000U);
  EXPECT_EQ(first.delayUs, 10'000U);
  EXPECT_EQ(first.jitterUs, 2'000U);
  ASSERT_TRUE(first.lossPercent);
  EXPECT_DOUBLE_EQ(*first.lossPercent, 0.5);
  EXPECT_TRUE(first.netem());
  const IfaceSpec &second = config.ifaces[1];
  EXPECT_EQ(second.name, "eth1");
  EXPECT_EQ(second.addresses, (std::vector<std::string>{"10.0.2.1/24", "10.0.9.1/24"}));
  EXPECT_FALSE(second.mtu || second.rate || second.netem());
  ASSERT_EQ(config.routes.size(), 2U);
  EXPECT_EQ(config.routes[0].dst, "10.0.3.0/24");
  EXPECT_EQ(config.routes[0].via, "10.0.1.2");
  EXPECT_EQ(config.routes[0].dev, "");
  EXPECT_EQ(config.routes[1].dst, "0.0.0.0/0");
  EXPECT_EQ(config.routes[1].dev, "eth0");
  ASSERT_EQ(config.sysctls.size(), 1U);
  EXPECT_EQ(config.sysctls[0].key, "net.ipv4.ip_forward");
  EXPECT_EQ(config.sysctls[0].value, "1");
}

TEST(NetConfig, AcceptsUnitsAndLimits) {
  const auto iface = [](const std::string &fields) {
    return parseNetConfig("iface = name=e0,addr=10.0.0.1/32," + fields).ifaces.at(0);
  };
  EXPECT_EQ(iface("rate=1k").rate, 1'000U);
  EXPECT_EQ(iface("rate=64K").rate, 64'000U);
  EXPECT_EQ(iface("rate=10G").rate, 10'000'000'000U);
  EXPECT_EQ(iface("rate=1500000").rate, 1'500'000U);
  EXPECT_EQ(iface("delay=250us").delayUs, 250U);
  EXPECT_EQ(iface("delay=0ms").delayUs, 0U);
  EXPECT_EQ(iface("loss=100").lossPercent, 100.0);
  EXPECT_EQ(iface("mtu=68").mtu, 68U);
  EXPECT_EQ(iface("mtu=65535").mtu, 65535U);
  EXPECT_EQ(parseNetConfig("").ifaces.size(), 0U);
  EXPECT_EQ(parseNetConfig("hostname = a-0").hostname, "a-0");
  EXPECT_EQ(parseNetConfig("route = dst=10.5.4.1/32,via=10.0.0.1").routes.at(0).dst, "10.5.4.1/32");
  EXPECT_EQ(parseNetConfig("route = dst=0.0.0.0/0,via=10.0.0.1").routes.at(0).dst, "0.0.0.0/0");
  // Windows line ends and blanks around '=' are fine.
  EXPECT_EQ(parseNetConfig("hostname\t=  r-2 \r\n").hostname, "r-2");
}

TEST(NetConfig, ErrorsNameTheLineAndTheValue) {
  EXPECT_EQ(errorOf("hostname = r1\n# a comment\n\niface = mac=zz\n"),
            "net config line 4: iface 'mac=zz': bad MAC address 'zz'");
  EXPECT_EQ(errorOf("colour = blue"), "net config line 1: unknown key 'colour'");
  EXPECT_EQ(errorOf("iface = name=e0,addr=10.0.0.1/24,mtu=70000"),
            "net config line 1: iface 'name=e0,addr=10.0.0.1/24,mtu=70000': mtu must be from 68 "
            "to 65535, not '70000'");
  EXPECT_EQ(errorOf("sysctl = net..ipv4=1"),
            "net config line 1: sysctl 'net..ipv4=1': bad key 'net..ipv4' (a-z 0-9 _ - and single "
            "dots)");
  EXPECT_EQ(errorOf("hostname = R1"), "net config line 1: bad hostname 'R1' (1-63 of a-z 0-9 -)");
  EXPECT_EQ(errorOf("just words"), "net config line 1: expected 'key = value', not 'just words'");
}

struct Refused {
  const char *text;
  const char *message; // a part of the error
};

class NetConfigRefuses : public ::testing::TestWithParam<Refused> {};

TEST_P(NetConfigRefuses, WithAClearMessage) {
  const std::string error = errorOf(std::string("# leading comment\n") + GetParam().text);
  EXPECT_EQ(error.rfind("net config line ", 0), 0U) << error;
  EXPECT_NE(error.find(GetParam().message), std::string::npos) << error;
}

INSTANTIATE_TEST_SUITE_P(
    Fields, NetConfigRefuses,
    ::testing::Values(
        Refused{"iface = mac=52:54:00:6e:76,addr=10.0.0.1/24", "bad MAC address '52:54:00:6e:76'"},
        Refused{"iface = mac=52-54-00-6e-76-01,addr=10.0.0.1/24", "bad MAC address"},
        Refused{"iface = mac=52:54:00:6e:76:0g,addr=10.0.0.1/24", "bad MAC address"},
        Refused{"iface = mac=52:54:00:6e:76:01,name=eth0,addr=10.0.0.1/24",
                "exactly one of mac= and name="},
        Refused{"iface = addr=10.0.0.1/24", "exactly one of mac= and name="},
        Refused{"iface = name=eth0", "needs addr="},
        Refused{"iface = name=eth/0,addr=10.0.0.1/24", "bad interface name 'eth/0'"},
        Refused{"iface = name=abcdefghijklmnop,addr=10.0.0.1/24", "bad interface name"},
        Refused{"iface = name=eth0,addr=10.0.0.256/24", "bad address '10.0.0.256/24'"},
        Refused{"iface = name=eth0,addr=10.0.0.1/33", "bad address '10.0.0.1/33'"},
        Refused{"iface = name=eth0,addr=10.0.0.1/0", "bad address"},
        Refused{"iface = name=eth0,addr=10.0.0.1", "bad address '10.0.0.1'"},
        Refused{"iface = name=eth0,addr=10.0.0.1/24+", "bad address ''"},
        Refused{"iface = name=eth0,addr=010.0.0.1/24", "bad address"},
        Refused{"iface = name=eth0,addr=10.0.0.1/24,mtu=67", "mtu must be from 68 to 65535"},
        Refused{"iface = name=eth0,addr=10.0.0.1/24,mtu=1500b", "mtu must be"},
        Refused{"iface = name=eth0,addr=10.0.0.1/24,rate=20m", "rate must be"},
        Refused{"iface = name=eth0,addr=10.0.0.1/24,rate=20Mbit", "rate must be"},
        Refused{"iface = name=eth0,addr=10.0.0.1/24,rate=11G", "rate must be"},
        Refused{"iface = name=eth0,addr=10.0.0.1/24,rate=999", "rate must be"},
        Refused{"iface = name=eth0,addr=10.0.0.1/24,rate=99999999999999999999999G", "rate must be"},
        Refused{"iface = name=eth0,addr=10.0.0.1/24,delay=10", "delay must be"},
        Refused{"iface = name=eth0,addr=10.0.0.1/24,delay=10s", "delay must be"},
        Refused{"iface = name=eth0,addr=10.0.0.1/24,delay=10001ms", "delay must be"},
        Refused{"iface = name=eth0,addr=10.0.0.1/24,jitter=-1ms", "jitter must be"},
        Refused{"iface = name=eth0,addr=10.0.0.1/24,loss=101%", "loss must be"},
        Refused{"iface = name=eth0,addr=10.0.0.1/24,loss=nan", "loss must be"},
        Refused{"iface = name=eth0,addr=10.0.0.1/24,loss=1e1", "loss must be"},
        Refused{"iface = name=eth0,addr=10.0.0.1/24,loss=.5", "loss must be"},
        Refused{"iface = name=eth0,addr=10.0.0.1/24,colour=red", "unknown field 'colour'"},
        Refused{"iface = name=eth0,addr=10.0.0.1/24,mtu=1500,mtu=1400", "field 'mtu' given twice"},
        Refused{"iface = name=eth0,addr=10.0.0.1/24,,mtu=1500", "field '' is not KEY=VALUE"},
        Refused{"iface = name=eth0,addr=10.0.0.1/24\niface = name=eth0,addr=10.0.1.1/24",
                "interface 'eth0' already configured on line 2"},
        Refused{"iface = mac=52:54:00:6e:76:01,addr=10.0.0.1/24\n"
                "iface = mac=52:54:00:6E:76:01,addr=10.0.1.1/24",
                "line 3: iface 'mac=52:54:00:6E:76:01,addr=10.0.1.1/24': MAC address "
                "52:54:00:6e:76:01 already configured on line 2"},
        Refused{"route = dst=10.0.3.0/24", "needs dst= and via="},
        Refused{"route = via=10.0.0.1", "needs dst= and via="},
        Refused{"route = dst=10.0.3.1/24,via=10.0.0.1", "has host bits set"},
        Refused{"route = dst=fe80::/64,via=10.0.0.1", "bad destination"},
        Refused{"route = dst=default,via=gateway", "bad gateway 'gateway'"},
        Refused{"route = dst=default,via=10.0.0.1,dev=a b", "bad device name"},
        Refused{"route = dst=default,via=10.0.0.1\nroute = dst=0.0.0.0/0,via=10.0.0.2",
                "a route to 0.0.0.0/0 is already configured on line 2"},
        Refused{"sysctl = net.ipv4.ip_forward", "expected KEY=VALUE"},
        Refused{"sysctl = ../../etc/passwd=x", "bad key"},
        Refused{"sysctl = net/ipv4/ip_forward=1", "bad key"},
        Refused{"sysctl = .net.ipv4=1", "bad key"}, Refused{"sysctl = Net.ipv4=1", "bad key"},
        Refused{"sysctl = net.ipv4.ip_forward=", "1-256 printable"},
        Refused{"sysctl = net.ipv4.ip_forward=1\nsysctl = net.ipv4.ip_forward=0",
                "sysctl 'net.ipv4.ip_forward' already configured on line 2"},
        Refused{"hostname = r_1", "bad hostname 'r_1'"}, Refused{"hostname = ", "bad hostname ''"},
        Refused{"hostname = a234567890123456789012345678901234567890123456789012345678901234",
                "bad hostname"},
        Refused{"hostname = r1\nhostname = r2", "hostname already configured on line 2"},
        Refused{"[iface]\nname = eth0", "line 2: sections ('[name]') are not supported"},
        Refused{"iface", "expected 'key = value', not 'iface'"},
        Refused{"Iface = name=eth0,addr=10.0.0.1/24", "unknown key 'Iface'"}));

TEST(NetConfig, QuotesHostileValuesOnOneShortLine) {
  const std::string error = errorOf("iface = mac=\x01\x7f\xff" + std::string(200, 'x'));
  EXPECT_EQ(error.find('\x01'), std::string::npos);
  EXPECT_EQ(error.find('\xff'), std::string::npos);
  EXPECT_LT(error.size(), 200U) << error;
  EXPECT_NE(error.find("'mac=???xxx"), std::string::npos) << error;
  EXPECT_NE(error.find("...'"), std::string::npos) << error;
  EXPECT_EQ(quoteValue("a\nb"), "'a?b'");
}

TEST(NetConfig, ReadsFilesAndSaysWhyNot) {
  const TempDir dir;
  EXPECT_EQ(readNetConfigFile(dir.file("net", "hostname = r1\n")), "hostname = r1\n");
  try {
    (void)readNetConfigFile(dir.path() + "/missing");
    FAIL() << "expected an error";
  } catch (const std::runtime_error &e) {
    EXPECT_EQ(std::string(e.what()),
              "cannot read net config '" + dir.path() + "/missing': No such file or directory");
  }
}

TEST(NetConfig, ParsesShapeWithoutAddresses) {
  const IfaceSpec spec = parseShape("mac=52:54:00:6E:76:01,mtu=1400,rate=4M,delay=2ms,loss=1%");
  EXPECT_EQ(spec.mac, "52:54:00:6e:76:01");
  EXPECT_EQ(spec.mtu, 1400U);
  EXPECT_EQ(spec.rate, 4000000U);
  EXPECT_EQ(spec.delayUs, 2000U);
  EXPECT_FALSE(spec.jitterUs);
  EXPECT_EQ(spec.lossPercent, 1.0);
  const IfaceSpec bare = parseShape("name=eth1");
  EXPECT_EQ(bare.name, "eth1");
  EXPECT_FALSE(bare.rate || bare.netem() || bare.mtu);

  const auto error = [](std::string_view text) {
    try {
      (void)parseShape(text);
    } catch (const std::invalid_argument &e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_EQ(error("name=eth1,addr=10.0.1.1/24"),
            "shape 'name=eth1,addr=10.0.1.1/24': addresses are not shaping (mac= or name=, then "
            "mtu, rate, delay, jitter, loss)");
  EXPECT_EQ(error("rate=4M"), "shape 'rate=4M': give exactly one of mac= and name=");
  EXPECT_EQ(error("name=eth1,delay=forever"),
            "shape 'name=eth1,delay=forever': delay must be 0 to 10000ms, in ms or us, not "
            "'forever'");
}

TEST(AgentServer, ShapeNeedsAnIfaceAndAValidOne) {
  const AgentServer server(AgentOptions{});
  const json missing = server.handle({{"id", 1}, {"cmd", "shape"}});
  EXPECT_EQ(missing["ok"], false);
  EXPECT_EQ(missing["error"], "'shape' needs 'iface', a string like "
                              "\"mac=52:54:00:6e:76:01,rate=4M,delay=2ms\"");
  const json bad = server.handle({{"cmd", "shape"}, {"iface", "mac=zz,rate=1M"}});
  EXPECT_EQ(bad["ok"], false);
  EXPECT_EQ(bad["error"], "shape 'mac=zz,rate=1M': bad MAC address 'zz'");
  const json absent = server.handle({{"cmd", "shape"}, {"iface", "name=nvbox-no-such0"}});
  EXPECT_EQ(absent["ok"], false);
  EXPECT_EQ(absent["error"], "iface 'nvbox-no-such0': unknown interface");
}

TEST(AgentServer, AnswersPingAndEchoesAnyId) {
  const AgentServer server(AgentOptions{});
  EXPECT_EQ(server.handle({{"id", 1}, {"cmd", "ping"}}), json({{"id", 1}, {"ok", true}}));
  EXPECT_EQ(server.handle({{"cmd", "ping"}}), json({{"ok", true}}));
  const json id = {{"a", {1, 2, "three"}}};
  EXPECT_EQ(server.handle({{"id", id}, {"cmd", "ping"}})["id"], id);
  EXPECT_EQ(server.handleLine(R"({"cmd":"ping","id":"x"})"), R"({"id":"x","ok":true})");
}

TEST(AgentServer, RefusesUnknownAndMalformedRequests) {
  const AgentServer server(AgentOptions{});
  const json unknown = server.handle({{"id", 7}, {"cmd", "reboot"}});
  EXPECT_EQ(unknown["id"], 7);
  EXPECT_EQ(unknown["ok"], false);
  EXPECT_EQ(unknown["error"], "unknown command 'reboot'; known: ping, status, osrd, net, shape");
  for (const json &bad : {json(42), json::array({1}), json({{"id", 3}}), json({{"cmd", 5}})}) {
    const json reply = server.handle(bad);
    EXPECT_EQ(reply["ok"], false) << bad;
    EXPECT_EQ(reply["error"], "a request is a JSON object with a string 'cmd'") << bad;
  }
  EXPECT_EQ(server.handle({{"id", 3}})["id"], 3);
  for (const std::string &line : std::vector<std::string>{
           "{", "not json", "\xff\xfe", "{\"cmd\":\"ping\"} trailing", std::string(1000, '[')}) {
    const json reply = json::parse(server.handleLine(line));
    EXPECT_EQ(reply["ok"], false) << line;
    EXPECT_EQ(reply["error"].get<std::string>().rfind("malformed request: ", 0), 0U) << reply;
    EXPECT_FALSE(reply.contains("id"));
  }
  const json osrd = server.handle({{"id", 4}, {"cmd", "osrd"}, {"request", "status"}});
  EXPECT_EQ(osrd["error"], "'osrd' needs 'request', a JSON object to pass to osrd");
  EXPECT_EQ(server.handle({{"cmd", "net"}})["error"],
            "no network configuration: the agent has no --net file");
}

TEST(AgentServer, ReturnsTheNetFile) {
  const TempDir dir;
  AgentOptions options;
  options.netFile = dir.file("net", "hostname = r1\n");
  const AgentServer server(options);
  EXPECT_EQ(server.handle({{"id", 4}, {"cmd", "net"}}),
            json({{"id", 4}, {"ok", true}, {"config", "hostname = r1\n"}}));
  std::filesystem::remove(options.netFile);
  EXPECT_EQ(server.handle({{"cmd", "net"}})["ok"], false);
}

TEST(AgentServer, ReportsAnAbsentOrSilentOsrd) {
  const TempDir dir;
  AgentOptions options;
  options.osrdSocket = dir.path() + "/osrd.sock";
  options.osrdTimeout = std::chrono::milliseconds(200);
  const AgentServer server(options);
  const json status = server.handle({{"id", 2}, {"cmd", "status"}});
  EXPECT_EQ(status["ok"], true) << status;
  EXPECT_EQ(status["ready"], false);
  EXPECT_TRUE(status["osrd"].is_null());
  EXPECT_EQ(status["osrd_error"],
            "cannot connect to osrd at '" + options.osrdSocket + "': No such file or directory");
  EXPECT_TRUE(status["hostname"].is_string());
  for (const auto &link : status["interfaces"]) {
    EXPECT_NE(link["name"], "lo");
  }

  // A socket that accepts connections but never answers.
  const netconfig::Fd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  options.osrdSocket.copy(sa.sun_path, sizeof sa.sun_path - 1);
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<const sockaddr *>(&sa), sizeof sa), 0);
  ASSERT_EQ(::listen(listener.get(), 4), 0);
  const json forwarded = server.handle({{"id", 3}, {"cmd", "osrd"}, {"request", {{"cmd", "x"}}}});
  EXPECT_EQ(forwarded,
            json({{"id", 3},
                  {"ok", false},
                  {"error", "osrd at '" + options.osrdSocket + "' did not answer within 200 ms"}}));
}

// One end of a socketpair served by serveFd() on a thread; the test talks on
// the other end.
class LineProtocol : public ::testing::Test {
protected:
  void SetUp() override {
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    host_ = std::make_unique<netconfig::Fd>(fds[0]);
    guest_ = std::make_unique<netconfig::Fd>(fds[1]);
    serving_ = std::thread([this] { server_.serveFd(guest_->get()); });
  }
  void TearDown() override {
    host_.reset(); // the host hangs up: serveFd returns
    serving_.join();
  }

  void send(const std::string &bytes) const {
    ASSERT_EQ(::write(host_->get(), bytes.data(), bytes.size()),
              static_cast<ssize_t>(bytes.size()));
  }
  json reply() {
    while (buffer_.find('\n') == std::string::npos) {
      char buf[4096];
      const ssize_t got = ::read(host_->get(), buf, sizeof buf);
      if (got <= 0) {
        throw std::runtime_error("the agent closed the connection");
      }
      buffer_.append(buf, static_cast<std::size_t>(got));
    }
    const std::string line = buffer_.substr(0, buffer_.find('\n'));
    buffer_.erase(0, line.size() + 1);
    return json::parse(line);
  }

  AgentServer server_{AgentOptions{}};
  std::unique_ptr<netconfig::Fd> host_;
  std::unique_ptr<netconfig::Fd> guest_;
  std::thread serving_;
  std::string buffer_;
};

TEST_F(LineProtocol, AnswersEachLineOnce) {
  send("{\"id\":1,\"cmd\":\"ping\"}\n{\"id\":2,\"cmd\":\"ping\"}\n\n  \n{\"id\":3,");
  EXPECT_EQ(reply(), json({{"id", 1}, {"ok", true}}));
  EXPECT_EQ(reply(), json({{"id", 2}, {"ok", true}}));
  send("\"cmd\":\"ping\"}\nnonsense\n");
  EXPECT_EQ(reply(), json({{"id", 3}, {"ok", true}}));
  EXPECT_EQ(reply()["ok"], false);
}

TEST_F(LineProtocol, DiscardsAnOverlongLineUpToItsNewline) {
  // Sent in pieces, as a slow host would, and in one go.
  const std::string chunk(std::size_t{16} * 1024, 'x');
  for (int i = 0; i < 5; ++i) {
    send(chunk);
  }
  const json refused = reply();
  EXPECT_EQ(refused["ok"], false);
  EXPECT_EQ(refused["error"], "request line longer than 65536 bytes; discarded");
  send(chunk + "\n{\"id\":9,\"cmd\":\"ping\"}\n");
  EXPECT_EQ(reply(), json({{"id", 9}, {"ok", true}}));
  send(std::string(70'000, 'y') + "\n{\"id\":10,\"cmd\":\"ping\"}\n");
  EXPECT_EQ(reply()["ok"], false);
  EXPECT_EQ(reply(), json({{"id", 10}, {"ok", true}}));
  // Exactly 64 KiB is still a request.
  std::string padded = "{\"id\":11,\"cmd\":\"ping\"}";
  padded += std::string(std::size_t{64} * 1024 - padded.size(), ' ');
  send(padded + "\n");
  EXPECT_EQ(reply(), json({{"id", 11}, {"ok", true}}));
}

TEST(VirtioPort, IsFoundByName) {
  const TempDir sys;
  (void)sys.file("vport1p1/name", "org.qemu.guest_agent.0\n");
  (void)sys.file("vport1p2/name", "org.nvbox.agent.0\n");
  (void)sys.file("vport1p3/name", "");
  EXPECT_EQ(findVirtioPort("org.nvbox.agent.0", sys.path()), "/dev/vport1p2");
  EXPECT_EQ(findVirtioPort("org.nvbox.agent.1", sys.path()), std::nullopt);
  EXPECT_EQ(findVirtioPort("org.nvbox.agent.0", sys.path() + "/none"), std::nullopt);
}

TEST(VirtioPort, OpenDeviceSaysWhatIsMissing) {
  try {
    (void)openDevice("/nonexistent/vport9p9");
    FAIL() << "expected an error";
  } catch (const std::runtime_error &e) {
    EXPECT_EQ(std::string(e.what()),
              "cannot open '/nonexistent/vport9p9': No such file or directory");
  }
}

} // namespace
} // namespace nvbox::agent
