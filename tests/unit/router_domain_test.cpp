// The router's libvirt XML: golden files, libvirt's own parser (the test
// driver defines what we generate, and gives it back), metadata round trip
// through virDomainSetMetadata/GetMetadata, and refusal of bad specs.
#include "golden.hpp"
#include "nvbox/error.hpp"
#include "nvbox/libvirt.hpp"
#include "nvbox/router_domain.hpp"
#include "nvbox/xml.hpp"

#include <gtest/gtest.h>

namespace nvbox {
namespace {

RouterDomainSpec exampleSpec() {
  RouterDomainSpec spec;
  spec.name = "nvbox-demo-r1";
  spec.memoryMiB = 128;
  spec.kernel = "/var/lib/libvirt/images/nvbox/nvbox-0123-vmlinuz";
  spec.initrd = "/var/lib/libvirt/images/nvbox/nvbox-4567-initrd";
  spec.cmdline = "console=ttyS0 panic=-1 quiet";
  spec.disk = "/var/lib/libvirt/images/nvbox/nvbox-demo-r1.qcow2";
  spec.nics = {{RouterNic::Kind::Bridge, "nvbox-l1", "nvbox-t1", "52:54:00:6e:76:01", 2500, 1500,
                "", "", std::nullopt},
               {RouterNic::Kind::Ethernet, "", "", "52:54:00:6e:76:02", std::nullopt, std::nullopt,
                "", "", std::nullopt},
               // A link to a host reached through libvirt alone: a QEMU UDP tunnel.
               {RouterNic::Kind::Udp, "", "", "52:54:00:6e:76:03", std::nullopt, 1500,
                "10.250.0.1:40000", "10.250.0.2:40001", std::nullopt}};
  spec.config = {{"net", "hostname = r1\niface = name=eth0,addr=10.0.1.1/24\n"},
                 {"osrd", "key-file = /run/nvbox/key\n"}};
  spec.metadata = {
      "osr", "37b58935efcf5224", "demo", "relay", "nvbox-demo-r1.qcow2", "nvbox", "", "", ""};
  return spec;
}

TEST(RouterDomain, MatchesGoldenXml) {
  test::expectGolden(routerDomainXml(exampleSpec()), "router/domain.xml");
}

TEST(RouterDomain, OverlayVolumeMatchesGoldenXml) {
  test::expectGolden(
      overlayVolumeXml("nvbox-demo-r1.qcow2", "/pool/nvbox-89ab-root.qcow2", 268435456),
      "router/overlay-volume.xml");
}

TEST(RouterDomain, LibvirtAcceptsItAndKeepsWhatMatters) {
  const auto conn = virt::Connection::open("test:///default");
  const std::string xml = routerDomainXml(exampleSpec());
  virt::DomainPtr dom(virDomainDefineXML(conn.get(), xml.c_str()));
  ASSERT_TRUE(dom) << virt::lastError();
  std::unique_ptr<char, decltype(&free)> back(virDomainGetXMLDesc(dom.get(), 0), free);
  ASSERT_TRUE(back);
  const XmlDocument doc(back.get(), "defined router");
  EXPECT_EQ(doc.first("/domain/os/kernel").value_or(""), exampleSpec().kernel);
  EXPECT_EQ(doc.all("/domain/devices/interface/model/@type").size(), 3U);
  EXPECT_EQ(doc.first("/domain/devices/interface[@type='udp']/source/local/@port").value_or(""),
            "40000");
  EXPECT_EQ(doc.first("/domain/devices/interface/bandwidth/inbound/@average").value_or(""), "2500");
  EXPECT_EQ(doc.first("/domain/devices/channel/target/@name").value_or(""), kAgentChannel);
  EXPECT_EQ(doc.all("/domain/sysinfo/entry/@name").size(), 2U);
  // The fw_cfg text is base64 of the config, so it survives any character.
  EXPECT_EQ(doc.first("/domain/sysinfo/entry[@name='opt/org.nvbox/osrd']").value_or(""),
            base64Encode("key-file = /run/nvbox/key\n"));

  std::unique_ptr<char, decltype(&free)> meta(
      virDomainGetMetadata(dom.get(), VIR_DOMAIN_METADATA_ELEMENT, kMetadataNamespace, 0), free);
  ASSERT_TRUE(meta) << virt::lastError();
  EXPECT_EQ(parseRouterMetadata(meta.get()), exampleSpec().metadata);
  EXPECT_EQ(virDomainUndefine(dom.get()), 0);
}

TEST(RouterDomain, MetadataRoundTripsThroughSetMetadata) {
  const auto conn = virt::Connection::open("test:///default");
  virt::DomainPtr dom(virDomainLookupByName(conn.get(), "test"));
  ASSERT_TRUE(dom);
  RouterMetadata m{"my<image>", "d1",   "o&1",          "egress",     "v'1",
                   "p\"1",      "s<1>", "{\"plan\":1}", "{\"run\":1}"};
  const std::string xml = routerMetadataXml(m);
  ASSERT_EQ(virDomainSetMetadata(dom.get(), VIR_DOMAIN_METADATA_ELEMENT, xml.c_str(),
                                 kMetadataPrefix, kMetadataNamespace, 0),
            0)
      << virt::lastError();
  std::unique_ptr<char, decltype(&free)> back(
      virDomainGetMetadata(dom.get(), VIR_DOMAIN_METADATA_ELEMENT, kMetadataNamespace, 0), free);
  ASSERT_TRUE(back);
  EXPECT_EQ(parseRouterMetadata(back.get()), m);
}

TEST(RouterDomain, ForeignMetadataIsAnError) {
  EXPECT_THROW((void)parseRouterMetadata("<other/>"), Error);
  EXPECT_THROW((void)parseRouterMetadata("not xml"), Error);
}

TEST(RouterDomain, RefusesBadSpecsNamingTheValue) {
  auto expectUsage = [](RouterDomainSpec spec, const std::string &fragment) {
    try {
      (void)routerDomainXml(spec);
      ADD_FAILURE() << "accepted a spec that should fail with " << fragment;
    } catch (const Error &e) {
      EXPECT_EQ(e.kind(), Error::Kind::Usage);
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  RouterDomainSpec s = exampleSpec();
  s.name = "bad name";
  expectUsage(s, "'bad name'");
  s = exampleSpec();
  s.domainType = "xen";
  expectUsage(s, "'xen'");
  s = exampleSpec();
  s.memoryMiB = 16;
  expectUsage(s, "memory below 64 MiB");
  s = exampleSpec();
  s.nics[0].mac = "52:54:00:6E:76:01";
  expectUsage(s, "'52:54:00:6E:76:01'");
  s = exampleSpec();
  s.nics[0].source.clear();
  expectUsage(s, "needs a source");
  s = exampleSpec();
  s.config["../x"] = "";
  expectUsage(s, "'../x'");
}

TEST(RouterDomain, EscapesAndEncodes) {
  EXPECT_EQ(xmlEscape("a<b>&'\""), "a&lt;b&gt;&amp;&apos;&quot;");
  EXPECT_EQ(base64Encode(""), "");
  EXPECT_EQ(base64Encode("f"), "Zg==");
  EXPECT_EQ(base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64Encode("a,b"), "YSxi"); // no commas reach QEMU's option parser
}

} // namespace
} // namespace nvbox
