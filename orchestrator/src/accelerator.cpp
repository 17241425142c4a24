#include "nvbox/accelerator.hpp"

#include "nvbox/error.hpp"
#include "nvbox/xml.hpp"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <sstream>
#include <thread>
#include <unistd.h>

namespace nvbox {
namespace {

// The firmware's first words on the serial line. SeaBIOS prints them within
// milliseconds of the first instruction when QEMU runs with graphics=off,
// which libvirt selects for <bios useserial='yes'/>.
constexpr std::string_view kBanner = "SeaBIOS";
// A kernel booted without a disk ends its start with this panic, after it has
// brought up paging, long mode, interrupts, timers and every built-in driver.
constexpr std::string_view kKernelEnd = "Unable to mount root fs";

std::string probeName(const std::string &type) {
  static std::atomic<unsigned> counter{0};
  return "nvbox-probe-" + type + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

std::string probeXml(const std::string &name, const std::string &type, const std::string &arch,
                     const std::string &kernel) {
  std::ostringstream xml;
  xml << "<domain type='" << type << "'>"
      << "<name>" << name << "</name>"
      << "<memory unit='MiB'>" << (kernel.empty() ? 32 : 128) << "</memory><vcpu>1</vcpu>"
      << "<os><type arch='" << arch << "'>hvm</type>";
  if (kernel.empty()) {
    xml << "<bios useserial='yes'/><boot dev='network'/>";
  } else {
    xml << "<kernel>" << xmlEscape(kernel) << "</kernel>"
        << "<cmdline>console=ttyS0 panic=-1 quiet</cmdline>";
  }
  xml << "</os>"
      << "<on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot>"
      << "<on_crash>destroy</on_crash>"
      << "<devices><serial type='pty'/><console type='pty'/>"
      << "<memballoon model='none'/></devices>"
      << "</domain>";
  return xml.str();
}

double secondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

} // namespace

std::string AcceleratorReport::chosen() const {
  if (kvm.ran) {
    return "kvm";
  }
  if (tcg.ran) {
    return "tcg";
  }
  return "none";
}

std::string AcceleratorReport::domainType() const {
  return kvm.ran ? "kvm" : "qemu";
}

std::string AcceleratorReport::kvmUnusableReason() const {
  if (kvm.ran) {
    return {};
  }
  if (!kvmOffered) {
    return "libvirt offers no KVM domains here: " + kvmNotOffered;
  }
  return "a KVM probe guest did not run: " + kvm.reason;
}

GuestProbe probeGuest(const virt::Connection &conn, const std::string &domainType,
                      const std::string &arch, std::chrono::milliseconds timeout,
                      const std::string &kernel) {
  GuestProbe probe;
  probe.attempted = true;
  probe.kernel = !kernel.empty();
  const std::string name = probeName(domainType);
  const std::string xml = probeXml(name, domainType, arch, kernel);
  const std::string_view sign = kernel.empty() ? kBanner : kKernelEnd;

  virt::DomainPtr dom(virDomainCreateXML(conn.get(), xml.c_str(),
                                         VIR_DOMAIN_START_PAUSED | VIR_DOMAIN_START_AUTODESTROY));
  if (!dom) {
    probe.reason = "cannot start the probe guest: " + virt::lastError();
    return probe;
  }
  virt::StreamPtr stream(virStreamNew(conn.get(), 0));
  if (!stream ||
      virDomainOpenConsole(dom.get(), nullptr, stream.get(), VIR_DOMAIN_CONSOLE_FORCE) != 0) {
    probe.reason = "cannot open the probe guest's console: " + virt::lastError();
    virDomainDestroy(dom.get());
    return probe;
  }

  const auto start = std::chrono::steady_clock::now();
  if (virDomainResume(dom.get()) != 0) {
    probe.reason = "cannot resume the probe guest: " + virt::lastError();
    virStreamAbort(stream.get());
    virDomainDestroy(dom.get());
    return probe;
  }

  // A blocking read runs on this thread; a watchdog destroys the guest at the
  // deadline, which ends the console stream and so the read.
  std::mutex mutex;
  std::condition_variable done;
  bool finished = false;
  bool timedOut = false;
  std::thread watchdog([&] {
    std::unique_lock lock(mutex);
    if (!done.wait_for(lock, timeout, [&] { return finished; })) {
      timedOut = true;
      virDomainDestroy(dom.get());
    }
  });

  std::string output;
  char buf[512];
  while (output.find(sign) == std::string::npos) {
    const int got = virStreamRecv(stream.get(), buf, sizeof buf);
    if (got <= 0) {
      break;
    }
    output.append(buf, static_cast<std::size_t>(got));
    if (output.size() > 65536) {
      output.erase(0, output.size() - 1024);
    }
  }
  probe.seconds = secondsSince(start);
  probe.ran = output.find(sign) != std::string::npos;
  bool expired = false;
  {
    const std::lock_guard lock(mutex);
    finished = true;
    expired = timedOut;
  }
  done.notify_all();
  watchdog.join();
  virStreamAbort(stream.get());

  if (!probe.ran) {
    if (expired) {
      probe.reason = kernel.empty()
                         ? "the probe guest printed nothing within " +
                               std::to_string(timeout.count()) + " ms (its vCPU does not run)"
                         : "the probe guest's kernel did not finish starting within " +
                               std::to_string(timeout.count()) + " ms";
    } else {
      probe.reason = kernel.empty() ? "the probe guest stopped before its firmware printed anything"
                                    : "the probe guest stopped before its kernel finished starting";
    }
  }
  virDomainDestroy(dom.get());
  return probe;
}

AcceleratorReport probeAccelerator(const virt::Connection &conn,
                                   const AcceleratorProbeOptions &options) {
  AcceleratorReport report;
  const XmlDocument caps(conn.capabilities(), "the capabilities of '" + conn.uri() + "'");
  const std::string guest = "/capabilities/guest[os_type='hvm']/arch[@name='" + report.arch + "']";
  report.emulator = caps.first(guest + "/emulator").value_or("");
  for (const auto &type : caps.all(guest + "/domain/@type")) {
    report.qemuOffered = report.qemuOffered || type == "qemu";
    report.kvmOffered = report.kvmOffered || type == "kvm";
  }
  if (!report.kvmOffered) {
    report.kvmNotOffered = "no 'kvm' domain type for " + report.arch;
    if (report.qemuOffered) {
      // Ask libvirt why: its domain-capabilities error names the cause
      // (for example "/dev/kvm" missing or the accel not supported).
      try {
        (void)conn.domainCapabilities("kvm", report.arch);
      } catch (const Error &e) {
        report.kvmNotOffered = e.what();
      }
    }
  }
  if (report.kvmOffered) {
    report.kvm = probeGuest(conn, "kvm", report.arch, options.kvmTimeout, options.kernel);
  }
  if (!report.kvm.ran && report.qemuOffered) {
    report.tcg = probeGuest(conn, "qemu", report.arch, options.tcgTimeout, options.kernel);
  }
  return report;
}

} // namespace nvbox
