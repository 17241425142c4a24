// netconfig against the running kernel: named namespaces come and go, links
// and qdiscs made inside them stay inside them, and the kernel feature probe
// leaves the host's own network untouched.
#include "lab.hpp"
#include "process.hpp"

#include "nvbox/error.hpp"
#include "nvbox/netconfig/host_network.hpp"
#include "nvbox/netconfig/kernel_features.hpp"
#include "nvbox/netconfig/rtnetlink.hpp"

#include <filesystem>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <set>

namespace nvbox::test {
namespace {

std::set<std::string> hostLinks() {
  std::set<std::string> names;
  for (const auto &entry : std::filesystem::directory_iterator("/sys/class/net")) {
    names.insert(entry.path().filename().string());
  }
  return names;
}

class Netconfig : public Lab {};

TEST_F(Netconfig, NamespaceExistsUntilItsOwnerGoes) {
  std::string name;
  {
    netconfig::NetworkNamespace ns("nvbox-test-scoped");
    name = ns.name();
    EXPECT_TRUE(netconfig::namespaceExists(name));
    EXPECT_THROW(netconfig::NetworkNamespace again(name), Error);
  }
  EXPECT_FALSE(netconfig::namespaceExists(name));
}

TEST_F(Netconfig, LinksAndQdiscsStayInsideTheirNamespace) {
  const auto before = hostLinks();
  const std::string ns = makeNamespace();
  netconfig::runIn(ns, [] {
    netconfig::Rtnetlink nl;
    nl.addVeth("nvt-a", "nvt-b");
    nl.setUp("nvt-a");
    nl.addBridge("nvt-br");
    nl.addVxlan("nvt-vx", 77, 4789);
    nl.addTbf("nvt-a", 5'000'000, 32'768, 131'072);
    EXPECT_TRUE(nl.linkExists("nvt-a"));
    EXPECT_TRUE(nl.linkExists("nvt-b"));
    EXPECT_TRUE(nl.linkExists("nvt-br"));
    EXPECT_TRUE(nl.linkExists("nvt-vx"));
    EXPECT_FALSE(nl.linkExists("nvt-none"));
    nl.deleteLink("nvt-br");
    EXPECT_FALSE(nl.linkExists("nvt-br"));
    EXPECT_THROW(nl.addVeth("nvt-a", "nvt-c"), Error); // name taken
  });
  EXPECT_EQ(hostLinks(), before);
}

// What a link's rate change at run time does on the host: the tbf is
// replaced, then taken away; the kernel's default qdisc is not nvbox's.
TEST_F(Netconfig, ShapeIsReplacedAndTakenAway) {
  const std::string ns = makeNamespace();
  netconfig::HostNetwork net(ns);
  ASSERT_TRUE(net.ensureBridge("nvt-br"));
  netconfig::runIn(ns, [] {
    netconfig::Rtnetlink nl;
    nl.addVeth("nvt-a", "nvt-b");
    nl.setUp("nvt-a");
  });
  const auto tbfRate = [&] {
    const RunResult r = run({"tc", "-n", ns, "-j", "qdisc", "show", "dev", "nvt-a"});
    for (const auto &q : nlohmann::json::parse(r.out)) {
      if (q.value("kind", "") == "tbf" && q.value("root", false)) {
        return q["options"].value("rate", std::uint64_t{0});
      }
    }
    return std::uint64_t{0};
  };
  EXPECT_FALSE(net.unshape("nvt-a")); // the kernel's default
  net.shape("nvt-a", 8'000'000);
  EXPECT_EQ(tbfRate(), 1'000'000U);
  net.shape("nvt-a", 2'000'000);
  EXPECT_EQ(tbfRate(), 250'000U);
  EXPECT_TRUE(net.unshape("nvt-a"));
  EXPECT_EQ(tbfRate(), 0U);
  EXPECT_FALSE(net.unshape("nvt-a"));
  EXPECT_THROW(net.unshape("nvt-missing"), Error);
}

TEST_F(Netconfig, TunDeviceLivesAsLongAsItsDescriptor) {
  const std::string ns = makeNamespace();
  netconfig::runIn(ns, [] {
    netconfig::Rtnetlink nl;
    {
      const netconfig::Fd tun = netconfig::openTun("nvt-tun");
      EXPECT_TRUE(tun);
      EXPECT_TRUE(nl.linkExists("nvt-tun"));
    }
    EXPECT_FALSE(nl.linkExists("nvt-tun"));
  });
}

TEST_F(Netconfig, ErrorsNameTheInterface) {
  const std::string ns = makeNamespace();
  netconfig::runIn(ns, [] {
    netconfig::Rtnetlink nl;
    try {
      nl.addTbf("nvt-missing", 1000, 1000, 1000);
      FAIL() << "expected an error";
    } catch (const Error &e) {
      EXPECT_EQ(std::string(e.what()).rfind("cannot find link 'nvt-missing'", 0), 0U) << e.what();
    }
  });
}

TEST(KernelFeatures, ProbeFindsTheEssentialsAndTouchesNothing) {
  const auto before = hostLinks();
  const auto features = netconfig::probeKernelFeatures();
  ASSERT_EQ(features.size(), 7U);
  for (const auto &f : features) {
    if (f.name != "netem" && f.name != "mptcp") {
      EXPECT_EQ(f.state, netconfig::KernelFeature::State::Available) << f.name << ": " << f.detail;
    }
    if (f.state != netconfig::KernelFeature::State::Available) {
      EXPECT_FALSE(f.detail.empty()) << f.name;
    }
  }
  EXPECT_EQ(hostLinks(), before);
}

} // namespace
} // namespace nvbox::test
