#include "nvbox/router_domain.hpp"

#include "nvbox/error.hpp"
#include "nvbox/images/digest.hpp"
#include "nvbox/xml.hpp"

#include <sodium.h>

#include <regex>
#include <sstream>

namespace nvbox {

namespace {

void require(bool ok, const std::string &what, const std::string &hint) {
  if (!ok) {
    throw UsageError(what, hint);
  }
}

bool matches(const std::string &text, const char *pattern) {
  return std::regex_match(text, std::regex(pattern));
}

} // namespace

std::string routerNicXml(const RouterNic &nic) {
  std::ostringstream x;
  const char *type = nic.kind == RouterNic::Kind::Bridge    ? "bridge"
                     : nic.kind == RouterNic::Kind::Network ? "network"
                     : nic.kind == RouterNic::Kind::Udp     ? "udp"
                                                            : "ethernet";
  x << "    <interface type='" << type << "'>\n";
  if (nic.kind == RouterNic::Kind::Bridge) {
    x << "      <source bridge='" << xmlEscape(nic.source) << "'/>\n";
  } else if (nic.kind == RouterNic::Kind::Network) {
    x << "      <source network='" << xmlEscape(nic.source) << "'/>\n";
  } else if (nic.kind == RouterNic::Kind::Udp) {
    const auto split = [](const std::string &ep) {
      const auto colon = ep.rfind(':');
      return std::pair{xmlEscape(ep.substr(0, colon)), xmlEscape(ep.substr(colon + 1))};
    };
    const auto [remoteIp, remotePort] = split(nic.udpRemote);
    const auto [localIp, localPort] = split(nic.udpLocal);
    x << "      <source address='" << remoteIp << "' port='" << remotePort << "'>\n"
      << "        <local address='" << localIp << "' port='" << localPort << "'/>\n"
      << "      </source>\n";
  }
  if (!nic.tap.empty()) {
    // managed='no' would make libvirt expect an existing tap; nvbox lets it
    // create the tap under the name nvbox's cleanup looks for.
    x << "      <target dev='" << xmlEscape(nic.tap) << "'/>\n";
  }
  if (!nic.mac.empty()) {
    x << "      <mac address='" << nic.mac << "'/>\n";
  }
  x << "      <model type='virtio'/>\n";
  if (nic.mtu) {
    x << "      <mtu size='" << *nic.mtu << "'/>\n";
  }
  if (nic.linkUp) {
    x << "      <link state='" << (*nic.linkUp ? "up" : "down") << "'/>\n";
  }
  if (nic.rateKbps) {
    x << "      <bandwidth>\n"
      << "        <inbound average='" << *nic.rateKbps << "'/>\n"
      << "        <outbound average='" << *nic.rateKbps << "'/>\n"
      << "      </bandwidth>\n";
  }
  x << "    </interface>\n";
  return x.str();
}

std::string derivedMac(const std::string &scope, const std::string &router, std::size_t index) {
  const std::string digest = images::sha256Hex(scope + "/" + router + "/" + std::to_string(index));
  return "52:54:00:" + digest.substr(0, 2) + ":" + digest.substr(2, 2) + ":" + digest.substr(4, 2);
}

std::string base64Encode(const std::string &data) {
  std::string out(sodium_base64_ENCODED_LEN(data.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char *>(data.data()),
                    data.size(), sodium_base64_VARIANT_ORIGINAL);
  out.resize(out.size() - 1); // the terminating NUL
  return out;
}

namespace {

// The <router> element; with `inDomain`, prefixed and declaring its
// namespace as it must inside a <domain> document. virDomainSetMetadata
// wants it bare and adds the namespace itself.
std::string metadataElement(const RouterMetadata &m, bool inDomain) {
  const std::string p = inDomain ? std::string(kMetadataPrefix) + ":" : "";
  std::ostringstream x;
  x << "<" << p << "router";
  if (inDomain) {
    x << " xmlns:" << kMetadataPrefix << "='" << kMetadataNamespace << "'";
  }
  x << ">\n";
  const std::pair<const char *, const std::string *> fields[] = {
      {"image", &m.image},     {"image-digest", &m.imageDigest},
      {"overlay", &m.overlay}, {"role", &m.role},
      {"volume", &m.volume},   {"pool", &m.pool}};
  for (const auto &[tag, value] : fields) {
    x << "  <" << p << tag << ">" << xmlEscape(*value) << "</" << p << tag << ">\n";
  }
  // Only overlay members carry these; lone routers keep the shorter form.
  const std::pair<const char *, const std::string *> overlayFields[] = {
      {"spec", &m.spec}, {"plan", &m.plan}, {"run", &m.run}};
  for (const auto &[tag, value] : overlayFields) {
    if (!value->empty()) {
      x << "  <" << p << tag << ">" << xmlEscape(*value) << "</" << p << tag << ">\n";
    }
  }
  x << "</" << p << "router>";
  return x.str();
}

} // namespace

std::string routerMetadataXml(const RouterMetadata &m) {
  return metadataElement(m, false);
}

RouterMetadata parseRouterMetadata(const std::string &xml) {
  const XmlDocument doc(xml, "router metadata");
  if (!doc.first("/*[local-name()='router']")) {
    throw Error("the domain's nvbox metadata has no <router> element");
  }
  auto field = [&](const char *tag) {
    return doc.first(std::string("/*[local-name()='router']/*[local-name()='") + tag + "']")
        .value_or("");
  };
  return {field("image"), field("image-digest"), field("overlay"), field("role"), field("volume"),
          field("pool"),  field("spec"),         field("plan"),    field("run")};
}

std::string routerDomainXml(const RouterDomainSpec &spec) {
  require(matches(spec.name, "[A-Za-z0-9_.+-]{1,128}"),
          "router domain name '" + spec.name + "' is not 1-128 of [A-Za-z0-9_.+-]",
          "choose another router name");
  require(spec.domainType == "qemu" || spec.domainType == "kvm",
          "domain type '" + spec.domainType + "' is neither 'qemu' nor 'kvm'",
          "see 'nvbox doctor' for the accelerator");
  require(spec.memoryMiB >= 64, "router '" + spec.name + "': memory below 64 MiB",
          "give at least --memory 64M; the guest kernel needs it");
  require(spec.vcpus >= 1 && spec.vcpus <= 64, "router '" + spec.name + "': 1-64 vCPUs",
          "give --cpus between 1 and 64");
  for (const auto &nic : spec.nics) {
    require(nic.mac.empty() || matches(nic.mac, "([0-9a-f]{2}:){5}[0-9a-f]{2}"),
            "router '" + spec.name + "': MAC address '" + nic.mac + "' is not lowercase hex",
            "write it as 52:54:00:12:34:56");
    require(nic.kind == RouterNic::Kind::Ethernet || nic.kind == RouterNic::Kind::Udp ||
                !nic.source.empty(),
            "router '" + spec.name + "': a bridge or network NIC needs a source",
            "name the bridge or network");
    require(nic.kind != RouterNic::Kind::Udp || (matches(nic.udpLocal, "[0-9.]{7,15}:[0-9]{1,5}") &&
                                                 matches(nic.udpRemote, "[0-9.]{7,15}:[0-9]{1,5}")),
            "router '" + spec.name + "': a UDP NIC needs local and remote IPv4:PORT, not '" +
                nic.udpLocal + "' and '" + nic.udpRemote + "'",
            "give both tunnel ends");
  }
  for (const auto &[key, text] : spec.config) {
    require(matches(key, "[a-z0-9-]{1,32}"),
            "router '" + spec.name + "': config key '" + key + "' is not 1-32 of [a-z0-9-]",
            "use keys such as net, osrd, key");
  }

  std::ostringstream x;
  x << "<domain type='" << spec.domainType << "'>\n"
    << "  <name>" << xmlEscape(spec.name) << "</name>\n"
    << "  <metadata>\n"
    << metadataElement(spec.metadata, true) << "\n"
    << "  </metadata>\n"
    << "  <memory unit='MiB'>" << spec.memoryMiB << "</memory>\n"
    << "  <vcpu>" << spec.vcpus << "</vcpu>\n";
  if (!spec.config.empty()) {
    x << "  <sysinfo type='fwcfg'>\n";
    for (const auto &[key, text] : spec.config) {
      x << "    <entry name='opt/org.nvbox/" << key << "'>" << base64Encode(text) << "</entry>\n";
    }
    x << "  </sysinfo>\n";
  }
  x << "  <os>\n"
    << "    <type arch='x86_64' machine='pc'>hvm</type>\n"
    << "    <kernel>" << xmlEscape(spec.kernel) << "</kernel>\n"
    << "    <initrd>" << xmlEscape(spec.initrd) << "</initrd>\n"
    << "    <cmdline>" << xmlEscape(spec.cmdline) << "</cmdline>\n"
    << "  </os>\n"
    // ACPI carries the power button that a graceful stop presses.
    << "  <features>\n    <acpi/>\n  </features>\n"
    << "  <on_poweroff>destroy</on_poweroff>\n"
    << "  <on_reboot>restart</on_reboot>\n"
    << "  <on_crash>destroy</on_crash>\n"
    << "  <devices>\n"
    << "    <disk type='file' device='disk'>\n"
    << "      <driver name='qemu' type='qcow2'/>\n"
    << "      <source file='" << xmlEscape(spec.disk) << "'/>\n"
    << "      <target dev='vda' bus='virtio'/>\n"
    << "    </disk>\n";
  for (const auto &nic : spec.nics) {
    x << routerNicXml(nic);
  }
  x << "    <serial type='pty'>\n      <target port='0'/>\n    </serial>\n"
    << "    <console type='pty'>\n      <target type='serial' port='0'/>\n    </console>\n"
    << "    <channel type='unix'>\n"
    << "      <source mode='bind'/>\n"
    << "      <target type='virtio' name='" << kAgentChannel << "'/>\n"
    << "    </channel>\n"
    << "    <memballoon model='none'/>\n"
    << "  </devices>\n"
    << "</domain>\n";
  return x.str();
}

std::string overlayVolumeXml(const std::string &name, const std::string &backingPath,
                             std::uint64_t capacity) {
  std::ostringstream x;
  x << "<volume>\n"
    << "  <name>" << xmlEscape(name) << "</name>\n"
    << "  <capacity unit='bytes'>" << capacity << "</capacity>\n"
    << "  <target>\n    <format type='qcow2'/>\n  </target>\n"
    << "  <backingStore>\n"
    << "    <path>" << xmlEscape(backingPath) << "</path>\n"
    << "    <format type='qcow2'/>\n"
    << "  </backingStore>\n"
    << "</volume>\n";
  return x.str();
}

} // namespace nvbox
