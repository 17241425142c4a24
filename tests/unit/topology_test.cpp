// Topology files, libvirt style: every tests/golden/topology/NAME.yaml sits
// beside what parsing it must give — NAME.err, the exact error text, or
// NAME.json, a dump of the parsed Topology. NVBOX_UPDATE_GOLDEN=1 rewrites
// them (then review the diff).
#include "golden.hpp"

#include "nvbox/topology.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unistd.h>

namespace nvbox {
namespace {

const std::filesystem::path kGoldenDir =
    std::filesystem::path(NVBOX_SOURCE_DIR) / "tests/golden/topology";

// Every case, so that a golden file without a test (or the reverse) shows.
const std::vector<std::string> kCases = {
    "valid-full",
    "valid-minimal",
    "bad-yaml-syntax",
    "top-not-mapping",
    "missing-overlay",
    "bad-overlay-name",
    "unknown-key",
    "duplicate-router",
    "endpoint-named-like-router",
    "unknown-host",
    "host-required",
    "link-unknown-router",
    "link-to-itself",
    "link-same-pair",
    "bad-rate",
    "impossible-rate",
    "loss-too-high",
    "jitter-without-delay",
    "mtu-out-of-range",
    "stripe-k-too-large",
    "stripe-relay-is-ingress",
    "stripe-unknown-router",
    "oracle-without-k",
    "event-unknown-link",
    "event-sets-nothing",
    "cross-host-no-underlay",
    "addressing-too-small",
    "several-errors",
    "wrong-node-type",
    "duplicate-key",
    "bad-values",
    "empty-file",
    "several-documents",
    // Found by topology_fuzz: yaml-cpp's LoadAll never ends on it.
    "endless-documents",
};

std::string readFile(const std::filesystem::path &path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

nlohmann::ordered_json toJson(const Mark &mark) {
  return std::to_string(mark.line) + ":" + std::to_string(mark.column);
}

template <typename T> nlohmann::ordered_json toJson(const std::optional<T> &value) {
  return value ? nlohmann::ordered_json(*value) : nlohmann::ordered_json(nullptr);
}

nlohmann::ordered_json toJson(const LinkShape &shape) {
  return {{"rateBps", toJson(shape.rateBps)},
          {"delayUs", toJson(shape.delayUs)},
          {"jitterUs", toJson(shape.jitterUs)},
          {"lossPercent", toJson(shape.lossPercent)}};
}

// Every field, so a golden dump shows what the planner will be given.
nlohmann::ordered_json toJson(const Topology &topo) {
  nlohmann::ordered_json out = {{"file", topo.file},
                                {"overlay", topo.overlay},
                                {"image", topo.image},
                                {"addressing", topo.addressing}};
  auto &hosts = out["hosts"] = nlohmann::ordered_json::array();
  for (const auto &[name, h] : topo.hosts) {
    hosts.push_back({{"name", h.name},
                     {"uri", h.uri},
                     {"underlay", toJson(h.underlay)},
                     {"netns", h.netns},
                     {"mark", toJson(h.mark)}});
  }
  auto &routers = out["routers"] = nlohmann::ordered_json::array();
  for (const auto &r : topo.routers) {
    routers.push_back({{"name", r.name},
                       {"host", r.host},
                       {"role", r.role},
                       {"memoryMiB", r.memoryMiB},
                       {"cpus", r.cpus},
                       {"osrd", r.osrd},
                       {"mark", toJson(r.mark)}});
  }
  auto &links = out["links"] = nlohmann::ordered_json::array();
  for (const auto &l : topo.links) {
    links.push_back({{"name", l.name},
                     {"a", l.a},
                     {"b", l.b},
                     {"shape", toJson(l.shape)},
                     {"mtu", l.mtu},
                     {"mark", toJson(l.mark)}});
  }
  auto &endpoints = out["endpoints"] = nlohmann::ordered_json::array();
  for (const auto &e : topo.endpoints) {
    endpoints.push_back({{"name", e.name}, {"router", e.router}, {"mark", toJson(e.mark)}});
  }
  auto &stripes = out["stripes"] = nlohmann::ordered_json::array();
  for (const auto &s : topo.stripes) {
    stripes.push_back({{"name", s.name},
                       {"ingress", s.ingress},
                       {"egress", s.egress},
                       {"relays", s.relays},
                       {"askOracle", s.askOracle},
                       {"k", s.k},
                       {"scheduler", s.scheduler},
                       {"buffer", toJson(s.buffer)},
                       {"reverse", s.reverse},
                       {"mark", toJson(s.mark)}});
  }
  auto &events = out["events"] = nlohmann::ordered_json::array();
  for (const auto &e : topo.events) {
    events.push_back({{"atMs", e.atMs},
                      {"link", e.link},
                      {"up", toJson(e.up)},
                      {"shape", toJson(e.shape)},
                      {"mark", toJson(e.mark)}});
  }
  return out;
}

class TopologyGolden : public testing::TestWithParam<std::string> {};

TEST_P(TopologyGolden, MatchesExpectedOutput) {
  const std::string name = GetParam();
  const std::string yaml = name + ".yaml";
  ASSERT_TRUE(std::filesystem::exists(kGoldenDir / yaml)) << "missing " << (kGoldenDir / yaml);
  const std::string text = readFile(kGoldenDir / yaml);
  const bool valid = name.rfind("valid-", 0) == 0;
  try {
    const Topology topo = parseTopology(text, yaml);
    ASSERT_TRUE(valid) << name << " parsed without errors";
    test::expectGolden(toJson(topo).dump(2) + "\n", "topology/" + name + ".json");
  } catch (const TopologyError &e) {
    ASSERT_FALSE(valid) << e.what();
    test::expectGolden(std::string(e.what()) + "\n", "topology/" + name + ".err");
    // One line per error, each "FILE:LINE:COL: message".
    for (const auto &line : e.errors()) {
      EXPECT_EQ(line.rfind(yaml + ":", 0), 0U) << line;
      EXPECT_EQ(line.find('\n'), std::string::npos) << line;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, TopologyGolden, testing::ValuesIn(kCases),
                         [](const testing::TestParamInfo<std::string> &param) {
                           std::string id = param.param;
                           std::replace(id.begin(), id.end(), '-', '_');
                           return id;
                         });

TEST(TopologyGoldenFiles, EveryFileHasACase) {
  for (const auto &entry : std::filesystem::directory_iterator(kGoldenDir)) {
    const std::string stem = entry.path().stem().string();
    EXPECT_NE(std::find(kCases.begin(), kCases.end(), stem), kCases.end())
        << entry.path() << " belongs to no test case";
  }
}

TEST(Topology, LooksUpRoutersAndLinks) {
  const Topology topo = parseTopology("overlay: t\n"
                                      "routers: {a: {}, b: {}}\n"
                                      "links: [{between: [a, b]}]\n",
                                      "t.yaml");
  ASSERT_NE(topo.router("b"), nullptr);
  EXPECT_EQ(topo.router("b")->host, "local");
  EXPECT_EQ(topo.router("c"), nullptr);
  ASSERT_NE(topo.link("a-b"), nullptr);
  EXPECT_EQ(topo.link("a-b")->mtu, 1500U);
  EXPECT_EQ(topo.link("b-a"), nullptr);
}

TEST(Topology, ErrorListsEveryLine) {
  try {
    (void)parseTopology("overlay: Bad\nrouters: {}\n", "t.yaml");
    FAIL() << "no error";
  } catch (const TopologyError &e) {
    ASSERT_EQ(e.errors().size(), 2U);
    EXPECT_EQ(std::string(e.what()), e.errors()[0] + "\n" + e.errors()[1]);
  }
}

TEST(Topology, QuotedValuesAreCutAndCleaned) {
  try {
    (void)parseTopology("overlay: \"a\\tb" + std::string(100, 'x') + "\"\nrouters: {a: {}}\n",
                        "t.yaml");
    FAIL() << "no error";
  } catch (const TopologyError &e) {
    EXPECT_EQ(std::string(e.what()), "t.yaml:1:10: invalid overlay name 'a?b" +
                                         std::string(61, 'x') +
                                         "...': [a-z][a-z0-9-], at most 12 characters");
  }
}

// Found by topology_fuzz: yaml-cpp's message ends with the character at fault.
TEST(Topology, YamlErrorsStayOneLine) {
  try {
    (void)parseTopology("overlay: \"a\\\x01\"\n", "t.yaml");
    FAIL() << "no error";
  } catch (const TopologyError &e) {
    EXPECT_STREQ(e.what(), "t.yaml:1:14: invalid YAML: unknown escape character: ?");
  }
}

TEST(Topology, RefusesMoreThanOneMiB) {
  const std::string text = "overlay: t\nrouters: {a: {}}\n#" + std::string(1024 * 1024, 'x');
  EXPECT_THROW((void)parseTopology(text, "big.yaml"), TopologyError);
}

TEST(Topology, LoadReportsAnUnreadableFile) {
  try {
    (void)loadTopology("/nonexistent/x.yaml");
    FAIL() << "no error";
  } catch (const TopologyError &e) {
    EXPECT_STREQ(e.what(), "cannot read topology '/nonexistent/x.yaml': No such file or directory");
  }
}

TEST(Topology, LoadsAFile) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("nvbox-topology-test-" + std::to_string(::getpid()) + ".yaml");
  std::ofstream(path) << "overlay: t\nrouters: {a: {}}\n";
  const Topology topo = loadTopology(path.string());
  std::filesystem::remove(path);
  EXPECT_EQ(topo.file, path.string());
  EXPECT_EQ(topo.overlay, "t");
}

} // namespace
} // namespace nvbox
