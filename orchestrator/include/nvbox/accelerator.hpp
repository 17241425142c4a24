// Accelerator — which CPU virtualisation really works on a host.
//
// A host may advertise KVM (libvirt lists a 'kvm' domain type) and still be
// unable to run guests on it: on nested or restricted machines the vCPU hangs
// or QEMU aborts. So the probe does not trust the advertisement: it boots a
// tiny probe guest (no disk, no NIC) and waits for a sign of life on its
// serial console. KVM is chosen only if that guest gets there within the
// timeout; otherwise TCG, after the same probe proved that TCG guests run at
// all. Given a Linux kernel on the host, the guest boots it without a disk
// and the sign is the kernel's "Unable to mount root fs" panic, at the very
// end of its start: firmware alone proves too little, some machines run the
// firmware on KVM and then hang in the kernel. Without one, the sign is the
// firmware's banner (32 MiB, no kernel).
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
  bool ran = false;     // the sign of life arrived
  bool kernel = false;  // the probe booted a kernel (else only firmware)
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
  std::chrono::milliseconds tcgTimeout{60000}; // a kernel under TCG on a loaded host
  // A Linux kernel on the probed host, a path its libvirtd can read; empty:
  // probe the firmware only.
  std::string kernel;
};

[[nodiscard]] AcceleratorReport probeAccelerator(const virt::Connection &conn,
                                                 const AcceleratorProbeOptions &options = {});

// Boots one probe guest of the given libvirt domain type ("kvm" or "qemu"),
// into `kernel` when given (see above).
[[nodiscard]] GuestProbe probeGuest(const virt::Connection &conn, const std::string &domainType,
                                    const std::string &arch, std::chrono::milliseconds timeout,
                                    const std::string &kernel = {});

} // namespace nvbox
