// The OSR image end to end (label vm): `nvbox image build` (cached by input
// digest in the build tree, so a run pays the libguestfs launch once), push
// to the local libvirtd, boot one router under TCG from a copy-on-write
// overlay with its configuration in fw_cfg, and see the guest agent report
// ready with the configured address and osrd running. The host then pings
// the router over its virtio NIC. The same for a user's own disk with osrd
// injected (bring your own image), and a disk that cannot be one.
#include "libvirtd_fixture.hpp"
#include "nvbox/guest_agent.hpp"
#include "nvbox/image_push.hpp"
#include "nvbox/images/digest.hpp"
#include "nvbox/images/guestfs_session.hpp"
#include "nvbox/images/image_builder.hpp"
#include "nvbox/images/image_store.hpp"
#include "nvbox/netconfig/rtnetlink.hpp"
#include "nvbox/router_domain.hpp"
#include "process.hpp"
#include "test_image.hpp"

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <guestfs.h>
#include <unistd.h>

namespace nvbox {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class ImageBootTest : public test::LibvirtdTest {
protected:
  void SetUp() override {
    LibvirtdTest::SetUp();
    poolDir_ = fs::temp_directory_path() / ("nvbox-test-pool-" + std::to_string(::getpid()));
  }
  void TearDown() override {
    LibvirtdTest::TearDown(); // domains first, then the pool with the overlay
    std::error_code ec;
    fs::remove_all(poolDir_, ec);
  }
  void bootAndCheck(const images::ImageStore &store, const std::string &image);
  fs::path poolDir_;
};

// Pushes image `image` into a throwaway pool, boots one router from a
// copy-on-write overlay with its configuration in fw_cfg, and checks that
// the agent reports ready with the configured address and osrd running, and
// that the host can ping it through its NIC.
void ImageBootTest::bootAndCheck(const images::ImageStore &store, const std::string &image) {
  const images::Manifest manifest = store.get(image);
  const std::string name = uniqueName(image);
  const PoolSpec pool{name, (poolDir_ / name).string()};
  trackPool(pool.name);
  const PushReport pushed = pushImage(conn(), store, image, pool);
  ASSERT_EQ(pushed.parts.size(), 3U);
  const auto path = [&](images::PartRole role) {
    for (const auto &part : pushed.parts) {
      if (part.role == role) {
        return part.path;
      }
    }
    return std::string();
  };

  virt::StoragePoolPtr p(virStoragePoolLookupByName(conn().get(), pool.name.c_str()));
  ASSERT_TRUE(p);
  const std::string volXml = overlayVolumeXml(name + ".qcow2", path(images::PartRole::Disk),
                                              manifest.part(images::PartRole::Disk)->rawSize);
  virt::StorageVolPtr overlay(virStorageVolCreateXML(p.get(), volXml.c_str(), 0));
  ASSERT_TRUE(overlay) << virt::lastError();
  const std::string overlayPath = virStorageVolGetPath(overlay.get());
  EXPECT_LT(fs::file_size(overlayPath), std::uint64_t{1} << 20U) << "an overlay starts small";

  const std::string tap = "nvt" + std::to_string(::getpid() % 1000000);
  RouterDomainSpec spec;
  spec.name = name;
  spec.kernel = path(images::PartRole::Kernel);
  spec.initrd = path(images::PartRole::Initrd);
  spec.cmdline = std::string(images::kGuestCmdline);
  spec.disk = overlayPath;
  spec.nics = {{RouterNic::Kind::Ethernet, "", tap, "52:54:00:6e:76:11", std::nullopt, std::nullopt,
                "", "", std::nullopt}};
  spec.config = {
      {"net", "hostname = r1\niface = mac=52:54:00:6e:76:11,addr=10.77.0.1/24,mtu=1400\n"},
      {"osrd", "name = r1\nkey-file = /run/nvbox/key\nlisten = 10.77.0.1:7400\n"},
      {"key", std::string(64, 'a') + "\n"}};
  spec.metadata = {image, manifest.inputDigest, "", "router", name + ".qcow2", pool.name, "", "",
                   ""};
  const std::string xml = routerDomainXml(spec);
  track(name);
  virt::DomainPtr dom(virDomainCreateXML(conn().get(), xml.c_str(), VIR_DOMAIN_START_AUTODESTROY));
  ASSERT_TRUE(dom) << virt::lastError();

  const ReadyReport ready = waitUntilReady(conn(), dom.get(), 180s);
  ASSERT_TRUE(ready.ready) << ready.reason << " " << ready.status.dump();
  std::cout << "image '" << image << "': boot to ready under TCG: " << ready.seconds << " s\n";
  const auto &status = ready.status;
  EXPECT_EQ(status.value("hostname", ""), "r1");
  bool addressed = false;
  for (const auto &iface : status.at("interfaces")) {
    if (iface.value("mac", "") == "52:54:00:6e:76:11") {
      EXPECT_EQ(iface.value("mtu", 0), 1400);
      EXPECT_TRUE(iface.value("up", false));
      for (const auto &a : iface.at("addresses")) {
        addressed |= a == "10.77.0.1/24";
      }
    }
  }
  EXPECT_TRUE(addressed) << status.dump();
  EXPECT_EQ(status.at("osrd").value("name", ""), "r1") << status.dump();
  EXPECT_EQ(status.at("osrd").value("listen", ""), "10.77.0.1:7400") << status.dump();

  // The NIC carries traffic: the host pings the router through the tap.
  netconfig::Rtnetlink nl;
  nl.addAddress(tap, "10.77.0.2/24");
  nl.setUp(tap);
  const auto ping = test::run({"busybox", "ping", "-c", "3", "-W", "5", "10.77.0.1"});
  EXPECT_EQ(ping.exitCode, 0) << ping.out << ping.err;

  // Writes went to the overlay, never to the shared base.
  EXPECT_EQ(images::digestFile(path(images::PartRole::Disk)).sha256,
            manifest.part(images::PartRole::Disk)->sha256);
}

TEST_F(ImageBootTest, BuiltImageBootsAndReportsReady) {
  // Built (or found cached) through the real CLI, as a user would.
  const images::ImageStore store(test::testImageStore());
  EXPECT_LE(store.get("osr").storedSize(), std::uint64_t{16} << 20U)
      << "the image grew past 16 MiB";
  bootAndCheck(store, "osr");
}

TEST_F(ImageBootTest, UsersOwnDiskBootsWithOsrdInjected) {
  // "The user's distribution": a partitioned disk with an ext4 root that
  // has no init nvbox knows, no shell and no ip.
  const fs::path disk = poolDir_ / "users-router.raw";
  fs::create_directories(poolDir_);
  {
    std::ofstream(disk).close();
    fs::resize_file(disk, std::uint64_t{128} << 20U);
    images::GuestfsSession g;
    g.addDisk(disk.string(), "raw");
    g.launch();
    g.check(guestfs_part_disk(g.get(), "/dev/sda", "mbr"), "part_disk");
    g.check(guestfs_mkfs(g.get(), "ext4", "/dev/sda1"), "mkfs");
    g.check(guestfs_mount(g.get(), "/dev/sda1", "/"), "mount");
    g.check(guestfs_mkdir_p(g.get(), "/etc"), "mkdir");
    g.check(guestfs_write(g.get(), "/etc/os-release", "ID=myrouteros\n", 13), "write");
    g.check(guestfs_umount_all(g.get()), "umount");
    g.check(guestfs_shutdown(g.get()), "shutdown");
  }
  const std::string before = images::digestFile(disk).sha256;
  const fs::path storeDir = poolDir_ / "store";
  const auto imported = test::nvbox(
      {"image", "import", "--disk", disk.string(), "--name", "byo", "--store", storeDir.string()});
  ASSERT_EQ(imported.exitCode, 0) << imported.err;
  EXPECT_EQ(images::digestFile(disk).sha256, before) << "the user's disk was written";
  // The same disk again: nothing to do.
  const auto again = test::nvbox(
      {"image", "import", "--disk", disk.string(), "--name", "byo", "--store", storeDir.string()});
  ASSERT_EQ(again.exitCode, 0) << again.err;
  EXPECT_NE(again.out.find("up to date"), std::string::npos) << again.out;
  bootAndCheck(images::ImageStore(storeDir), "byo");
}

TEST_F(ImageBootTest, DiskWithoutExtRootIsRefusedAndStoreUntouched) {
  const fs::path disk = poolDir_ / "blank.raw";
  fs::create_directories(poolDir_);
  std::ofstream(disk).close();
  fs::resize_file(disk, std::uint64_t{64} << 20U);
  const fs::path storeDir = poolDir_ / "store2";
  const auto r = test::nvbox(
      {"image", "import", "--disk", disk.string(), "--name", "nope", "--store", storeDir.string()});
  EXPECT_EQ(r.exitCode, 2) << r.err;
  EXPECT_EQ(test::lineCount(r.err), 1U) << r.err;
  EXPECT_NE(r.err.find("cannot tell the root filesystem of disk"), std::string::npos) << r.err;
  EXPECT_FALSE(images::ImageStore(storeDir).contains("nope"));
}

} // namespace
} // namespace nvbox
