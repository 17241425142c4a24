// Relocation between two hosts of the one-machine testbed (label vm): each
// host is a network + mount namespace with its own libvirtd
// (examples/testbed/testbed). A running router moves from h1 to h2 with its
// memory state and its overlay, through libvirt streams only; afterwards
// its osrd answers on h2 with the uptime it had (the same process, not a
// reboot), and nothing of it remains on h1. The same, live: libvirt's live
// migration over the testbed's underlay (after a refused one that must
// leave the router untouched, and a fallback to the offline way).
#include "libvirtd_fixture.hpp"
#include "process.hpp"
#include "test_image.hpp"
#include "testbed.hpp"

#include "nvbox/error.hpp"
#include "nvbox/images/image_store.hpp"
#include "nvbox/router.hpp"

#include <filesystem>
#include <gtest/gtest.h>
#include <optional>
#include <unistd.h>

namespace nvbox {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class RouterRelocateTest : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_EQ(test::ensureLibvirtd(), "");
    store_ = test::testImageStore();
    ASSERT_NO_THROW(tb_.emplace("r" + std::to_string(::getpid() % 10000), 2));
    uris_ = tb_->uris();
    for (const auto &h : tb_->hosts()) {
      addresses_.push_back(h.address);
    }
  }
  void TearDown() override {
    if (tb_) {
      const auto down = tb_->down();
      EXPECT_EQ(down.exitCode, 0) << down.out << down.err;
    }
  }
  fs::path store_;
  std::optional<test::Testbed> tb_;
  std::vector<std::string> uris_;
  std::vector<std::string> addresses_;
};

bool hasVolume(const virt::Connection &conn, const std::string &volume) {
  const virt::StoragePoolPtr pool(virStoragePoolLookupByName(conn.get(), "nvbox"));
  if (!pool) {
    return false;
  }
  virStoragePoolRefresh(pool.get(), 0);
  const virt::StorageVolPtr vol(virStorageVolLookupByName(pool.get(), volume.c_str()));
  return vol != nullptr;
}

TEST_F(RouterRelocateTest, RunningRouterMovesWithItsStateAndKeepsAnswering) {
  const auto c1 = virt::Connection::open(uris_[0]);
  const auto c2 = virt::Connection::open(uris_[1]);
  RouterManager h1(c1, HostRef{"h1", uris_[0]});
  RouterManager h2(c2, HostRef{"h2", uris_[1]});
  const images::ImageStore store(store_);

  RouterCreateOptions o;
  o.name = "mover";
  o.domainType = "qemu";
  o.config = {{"osrd", "name = mover\nkey-file = /run/nvbox/key\nlisten = 127.0.0.1:7400\n"},
              {"key", std::string(64, 'd') + "\n"}};
  (void)h1.create(store, o);
  h1.start("mover");
  const ReadyReport before = h1.waitReady("mover", 180s);
  ASSERT_TRUE(before.ready) << before.reason;

  RelocateOptions offline;
  offline.mode = RelocateMode::Offline;
  const RelocateReport r = h1.relocate("mover", h2, store, offline);
  std::cout << r.toJson().dump() << "\n";
  EXPECT_GT(r.stateBytes, 0U);
  EXPECT_GT(r.imageBytes, 0U) << "h2 had no image yet";

  EXPECT_TRUE(h1.list().empty()) << "the router is still on h1";
  ASSERT_EQ(h2.list().size(), 1U);
  EXPECT_EQ(h2.inspect("mover").state, RouterState::Running);
  const ReadyReport after = h2.waitReady("mover", 60s);
  ASSERT_TRUE(after.ready) << after.reason;
  EXPECT_EQ(after.status.at("osrd").value("name", ""), "mover");
  // Restored, not rebooted: osrd's uptime did not start again from zero.
  EXPECT_GE(after.status.at("osrd").value("uptime_s", -1.0),
            before.status.at("osrd").value("uptime_s", 0.0))
      << before.status.dump() << "\n"
      << after.status.dump();

  h2.destroy("mover");
  EXPECT_TRUE(h2.list().empty());
}

