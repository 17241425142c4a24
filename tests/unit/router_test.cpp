// RouterManager's lifecycle against libvirt's test driver: the state machine
// (start, suspend, resume, stop, destroy and the verbs refused in each
// state), list/inspect rebuilt from metadata alone, destroy removing the
// overlay volume, and create's refusals before anything is made.
#include "nvbox/error.hpp"
#include "nvbox/images/image_store.hpp"
#include "nvbox/router.hpp"

#include <filesystem>
#include <gtest/gtest.h>

namespace nvbox {
namespace {

using namespace std::chrono_literals;

class RouterTest : public ::testing::Test {
protected:
  void SetUp() override {
    conn_.emplace(virt::Connection::open("test:///default"));
    manager_.emplace(*conn_, HostRef{"t", "test:///default"});
  }

  // A router as create() would leave it, without pushing an image (the
  // test driver cannot upload): its overlay volume and its domain.
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
    spec.nics = {{RouterNic::Kind::Ethernet, "", "", "52:54:00:00:00:01", {}, {}, "", "", {}}};
    spec.metadata = {"osr",          "d", "", "relay", routerDomainName(name) + ".qcow2",
                     "default-pool", "",  "", ""};
    const std::string xml = routerDomainXml(spec);
    virt::DomainPtr dom(virDomainDefineXML(conn_->get(), xml.c_str()));
    ASSERT_TRUE(dom) << virt::lastError();
  }

  RouterState state(const std::string &name) { return manager_->inspect(name).state; }

