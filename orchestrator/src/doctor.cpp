#include "nvbox/doctor.hpp"

#include "nvbox/error.hpp"
#include "nvbox/images/guest_kernel.hpp"
#include "nvbox/images/guestfs_session.hpp"
#include "nvbox/libvirt.hpp"
#include "nvbox/naming.hpp"
#include "nvbox/netconfig/kernel_features.hpp"
#include "nvbox/xml.hpp"

#include <algorithm>
#include <cstdio>
#include <sstream>

namespace nvbox {
namespace {

using Clock = std::chrono::steady_clock;

// What a successful probe guest got to, for the accelerator's detail.
std::string reached(const GuestProbe &probe) {
  return probe.kernel ? "booted the guest kernel" : "reached its firmware";
}

std::string fixed(double value, int decimals = 1) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  return buf;
}

std::string gib(unsigned long long bytes) {
  return fixed(static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0)) + " GiB";
}

class Doctor {
public:
  explicit Doctor(const DoctorOptions &options) : options_(options) {}

  DoctorReport run() {
    const auto start = Clock::now();
    report_.hostName = options_.hostName;
    report_.uri = options_.uri;
    step("connecting to " + options_.uri);
    // Unreachable is an error, not a report: the caller prints one line.
    const virt::Connection conn = virt::Connection::open(options_.uri);
    checkLibvirt(conn);
    const bool qemu = checkQemu(conn);
    AcceleratorReport accel;
    if (wanted("accelerator") || wanted("kvm") || (wanted("guestfs") && options_.deep)) {
      accel = checkAccelerator(conn, qemu);
    }
    checkGuestKernel();
    checkHostKernel();
    checkStoragePool(conn);
    checkGuestfs(accel);
    report_.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    return std::move(report_);
  }

private:
  [[nodiscard]] bool wanted(const std::string &id) const {
    return options_.only.empty() || options_.only.contains(id);
  }

  void step(const std::string &what) const {
    if (options_.progress) {
      options_.progress(what);
    }
  }

  void add(Check check) {
    if (wanted(check.id)) {
      report_.checks.push_back(std::move(check));
    }
  }

  void checkLibvirt(const virt::Connection &conn) {
    Check c{"libvirt", CheckStatus::Ok, {}, {}, {}};
    unsigned long version = 0;
    virConnectGetLibVersion(conn.get(), &version);
    const std::string versionText = virt::formatVersion(version);
    c.data = {{"version", versionText},
              {"uri", conn.canonicalUri()},
              {"driver", conn.driverType()},
              {"hostname", conn.hostname()}};
    c.detail = "libvirt " + versionText + " answers at " + conn.canonicalUri();
    if (version < naming::kMinLibvirtVersionNumber) {
      c.status = CheckStatus::Fail;
      c.detail += ", older than the " + std::string(naming::kMinLibvirtVersion) + " nvbox needs";
      c.fix =
          "upgrade libvirt on the host to " + std::string(naming::kMinLibvirtVersion) + " or newer";
    }
    add(std::move(c));
  }

  bool checkQemu(const virt::Connection &conn) {
    step("reading the capabilities of " + options_.uri);
    const XmlDocument caps(conn.capabilities(), "the capabilities of '" + conn.uri() + "'");
    const std::string guest = "/capabilities/guest[os_type='hvm']/arch[@name='x86_64']";
    const std::string emulator = caps.first(guest + "/emulator").value_or("");
    std::vector<std::string> types = caps.all(guest + "/domain/@type");
    const bool qemu = std::find(types.begin(), types.end(), "qemu") != types.end();
    Check c{"qemu", CheckStatus::Ok, {}, {}, {}};
    c.data = {{"emulator", emulator}, {"domain_types", types}, {"driver", conn.driverType()}};
    if (!qemu || emulator.empty()) {
      c.status = CheckStatus::Fail;
      c.detail = "no x86_64 QEMU guests on this host (libvirt driver '" + conn.driverType() + "')";
      c.fix = "install qemu-system-x86 and libvirt-daemon-driver-qemu on the host and connect "
              "with a qemu:// URI";
      add(std::move(c));
      return false;
    }
    const std::string version = conn.hypervisorVersion();
    c.data["version"] = version;
    c.detail = emulator + (version.empty() ? "" : ", QEMU " + version);
    add(std::move(c));
    return true;
  }

