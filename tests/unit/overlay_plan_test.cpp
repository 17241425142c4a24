// The resolve stage and the overlay verbs' parse-only side: plans of
// examples/cmp.yaml and of a three-host topology (every link kind) against
// golden files in tests/golden/overlay/, the failures only resolution finds,
// the overlay commands' --help and usage errors, and inspect's live part.
#include "golden.hpp"
#include "process.hpp"

#include "command_overlay.hpp"
#include "nvbox/overlay_plan.hpp"
#include "nvbox/topology.hpp"
#include "osr/wire.hpp"

#include <fstream>
#include <gtest/gtest.h>

#include <set>
#include <sstream>

namespace nvbox::test {
namespace {

const std::string kSource = NVBOX_SOURCE_DIR;

OverlayPlan planOf(const std::string &path) {
  return planOverlay(loadTopology(path));
}

std::string planErrors(const std::string &yaml) {
  try {
    (void)planOverlay(parseTopology(yaml, "t.yaml"));
  } catch (const TopologyError &e) {
    return e.what();
  }
  return "";
}

TEST(OverlayPlan, CmpExampleIsGolden) {
  const OverlayPlan plan = planOf(kSource + "/examples/cmp.yaml");
  expectGolden(plan.describe(), "overlay/cmp-plan.txt");
  expectGolden(plan.toJson().dump(2) + "\n", "overlay/cmp-plan.json");
  expectGolden(cli::overlayDot(plan.toJson()), "overlay/cmp.dot");
}

TEST(OverlayPlan, ThreeHostsUseEveryLinkKind) {
  const OverlayPlan plan = planOf(kSource + "/tests/golden/overlay/two-hosts.yaml");
  expectGolden(plan.describe(), "overlay/two-hosts-plan.txt");
  expectGolden(plan.toJson().dump(2) + "\n", "overlay/two-hosts-plan.json");
  EXPECT_EQ(plan.link("ing-r1")->kind, LinkKind::Bridge);
  EXPECT_EQ(plan.link("ing-r2")->kind, LinkKind::Vxlan);
  EXPECT_EQ(plan.link("ing-r3")->kind, LinkKind::Udp);
  // VXLAN carries 50 bytes of headers over a 1500-byte underlay, and osrd
  // needs its tunnel overhead plus UDP and IP (20 + 8) under the smallest link
  // MTU (1400, set in the topology).
  EXPECT_EQ(plan.link("ing-r2")->mtu, 1450U);
  EXPECT_EQ(plan.pathMtu, 1400U);
  EXPECT_EQ(plan.tunMtu, 1400U - osr::wire::kIpUdpOverhead);
  // Only the k = 2 first relays carry the stripe.
  const std::string &osrd = plan.router("ing")->osrd;
  EXPECT_NE(osrd.find("relays=10.90.15.2:7400+10.90.15.3:7400,"), std::string::npos) << osrd;
  EXPECT_NE(plan.router("egr")->osrd.find("buffer = 128"), std::string::npos);
  EXPECT_NE(plan.router("r3")->osrd.find("probe-interval = 50"), std::string::npos);
}

TEST(OverlayPlan, NamesAreUniqueAndFitTheKernel) {
  const OverlayPlan plan = planOf(kSource + "/tests/golden/overlay/two-hosts.yaml");
  std::set<std::string> names;
  std::set<std::string> macs;
  for (const auto &l : plan.links) {
    for (const auto *p : {&l.a, &l.b}) {
      EXPECT_TRUE(names.insert(p->tap).second || p->tap.empty()) << p->tap;
      EXPECT_TRUE(macs.insert(p->mac).second) << p->mac;
      EXPECT_LE(p->tap.size(), 15U);
      EXPECT_TRUE(p->tap.starts_with(plan.linkPrefix));
    }
  }
  for (const auto &e : plan.endpoints) {
    EXPECT_LE(e.veth.size(), 15U);
    EXPECT_LE(e.vethPeer.size(), 15U);
    EXPECT_EQ(e.netns, "nvbox-split." + e.name);
  }
  // Another overlay's names never share the prefix.
  EXPECT_NE(overlayLinkPrefix("split"), overlayLinkPrefix("split2"));
}

// A link's shaping changes live (deploy re-shapes it, the routers stay);
// its MTU is part of the routers' NICs, so it replaces the routers at its ends.
TEST(OverlayPlan, ChangingOneLinkChangesOnlyItsRouters) {
  const std::string base = R"(overlay: t
routers: {a: {}, b: {}, c: {}}
links:
  - {between: [a, b], rate: 8M}
  - {between: [b, c], rate: 8M}
)";
  const auto changed = [&](const std::string &link) {
    std::string text = base;
    text.replace(text.find("{between: [b, c], rate: 8M}"), 27, link);
    return planOverlay(parseTopology(text, "t.yaml"));
  };
  const OverlayPlan p1 = planOverlay(parseTopology(base, "t.yaml"));
  const OverlayPlan reshaped = changed("{between: [b, c], rate: 4M, delay: 5ms, loss: 1%}");
  for (const char *r : {"a", "b", "c"}) {
    EXPECT_EQ(p1.router(r)->digest, reshaped.router(r)->digest) << r;
  }
  EXPECT_NE(p1.router("b")->net, reshaped.router("b")->net); // booting routers get it
  const OverlayPlan mtu = changed("{between: [b, c], rate: 8M, mtu: 9000}"); // not the smallest
  EXPECT_EQ(p1.router("a")->digest, mtu.router("a")->digest);
  EXPECT_NE(p1.router("b")->digest, mtu.router("b")->digest);
  EXPECT_NE(p1.router("c")->digest, mtu.router("c")->digest);
}

// A stripe's path rates come from its links' rates; osrd takes new ones at
// run time (set_rate), so the ingress and egress stay too.
TEST(OverlayPlan, ARateChangeOnAStripePathKeepsEveryRouter) {
  std::ifstream in(kSource + "/examples/cmp.yaml");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string slower = text;
  const std::string from = "{between: [ing, r1], rate: 4M, delay: 1ms}";
  ASSERT_NE(slower.find(from), std::string::npos);
  slower.replace(slower.find(from), from.size(), "{between: [ing, r1], rate: 1M, delay: 5ms}");
  const OverlayPlan p1 = planOverlay(parseTopology(text, "cmp.yaml"));
  const OverlayPlan p2 = planOverlay(parseTopology(slower, "cmp.yaml"));
  for (const auto &r : p1.routers) {
    EXPECT_EQ(r.digest, p2.router(r.name)->digest) << r.name;
  }
  EXPECT_NE(p1.router("ing")->osrd, p2.router("ing")->osrd); // rates=125000+…
  EXPECT_NE(p1.stripes[0].pathRates, p2.stripes[0].pathRates);
}

// relays: oracle — the stripe's ingress runs the oracle in its osrd, every
// linked router measures the others and reports to it, the stripes ask it.
TEST(OverlayPlan, AnOracleStripeRunsTheOracleAtItsIngress) {
  const OverlayPlan plan = planOverlay(parseTopology(R"(overlay: t
routers: {ing: {}, r1: {}, r2: {}, egr: {}, lone: {}}
links:
  - {between: [ing, r1]}
  - {between: [r1, egr]}
  - {between: [ing, r2]}
  - {between: [r2, egr]}
endpoints: {src: {router: ing}, sink: {router: egr}}
stripes:
  fwd: {ingress: ing, egress: egr, relays: oracle, k: 1}
)",
                                                     "t.yaml"));
  EXPECT_EQ(plan.oracle, "ing");
  ASSERT_EQ(plan.stripes.size(), 1U);
  EXPECT_TRUE(plan.stripes[0].oracle);
  EXPECT_TRUE(plan.stripes[0].relays.empty());
  const std::string oracle = plan.router("ing")->osrAddress + ":7401";
  const auto has = [&](const char *router, const std::string &line) {
    return plan.router(router)->osrd.find(line + "\n") != std::string::npos;
  };
  EXPECT_TRUE(has("ing", "oracle-serve = " + oracle)) << plan.router("ing")->osrd;
  EXPECT_FALSE(has("r1", "oracle-serve = " + oracle));
  for (const char *r : {"ing", "r1", "r2", "egr"}) {
    EXPECT_TRUE(has(r, "oracle = " + oracle)) << r;
    EXPECT_TRUE(has(r, "group = local")) << r;
    EXPECT_FALSE(has(r, "peer = " + plan.router(r)->osrAddress + ":7400")) << "not itself";
    EXPECT_FALSE(has(r, "peer = " + plan.router("lone")->osrAddress + ":7400")) << "no links";
  }
  EXPECT_TRUE(has("r1", "peer = " + plan.router("egr")->osrAddress + ":7400"));
  EXPECT_NE(plan.router("ing")->osrd.find(",relays=oracle,k=1,"), std::string::npos);
  EXPECT_NE(plan.router("egr")->osrd.find("name=fwd-back,"), std::string::npos);
  EXPECT_EQ(plan.router("lone")->osrd.find("oracle"), std::string::npos);
  EXPECT_EQ(plan.toJson()["oracle"]["router"], "ing");
}

