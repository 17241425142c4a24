// Doctor — can this host run NV-box routers, and what to fix if not.
//
// Runs a fixed list of checks against one libvirt host and the local build
// machine. Each check ends OK, WARN (works, with a caveat), FAIL (routers
// cannot run until fixed) or SKIP (not applicable / not asked for), and every
// WARN and FAIL carries a fix. Checks:
//   libvirt       the host answers; libvirt version (>= 7.0.0)
//   qemu          an x86_64 QEMU emulator is configured
//   accelerator   the accelerator that really runs guests (see accelerator.hpp)
//   kvm           why KVM is or is not used
//   guest-kernel  the build machine's guest kernel and the modules routers load
//   host-kernel   veth, bridge, vxlan, tun, tbf, netem, mptcp (local hosts only)
//   storage-pool  nvbox's storage pool on the host
//   guestfs       one libguestfs appliance launch (only with deep = true)
//
// A host that cannot be reached is not a report: runDoctor throws
// nvbox::Error, and the CLI prints one line and exits 1.
#pragma once

#include "nvbox/accelerator.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <set>
#include <string>
#include <vector>

namespace nvbox {

enum class CheckStatus { Ok, Warn, Fail, Skip };

[[nodiscard]] std::string toString(CheckStatus status);

struct Check {
  std::string id;
  CheckStatus status = CheckStatus::Skip;
  std::string detail;
  std::string fix;
  nlohmann::json data = nlohmann::json::object();
};

struct DoctorOptions {
  std::string hostName = "local";
  std::string uri = "qemu:///system";
  bool deep = false;
  // Check ids to run; empty means all.
  std::set<std::string> only;
  AcceleratorProbeOptions probe;
  // Root of the build machine's filesystem for the guest-kernel check.
  std::string buildRoot = "/";
  // Called with a short description before each slow step.
  std::function<void(const std::string &)> progress;
};

struct DoctorReport {
  std::string hostName;
  std::string uri;
  std::string accelerator = "none";
  std::vector<Check> checks;
  double seconds = 0.0;

  [[nodiscard]] bool ok() const;
  [[nodiscard]] std::size_t count(CheckStatus status) const;
  [[nodiscard]] nlohmann::json toJson() const;
};

// Names of every check, in the order they run.
[[nodiscard]] const std::vector<std::string> &doctorCheckIds();

// Throws nvbox::UsageError naming the first id that is not a check.
void validateCheckIds(const std::set<std::string> &ids);

[[nodiscard]] DoctorReport runDoctor(const DoctorOptions &options);

// Whether a libvirt URI names a daemon on this machine (no server part).
[[nodiscard]] bool isLocalUri(const std::string &uri);

} // namespace nvbox
