// KernelFeatures — what the host kernel really lets nvbox build.
//
// Each feature is tried, not looked up: inside a throwaway network namespace
// the probe creates a veth pair, a bridge, a VXLAN device and a TUN device,
// attaches tbf and netem qdiscs, and opens an MPTCP socket. Nothing is left
// behind: the namespace, and everything in it, vanishes when the probe ends.
// Module lists and /proc/config.gz would lie on kernels with built-ins or
// blocked autoloading; an attempt does not.
//
// Needs CAP_SYS_ADMIN and CAP_NET_ADMIN; without them every feature is
// reported unknown with the reason.
#pragma once

#include <string>
#include <vector>

namespace nvbox::netconfig {

struct KernelFeature {
  enum class State { Available, Missing, Unknown };
  std::string name; // "veth", "bridge", "vxlan", "tun", "tbf", "netem", "mptcp"
  State state;
  std::string detail; // the kernel's answer when missing or unknown
};

[[nodiscard]] std::vector<KernelFeature> probeKernelFeatures();

} // namespace nvbox::netconfig
