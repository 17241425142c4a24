// Topology — an overlay described in a YAML file (docs/topology.md), parsed
// and validated before anything is touched.
//
// The file flows parse → resolve → deploy (containerlab's order):
// parseTopology() reads the YAML into these plain values and checks every
// rule that needs nothing but the file (names, references, ranges, k against
// relays, addresses); planOverlay() (overlay_plan.hpp) then resolves
// addresses, link kinds and per-router configuration; the deployer applies
// the plan. Every problem found is reported with the file, line and column
// of the value at fault — all of them at once, not just the first:
//
//   cmp.yaml:14:12: link 'ing-r9': unknown router 'r9'
//
// Threading: plain values and pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace nvbox {

// Where a value sits in its file (1-based; 0 when it came from defaults).
struct Mark {
  int line = 0;
  int column = 0;
};

struct TopologyHost {
  std::string name;
  std::string uri;                     // libvirt URI
  std::optional<std::string> underlay; // IPv4 address other hosts reach it at
  // The local network namespace holding this host's network (the
  // one-machine testbed); empty: the host's network is the caller's own
  // (qemu:///system) or out of nvbox's reach (a remote host).
  std::string netns;
  Mark mark;
};

struct TopologyRouter {
  std::string name;
  std::string host;           // a TopologyHost name
  std::string role = "relay"; // ingress, relay, egress, router
  std::uint64_t memoryMiB = 128;
  unsigned cpus = 1;
  std::map<std::string, std::string> osrd; // extra osrd options (name -> value)
  Mark mark;
};

// Shaping of one link, each direction alike.
struct LinkShape {
  std::optional<std::uint64_t> rateBps; // bit/s
  std::optional<std::uint32_t> delayUs;
  std::optional<std::uint32_t> jitterUs;
  std::optional<double> lossPercent;
  bool operator==(const LinkShape &) const = default;
};

struct TopologyLink {
  std::string name; // "a-b" unless given
  std::string a;    // router names
  std::string b;
  LinkShape shape;
  unsigned mtu = 1500;
  Mark mark;
};

// A network namespace on its router's host, joined to the router by a veth
// pair, where real applications (iperf3, a file copy) run.
struct TopologyEndpoint {
  std::string name;
  std::string router;
  Mark mark;
};

struct TopologyStripe {
  std::string name;
  std::string ingress;
  std::string egress;
  std::vector<std::string> relays; // empty with askOracle
  bool askOracle = false;
  unsigned k = 0;                     // 0: as many as relays
  std::string scheduler = "adaptive"; // adaptive, equal, weighted, delay
  std::optional<std::size_t> buffer;  // parts; nullopt: auto
  bool reverse = true;                // stripe the way back too (TCP's ACKs)
  Mark mark;
};

// A timed change of one link during an experiment.
struct TopologyEvent {
  std::uint64_t atMs = 0;
  std::string link;
  std::optional<bool> up; // state: up / down
  LinkShape shape;        // the fields it sets
  Mark mark;
};

struct Topology {
  std::string file; // as given, for messages
  std::string overlay;
  std::string image = "osr";
  std::string addressing = "10.200.0.0/16"; // link subnets (/24 each) come from here
  std::map<std::string, TopologyHost> hosts;
  std::vector<TopologyRouter> routers; // in file order
  std::vector<TopologyLink> links;
  std::vector<TopologyEndpoint> endpoints;
  std::vector<TopologyStripe> stripes;
  std::vector<TopologyEvent> events; // sorted by time

  [[nodiscard]] const TopologyRouter *router(const std::string &name) const;
  [[nodiscard]] const TopologyLink *link(const std::string &name) const;
};

// Every error of a topology, one "FILE:LINE:COL: message" per line.
class TopologyError : public std::runtime_error {
public:
  explicit TopologyError(std::vector<std::string> errors);
  [[nodiscard]] const std::vector<std::string> &errors() const noexcept { return errors_; }

private:
  std::vector<std::string> errors_;
};

// Parses and validates YAML text; `file` names it in messages. Throws
// TopologyError listing every problem.
[[nodiscard]] Topology parseTopology(const std::string &text, const std::string &file);
// Reads and parses a file; an unreadable file is a TopologyError too.
[[nodiscard]] Topology loadTopology(const std::string &path);

} // namespace nvbox
