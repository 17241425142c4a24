// libvirt handles, XML queries, host resolution and the accelerator probe
// against libvirt's test driver — the real libvirt code, no daemon.
#include "nvbox/accelerator.hpp"
#include "nvbox/error.hpp"
#include "nvbox/hosts.hpp"
#include "nvbox/libvirt.hpp"
#include "nvbox/xml.hpp"

#include <gtest/gtest.h>

namespace nvbox {
namespace {

TEST(Libvirt, OpensTheTestDriverAndReadsVersions) {
  const auto conn = virt::Connection::open("test:///default");
  EXPECT_EQ(conn.driverType(), "TEST");
  EXPECT_EQ(conn.canonicalUri(), "test:///default");
  EXPECT_EQ(conn.libvirtVersion().rfind("9.", 0), 0U) << conn.libvirtVersion();
}

TEST(Libvirt, FormatsVersionNumbers) {
  EXPECT_EQ(virt::formatVersion(9000000), "9.0.0");
  EXPECT_EQ(virt::formatVersion(7002022), "7.2.22");
}

TEST(Libvirt, BadUriFailsWithTheUriInTheMessage) {
  try {
    (void)virt::Connection::open("nosuchdriver:///x");
    FAIL() << "expected an error";
  } catch (const Error &e) {
    EXPECT_EQ(std::string(e.what()).rfind("cannot connect to host 'nosuchdriver:///x': ", 0), 0U)
        << e.what();
  }
}

TEST(Xml, QueriesCapabilities) {
  const auto conn = virt::Connection::open("test:///default");
  const XmlDocument caps(conn.capabilities(), "test capabilities");
  EXPECT_EQ(caps.first("/capabilities/host/cpu/arch").value_or(""), "i686");
  EXPECT_FALSE(caps.all("/capabilities/guest/arch/domain/@type").empty());
  EXPECT_FALSE(caps.first("/capabilities/nothing").has_value());
}

TEST(Xml, RejectsMalformedInputNamingIt) {
  try {
    const XmlDocument doc("<a><b></a>", "the reply of 'h1'");
    FAIL() << "expected an error";
  } catch (const Error &e) {
    EXPECT_STREQ(e.what(), "cannot parse the reply of 'h1': malformed XML");
  }
}

TEST(Xml, DoesNotExpandExternalEntities) {
  const XmlDocument doc("<!DOCTYPE a [<!ENTITY x SYSTEM \"file:///etc/hostname\">]><a>&x;</a>",
                        "hostile xml");
  EXPECT_EQ(doc.first("/a").value_or("?"), "");
}

TEST(Xml, InvalidXPathIsAnError) {
  const XmlDocument doc("<a/>", "doc");
  EXPECT_THROW((void)doc.all("///["), Error);
}

TEST(Hosts, ResolvesLocalAndUris) {
  EXPECT_EQ(resolveHost("").uri, "qemu:///system");
  EXPECT_EQ(resolveHost("local").uri, "qemu:///system");
  EXPECT_EQ(resolveHost("qemu+ssh://root@h2/system").uri, "qemu+ssh://root@h2/system");
  try {
    (void)resolveHost("h2");
    FAIL() << "expected a usage error";
  } catch (const Error &e) {
    EXPECT_EQ(e.kind(), Error::Kind::Usage);
    EXPECT_STREQ(e.what(), "unknown host 'h2'");
  }
}

TEST(Accelerator, TestDriverOffersNoQemuSoNothingIsProbed) {
  const auto conn = virt::Connection::open("test:///default");
  const AcceleratorReport report = probeAccelerator(conn);
  EXPECT_FALSE(report.qemuOffered);
  EXPECT_FALSE(report.kvmOffered);
  EXPECT_FALSE(report.tcg.attempted);
  EXPECT_EQ(report.chosen(), "none");
  EXPECT_EQ(report.domainType(), "qemu");
  EXPECT_NE(report.kvmUnusableReason().find("no 'kvm' domain type"), std::string::npos);
}

TEST(Accelerator, ProbeOfAnUnknownDomainTypeReportsLibvirtsReason) {
  const auto conn = virt::Connection::open("test:///default");
  const GuestProbe probe = probeGuest(conn, "kvm", "x86_64", std::chrono::milliseconds(100));
  EXPECT_TRUE(probe.attempted);
  EXPECT_FALSE(probe.ran);
  EXPECT_FALSE(probe.reason.empty());
}

} // namespace
} // namespace nvbox
