// `nvbox doctor` against the real libvirtd of this machine: libvirt answers,
// the accelerator is one that really ran a guest (TCG on machines without a
// working KVM), KVM's verdict carries a reason, and no probe guest remains.
#include "libvirtd_fixture.hpp"
#include "process.hpp"

#include <filesystem>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace nvbox::test {
namespace {

using Json = nlohmann::json;

const Json &check(const Json &report, const std::string &id) {
  for (const auto &c : report["checks"]) {
    if (c["id"] == id) {
      return c;
    }
  }
  throw std::runtime_error("no check " + id);
}

class DoctorHost : public LibvirtdTest {};

TEST_F(DoctorHost, JsonReportsLibvirtOkAndAWorkingAccelerator) {
  const auto r = nvbox({"doctor", "--json"});
  ASSERT_EQ(r.exitCode, 0) << r.out << r.err;
  const Json report = Json::parse(r.out);
  EXPECT_EQ(report["host"], "local");
  EXPECT_EQ(report["uri"], "qemu:///system");
  EXPECT_EQ(check(report, "libvirt")["status"], "ok");
  EXPECT_EQ(check(report, "qemu")["status"], "ok");
  EXPECT_EQ(check(report, "accelerator")["status"], "ok");
  const Json &kvm = check(report, "kvm");
  if (!std::filesystem::exists("/dev/kvm")) {
    EXPECT_EQ(report["accelerator"], "tcg");
  }
  if (report["accelerator"] == "tcg") {
    EXPECT_EQ(kvm["status"], "warn");
    EXPECT_EQ(kvm["data"]["usable"], false);
    EXPECT_FALSE(kvm["data"]["reason"].get<std::string>().empty());
    EXPECT_FALSE(kvm["fix"].get<std::string>().empty());
  } else {
    EXPECT_EQ(report["accelerator"], "kvm");
    EXPECT_EQ(kvm["data"]["usable"], true);
  }
  EXPECT_EQ(check(report, "guest-kernel")["status"], "ok");
  const Json &features = check(report, "host-kernel")["data"]["features"];
  for (const char *essential : {"veth", "bridge", "vxlan", "tun", "tbf"}) {
    EXPECT_EQ(features[essential]["state"], "available") << essential;
  }
  EXPECT_EQ(check(report, "guestfs")["status"], "skip");
}

TEST_F(DoctorHost, LeavesNoProbeDomainBehind) {
  const auto r = nvbox({"doctor", "--only", "accelerator"});
  ASSERT_EQ(r.exitCode, 0) << r.out << r.err;
  for (const auto &name : domainNames(conn())) {
    EXPECT_FALSE(name.starts_with("nvbox-probe-")) << name;
  }
}

TEST_F(DoctorHost, TextReportEndsWithAVerdict) {
  const auto r = nvbox({"doctor", "--only", "libvirt,qemu,accelerator,kvm"});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.out.rfind("nvbox doctor: host 'local' (qemu:///system)\n", 0), 0U);
  EXPECT_NE(r.out.find("\nresult: host 'local' can run NV-box routers (accelerator "),
            std::string::npos)
      << r.out;
}

} // namespace
} // namespace nvbox::test