TEST(OverlayPlan, ARouterWithoutLinksListensOnAnyAddress) {
  // Its OSR address would have no NIC to sit on, and osrd could not bind it.
  const OverlayPlan plan = planOverlay(parseTopology("overlay: t\nrouters: {a: {}}\n", "t.yaml"));
  EXPECT_NE(plan.router("a")->osrd.find("listen = 0.0.0.0:7400\n"), std::string::npos)
      << plan.router("a")->osrd;
}

TEST(OverlayPlan, ResolutionErrorsCarryTheirPlace) {
  // r2 has no link at all: no route from the ingress.
  EXPECT_EQ(planErrors(R"(overlay: t
routers: {a: {}, r1: {}, r2: {}, b: {}}
links:
  - {between: [a, r1]}
  - {between: [r1, b]}
endpoints: {x: {router: a}, y: {router: b}}
stripes:
  s: {ingress: a, egress: b, relays: [r1, r2]}
)"),
            "t.yaml:8:3: stripe 's': relay 'r2' has no route to 'a'; link it");
  // A stripe with nothing to carry.
  EXPECT_EQ(planErrors(R"(overlay: t
routers: {a: {}, r1: {}, b: {}}
links:
  - {between: [a, r1]}
  - {between: [r1, b]}
stripes:
  s: {ingress: a, egress: b, relays: [r1]}
)"),
            "t.yaml:7:3: stripe 's': router 'b' has no endpoint, so the stripe would carry "
            "nothing; attach one");
}

