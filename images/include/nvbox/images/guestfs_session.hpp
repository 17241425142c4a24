// GuestfsSession — one libguestfs handle with its appliance, the tool images
// are built with (no root, no loop mounts).
//
// An appliance launch costs about 25 s under TCG, so a session is meant to be
// opened once per build and used for everything. The backend is forced to
// "direct" and, unless KVM is known to work, to TCG, so that libguestfs does
// not hang on a /dev/kvm that exists but cannot run guests.
//
// Threading: one session per thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

struct guestfs_h;

namespace nvbox::images {

struct GuestfsOptions {
  bool allowKvm = false;
};

class GuestfsSession {
public:
  explicit GuestfsSession(const GuestfsOptions &options = {});
  ~GuestfsSession();
  GuestfsSession(const GuestfsSession &) = delete;
  GuestfsSession &operator=(const GuestfsSession &) = delete;

  // Adds an empty scratch disk of the given size (for probes and tests).
  void addScratchDisk(std::int64_t bytes);
  // Adds a disk image file ("raw", "qcow2", ...); it appears as /dev/sda,
  // /dev/sdb, ... in the order added.
  void addDisk(const std::string &path, const std::string &format, bool readOnly = false);
  // Throws nvbox::Error "WHAT: <libguestfs' reason>" when rc is -1; for the
  // calls made through get().
  void check(int rc, const std::string &what) const;
  // Boots the appliance; throws nvbox::Error with libguestfs' reason.
  void launch();
  // "1.48.6" of the library the appliance runs.
  [[nodiscard]] std::string version() const;

  [[nodiscard]] guestfs_h *get() const noexcept { return g_.get(); }

private:
  struct Close {
    void operator()(guestfs_h *g) const noexcept;
  };
  [[nodiscard]] std::string lastError() const;
  std::unique_ptr<guestfs_h, Close> g_;
};

} // namespace nvbox::images
