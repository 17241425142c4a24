#include "nvbox/netconfig/kernel_features.hpp"

#include "nvbox/error.hpp"
#include "nvbox/netconfig/fd.hpp"
#include "nvbox/netconfig/netns.hpp"
#include "nvbox/netconfig/rtnetlink.hpp"

#include <fstream>
#include <functional>
#include <netinet/in.h>
#include <sys/socket.h>

namespace nvbox::netconfig {
namespace {

#ifndef IPPROTO_MPTCP
constexpr int IPPROTO_MPTCP = 262;
#endif

KernelFeature attempt(const std::string &name, const std::function<void()> &fn) {
  try {
    fn();
    return {name, KernelFeature::State::Available, {}};
  } catch (const std::exception &e) {
    return {name, KernelFeature::State::Missing, e.what()};
  }
}

void probeMptcp() {
  const Fd sock(::socket(AF_INET, SOCK_STREAM, IPPROTO_MPTCP));
  if (!sock) {
    throw Error(sysError("cannot open an MPTCP socket"));
  }
  std::ifstream enabled("/proc/sys/net/mptcp/enabled");
  int value = 1;
  if (enabled >> value && value == 0) {
    throw Error("MPTCP is disabled (net.mptcp.enabled = 0)");
  }
}

} // namespace

std::vector<KernelFeature> probeKernelFeatures() {
  std::vector<KernelFeature> out;
  try {
    runInFresh([&] {
      Rtnetlink nl;
      out.push_back(attempt("veth", [&] {
        nl.addVeth("nvp0", "nvp1");
        nl.setUp("nvp0");
        nl.setUp("nvp1");
      }));
      out.push_back(attempt("bridge", [&] { nl.addBridge("nvbr0"); }));
      out.push_back(attempt("vxlan", [&] { nl.addVxlan("nvvx0", 4242, 4789); }));
      out.push_back(attempt("tun", [&] { [[maybe_unused]] const Fd tun = openTun("nvtun0"); }));
      const bool haveVeth = out.front().state == KernelFeature::State::Available;
      const auto onVeth = [&](const std::string &name, const std::function<void()> &fn) {
        if (!haveVeth) {
          return KernelFeature{name, KernelFeature::State::Unknown, "needs a veth to test on"};
        }
        return attempt(name, fn);
      };
      out.push_back(onVeth("tbf", [&] { nl.addTbf("nvp0", 1'250'000, 16'384, 65'536); }));
      out.push_back(onVeth("netem", [&] { nl.addNetemDelay("nvp1", 1000); }));
      out.push_back(attempt("mptcp", probeMptcp));
    });
  } catch (const std::exception &e) {
    out.clear();
    for (const char *name : {"veth", "bridge", "vxlan", "tun", "tbf", "netem", "mptcp"}) {
      out.push_back({name, KernelFeature::State::Unknown, e.what()});
    }
  }
  return out;
}

} // namespace nvbox::netconfig
