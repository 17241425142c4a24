// buildImage — makes the OSR router image and puts it in the image store.
//
// An image is three parts (see manifest.hpp):
//   vmlinuz     the guest kernel, as Debian ships it
//   initrd      a zstd cpio (InitramfsWriter): busybox, /init and the kernel
//               modules routers need (requiredGuestModules() and their
//               dependencies, in load order)
//   root.qcow2  an ext4 root laid out with libguestfs in one appliance
//               launch, then stored as qcow2 with zstd-compressed clusters
//               (qemu-img), usable as a read-only backing file. It holds
//               everything nvbox adds under /usr/lib/nvbox: busybox, osrd,
//               osrctl, osr-agent, nvbox-init, the inittab and its scripts.
//               With BuildOptions::baseDisk, the same files go into a copy of
//               a user's own disk instead (bring your own image).
//
// The build inputs (kernel, each module, busybox, the three binaries, the
// embedded guest scripts and the build parameters) are hashed first; when
// the store already holds the image with the same input digest, nothing is
// built (BuildResult::upToDate). A failed build leaves the store unchanged
// and removes its scratch directory.
//
// Threading: one build per store name at a time (the store's atomic add
// makes a concurrent one fail cleanly).
#pragma once

#include "nvbox/images/image_store.hpp"
#include "nvbox/images/manifest.hpp"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nvbox::images {

// The kernel command line routers boot with (direct kernel boot).
inline constexpr std::string_view kGuestCmdline = "console=ttyS0 panic=-1 quiet init_on_free=1";

struct BuildOptions {
  std::string name = "osr";
  // Guest kernel and its module tree; both default to findGuestKernel().
  std::optional<std::filesystem::path> kernel;
  std::optional<std::filesystem::path> modules; // /lib/modules/VERSION
  std::filesystem::path busybox = "/bin/busybox";
  std::filesystem::path osrd; // static binaries (they run in a busybox guest)
  std::filesystem::path osrctl;
  std::filesystem::path agent;                        // osr-agent
  std::uint64_t diskSize = std::uint64_t{256} << 20U; // virtual size of root.qcow2
  // Bring your own: instead of a fresh ext4 root, inject nvbox's files into
  // a copy of this disk image (any format qemu-img reads; its root
  // filesystem, found by libguestfs inspection, must be ext2/3/4 so that the
  // initrd can mount it). The disk itself is never written; diskSize is
  // ignored and the copy keeps the disk's virtual size.
  std::optional<std::filesystem::path> baseDisk;
  bool force = false; // build even when up to date
  std::filesystem::path scratch = std::filesystem::temp_directory_path();
  // Told about each step as it starts ("hashing inputs", "writing initrd", ...).
  std::function<void(std::string_view step)> onStep;
};

struct BuildStep {
  std::string name;
  double seconds = 0;
};

struct BuildResult {
  Manifest manifest;
  bool upToDate = false; // nothing was built: the store had these inputs
  double seconds = 0;
  std::vector<BuildStep> steps;
};

[[nodiscard]] BuildResult buildImage(ImageStore &store, const BuildOptions &options);

// The inputs a build would use and their digests (name -> sha256), without
// building; `buildImage` stores them in the manifest's build_inputs.
[[nodiscard]] std::map<std::string, std::string> collectBuildInputs(const BuildOptions &options);

} // namespace nvbox::images
