#include "command_doctor.hpp"

#include "nvbox/error.hpp"
#include "nvbox/hosts.hpp"

#include <cmath>
#include <iomanip>
#include <ostream>
#include <sstream>

namespace po = boost::program_options;

namespace nvbox::cli {

std::string DoctorCommand::synopsis() const {
  return "doctor [--host NAME|URI] [--json] [--deep] [--only CHECK,...] [--kvm-timeout S]";
}

std::string DoctorCommand::description() const {
  return "Checks whether a host can run NV-box routers and says how to fix what is missing:\n"
         "libvirt and its version, QEMU, the accelerator that really runs guests (KVM only\n"
         "if a probe guest runs on it, else TCG), the guest kernel and its modules, host\n"
         "kernel features (veth, bridge, vxlan, tun, tbf, netem, MPTCP), nvbox's storage\n"
         "pool, and with --deep one libguestfs appliance launch.\n"
         "Checks: libvirt, qemu, accelerator, kvm, guest-kernel, host-kernel, storage-pool,\n"
         "guestfs. Each ends OK, WARN, FAIL or SKIP; WARN and FAIL come with a fix.";
}

void DoctorCommand::addOptions(po::options_description &options,
                               po::positional_options_description & /*positional*/) {
  options.add_options()("deep", po::bool_switch(&deep_),
                        "also launch a libguestfs appliance (about 25 s under TCG)")(
      "only", po::value<std::string>(&only_)->value_name("CHECK,..."),
      "run only these checks (comma-separated)")(
      "kvm-timeout", po::value<double>(&kvmTimeout_)->value_name("SECONDS")->default_value(8.0),
      "how long a KVM probe guest may take to boot");
}

void DoctorCommand::validate(const po::variables_map & /*vm*/) {
  if (!std::isfinite(kvmTimeout_) || kvmTimeout_ <= 0.0 || kvmTimeout_ > 300.0) {
    throw UsageError("nvbox doctor: --kvm-timeout must be between 0 and 300 seconds, not '" +
                         std::to_string(kvmTimeout_) + "'",
                     "see 'nvbox doctor --help'");
  }
  const HostRef ref = resolveHost(host());
  options_.hostName = ref.name;
  options_.uri = ref.uri;
  options_.deep = deep_;
  options_.probe.kvmTimeout =
      std::chrono::milliseconds(static_cast<long>(std::lround(kvmTimeout_ * 1000.0)));
  std::istringstream list(only_);
  std::string id;
  while (std::getline(list, id, ',')) {
    if (!id.empty()) {
      options_.only.insert(id);
    }
  }
  validateCheckIds(options_.only);
}

int DoctorCommand::run(Terminal &term) {
  options_.progress = [&term](const std::string &what) { term.progress(what); };
  const DoctorReport report = runDoctor(options_);
  if (json()) {
    term.out() << report.toJson().dump(2) << "\n";
  } else {
    printDoctorReport(report, term.out());
  }
  return report.ok() ? 0 : 1;
}

void printDoctorReport(const DoctorReport &report, std::ostream &out) {
  out << "nvbox doctor: host '" << report.hostName << "' (" << report.uri << ")\n";
  for (const auto &c : report.checks) {
    std::string status = toString(c.status);
    for (char &ch : status) {
      ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    }
    out << "  " << std::left << std::setw(6) << status << std::setw(14) << c.id << c.detail << "\n";
    if (!c.fix.empty()) {
      out << "  " << std::setw(20) << ""
          << "fix: " << c.fix << "\n";
    }
  }
  const std::size_t warnings = report.count(CheckStatus::Warn);
  const std::size_t failures = report.count(CheckStatus::Fail);
  if (report.ok()) {
    out << "result: host '" << report.hostName << "' can run NV-box routers";
    if (report.accelerator != "none") {
      out << " (accelerator " << report.accelerator << ")";
    }
    out << "; " << warnings << (warnings == 1 ? " warning" : " warnings") << "\n";
  } else {
    out << "result: host '" << report.hostName << "' cannot run NV-box routers yet; " << failures
        << (failures == 1 ? " check failed" : " checks failed") << "\n";
  }
}

} // namespace nvbox::cli
