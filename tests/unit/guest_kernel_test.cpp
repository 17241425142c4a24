// findGuestKernel on a fake root: picks the newest kernel that has modules,
// compares versions numerically, and lists missing modules.
#include "nvbox/images/guest_kernel.hpp"

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <unistd.h>

namespace nvbox::images {
namespace {

namespace fs = std::filesystem;

class FakeRoot : public ::testing::Test {
protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("nvbox-kernel-test-" + std::to_string(::getpid()));
    fs::create_directories(root_ / "boot");
  }
  void TearDown() override { fs::remove_all(root_); }

  void addKernel(const std::string &version, const std::string &dep, bool withModules = true) {
    std::ofstream(root_ / "boot" / ("vmlinuz-" + version)) << "kernel";
    if (withModules) {
      fs::create_directories(root_ / "lib/modules" / version);
      std::ofstream(root_ / "lib/modules" / version / "modules.dep") << dep;
    }
  }

  static std::string fullDep() {
    std::string dep;
    for (const auto &m : requiredGuestModules()) {
      dep += "kernel/x/" + m + ".ko:\n";
    }
    return dep;
  }

  fs::path root_;
};

TEST_F(FakeRoot, NoKernelMeansNothing) {
  EXPECT_FALSE(findGuestKernel(root_).has_value());
}

TEST_F(FakeRoot, PicksTheNewestVersionNumerically) {
  addKernel("6.1.0-9-amd64", fullDep());
  addKernel("6.1.0-56-amd64", fullDep());
  addKernel("6.9.0-1-amd64", fullDep(), /*withModules=*/false);
  const auto kernel = findGuestKernel(root_);
  ASSERT_TRUE(kernel.has_value());
  EXPECT_EQ(kernel->version, "6.1.0-56-amd64");
  EXPECT_EQ(kernel->vmlinuz, root_ / "boot/vmlinuz-6.1.0-56-amd64");
  EXPECT_TRUE(kernel->missing.empty());
}

TEST_F(FakeRoot, ListsMissingModules) {
  addKernel("6.1.0-1-amd64", "kernel/x/virtio_net.ko:\nkernel/x/ext4.ko:\n");
  const auto kernel = findGuestKernel(root_);
  ASSERT_TRUE(kernel.has_value());
  EXPECT_EQ(kernel->missing.size(), requiredGuestModules().size() - 2);
  EXPECT_EQ(std::count(kernel->missing.begin(), kernel->missing.end(), "virtio_net"), 0);
  EXPECT_EQ(std::count(kernel->missing.begin(), kernel->missing.end(), "tun"), 1);
}

} // namespace
} // namespace nvbox::images
