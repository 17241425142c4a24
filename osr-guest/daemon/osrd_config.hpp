// OsrdConfig — everything osrd is told at start-up, from the command line
// and/or a config file (Boost.Program_options; the file holds the same
// options as `key = value` lines). docs/osrd.md documents every option.
//
// A stripe is one option value:
//   name=s1,flow=1,dst=10.20.0.0/16,egress=10.9.0.2:7400,
//   relays=10.2.1.2:7400+10.2.2.2:7400+10.2.3.2:7400,
//   scheduler=adaptive|equal|weighted|delay,rates=5000000+2500000+1250000
// `relays` lists one relay endpoint per path (the egress's own endpoint makes
// a direct path); `rates` (bytes/s, optional) weights the weighted and
// delay-aware schedulers, and is the adaptive one's starting hint until
// measurements replace it. `relays=oracle,k=K[,objective=delay|rate|
// disjoint]` asks the path oracle (--oracle) for the K relays instead
// (OracleSignaling).
#pragma once

#include "osr/endpoint.hpp"
#include "osr/oracle_wire.hpp"
#include "osr/overlay_key.hpp"
#include "osr/stripe_scheduler.hpp"
#include "osr/types.hpp"
#include "osr/wire.hpp"

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

namespace nvbox::osr {

struct StripeSpec {
  std::string name;
  std::uint32_t flow = 0;
  Prefix dst;
  Endpoint egress;
  std::vector<Endpoint> relays;
  std::vector<std::uint64_t> rates; // empty, or one per relay
  StripePolicy policy = StripePolicy::Adaptive;
  // acks=express: pure TCP ACKs go EXPRESS on the lowest-delay path (wire.hpp);
  // acks=striped: like every other packet.
  bool expressAcks = true;
  bool fromOracle = false; // relays=oracle: the oracle names the relays
  std::uint8_t k = 0;      // with fromOracle: how many relays (1..16)
  oracle::Objective objective = oracle::Objective::Delay;
};

// Flow id of the peer measurement probes (PeerProber); stripes may not use it.
inline constexpr std::uint32_t kMeasureFlow = 0xFFFFFFFF;

struct OsrdConfig {
  std::string name;
  OverlayKey key = OverlayKey::generate();
  Endpoint listen{0, 7400};
  std::string tunName = "osr0";
  std::optional<std::string> tunAddress;
  // The largest IP packet the paths between OSRs carry: parts fill it.
  int pathMtu = 1500;
  int mtu = 1500 - static_cast<int>(wire::kIpUdpOverhead); // TUN MTU: one part per packet
  std::string controlPath = "/run/osrd.sock";
  std::vector<StripeSpec> stripes;
  std::optional<std::size_t> buffer; // nullopt: sized from measurements
  std::optional<Nanos> gapTimeout;   // nullopt: sized from measurements
  Nanos probeInterval = std::chrono::milliseconds(100);
  Nanos downAfter = std::chrono::milliseconds(500);
  Nanos relayDelay{}; // extra delay of relayed datagrams (experiments)
  // The path oracle (docs/oracle.md): where to report and query.
  std::optional<Endpoint> oracle;
  // Run the path oracle in this process too, on this address (nvbox deploy
  // puts it on a stripe's ingress when the stripe asks the oracle).
  std::optional<Endpoint> oracleServe;
  std::vector<Endpoint> peers; // overlay members to measure
  std::string group;           // this router's group label (host, provider)
  Nanos reportInterval = std::chrono::milliseconds(1000);
  Nanos requeryInterval = std::chrono::milliseconds(5000);
  double requeryThreshold = 0.2; // re-stripe when the answer is this much better
  // Route each stripe's dst into the TUN device at start-up (router VMs:
  // nothing else there knows the stripes; namespace labs route themselves).
  bool tunRoutes = false;
  // Let the kernel batch: UDP GSO/GRO on the tunnel socket, TSO and checksum
  // offload on the TUN device (each only where the kernel has it).
  bool offload = true;
  // Hold parts that crossed faster than their flow's slowest path until it
  // would have carried them (Egress, PlayoutClock), where paths differ by
  // more than 2 ms.
  bool playout = true;
};

// Parses one stripe value; throws std::invalid_argument("stripe 'NAME': …").
StripeSpec parseStripeSpec(const std::string &text);

[[nodiscard]] std::string toString(StripePolicy policy);
[[nodiscard]] std::optional<StripePolicy> parsePolicy(const std::string &text);

// Parses argv-style arguments (without the program name). Prints help or
// the version to `out` and returns nothing when asked for them; throws
// std::invalid_argument with one line for any bad option or value.
std::optional<OsrdConfig> parseOsrdConfig(const std::vector<std::string> &args, std::ostream &out);

} // namespace nvbox::osr
