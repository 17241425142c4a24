// GuestKernel — the kernel every router image boots, found on the machine
// that builds images (not on the NV-box hosts: images carry their kernel).
//
// nvbox uses Debian's linux-image-amd64 from the build machine's /boot and
// /lib/modules. findGuestKernel() picks the newest version that has both a
// vmlinuz and a module tree, and reports which of the modules routers need
// are missing.
#pragma once

#include "nvbox/images/module_index.hpp"

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace nvbox::images {

// What the guest init loads, in this order (dependencies are added).
const std::vector<std::string> &requiredGuestModules();

struct GuestKernel {
  std::string version;              // e.g. "6.1.0-56-amd64"
  std::filesystem::path vmlinuz;    // /boot/vmlinuz-VERSION
  std::filesystem::path moduleDir;  // /lib/modules/VERSION
  std::vector<std::string> missing; // required modules absent from the tree
};

// Looks under root/boot and root/lib/modules (root is "/" except in tests).
// Returns nothing when no kernel with modules is installed.
[[nodiscard]] std::optional<GuestKernel> findGuestKernel(const std::filesystem::path &root = "/");

} // namespace nvbox::images