TEST(OverlayCli, EveryVerbHasGoldenHelp) {
  for (const std::string verb : {"deploy", "destroy", "inspect", "graph", "transfer", "run"}) {
    const auto r = nvbox({verb, "--help"});
    EXPECT_EQ(r.exitCode, 0) << verb;
    EXPECT_EQ(r.err, "") << verb;
    expectGolden(r.out, "cli/" + verb + "-help.txt");
  }
}

TEST(OverlayCli, DryRunPrintsThePlanAndTouchesNothing) {
  // qemu+tcp to a closed port: a dry run must not even connect.
  const auto r = nvbox({"deploy", kSource + "/tests/golden/overlay/two-hosts.yaml", "--dry-run"});
  EXPECT_EQ(r.exitCode, 0) << r.err;
  expectGolden(r.out, "overlay/two-hosts-plan.txt");
}

TEST(OverlayCli, UsageErrorsAreOneLine) {
  struct Case {
    std::vector<std::string> args;
    std::string err;
    int code;
  };
  const std::vector<Case> cases = {
      {{"deploy"},
       "nvbox: error: nvbox deploy: missing the overlay's NAME or FILE; see 'nvbox deploy --help'",
       2},
      {{"deploy", "x.yaml", "--boots-per-host", "0"},
       "nvbox: error: --boots-per-host must be from 1 to 64; see 'nvbox deploy --help'",
       2},
      {{"graph", "cmp"},
       "nvbox: error: nvbox graph: missing -o OUTPUT; see 'nvbox graph --help'",
       2},
      {{"graph", "cmp", "-o", "x.gif"},
       "nvbox: error: nvbox graph: 'x.gif' does not end in .dot, .svg or .png; name the "
       "picture e.g. overlay.svg",
       2},
      {{"transfer", "cmp", "--from", "a"},
       "nvbox: error: nvbox transfer: give --from and --to endpoints; see 'nvbox transfer "
       "--help'",
       2},
      {{"run"},
       "nvbox: error: nvbox run: missing the overlay's NAME or FILE; see 'nvbox run --help'",
       2},
      {{"run", "cmp"},
       "nvbox: error: nvbox run: give the topology FILE, not the overlay's name: the events "
       "are in the file; see 'nvbox run --help'",
       2},
      {{"run", "x.yaml", "--tail", "0"},
       "nvbox: error: --tail must be 1 to 3600 seconds, not 0.0; see 'nvbox run --help'",
       2},
      {{"run", "x.yaml", "--plot", "goodput.gif"},
       "nvbox: error: plot file 'goodput.gif' does not end in .svg or .png; name it e.g. "
       "run.svg or run.png",
       2},
      // A plot that cannot be written fails before the run (here: before the
      // events are even looked at).
      {{"run", kSource + "/tests/golden/topology/valid-minimal.yaml", "--plot",
        "/nonexistent/run.png"},
       "nvbox: error: cannot write plot '/nonexistent/run.png': No such file or directory; "
       "check that its directory exists and is writable",
       1},
      // Checked before any host is reached.
      {{"run", kSource + "/tests/golden/topology/valid-minimal.yaml"},
       "nvbox: error: overlay 'mini' schedules no link events; add some under 'events' in the "
       "topology (docs/topology.md)",
       2},
      {{"deploy", "/nonexistent/t.yaml", "--dry-run"},
       "nvbox: error: cannot read topology '/nonexistent/t.yaml': No such file or directory",
       1},
  };
  for (const auto &c : cases) {
    const auto r = nvbox(c.args);
    EXPECT_EQ(r.exitCode, c.code) << c.args[0];
    EXPECT_EQ(r.err.substr(0, r.err.find('\n')), c.err);
  }
}

