// libFuzzer target: the topology parser on arbitrary bytes. Topology files are
// written by hand and may come from anyone, so any input must give a Topology
// or a TopologyError of well-formed lines — never a crash, a hang, or a
// yaml-cpp exception getting through.
#include "nvbox/topology.hpp"

#include <cstddef>
#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  const std::string text(reinterpret_cast<const char *>(data), size);
  try {
    const nvbox::Topology topo = nvbox::parseTopology(text, "f.yaml");
    // What validation promised the planner.
    if (topo.routers.empty() || topo.overlay.empty()) {
      __builtin_trap();
    }
    for (const auto &link : topo.links) {
      if (topo.router(link.a) == nullptr || topo.router(link.b) == nullptr || link.a == link.b) {
        __builtin_trap();
      }
    }
    for (const auto &stripe : topo.stripes) {
      if (stripe.k == 0 || (!stripe.askOracle && stripe.k > stripe.relays.size())) {
        __builtin_trap();
      }
    }
  } catch (const nvbox::TopologyError &e) {
    if (e.errors().empty()) {
      __builtin_trap();
    }
    for (const auto &line : e.errors()) {
      if (line.rfind("f.yaml:", 0) != 0 || line.find('\n') != std::string::npos) {
        __builtin_trap(); // every error is one "FILE:LINE:COL: message" line
      }
    }
  }
  return 0;
}
