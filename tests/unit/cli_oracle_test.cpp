// `nvbox oracle …` as a user meets it: help texts (golden), usage errors,
// an oracle that does not answer, and a query and a map against a real
// OracleServer. The server runs in this process on 127.0.0.1 (an ephemeral
// port), fed with REPORTs through its socket-free handle(); the CLI runs
// in-process too (cli::runApp), so it talks to the server over loopback UDP.
#include "app.hpp"
#include "golden.hpp"
#include "nvbox/error.hpp"
#include "nvbox/oracle_client.hpp"
#include "nvbox/oracle_server.hpp"
#include "process.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <unistd.h>

namespace nvbox::test {
namespace {

namespace fs = std::filesystem;
namespace oracle = osr::oracle;
using Json = nlohmann::json;

constexpr const char *kKeyHex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

// A key file in a temporary directory, removed at the end.
class KeyFile {
public:
  KeyFile() {
    dir_ = fs::temp_directory_path() / ("nvbox-cli-oracle-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    path_ = dir_ / "osrd.key";
    std::ofstream(path_) << kKeyHex << "\n";
  }
  ~KeyFile() { fs::remove_all(dir_); }
  KeyFile(const KeyFile &) = delete;
  KeyFile &operator=(const KeyFile &) = delete;
  [[nodiscard]] std::string path() const { return path_.string(); }

private:
  fs::path dir_;
  fs::path path_;
};

struct AppResult {
  int exitCode;
  std::string out;
  std::string err;
};

AppResult app(std::vector<std::string> args) {
  std::ostringstream out;
  std::ostringstream err;
  const int code = cli::runApp(std::move(args), out, err, false);
  return {code, out.str(), err.str()};
}

// --- help ------------------------------------------------------------------

TEST(CliOracle, NounHelpIsGolden) {
  const auto r = nvbox({"oracle", "--help"});
  EXPECT_EQ(r.exitCode, 0);
  EXPECT_EQ(r.err, "");
  expectGolden(r.out, "cli/oracle-help.txt");
}

class CliOracleVerbHelp : public ::testing::TestWithParam<std::string> {};

TEST_P(CliOracleVerbHelp, IsGolden) {
  const auto r = nvbox({"oracle", GetParam(), "--help"});
  EXPECT_EQ(r.exitCode, 0);
  EXPECT_EQ(r.err, "");
  expectGolden(r.out, "cli/oracle-" + GetParam() + "-help.txt");
  EXPECT_EQ(nvbox({"help", "oracle", GetParam()}).out, r.out);
}

INSTANTIATE_TEST_SUITE_P(Oracle, CliOracleVerbHelp, ::testing::Values("serve", "query", "map"));

// --- usage errors ------------------------------------------------------------

struct UsageCase {
  std::vector<std::string> args;
  std::string error;
};

class CliOracleUsageError : public ::testing::TestWithParam<UsageCase> {};

TEST_P(CliOracleUsageError, OneLineAndExitTwo) {
  const auto r = nvbox(GetParam().args);
  EXPECT_EQ(r.exitCode, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(lineCount(r.err), 1U) << r.err;
  EXPECT_EQ(r.err.substr(0, GetParam().error.size()), GetParam().error) << r.err;
}

const std::string kQ = "nvbox: error: nvbox oracle query: ";

INSTANTIATE_TEST_SUITE_P(
    Cases, CliOracleUsageError,
    ::testing::Values(UsageCase{{"oracle", "query"}, kQ + "missing SRC and DST"},
                      UsageCase{{"oracle", "query", "10.0.0.1:7400", "--key-file", "k"},
                                kQ + "missing SRC and DST"},
                      UsageCase{{"oracle", "query", "nope", "10.0.0.2:7400", "--key-file", "k"},
                                kQ + "SRC must be IPv4:PORT, not 'nope'"},
                      UsageCase{{"oracle", "query", "10.0.0.1:7400", "10.0.0.2", "--key-file", "k"},
                                kQ + "DST must be IPv4:PORT, not '10.0.0.2'"},
                      UsageCase{{"oracle", "query", "10.0.0.1:7400", "10.0.0.2:7400", "-k", "0",
                                 "--key-file", "k"},
                                kQ + "-k must be 1-16, not '0'"},
                      UsageCase{{"oracle", "query", "10.0.0.1:7400", "10.0.0.2:7400", "-k", "17",
                                 "--key-file", "k"},
                                kQ + "-k must be 1-16, not '17'"},
                      UsageCase{{"oracle", "query", "10.0.0.1:7400", "10.0.0.2:7400", "-k", "two",
                                 "--key-file", "k"},
                                kQ},
                      UsageCase{{"oracle", "query", "10.0.0.1:7400", "10.0.0.2:7400", "--objective",
                                 "fast", "--key-file", "k"},
                                kQ + "--objective must be delay, rate or disjoint, not 'fast'"},
                      UsageCase{{"oracle", "query", "10.0.0.1:7400", "10.0.0.2:7400"},
                                kQ + "--key-file is required"},
                      UsageCase{{"oracle", "query", "10.0.0.1:7400", "10.0.0.2:7400", "--oracle",
                                 "here", "--key-file", "k"},
                                kQ + "--oracle must be IPv4:PORT, not 'here'"},
                      UsageCase{{"oracle", "query", "10.0.0.1:7400", "10.0.0.2:7400",
                                 "10.0.0.3:7400", "--key-file", "k"},
                                kQ + "too many positional"},
                      UsageCase{{"oracle", "map", "--host", "local", "--key-file", "k"},
                                "nvbox: error: nvbox oracle map: --host does not apply"},
                      UsageCase{
                          {"oracle", "serve", "--key-file", "k", "--max-age", "0"},
                          "nvbox: error: nvbox oracle serve: --max-age must be 1-3600 seconds"}));

// --- an oracle that does not answer ------------------------------------------

TEST(CliOracle, QueryWithNothingListeningFailsWithinItsTimeout) {
  const KeyFile key;
  const auto start = std::chrono::steady_clock::now();
  // Port 1 of loopback: nothing listens there.
  const auto r = nvbox({"oracle", "query", "10.0.0.1:7400", "10.0.0.2:7400", "--oracle",
                        "127.0.0.1:1", "--key-file", key.path()});
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(lineCount(r.err), 1U) << r.err;
  EXPECT_EQ(r.err.rfind("nvbox: error: cannot reach oracle at '127.0.0.1:1'", 0), 0U) << r.err;
  // 3 attempts of 1 s at most, plus the process.
  EXPECT_LT(took, std::chrono::seconds(5));
}

TEST(CliOracle, MissingKeyFileIsOneError) {
  const auto r = nvbox(
      {"oracle", "map", "--oracle", "127.0.0.1:1", "--key-file", "/nonexistent/nvbox-oracle.key"});
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_EQ(lineCount(r.err), 1U) << r.err;
  EXPECT_EQ(r.err.rfind("nvbox: error: cannot read key file '/nonexistent/nvbox-oracle.key'", 0),
            0U)
      << r.err;
}

// --- end to end against a real server -------------------------------------------

osr::Endpoint ep(const char *text) {
  return *osr::Endpoint::parse(text);
}

osr::Nanos monoNow() {
  return std::chrono::duration_cast<osr::Nanos>(
      std::chrono::steady_clock::now().time_since_epoch());
}

class CliOracleServer : public ::testing::Test {
protected:
  void SetUp() override {
    server_ = std::make_unique<OracleServer>(
        OracleServer::Config{.listen = osr::Endpoint{.addr = 0x7F000001, .port = 0}, .key = key_});
    address_ = server_->local().toString();
  }
  void TearDown() override {
    if (thread_.joinable()) {
      server_->stop();
      thread_.join();
    }
  }

  // One REPORT from `src`, through the server's message path.
  void report(const char *src, const char *group, std::vector<oracle::ReportEntry> entries) {
    std::vector<std::uint8_t> out(oracle::kMaxDatagram);
    const oracle::Header h{.type = oracle::MessageType::Report,
                           .sender = ep(src),
                           .nonce = oracle::randomNonce(),
                           .timestamp_ns = wallClockNs()};
    out.resize(oracle::encodeReport(h, group, entries, key_, out));
    ASSERT_FALSE(out.empty());
    EXPECT_TRUE(server_->handle(out, monoNow(), osr::Nanos(wallClockNs())).empty()); // no reply
  }

  void serve() {
    thread_ = std::thread([this] { server_->run(); });
  }

  osr::OverlayKey key_ = *osr::OverlayKey::fromHex(kKeyHex);
  std::unique_ptr<OracleServer> server_;
  std::string address_;
  std::thread thread_;
};

// A: the ingress; B: the destination, 50 ms away directly; C and D: relays
// that make a shorter detour (11 ms and 28 ms); E: measured by A only.
TEST_F(CliOracleServer, QueryAndMapAnswerFromReports) {
  const KeyFile key;
  report("10.9.0.1:7400", "host1",
         {{.peer = ep("10.8.0.1:7400"), .loss = 0, .delay_us = 50000, .rate = 1'000'000},
          {.peer = ep("10.8.0.2:7400"), .loss = 0, .delay_us = 5000, .rate = 2'000'000},
          {.peer = ep("10.8.0.3:7400"), .loss = 100, .delay_us = 8000, .rate = 3'000'000},
          {.peer = ep("10.8.0.4:7400"), .loss = 0, .delay_us = 1000, .rate = 9'000'000}});
  report("10.8.0.2:7400", "host2",
         {{.peer = ep("10.8.0.1:7400"), .loss = 0, .delay_us = 6000, .rate = 4'000'000}});
  report("10.8.0.3:7400", "host3",
         {{.peer = ep("10.8.0.1:7400"), .loss = 0, .delay_us = 20000, .rate = 5'000'000}});
  serve();

  const auto q = app({"--json", "oracle", "query", "10.9.0.1:7400", "10.8.0.1:7400", "-k", "2",
                      "--oracle", address_, "--key-file", key.path()});
  ASSERT_EQ(q.exitCode, 0) << q.err;
  EXPECT_EQ(q.err, "");
  const Json answer = Json::parse(q.out);
  EXPECT_EQ(answer["objective"], "delay");
  EXPECT_EQ(answer["direct"]["delay_us"], 50000);
  ASSERT_EQ(answer["relays"].size(), 2U) << q.out;
  EXPECT_EQ(answer["relays"][0]["relay"], "10.8.0.2:7400");
  EXPECT_EQ(answer["relays"][0]["delay_us"], 11000);
  EXPECT_EQ(answer["relays"][0]["rate"], 2'000'000);
  EXPECT_EQ(answer["relays"][0]["group"], "host2");
  EXPECT_EQ(answer["relays"][0]["beats_direct"], true);
  EXPECT_EQ(answer["relays"][1]["relay"], "10.8.0.3:7400");
  EXPECT_EQ(answer["relays"][1]["delay_us"], 28000);
  EXPECT_DOUBLE_EQ(answer["relays"][1]["loss"].get<double>(), 0.01);

  // By rate the slower-delay relay with the wider bottleneck comes first.
  const auto rate = app({"--json", "oracle", "query", "10.9.0.1:7400", "10.8.0.1:7400",
                         "--objective", "rate", "--oracle", address_, "--key-file", key.path()});
  ASSERT_EQ(rate.exitCode, 0) << rate.err;
  const Json byRate = Json::parse(rate.out);
  ASSERT_EQ(byRate["relays"].size(), 1U);
  EXPECT_EQ(byRate["relays"][0]["relay"], "10.8.0.3:7400");
  EXPECT_EQ(byRate["relays"][0]["rate"], 3'000'000);

  // The human-readable form names the relay and the violation.
  const auto text = app({"oracle", "query", "10.9.0.1:7400", "10.8.0.1:7400", "--oracle", address_,
                         "--key-file", key.path()});
  ASSERT_EQ(text.exitCode, 0) << text.err;
  EXPECT_NE(text.out.find("10.8.0.2:7400"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("beats direct"), std::string::npos) << text.out;

  // A source that never reported is one clear error.
  const auto unknown = app({"oracle", "query", "10.8.0.4:7400", "10.8.0.1:7400", "--oracle",
                            address_, "--key-file", key.path()});
  EXPECT_EQ(unknown.exitCode, 1);
  EXPECT_EQ(lineCount(unknown.err), 1U) << unknown.err;
  EXPECT_NE(unknown.err.find("has no fresh report from '10.8.0.4:7400'"), std::string::npos)
      << unknown.err;

  const auto m = app({"--json", "oracle", "map", "--oracle", address_, "--key-file", key.path()});
  ASSERT_EQ(m.exitCode, 0) << m.err;
  const Json map = Json::parse(m.out);
  EXPECT_EQ(map["network-map"].size(), 5U) << m.out;
  EXPECT_EQ(map["network-map"]["10.8.0.2:7400"]["group"], "host2");
  EXPECT_EQ(map["network-map"]["10.8.0.2:7400"]["port"], 7400);
  const Json &cost = map["cost-map"]["10.9.0.1:7400"]["10.8.0.2:7400"];
  EXPECT_EQ(cost["delay_us"], 5000);
  EXPECT_EQ(cost["rate"], 2'000'000);
  EXPECT_EQ(cost["fresh"], true);
  EXPECT_EQ(map["cost-map"]["10.8.0.3:7400"]["10.8.0.1:7400"]["delay_us"], 20000);

  // The table form lists every measured pair.
  const auto table = app({"oracle", "map", "--oracle", address_, "--key-file", key.path()});
  ASSERT_EQ(table.exitCode, 0) << table.err;
  EXPECT_NE(table.out.find("10.8.0.3:7400"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("20.0 ms"), std::string::npos) << table.out;
}

// A client with another key gets nothing back: the server drops it.
TEST_F(CliOracleServer, WrongKeyIsDroppedAndTheClientGivesUp) {
  serve();
  OracleClient client(ep(address_.c_str()), *osr::OverlayKey::fromHex(std::string(64, 'f')),
                      std::chrono::milliseconds(100), 2);
  EXPECT_THROW(client.map(), Error);
}

} // namespace
} // namespace nvbox::test
