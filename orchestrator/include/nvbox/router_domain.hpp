// RouterDomain — the libvirt XML of a virtual router: the domain (direct
// kernel boot of an OSR image, a virtio disk on the router's copy-on-write
// overlay, virtio NICs, the configuration in QEMU fw_cfg, the guest agent's
// virtio-serial port, a serial console) and the overlay volume.
//
// The router's configuration reaches the guest without touching its disk:
// each fw_cfg entry "opt/org.nvbox/<key>" holds base64 text (QEMU's
// `-fw_cfg string=` cannot carry commas through every libvirt version), which
// the guest's nvbox-init decodes into /run/nvbox/<key> (see docs/guest.md):
//   net   the network configuration applied by osr-agent
//   osrd  osrd's configuration file
//   key   the overlay key (osrd reads it with key-file = /run/nvbox/key)
//
// What nvbox made is recorded in the domain's own <metadata> under
// kMetadataNamespace, so any nvbox can rebuild the picture from the host.
//
// Threading: plain values and pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace nvbox {

inline constexpr const char *kMetadataNamespace = "https://nvbox.dev/xmlns/router/1";
inline constexpr const char *kMetadataPrefix = "nvbox";
// The virtio-serial port osr-agent serves (GuestAgent talks to it).
inline constexpr const char *kAgentChannel = "org.nvbox.agent.0";

struct RouterNic {
  enum class Kind {
    Bridge,   // a tap on an existing host bridge (one per link)
    Ethernet, // a bare tap that nvbox wires itself
    Network,  // a libvirt network
    Udp,      // a QEMU UDP socket: frames to udpRemote from udpLocal (no host device)
  };
  Kind kind = Kind::Ethernet;
  std::string source;                    // bridge or network name; unused for Ethernet
  std::string tap;                       // host-side tap name (empty: libvirt chooses)
  std::string mac;                       // 52:54:00:xx:xx:xx
  std::optional<std::uint64_t> rateKbps; // libvirt <bandwidth> in kilobytes/s, both ways
  std::optional<unsigned> mtu;
  std::string udpLocal;       // Udp: "IP:PORT" this end listens on
  std::string udpRemote;      // Udp: "IP:PORT" of the other end
  std::optional<bool> linkUp; // <link state='up|down'/>; unset: libvirt's default (up)
};

// What nvbox records in <metadata>; every field is a plain string.
struct RouterMetadata {
  std::string image;       // image name
  std::string imageDigest; // the image's input digest
  std::string overlay;     // overlay (topology) name, empty for a lone router
  std::string role;        // "ingress", "relay", "egress", "router", ...
  std::string volume;      // the router's overlay volume
  std::string pool;        // the pool holding it
  std::string spec;        // overlay members: the digest of the router's planned spec
  std::string plan;        // overlay members: the overlay plan (JSON), for inspect/destroy
  std::string run;         // a stripe's ingress: the last `nvbox overlay run` (JSON summary)
  bool operator==(const RouterMetadata &) const = default;
};

struct RouterDomainSpec {
  std::string name;
  std::string domainType = "qemu"; // "kvm" where KVM really works
  std::uint64_t memoryMiB = 128;
  unsigned vcpus = 1;
  std::string kernel; // host paths of the pushed image parts
  std::string initrd;
  std::string cmdline;
  std::string disk; // host path of the router's overlay volume
  std::vector<RouterNic> nics;
  std::map<std::string, std::string> config; // fw_cfg key -> text (net, osrd, key)
  RouterMetadata metadata;
};

// A stable MAC for NIC `index` of `router`: "52:54:00:" and the first 3
// bytes of sha256("SCOPE/ROUTER/INDEX"); the scope is a host (nvbox router
// create) or an overlay (deploy), so a router created again gets its MACs back.
[[nodiscard]] std::string derivedMac(const std::string &scope, const std::string &router,
                                     std::size_t index);

// The <domain> document. Throws nvbox::UsageError for a spec libvirt would
// reject in a less readable way (bad name, MAC, fw_cfg key, no memory).
[[nodiscard]] std::string routerDomainXml(const RouterDomainSpec &spec);

// One <interface> element, as in the domain and as
// virDomainUpdateDeviceFlags takes it (libvirt finds the NIC by its MAC).
[[nodiscard]] std::string routerNicXml(const RouterNic &nic);

// The metadata element alone, for virDomainSetMetadata with kMetadataPrefix
// and kMetadataNamespace (libvirt puts it in the namespace).
[[nodiscard]] std::string routerMetadataXml(const RouterMetadata &metadata);
// Parses what routerMetadataXml wrote (as virDomainGetMetadata returns it).
// Throws nvbox::Error for anything else.
[[nodiscard]] RouterMetadata parseRouterMetadata(const std::string &xml);

// A qcow2 volume of `capacity` bytes in a pool whose writes go to it and
// whose reads fall through to `backingPath` (the image's root.qcow2).
[[nodiscard]] std::string overlayVolumeXml(const std::string &name, const std::string &backingPath,
                                           std::uint64_t capacity);

// RFC 4648 base64 with padding.
[[nodiscard]] std::string base64Encode(const std::string &data);

} // namespace nvbox
