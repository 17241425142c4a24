// The accelerator probe boots real QEMU guests under libvirtd: a TCG guest
// reaches its firmware, or boots the guest kernel to its last words; an
// impossible deadline is reported as a guest that did not get there; and in
// every case the transient guest is gone afterwards.
#include "libvirtd_fixture.hpp"

#include "nvbox/accelerator.hpp"
#include "nvbox/images/guest_kernel.hpp"

#include <gtest/gtest.h>

namespace nvbox::test {
namespace {

class ProbeGuest : public LibvirtdTest {
protected:
  void expectNoProbeDomains() {
    for (const auto &name : domainNames(conn())) {
      EXPECT_FALSE(name.starts_with("nvbox-probe-")) << name;
    }
  }
};

TEST_F(ProbeGuest, TcgGuestReachesItsFirmware) {
  const GuestProbe probe = probeGuest(conn(), "qemu", "x86_64", std::chrono::seconds(30));
  EXPECT_TRUE(probe.ran) << probe.reason;
  EXPECT_GT(probe.seconds, 0.0);
  expectNoProbeDomains();
}

TEST_F(ProbeGuest, DeadlineBeforeTheBannerMeansTheGuestDidNotRun) {
  // One microsecond-scale deadline: the watchdog fires before QEMU prints.
  const GuestProbe probe = probeGuest(conn(), "qemu", "x86_64", std::chrono::milliseconds(1));
  EXPECT_FALSE(probe.ran);
  EXPECT_NE(probe.reason.find("printed nothing"), std::string::npos) << probe.reason;
  expectNoProbeDomains();
}

TEST_F(ProbeGuest, TcgGuestBootsTheGuestKernelToItsEnd) {
  const auto kernel = images::findGuestKernel();
  ASSERT_TRUE(kernel) << "the set-up installs linux-image-amd64";
  const GuestProbe probe =
      probeGuest(conn(), "qemu", "x86_64", std::chrono::seconds(120), kernel->vmlinuz.string());
  EXPECT_TRUE(probe.ran) << probe.reason;
  EXPECT_TRUE(probe.kernel);
  expectNoProbeDomains();
}

TEST_F(ProbeGuest, AKernelThatDoesNotFinishStartingDidNotRun) {
  const auto kernel = images::findGuestKernel();
  ASSERT_TRUE(kernel) << "the set-up installs linux-image-amd64";
  const GuestProbe probe =
      probeGuest(conn(), "qemu", "x86_64", std::chrono::milliseconds(1), kernel->vmlinuz.string());
  EXPECT_FALSE(probe.ran);
  EXPECT_NE(probe.reason.find("did not finish starting"), std::string::npos) << probe.reason;
  expectNoProbeDomains();
}

TEST_F(ProbeGuest, ReportPicksTcgWhenKvmIsAbsent) {
  const AcceleratorReport report = probeAccelerator(conn());
  EXPECT_TRUE(report.qemuOffered);
  EXPECT_NE(report.emulator, "");
  if (!report.kvm.ran) {
    EXPECT_EQ(report.chosen(), "tcg");
    EXPECT_EQ(report.domainType(), "qemu");
    EXPECT_FALSE(report.kvmUnusableReason().empty());
  }
  expectNoProbeDomains();
}

} // namespace
} // namespace nvbox::test