TEST_F(RouterRelocateTest, RunningRouterMigratesLiveAndFallsBackWhenRefused) {
  const auto c1 = virt::Connection::open(uris_[0]);
  const auto c2 = virt::Connection::open(uris_[1]);
  RouterManager h1(c1, HostRef{"h1", uris_[0]});
  RouterManager h2(c2, HostRef{"h2", uris_[1]});
  const images::ImageStore store(store_);
  const std::string volume = "nvbox-flyer.qcow2";

  RouterCreateOptions o;
  o.name = "flyer";
  o.domainType = "qemu";
  o.config = {{"osrd", "name = flyer\nkey-file = /run/nvbox/key\nlisten = 127.0.0.1:7400\n"},
              {"key", std::string(64, 'f') + "\n"}};
  (void)h1.create(store, o);
  h1.start("flyer");
  const ReadyReport first = h1.waitReady("flyer", 180s);
  ASSERT_TRUE(first.ready) << first.reason;

  // Nobody listens at this underlay address: the migration cannot start.
  const std::string nowhere = addresses_[1].substr(0, addresses_[1].rfind('.')) + ".250";
  RelocateOptions refused;
  refused.mode = RelocateMode::Live;
  refused.migrationAddress = nowhere;
  EXPECT_THROW((void)h1.relocate("flyer", h2, store, refused), Error);
  EXPECT_EQ(h1.inspect("flyer").state, RouterState::Running) << "the source was touched";
  EXPECT_TRUE(h2.list().empty());
  EXPECT_FALSE(hasVolume(c2, volume)) << "the pre-created overlay stayed on h2";

  // auto: refused live, so saved, moved and restored.
  refused.mode = RelocateMode::Auto;
  const RelocateReport off = h1.relocate("flyer", h2, store, refused);
  std::cout << off.toJson().dump() << "\n";
  EXPECT_FALSE(off.live);
  EXPECT_NE(off.reason.find("cannot migrate router 'flyer' live"), std::string::npos) << off.reason;
  EXPECT_GT(off.stateBytes, 0U);
  EXPECT_TRUE(h1.list().empty());
  const ReadyReport second = h2.waitReady("flyer", 60s);
  ASSERT_TRUE(second.ready) << second.reason;

  // Live, back to h1 over the underlay, with progress on the way.
  int reports = 0;
  RelocateOptions live;
  live.mode = RelocateMode::Live;
  live.migrationAddress = addresses_[0];
  live.progress = [&](const RelocateProgress &p) {
    ++reports;
    EXPECT_LE(p.diskDone, p.diskTotal);
  };
  const RelocateReport r = h2.relocate("flyer", h1, store, live);
  std::cout << r.toJson().dump() << "\n";
  EXPECT_TRUE(r.live);
  EXPECT_TRUE(r.reason.empty()) << r.reason;
  EXPECT_GT(r.stateBytes, 0U);
  EXPECT_LT(r.stateBytes, r.memoryMiB << 20U);
  EXPECT_GT(r.downtime, 0.0);
  EXPECT_GE(r.seconds, r.downtime);
  EXPECT_EQ(r.imageBytes, 0U) << "h1 has the image";
  EXPECT_GT(reports, 0) << "no progress during the migration";

  EXPECT_TRUE(h2.list().empty()) << "the router is still defined on h2";
  EXPECT_FALSE(hasVolume(c2, volume)) << "its overlay stayed on h2";
  ASSERT_EQ(h1.list().size(), 1U);
  EXPECT_EQ(h1.inspect("flyer").state, RouterState::Running);
  EXPECT_TRUE(hasVolume(c1, volume));
  const ReadyReport after = h1.waitReady("flyer", 60s);
  ASSERT_TRUE(after.ready) << after.reason;
  EXPECT_EQ(after.status.at("osrd").value("name", ""), "flyer");
  // Migrated, not rebooted: the same osrd, still counting.
  EXPECT_GE(after.status.at("osrd").value("uptime_s", -1.0),
            second.status.at("osrd").value("uptime_s", 0.0))
      << second.status.dump() << "\n"
      << after.status.dump();

  h1.destroy("flyer");
  EXPECT_TRUE(h1.list().empty());
  EXPECT_FALSE(hasVolume(c1, volume));
}

} // namespace
} // namespace nvbox
