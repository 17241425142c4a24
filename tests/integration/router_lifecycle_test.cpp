// The six verbs on a real router (label vm, real libvirtd, TCG): create →
// start (wait for ready) → suspend → resume → stop → start → destroy,
// checking the guest's state at each step, that the guest answers after
// resume, that stop is a graceful ACPI shutdown, and that nothing remains
// afterwards. Also: a create that fails halfway leaves no volume behind.
#include "libvirtd_fixture.hpp"
#include "process.hpp"
#include "test_image.hpp"

#include "nvbox/error.hpp"
#include "nvbox/images/image_store.hpp"
#include "nvbox/router.hpp"

#include <filesystem>
#include <gtest/gtest.h>
#include <unistd.h>

namespace nvbox {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class RouterLifecycleTest : public test::LibvirtdTest {
protected:
  void SetUp() override {
    LibvirtdTest::SetUp();
    store_ = test::testImageStore();
    pool_.name = uniqueName("pool");
    pool_.path = (fs::temp_directory_path() / pool_.name).string();
    trackPool(pool_.name);
    // Router names carry the test prefix, so the sweeper finds leftovers.
    router_ = "test-" + std::to_string(::getpid()) + "-lc";
    track(routerDomainName(router_));
  }
  void TearDown() override {
    LibvirtdTest::TearDown();
    std::error_code ec;
    fs::remove_all(pool_.path, ec);
  }

  bool volumeExists(const std::string &name) {
    virt::StoragePoolPtr p(virStoragePoolLookupByName(conn().get(), pool_.name.c_str()));
    virt::StorageVolPtr v(p ? virStorageVolLookupByName(p.get(), name.c_str()) : nullptr);
    return static_cast<bool>(v);
  }

  fs::path store_;
  PoolSpec pool_;
  std::string router_;
};

TEST_F(RouterLifecycleTest, CreateStartSuspendResumeStopStartDestroy) {
  RouterManager routers(conn(), HostRef{"local", "qemu:///system"});
  const images::ImageStore store(store_);
  RouterCreateOptions o;
  o.name = router_;
  o.pool = pool_;
  o.config = {
      {"osrd", "name = " + router_ + "\nkey-file = /run/nvbox/key\nlisten = 127.0.0.1:7400\n"},
      {"key", std::string(64, 'c') + "\n"}};
  const RouterInfo created = routers.create(store, o); // pushes the image, probes the accelerator
  EXPECT_EQ(created.state, RouterState::Shutoff);
  EXPECT_EQ(created.domainType, "qemu") << "no working KVM here";
  EXPECT_EQ(created.metadata.image, "osr");
  EXPECT_TRUE(volumeExists(routerDomainName(router_) + ".qcow2"));

  routers.start(router_);
  const ReadyReport ready = routers.waitReady(router_, 180s);
  ASSERT_TRUE(ready.ready) << ready.reason;
  EXPECT_EQ(ready.status.at("osrd").value("name", ""), router_);
  EXPECT_EQ(routers.inspect(router_).state, RouterState::Running);

  routers.suspend(router_);
  EXPECT_EQ(routers.inspect(router_).state, RouterState::Paused);
  routers.resume(router_);
  EXPECT_EQ(routers.inspect(router_).state, RouterState::Running);
  EXPECT_TRUE(routers.waitReady(router_, 30s).ready) << "the guest answers after resume";

  const StopReport stopped = routers.stop(router_, 60s);
  EXPECT_TRUE(stopped.graceful) << "ACPI shutdown was ignored; forced after " << stopped.seconds;
  EXPECT_EQ(routers.inspect(router_).state, RouterState::Shutoff);
  std::cout << "graceful stop took " << stopped.seconds << " s\n";

  routers.start(router_);
  EXPECT_TRUE(routers.waitReady(router_, 180s).ready) << "it boots again from its overlay";

  routers.destroy(router_);
  EXPECT_TRUE(routers.list().empty() ||
              std::none_of(routers.list().begin(), routers.list().end(),
                           [&](const RouterInfo &r) { return r.name == router_; }));
  EXPECT_FALSE(volumeExists(routerDomainName(router_) + ".qcow2")) << "overlay left behind";
  EXPECT_TRUE(volumeExists(findPushedImage(conn(), store.get("osr"), pool_)[2].volume))
      << "the shared base must stay";
}

TEST_F(RouterLifecycleTest, CreateFailingHalfwayLeavesNothing) {
  RouterManager routers(conn(), HostRef{"local", "qemu:///system"});
  const images::ImageStore store(store_);
  RouterCreateOptions o;
  o.name = router_;
  o.pool = pool_;
  o.domainType = "qemu";
  // Refused by the domain XML step, after the overlay volume was made.
  o.config = {{"Bad Key", "x"}};
  EXPECT_THROW((void)routers.create(store, o), UsageError);
  EXPECT_FALSE(volumeExists(routerDomainName(router_) + ".qcow2"));
  virt::DomainPtr dom(virDomainLookupByName(conn().get(), routerDomainName(router_).c_str()));
  EXPECT_FALSE(dom);
}

} // namespace
} // namespace nvbox