  std::optional<virt::Connection> conn_;
  std::optional<RouterManager> manager_;
};

TEST_F(RouterTest, ListShowsOnlyNvboxRoutersRebuiltFromMetadata) {
  EXPECT_TRUE(manager_->list().empty()) << "the driver's own 'test' domain is not a router";
  defineRouter("r1");
  defineRouter("r0");
  const auto routers = manager_->list();
  ASSERT_EQ(routers.size(), 2U);
  EXPECT_EQ(routers[0].name, "r0");
  EXPECT_EQ(routers[1].domain, "nvbox-r1");
  EXPECT_EQ(routers[1].metadata.role, "relay");
  EXPECT_EQ(routers[1].state, RouterState::Shutoff);
  EXPECT_EQ(routers[1].memoryMiB, 128U);
  EXPECT_EQ(routers[1].macs, std::vector<std::string>{"52:54:00:00:00:01"});
  EXPECT_EQ(routers[1].toJson().at("state"), "shutoff");
}

// deploy records a re-shaped overlay's plan, `overlay run` its summary.
TEST_F(RouterTest, SetMetadataReplacesItLiveAndInTheDefinition) {
  defineRouter("r1");
  RouterMetadata m = manager_->inspect("r1").metadata;
  m.overlay = "cmp";
  m.spec = "0123456789abcdef";
  m.plan = R"({"overlay":"cmp","links":[{"name":"a-b"}]})";
  m.run = R"({"goodput_mbps":{"before":5.2}})";
  manager_->setMetadata("r1", m);
  EXPECT_EQ(manager_->inspect("r1").metadata, m);
  manager_->start("r1");
  m.run = R"({"goodput_mbps":{"before":4.9}})";
  manager_->setMetadata("r1", m);
  EXPECT_EQ(manager_->inspect("r1").metadata, m);
  EXPECT_THROW(manager_->setMetadata("missing", m), UsageError);
}

// libvirt's test driver has no device update; the real one is exercised by
// overlay_test. What is tested here is the error: one line, values quoted.
TEST_F(RouterTest, SetLinkStateSaysWhatFailed) {
  defineRouter("r1");
  manager_->start("r1");
  RouterNic nic{RouterNic::Kind::Ethernet, "", "", "52:54:00:00:00:01", {}, {}, "", "", {}};
  try {
    manager_->setLinkState("r1", nic, false);
    FAIL() << "the test driver cannot update devices";
  } catch (const Error &e) {
    EXPECT_EQ(std::string(e.what()).rfind("cannot set the link of router 'r1' NIC "
                                          "'52:54:00:00:00:01' down on host 't': ",
                                          0),
              0U)
        << e.what();
  }
  nic.linkUp = false;
  EXPECT_NE(routerNicXml(nic).find("<link state='down'/>"), std::string::npos);
  nic.linkUp.reset();
  EXPECT_EQ(routerNicXml(nic).find("<link"), std::string::npos);
}

TEST_F(RouterTest, LifecycleStateMachine) {
  defineRouter("r1");
  EXPECT_THROW(manager_->suspend("r1"), UsageError) << "a stopped router cannot be suspended";
  EXPECT_THROW(manager_->resume("r1"), UsageError);
  manager_->start("r1");
  EXPECT_EQ(state("r1"), RouterState::Running);
  EXPECT_THROW(manager_->start("r1"), UsageError) << "already running";
  EXPECT_THROW(manager_->resume("r1"), UsageError) << "not paused";
  manager_->suspend("r1");
  EXPECT_EQ(state("r1"), RouterState::Paused);
  manager_->resume("r1");
  EXPECT_EQ(state("r1"), RouterState::Running);
  const StopReport stopped = manager_->stop("r1", 5s);
  EXPECT_TRUE(stopped.graceful);
  EXPECT_EQ(state("r1"), RouterState::Shutoff);
  EXPECT_TRUE(manager_->stop("r1", 5s).graceful) << "stopping a stopped router is a no-op";
  manager_->start("r1");
  manager_->suspend("r1");
  EXPECT_EQ(manager_->stop("r1", 5s).graceful, true) << "a paused router is resumed, then stopped";
  EXPECT_EQ(state("r1"), RouterState::Shutoff);
}

TEST_F(RouterTest, DestroyRemovesDomainAndOverlayVolume) {
  defineRouter("r1");
  manager_->start("r1");
  manager_->destroy("r1");
  EXPECT_TRUE(manager_->list().empty());
  virt::StoragePoolPtr pool(virStoragePoolLookupByName(conn_->get(), "default-pool"));
  virt::StorageVolPtr vol(virStorageVolLookupByName(pool.get(), "nvbox-r1.qcow2"));
  EXPECT_FALSE(vol) << "the overlay volume remains";
  EXPECT_THROW(manager_->destroy("r1"), UsageError);
}

TEST_F(RouterTest, UnknownRouterNamesTheHost) {
  try {
    (void)manager_->inspect("nope");
    FAIL() << "expected an error";
  } catch (const UsageError &e) {
    EXPECT_STREQ(e.what(), "cannot find router 'nope' on host 't'");
  }
  EXPECT_THROW((void)manager_->inspect("test"), UsageError) << "not by raw domain name";
  EXPECT_THROW(manager_->start("../x"), UsageError);
}

TEST_F(RouterTest, CreateRefusesBadNamesTakenNamesAndUnknownImagesBeforeMakingAnything) {
  const images::ImageStore store(std::filesystem::temp_directory_path() / "nvbox-no-such-store");
  RouterCreateOptions o;
  o.domainType = "qemu";
  o.pool = {"default-pool", "/default-pool"};
  o.name = "Bad_Name";
  EXPECT_THROW((void)manager_->create(store, o), UsageError);
  defineRouter("r1");
  o.name = "r1";
  try {
    (void)manager_->create(store, o);
    FAIL() << "expected an error";
  } catch (const UsageError &e) {
    EXPECT_STREQ(e.what(), "router 'r1' already exists on host 't'");
  }
  o.name = "r2";
  o.image = "nosuch";
  o.memoryMiB = 1; // the test driver's node has 3 MiB free
  try {
    (void)manager_->create(store, o);
    FAIL() << "expected an error";
  } catch (const Error &e) {
    EXPECT_STREQ(e.what(), "cannot find image 'nosuch'");
  }
  EXPECT_EQ(manager_->list().size(), 1U);
}

TEST_F(RouterTest, CreateRefusesMoreMemoryThanTheHostHas) {
  // The test driver's node has a few GiB free; ask for far more.
  const images::ImageStore store(std::filesystem::temp_directory_path() / "nvbox-no-such-store");
  RouterCreateOptions o;
  o.name = "big";
  o.memoryMiB = std::uint64_t{1} << 30U; // 1 PiB
  o.domainType = "qemu";
  try {
    (void)manager_->create(store, o);
    FAIL() << "expected an error";
  } catch (const Error &e) {
    const std::string what = e.what();
    EXPECT_EQ(what.rfind("not enough memory on host 't': router 'big' needs 1073741824 MiB, ", 0),
              0U)
        << what;
  }
  EXPECT_TRUE(manager_->list().empty());
}

} // namespace
} // namespace nvbox