// The live part of inspect, from today's osrd status and from one with the
// closed-loop scheduler's per-path measurements (docs/osrd.md).
const char *kLiveStatus = R"({
  "stripes": [{"name": "fwd", "k": 3, "scheduler": "weighted", "packets": 9000,
               "bytes": 12582912,
               "paths": [{"id": 0, "relay": "10.0.1.2:7400", "up": true, "rtt_us": 10250,
                          "loss": 0.004, "parts": 4000, "bytes": 5767168, "went_down": 1},
                         {"id": 1, "relay": "10.0.2.2:7400", "up": true, "rtt_us": 14800,
                          "loss": 0.0, "parts": 3000, "bytes": 4194304, "went_down": 0},
                         {"id": 2, "relay": "10.0.3.2:7400", "up": false, "rtt_us": -1,
                          "loss": 1.0, "parts": 2000, "bytes": 2621440, "went_down": 2}]}],
  "egress": {"flows": [{"flow": 2, "delivered": 8990, "reordered": 420, "held": 12,
                        "peak_occupancy": 40, "buffer": 64, "lost_overflow": 0,
                        "lost_timeout": 3, "duplicates": 0}]}
})";

nlohmann::json withMeasurements(nlohmann::json status) {
  auto &stripe = status["stripes"][0];
  stripe["scheduler"] = "adaptive";
  stripe["feedback"] = {{"accepted", 310}, {"stale", 4}, {"clamped", 1}};
  const nlohmann::json measured[] = {
      // measured_rate (bytes/s), queue_us, share, lost, feedback
      {{"measured_rate", 462500},
       {"queue_us", 4100},
       {"share", 0.456},
       {"lost", 2},
       {"feedback", true}},
      {{"measured_rate", 350000},
       {"queue_us", 0},
       {"share", 0.544},
       {"lost", 0},
       {"feedback", true}},
      // Not measured yet, delay unknown, out of the stripe.
      {{"measured_rate", 0}, {"queue_us", -1}, {"share", 0.0}, {"lost", 7}, {"feedback", false}}};
  for (std::size_t i = 0; i < 3; ++i) {
    stripe["paths"][i].update(measured[i]);
  }
  return status;
}

TEST(OverlayCli, InspectLiveStatusIsGolden) {
  const auto today = nlohmann::json::parse(kLiveStatus);
  std::ostringstream out;
  cli::printLiveStatus(out, "ing", today);
  expectGolden(out.str(), "cli/inspect-live.txt");
  std::ostringstream measured;
  cli::printLiveStatus(measured, "ing", withMeasurements(today));
  expectGolden(measured.str(), "cli/inspect-live-measured.txt");
  // Whatever osrd sends, printing does not throw.
  for (const char *odd : {"{}", R"({"stripes":[{"name":"s"}]})",
                          R"({"stripes":[{"paths":[{"measured_rate":"fast","queue_us":null,
                              "share":[]}]}]})"}) {
    std::ostringstream sink;
    EXPECT_NO_THROW(cli::printLiveStatus(sink, "r", nlohmann::json::parse(odd))) << odd;
  }
}

TEST(OverlayCli, MalformedTopologyListsEveryErrorAndTouchesNothing) {
  const auto r = nvbox({"deploy", kSource + "/tests/golden/topology/several-errors.yaml"});
  EXPECT_EQ(r.exitCode, 1);
  // One line per problem, each with file:line:col.
  EXPECT_GE(std::count(r.err.begin(), r.err.end(), '\n'), 10) << r.err;
  EXPECT_NE(r.err.find("several-errors.yaml:"), std::string::npos) << r.err;
}

} // namespace
} // namespace nvbox::test