  AcceleratorReport checkAccelerator(const virt::Connection &conn, bool qemu) {
    Check a{"accelerator", CheckStatus::Ok, {}, {}, {}};
    Check k{"kvm", CheckStatus::Ok, {}, {}, {}};
    AcceleratorReport accel;
    if (qemu) {
      step("booting probe guests on " + options_.uri);
      AcceleratorProbeOptions probe = options_.probe;
      // On this machine the guest kernel is at hand: boot it, which proves
      // more than the firmware does (see Accelerator).
      if (probe.kernel.empty() && isLocalUri(options_.uri)) {
        if (const auto kernel = images::findGuestKernel(options_.buildRoot)) {
          probe.kernel = kernel->vmlinuz.string();
        }
      }
      accel = probeAccelerator(conn, probe);
    }
    report_.accelerator = accel.chosen();
    a.data = {{"chosen", accel.chosen()},
              {"domain_type", accel.domainType()},
              {"tcg_probe_seconds", accel.tcg.seconds},
              {"kvm_probe_seconds", accel.kvm.seconds}};
    k.data = {{"usable", accel.kvm.ran},
              {"offered", accel.kvmOffered},
              {"probed", accel.kvm.attempted},
              {"reason", accel.kvmUnusableReason()}};
    if (accel.kvm.ran) {
      a.detail =
          "kvm: a probe guest " + reached(accel.kvm) + " in " + fixed(accel.kvm.seconds, 2) + " s";
      k.detail = "usable";
    } else if (accel.tcg.ran) {
      a.detail = "tcg: a probe guest " + reached(accel.tcg) + " in " + fixed(accel.tcg.seconds, 2) +
                 " s (software emulation)";
      k.status = CheckStatus::Warn;
      k.detail = "unusable: " + accel.kvmUnusableReason();
      k.fix = "routers run under TCG, about 10x slower; for KVM enable virtualisation "
              "(or nested virtualisation) for this machine and load kvm_intel or kvm_amd";
    } else {
      a.status = CheckStatus::Fail;
      a.detail = accel.tcg.attempted ? "no guest runs here: " + accel.tcg.reason
                                     : "no guest runs here: libvirt offers no QEMU guests";
      a.fix = accel.tcg.attempted
                  ? "read the host's /var/log/libvirt/qemu/nvbox-probe-*.log and check "
                    "/etc/libvirt/qemu.conf (user, group, security_driver)"
                  : "install qemu-system-x86 and libvirt-daemon-driver-qemu on the host";
      if (accel.kvm.attempted || accel.kvmOffered) {
        k.status = CheckStatus::Warn;
        k.detail = "unusable: " + accel.kvmUnusableReason();
        k.fix = "fix the accelerator check first";
      } else {
        k.status = CheckStatus::Skip;
        k.detail = "not probed: the host has no QEMU";
      }
    }
    add(std::move(a));
    add(std::move(k));
    return accel;
  }

  void checkGuestKernel() {
    if (!wanted("guest-kernel")) {
      return;
    }
    Check c{"guest-kernel", CheckStatus::Ok, {}, {}, {}};
    try {
      const auto kernel = images::findGuestKernel(options_.buildRoot);
      if (!kernel) {
        c.status = CheckStatus::Fail;
        c.detail = "no guest kernel with modules under '" + options_.buildRoot + "boot'";
        c.fix = "apt-get install linux-image-amd64 on this (the image-building) machine";
      } else {
        c.data = {{"version", kernel->version},
                  {"vmlinuz", kernel->vmlinuz.string()},
                  {"missing_modules", kernel->missing}};
        if (kernel->missing.empty()) {
          c.detail = kernel->version + " with all " +
                     std::to_string(images::requiredGuestModules().size()) +
                     " modules routers load";
        } else {
          std::string list;
          for (const auto &m : kernel->missing) {
            list += (list.empty() ? "" : ", ") + m;
          }
          c.status = CheckStatus::Fail;
          c.detail = kernel->version + " lacks modules: " + list;
          c.fix = "install Debian's linux-image-amd64, which has them all";
        }
      }
    } catch (const Error &e) {
      c.status = CheckStatus::Fail;
      c.detail = e.what();
      c.fix = e.hint();
    }
    add(std::move(c));
  }

