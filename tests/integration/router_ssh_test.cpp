// Every router verb through SSH alone (label vm): a two-host testbed made
// with `up --ssh` (each host runs an SSH server on its underlay address,
// admitting the testbed's key only), and the real `nvbox` binary given
// nothing but the hosts' qemu+libssh2:// URIs. create --wait, inspect, stats,
// suspend, resume, relocate to the other host, stop, start --wait, list and
// destroy each do what they say, checked through the same URIs, and nothing
// of the router remains on either host. A key the hosts do not know is
// refused with one clear error.
#include "libvirtd_fixture.hpp"
#include "process.hpp"
#include "test_image.hpp"
#include "testbed.hpp"

#include "nvbox/router.hpp"

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <optional>
#include <unistd.h>

namespace nvbox {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

class RouterSshTest : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_EQ(test::ensureLibvirtd(), "");
    store_ = test::testImageStore();
    ASSERT_NO_THROW(tb_.emplace("s" + std::to_string(::getpid() % 10000), 2,
                                std::vector<std::string>{"--ssh"}));
    for (const char *h : {"h1", "h2"}) {
      std::string uri;
      ASSERT_NO_THROW(uri = tb_->uri(h, "--ssh"));
      ASSERT_TRUE(uri.starts_with("qemu+libssh2://")) << uri;
      ssh_.push_back(uri);
    }
    dir_ = fs::temp_directory_path() / ("nvbox-ssh-test-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    std::ofstream(dir_ / "osrd") << "name = hopper\nkey-file = /run/nvbox/key\n"
                                    "listen = 127.0.0.1:7400\n";
    std::ofstream(dir_ / "key") << std::string(64, 'e') << "\n";
  }
  void TearDown() override {
    // Whatever a failed step left, through the testbed's own sockets.
    if (tb_) {
      for (const auto &uri : tb_->uris()) {
        (void)test::nvbox({"router", "destroy", "hopper", "--host", uri});
      }
      const auto down = tb_->down();
      EXPECT_EQ(down.exitCode, 0) << down.out << down.err;
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // nvbox --json VERB... --host URI; the parsed output (null when none).
  Json nvbox(std::vector<std::string> args, const std::string &uri) {
    args.insert(args.begin(), "--json");
    args.insert(args.end(), {"--host", uri});
    last_ = test::nvbox(args);
    EXPECT_EQ(last_.exitCode, 0) << ::testing::PrintToString(args) << "\n"
                                 << last_.out << last_.err;
    return Json::parse(last_.out, nullptr, false);
  }

  std::string state(const std::string &uri) {
    const Json j = nvbox({"router", "inspect", "hopper"}, uri);
    return j.is_object() ? j.value("state", "") : "";
  }

  std::optional<test::Testbed> tb_;
  std::vector<std::string> ssh_;
  fs::path store_;
  fs::path dir_;
  test::RunResult last_;
};

TEST_F(RouterSshTest, EveryVerbWorksOverSsh) {
  const Json created = nvbox({"router", "create", "hopper", "--store", store_.string(), "--accel",
                              "tcg", "--config", "osrd=@" + (dir_ / "osrd").string(), "--config",
                              "key=@" + (dir_ / "key").string(), "--wait", "--timeout", "180"},
                             ssh_[0]);
  ASSERT_EQ(last_.exitCode, 0);
  EXPECT_EQ(created.value("uri", ""), ssh_[0]) << created.dump();

  // The domain is there, seen through the host's own socket too.
  const Json direct = Json::parse(
      test::nvbox({"--json", "router", "list", "--host", tb_->hosts()[0].uri}).out, nullptr, false);
  ASSERT_TRUE(direct.is_object()) << direct;
  ASSERT_EQ(direct["routers"].size(), 1U) << direct.dump();
  EXPECT_EQ(direct["routers"][0].value("name", ""), "hopper");

  const Json stats = nvbox({"router", "stats", "hopper"}, ssh_[0]);
  EXPECT_EQ(stats.value("name", ""), "hopper") << stats.dump();

  (void)nvbox({"router", "suspend", "hopper"}, ssh_[0]);
  EXPECT_EQ(state(ssh_[0]), "paused");
  (void)nvbox({"router", "resume", "hopper"}, ssh_[0]);
  EXPECT_EQ(state(ssh_[0]), "running");

  // Offline: the state and the overlay go through libvirt streams over SSH.
  const Json moved = nvbox({"router", "relocate", "hopper", "--to", ssh_[1], "--mode", "offline",
                            "--store", store_.string()},
                           ssh_[0]);
  ASSERT_EQ(last_.exitCode, 0);
  EXPECT_FALSE(moved.value("live", true)) << moved.dump();
  EXPECT_GT(moved.value("state_bytes", 0), 0) << moved.dump();
  EXPECT_GT(moved.value("image_bytes", 0), 0) << "h2 had no image yet: " << moved.dump();
  const Json left = nvbox({"router", "list"}, ssh_[0]);
  EXPECT_TRUE(left["routers"].empty()) << left.dump();
  EXPECT_EQ(state(ssh_[1]), "running");
  // Restored, not rebooted: the same osrd answers on h2.
  const Json after = nvbox({"router", "stats", "hopper"}, ssh_[1]);
  EXPECT_EQ(after.value("name", ""), "hopper") << after.dump();
  EXPECT_GE(after.value("uptime_s", -1.0), stats.value("uptime_s", 0.0)) << after.dump();

  (void)nvbox({"router", "stop", "hopper", "--timeout", "60"}, ssh_[1]);
  EXPECT_EQ(state(ssh_[1]), "shutoff");
  (void)nvbox({"router", "start", "hopper", "--wait", "--timeout", "180"}, ssh_[1]);
  EXPECT_EQ(nvbox({"router", "stats", "hopper"}, ssh_[1]).value("name", ""), "hopper");

  const Json destroyed = nvbox({"router", "destroy", "hopper"}, ssh_[1]);
  ASSERT_EQ(last_.exitCode, 0) << destroyed.dump();
  for (const auto &uri : ssh_) {
    const Json none = nvbox({"router", "list"}, uri);
    EXPECT_TRUE(none["routers"].empty()) << uri << ": " << none.dump();
  }
  // The overlay volume went with the router; the image's volumes stay.
  for (const auto &h : tb_->hosts()) {
    const auto conn = virt::Connection::open(h.uri);
    const virt::StoragePoolPtr pool(virStoragePoolLookupByName(conn.get(), "nvbox"));
    ASSERT_TRUE(pool) << h.name;
    virStoragePoolRefresh(pool.get(), 0);
    const virt::StorageVolPtr vol(virStorageVolLookupByName(pool.get(), "nvbox-hopper.qcow2"));
    EXPECT_FALSE(vol) << h.name << " kept the router's overlay";
  }
}

TEST_F(RouterSshTest, AKeyTheHostsDoNotKnowIsRefused) {
  // The same URI with a key of our own: the host's server admits only the
  // testbed's key, and nvbox says so once, naming the host.
  const fs::path stranger = dir_ / "stranger";
  const auto keygen =
      test::run({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", stranger.string()});
  ASSERT_EQ(keygen.exitCode, 0) << keygen.err;
  std::string uri = ssh_[0];
  const auto key = uri.find("keyfile=");
  ASSERT_NE(key, std::string::npos) << uri;
  const auto end = uri.find('&', key);
  uri.replace(key, end - key, "keyfile=" + stranger.string());

  const auto r = test::nvbox({"router", "list", "--host", uri});
  EXPECT_EQ(r.exitCode, 1) << r.out << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_NE(r.err.find(uri), std::string::npos) << r.err;
  EXPECT_EQ(test::lineCount(r.err), 1U) << r.err;
}

} // namespace
} // namespace nvbox
