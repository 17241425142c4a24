// Accelerator — which CPU virtualisation really works on a host.
//
// A host may advertise KVM (libvirt lists a 'kvm' domain type) and still be
// unable to run guests on it: on nested or restricted machines the vCPU hangs
// or QEMU aborts. So the probe does not trust the advertisement: it boots a
// tiny probe guest (no disk, no NIC, 32 MiB) straight into its firmware and
// waits for the firmware banner on the serial console. KVM is chosen only if
// that guest prints within the timeout; otherwise TCG, after the same probe
// proved that TCG guests run at all.
//
// Everything goes through libvirt, so a remote host is probed exactly like the
// local one. Probe guests are transient, started paused with AUTODESTROY (the
// daemon kills them if nvbox dies) and destroyed before the probe returns.
//
// Router creation uses domainType() of this report for <domain type='…'>.
#pragma once

#include "nvbox/libvirt.hpp"

#include <chrono>
#include <string>

namespace nvbox {

struct GuestProbe {
  bool attempted = false;
  bool ran = false;     // the firmware banner arrived
  double seconds = 0.0; // from resume to banner (or to giving up)
  std::string reason;   // why not, when !ran
};

struct AcceleratorReport {
  std::string arch = "x86_64";
  std::string emulator;      // path of the QEMU binary libvirt uses
  bool qemuOffered = false;  // libvirt offers a 'qemu' (TCG) domain type
  bool kvmOffered = false;   // libvirt offers a 'kvm' domain type
  std::string kvmNotOffered; // libvirt's reason when it does not
  GuestProbe kvm;
  GuestProbe tcg;

  // "kvm", "tcg", or "none" when no guest can run.
  [[nodiscard]] std::string chosen() const;
  // The libvirt <domain type> for routers: "kvm" or "qemu".
  [[nodiscard]] std::string domainType() const;
  // Why KVM is not used, in one sentence; empty when it is.
  [[nodiscard]] std::string kvmUnusableReason() const;
};

struct AcceleratorProbeOptions {
  std::chrono::milliseconds kvmTimeout{8000};
  std::chrono::milliseconds tcgTimeout{20000};
};

[[nodiscard]] AcceleratorReport probeAccelerator(const virt::Connection &conn,
                                                 const AcceleratorProbeOptions &options = {});

// Boots one probe guest of the given libvirt domain type ("kvm" or "qemu").
[[nodiscard]] GuestProbe probeGuest(const virt::Connection &conn, const std::string &domainType,
                                    const std::string &arch, std::chrono::milliseconds timeout);

} // namespace nvbox