  void checkHostKernel() {
    if (!wanted("host-kernel")) {
      return;
    }
    Check c{"host-kernel", CheckStatus::Ok, {}, {}, {}};
    if (!isLocalUri(options_.uri)) {
      c.status = CheckStatus::Skip;
      c.detail = "the host is remote; run 'nvbox doctor' on it to probe its kernel";
      add(std::move(c));
      return;
    }
    step("probing host kernel features");
    std::vector<std::string> missing;
    std::vector<std::string> unknown;
    std::vector<std::string> available;
    nlohmann::json features = nlohmann::json::object();
    for (const auto &f : netconfig::probeKernelFeatures()) {
      const char *state = f.state == netconfig::KernelFeature::State::Available ? "available"
                          : f.state == netconfig::KernelFeature::State::Missing ? "missing"
                                                                                : "unknown";
      features[f.name] = {{"state", state}, {"detail", f.detail}};
      if (f.state == netconfig::KernelFeature::State::Available) {
        available.push_back(f.name);
      } else {
        (f.state == netconfig::KernelFeature::State::Missing ? missing : unknown).push_back(f.name);
      }
    }
    c.data = {{"features", features}};
    const auto join = [](const std::vector<std::string> &v) {
      std::string out;
      for (const auto &s : v) {
        out += (out.empty() ? "" : ", ") + s;
      }
      return out;
    };
    // netem and mptcp only add to experiments (delay is applied inside the
    // guests, MPTCP is a benchmark peer); the rest carries router links.
    const auto essential = [](const std::string &name) {
      return name != "netem" && name != "mptcp";
    };
    const bool essentialMissing = std::any_of(missing.begin(), missing.end(), essential) ||
                                  std::any_of(unknown.begin(), unknown.end(), essential);
    c.detail = "available: " + (available.empty() ? "none" : join(available));
    if (!missing.empty()) {
      c.detail += "; missing: " + join(missing);
    }
    if (!unknown.empty()) {
      c.detail += "; unknown: " + join(unknown) + " (" +
                  features[unknown.front()]["detail"].get<std::string>() + ")";
    }
    if (essentialMissing) {
      c.status = CheckStatus::Fail;
      c.fix = "load the modules (veth, bridge, vxlan, tun, sch_tbf) or run nvbox as root";
    } else if (!missing.empty() || !unknown.empty()) {
      c.status = CheckStatus::Warn;
      c.fix = "without netem on the host, link delay and loss are applied inside the router "
              "guests (their kernel has sch_netem); without MPTCP the MPTCP baseline benchmark "
              "is skipped";
    }
    add(std::move(c));
  }

  void checkStoragePool(const virt::Connection &conn) {
    if (!wanted("storage-pool")) {
      return;
    }
    Check c{"storage-pool", CheckStatus::Ok, {}, {}, {}};
    virt::StoragePoolPtr pool(virStoragePoolLookupByName(conn.get(), naming::kStoragePool));
    if (!pool) {
      c.status = CheckStatus::Warn;
      c.detail = "storage pool '" + std::string(naming::kStoragePool) + "' does not exist yet";
      c.fix = "nothing to do: nvbox creates it when it first stores an image on this host";
      add(std::move(c));
      return;
    }
    virStoragePoolInfo info{};
    if (virStoragePoolGetInfo(pool.get(), &info) != 0) {
      c.status = CheckStatus::Fail;
      c.detail = "cannot read storage pool '" + std::string(naming::kStoragePool) +
                 "': " + virt::lastError();
      c.fix = "check the pool with 'virsh pool-info " + std::string(naming::kStoragePool) + "'";
    } else if (info.state != VIR_STORAGE_POOL_RUNNING) {
      c.status = CheckStatus::Warn;
      c.detail = "storage pool '" + std::string(naming::kStoragePool) + "' is not active";
      c.fix = "nothing to do: nvbox starts it when it stores an image";
    } else {
      c.detail = "storage pool '" + std::string(naming::kStoragePool) + "' active, " +
                 gib(info.available) + " free of " + gib(info.capacity);
    }
    c.data = {
        {"name", naming::kStoragePool}, {"capacity", info.capacity}, {"available", info.available}};
    add(std::move(c));
  }

