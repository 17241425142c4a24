// Doctor against libvirt's own test driver (test:///default): a host that
// answers but has no QEMU. Exercises the library and the CLI's text and JSON
// output without any daemon; outputs are compared with golden files.
#include "golden.hpp"
#include "process.hpp"

#include "nvbox/doctor.hpp"
#include "nvbox/error.hpp"
#include "nvbox/libvirt.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace nvbox::test {
namespace {

const std::vector<std::string> kHostChecks{"--only", "libvirt,qemu,accelerator,kvm,storage-pool"};

std::string testHostname() {
  return virt::Connection::open("test:///default").hostname();
}

TEST(Doctor, TestDriverHasNoQemuSoRoutersCannotRun) {
  DoctorOptions options;
  options.hostName = "test";
  options.uri = "test:///default";
  options.only = {"libvirt", "qemu", "accelerator", "kvm", "storage-pool"};
  const DoctorReport report = runDoctor(options);
  EXPECT_FALSE(report.ok());
  EXPECT_EQ(report.accelerator, "none");
  ASSERT_EQ(report.checks.size(), 5U);
  EXPECT_EQ(report.checks[0].id, "libvirt");
  EXPECT_EQ(report.checks[0].status, CheckStatus::Ok);
  EXPECT_EQ(report.checks[1].id, "qemu");
  EXPECT_EQ(report.checks[1].status, CheckStatus::Fail);
  EXPECT_FALSE(report.checks[1].fix.empty());
  EXPECT_EQ(report.checks[2].status, CheckStatus::Fail);
  EXPECT_EQ(report.checks[3].status, CheckStatus::Skip);
  EXPECT_EQ(report.checks[4].id, "storage-pool");
  EXPECT_EQ(report.checks[4].status, CheckStatus::Warn);
  EXPECT_EQ(report.count(CheckStatus::Fail), 2U);
}

TEST(Doctor, OnlyRunsTheNamedChecks) {
  DoctorOptions options;
  options.uri = "test:///default";
  options.only = {"libvirt"};
  const DoctorReport report = runDoctor(options);
  ASSERT_EQ(report.checks.size(), 1U);
  EXPECT_TRUE(report.ok());
}

TEST(Doctor, UnknownCheckIsAUsageError) {
  DoctorOptions options;
  options.uri = "test:///default";
  options.only = {"libvirt", "flux-capacitor"};
  try {
    (void)runDoctor(options);
    FAIL() << "expected a usage error";
  } catch (const Error &e) {
    EXPECT_EQ(e.kind(), Error::Kind::Usage);
    EXPECT_STREQ(e.what(), "unknown check 'flux-capacitor'");
  }
}

TEST(Doctor, UnreachableHostThrowsNamingTheUri) {
  DoctorOptions options;
  options.uri = "qemu+tcp://127.0.0.1:1/system";
  try {
    (void)runDoctor(options);
    FAIL() << "expected an error";
  } catch (const Error &e) {
    EXPECT_EQ(e.kind(), Error::Kind::Failure);
    EXPECT_EQ(
        std::string(e.what()).rfind("cannot connect to host 'qemu+tcp://127.0.0.1:1/system'", 0),
        0U);
    EXPECT_FALSE(e.hint().empty());
  }
}

TEST(Doctor, TextReportIsGolden) {
  std::vector<std::string> args{"doctor", "--host", "test:///default"};
  args.insert(args.end(), kHostChecks.begin(), kHostChecks.end());
  const auto r = nvbox(args);
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_EQ(r.err, "");
  expectGolden(r.out, "doctor/test-driver.txt");
}

TEST(Doctor, JsonReportIsGolden) {
  std::vector<std::string> args{"--json", "doctor", "--host", "test:///default"};
  args.insert(args.end(), kHostChecks.begin(), kHostChecks.end());
  const auto r = nvbox(args);
  EXPECT_EQ(r.exitCode, 1);
  auto json = nlohmann::json::parse(r.out);
  EXPECT_EQ(json["ok"], false);
  EXPECT_EQ(json["accelerator"], "none");
  // Machine-dependent values are normalised before the comparison.
  EXPECT_GT(json["seconds"].get<double>(), 0.0);
  json["seconds"] = 0;
  ASSERT_EQ(json["checks"][0]["id"], "libvirt");
  EXPECT_EQ(json["checks"][0]["data"]["hostname"], testHostname());
  json["checks"][0]["data"]["hostname"] = "HOSTNAME";
  expectGolden(json.dump(2) + "\n", "doctor/test-driver.json");
}

TEST(Doctor, IsLocalUri) {
  EXPECT_TRUE(isLocalUri("qemu:///system"));
  EXPECT_TRUE(isLocalUri("qemu+unix:///system?socket=/srv/h1/run/libvirt-sock"));
  EXPECT_TRUE(isLocalUri("test:///default"));
  EXPECT_FALSE(isLocalUri("qemu+ssh://root@h2/system"));
  EXPECT_FALSE(isLocalUri("qemu+tcp://10.0.0.2/system"));
}

} // namespace
} // namespace nvbox::test
