#include "nvbox/images/guest_kernel.hpp"

#include <algorithm>

namespace nvbox::images {
namespace {

// Orders "6.1.0-9-amd64" before "6.1.0-56-amd64": numbers compare as numbers.
bool versionLess(const std::string &a, const std::string &b) {
  std::size_t i = 0;
  std::size_t j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) != 0 &&
        std::isdigit(static_cast<unsigned char>(b[j])) != 0) {
      std::size_t ei = i;
      std::size_t ej = j;
      while (ei < a.size() && std::isdigit(static_cast<unsigned char>(a[ei])) != 0) {
        ++ei;
      }
      while (ej < b.size() && std::isdigit(static_cast<unsigned char>(b[ej])) != 0) {
        ++ej;
      }
      const std::string na = a.substr(i, ei - i);
      const std::string nb = b.substr(j, ej - j);
      if (na.size() != nb.size()) {
        return na.size() < nb.size();
      }
      if (na != nb) {
        return na < nb;
      }
      i = ei;
      j = ej;
    } else {
      if (a[i] != b[j]) {
        return a[i] < b[j];
      }
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

} // namespace

const std::vector<std::string> &requiredGuestModules() {
  // ext4 asks the crypto API for crc32c at mount time (metadata checksums),
  // which modules.dep does not record; virtio_console carries the guest
  // agent's port; button and evdev let busybox acpid turn an ACPI
  // power-button press into a clean shutdown.
  static const std::vector<std::string> modules{
      "virtio_pci", "virtio_blk",  "virtio_net", "virtio_console", "crc32c_generic",
      "ext4",       "qemu_fw_cfg", "sch_netem",  "sch_tbf",        "tun",
      "vxlan",      "button",      "evdev",
  };
  return modules;
}

std::optional<GuestKernel> findGuestKernel(const std::filesystem::path &root) {
  std::vector<std::string> versions;
  std::error_code ec;
  for (const auto &entry : std::filesystem::directory_iterator(root / "boot", ec)) {
    const std::string file = entry.path().filename().string();
    constexpr std::string_view prefix = "vmlinuz-";
    if (file.starts_with(prefix)) {
      const std::string version = file.substr(prefix.size());
      if (std::filesystem::exists(root / "lib/modules" / version / "modules.dep", ec)) {
        versions.push_back(version);
      }
    }
  }
  if (versions.empty()) {
    return std::nullopt;
  }
  std::sort(versions.begin(), versions.end(), versionLess);
  GuestKernel kernel;
  kernel.version = versions.back();
  kernel.vmlinuz = root / "boot" / ("vmlinuz-" + kernel.version);
  kernel.moduleDir = root / "lib/modules" / kernel.version;
  const ModuleIndex index = ModuleIndex::load(kernel.moduleDir);
  for (const auto &module : requiredGuestModules()) {
    if (!index.has(module)) {
      kernel.missing.push_back(module);
    }
  }
  return kernel;
}

} // namespace nvbox::images
