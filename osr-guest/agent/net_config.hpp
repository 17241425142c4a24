// NetConfig — the network configuration the host gives a router, parsed and
// fully validated before anything is applied (net_apply.hpp applies it).
//
// The text is Boost.Program_options config-file syntax, `key = value` lines
// with '#' comments (docs/guest.md documents every key):
//
//   hostname = r1
//   iface = mac=52:54:00:6e:76:01,addr=10.0.1.1/24,mtu=1500,rate=20M,delay=10ms,loss=0.5%
//   iface = name=eth1,addr=10.0.2.1/24+10.0.9.1/24
//   route = dst=default,via=10.0.1.254
//   sysctl = net.ipv4.ip_forward=1
//
// The text comes from the host through fw_cfg and is treated as untrusted:
// any input gives a NetConfig or one std::invalid_argument whose message
// names the line and quotes the offending value ("net config line 3: iface
// 'mac=zz': bad MAC address 'zz'"), never a crash.
//
// Threading: plain values and pure functions; safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nvbox::agent {

struct IfaceSpec {
  std::string mac;                    // lower case "52:54:00:6e:76:01"; empty when by name
  std::string name;                   // empty when by MAC
  std::vector<std::string> addresses; // IPv4 CIDRs, "10.0.1.1/24"
  std::optional<std::uint32_t> mtu;
  std::optional<std::uint64_t> rate; // bit/s (tbf)
  std::optional<std::uint32_t> delayUs;
  std::optional<std::uint32_t> jitterUs;
  std::optional<double> lossPercent;

  // What the iface line selects, for messages: "eth1" or "mac=52:54:…".
  [[nodiscard]] std::string selector() const { return mac.empty() ? name : "mac=" + mac; }
  // Whether the interface needs a netem qdisc (delay, jitter or loss).
  [[nodiscard]] bool netem() const { return delayUs || jitterUs || lossPercent; }
};

struct RouteSpec {
  std::string dst; // IPv4 CIDR; "0.0.0.0/0" for default
  std::string via; // IPv4 gateway
  std::string dev; // empty: the kernel picks it from the gateway
};

struct SysctlSpec {
  std::string key; // "net.ipv4.ip_forward"
  std::string value;
};

struct NetConfig {
  std::string hostname; // empty: leave the host name alone
  std::vector<IfaceSpec> ifaces;
  std::vector<RouteSpec> routes;
  std::vector<SysctlSpec> sysctls;
};

// Parses and validates a whole configuration; throws std::invalid_argument.
[[nodiscard]] NetConfig parseNetConfig(std::string_view text);

// One interface's shaping as the host changes it at run time: an iface
// line's fields without addr= ("mac=52:54:00:6e:76:01,rate=4M,delay=2ms").
// The fields absent are no shaping. Throws std::invalid_argument.
[[nodiscard]] IfaceSpec parseShape(std::string_view text);

// The contents of a configuration file (at most 1 MiB); throws
// std::runtime_error("cannot read net config 'PATH': …").
[[nodiscard]] std::string readNetConfigFile(const std::string &path);

// A value from untrusted input made fit for a one-line message: quoted,
// control and non-ASCII bytes replaced by '?', cut after 64 characters.
[[nodiscard]] std::string quoteValue(std::string_view value);

} // namespace nvbox::agent
