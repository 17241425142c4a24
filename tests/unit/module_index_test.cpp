// ModuleIndex: modules.dep parsing, dependency order, built-ins, and refusal
// of damaged files.
#include "nvbox/error.hpp"
#include "nvbox/images/module_index.hpp"

#include <gtest/gtest.h>

namespace nvbox::images {
namespace {

const char *kDep = "kernel/fs/ext4/ext4.ko.xz: kernel/lib/crc16.ko.xz kernel/fs/mbcache.ko.xz "
                   "kernel/fs/jbd2/jbd2.ko.xz\n"
                   "kernel/lib/crc16.ko.xz:\n"
                   "kernel/fs/mbcache.ko.xz:\n"
                   "kernel/fs/jbd2/jbd2.ko.xz:\n"
                   "kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko "
                   "kernel/net/core/failover.ko\n"
                   "kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko\n"
                   "kernel/net/core/failover.ko:\n"
                   "kernel/net/sched/sch-netem.ko:\n";

TEST(ModuleIndex, NamesModulesLikeModprobe) {
  EXPECT_EQ(ModuleIndex::nameOf("kernel/fs/ext4/ext4.ko.xz"), "ext4");
  EXPECT_EQ(ModuleIndex::nameOf("kernel/net/sched/sch-netem.ko"), "sch_netem");
  EXPECT_EQ(ModuleIndex::nameOf("virtio_pci"), "virtio_pci");
}

TEST(ModuleIndex, LoadOrderPutsDependenciesFirstAndOnce) {
  const auto index = ModuleIndex::parse(kDep, "", "modules.dep");
  const auto order = index.loadOrder({"virtio_net", "ext4", "net_failover"});
  const std::vector<std::string> expected{
      "kernel/net/core/failover.ko",      "kernel/drivers/net/net_failover.ko",
      "kernel/drivers/net/virtio_net.ko", "kernel/lib/crc16.ko.xz",
      "kernel/fs/mbcache.ko.xz",          "kernel/fs/jbd2/jbd2.ko.xz",
      "kernel/fs/ext4/ext4.ko.xz"};
  EXPECT_EQ(order, expected);
}

TEST(ModuleIndex, BuiltinsNeedNoFile) {
  const auto index =
      ModuleIndex::parse(kDep, "kernel/drivers/virtio/virtio_pci.ko\n", "modules.dep");
  EXPECT_TRUE(index.has("virtio_pci"));
  EXPECT_TRUE(index.builtin("virtio_pci"));
  EXPECT_TRUE(index.loadOrder({"virtio_pci"}).empty());
  EXPECT_TRUE(index.has("sch_netem"));
}

TEST(ModuleIndex, MissingModuleIsNamed) {
  const auto index = ModuleIndex::parse(kDep, "", "modules.dep");
  try {
    (void)index.loadOrder({"tun"});
    FAIL();
  } catch (const Error &e) {
    EXPECT_STREQ(e.what(), "kernel module 'tun' is not in modules.dep");
  }
}

TEST(ModuleIndex, DependencyCycleIsRefused) {
  const auto index = ModuleIndex::parse("a.ko: b.ko\nb.ko: a.ko\n", "", "modules.dep");
  EXPECT_THROW((void)index.loadOrder({"a"}), Error);
}

TEST(ModuleIndex, MalformedLinesAreRefusedWithTheLineNumber) {
  for (const char *bad : {"kernel/a.ko\n", "no-colon-here\n", "/abs/path.ko:\n",
                          "kernel/a.ko: ../../etc/passwd.ko\n", ": kernel/b.ko\n"}) {
    const std::string text = std::string("kernel/ok.ko:\n") + bad;
    try {
      (void)ModuleIndex::parse(text, "", "/lib/modules/x/modules.dep");
      FAIL() << "accepted: " << bad;
    } catch (const Error &e) {
      EXPECT_NE(std::string(e.what()).find("line 2 in '/lib/modules/x/modules.dep'"),
                std::string::npos)
          << e.what();
    }
  }
}

} // namespace
} // namespace nvbox::images