  void checkGuestfs(const AcceleratorReport &accel) {
    if (!wanted("guestfs")) {
      return;
    }
    Check c{"guestfs", CheckStatus::Skip, {}, {}, {}};
    if (!options_.deep) {
      c.detail = "not run; --deep launches one libguestfs appliance (about 25 s under TCG)";
      add(std::move(c));
      return;
    }
    step("launching a libguestfs appliance (about 25 s under TCG)");
    const auto start = Clock::now();
    try {
      images::GuestfsSession session({.allowKvm = accel.kvm.ran});
      session.addScratchDisk(16LL * 1024 * 1024);
      session.launch();
      const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
      c.status = CheckStatus::Ok;
      c.detail =
          "libguestfs " + session.version() + " appliance launched in " + fixed(seconds) + " s";
      c.data = {{"seconds", seconds}, {"version", session.version()}};
    } catch (const Error &e) {
      c.status = CheckStatus::Fail;
      c.detail = e.what();
      c.fix = "apt-get install libguestfs0 supermin linux-image-amd64, then run "
              "'libguestfs-test-tool'";
    }
    add(std::move(c));
  }

  const DoctorOptions &options_;
  DoctorReport report_;
};

} // namespace

std::string toString(CheckStatus status) {
  switch (status) {
  case CheckStatus::Ok:
    return "ok";
  case CheckStatus::Warn:
    return "warn";
  case CheckStatus::Fail:
    return "fail";
  case CheckStatus::Skip:
    return "skip";
  }
  return "unknown";
}

const std::vector<std::string> &doctorCheckIds() {
  static const std::vector<std::string> ids{"libvirt",      "qemu",         "accelerator",
                                            "kvm",          "guest-kernel", "host-kernel",
                                            "storage-pool", "guestfs"};
  return ids;
}

bool DoctorReport::ok() const {
  return count(CheckStatus::Fail) == 0;
}

std::size_t DoctorReport::count(CheckStatus status) const {
  return static_cast<std::size_t>(std::count_if(
      checks.begin(), checks.end(), [&](const Check &c) { return c.status == status; }));
}

nlohmann::json DoctorReport::toJson() const {
  nlohmann::json checksJson = nlohmann::json::array();
  for (const auto &c : checks) {
    nlohmann::json item = {{"id", c.id}, {"status", toString(c.status)}, {"detail", c.detail}};
    if (!c.fix.empty()) {
      item["fix"] = c.fix;
    }
    item["data"] = c.data;
    checksJson.push_back(std::move(item));
  }
  return {{"host", hostName},           {"uri", uri},           {"ok", ok()},
          {"accelerator", accelerator}, {"checks", checksJson}, {"seconds", seconds}};
}

bool isLocalUri(const std::string &uri) {
  const auto scheme = uri.find("://");
  if (scheme == std::string::npos) {
    return true; // an alias or a bare driver name resolves on this machine
  }
  const auto rest = uri.substr(scheme + 3);
  return rest.empty() || rest.front() == '/';
}

void validateCheckIds(const std::set<std::string> &ids) {
  const auto &known = doctorCheckIds();
  for (const auto &id : ids) {
    if (std::find(known.begin(), known.end(), id) == known.end()) {
      throw UsageError("unknown check '" + id + "'",
                       "choose from libvirt, qemu, accelerator, kvm, guest-kernel, host-kernel, "
                       "storage-pool, guestfs");
    }
  }
}

DoctorReport runDoctor(const DoctorOptions &options) {
  validateCheckIds(options.only);
  return Doctor(options).run();
}

} // namespace nvbox
