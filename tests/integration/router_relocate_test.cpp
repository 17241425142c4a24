// Relocation between two hosts of the one-machine testbed (label vm): each
// host is a network + mount namespace with its own libvirtd
// (examples/testbed/testbed). A running router moves from h1 to h2 with its
// memory state and its overlay, through libvirt streams only; afterwards
// its osrd answers on h2 with the uptime it had (the same process, not a
// reboot), and nothing of it remains on h1.
#include "libvirtd_fixture.hpp"
#include "process.hpp"
#include "test_image.hpp"

#include "nvbox/images/image_store.hpp"
#include "nvbox/router.hpp"

#include <filesystem>
#include <gtest/gtest.h>
#include <unistd.h>

namespace nvbox {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const std::string kTestbed = fs::path(NVBOX_SOURCE_DIR) / "examples/testbed/testbed";

class RouterRelocateTest : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_EQ(test::ensureLibvirtd(), "");
    store_ = test::testImageStore();
    name_ = "r" + std::to_string(::getpid() % 10000);
    const auto up = test::run(
        {kTestbed, "up", "--hosts", "2", "--name", name_, "--owner", std::to_string(::getpid())});
    ASSERT_EQ(up.exitCode, 0) << up.out << up.err;
    up_ = true;
    for (const char *h : {"h1", "h2"}) {
      const auto uri = test::run({kTestbed, "uri", h, "--name", name_});
      ASSERT_EQ(uri.exitCode, 0) << uri.err;
      uris_.push_back(uri.out.substr(0, uri.out.find('\n')));
    }
  }
  void TearDown() override {
    if (up_) {
      const auto down = test::run({kTestbed, "down", "--name", name_});
      EXPECT_EQ(down.exitCode, 0) << down.out << down.err;
    }
  }
  fs::path store_;
  std::string name_;
  bool up_ = false;
  std::vector<std::string> uris_;
};

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

  const RelocateReport r = h1.relocate("mover", h2, store);
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

} // namespace
} // namespace nvbox
