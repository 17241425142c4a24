#include "nvbox/images/guestfs_session.hpp"

#include "nvbox/error.hpp"

#include <guestfs.h>

namespace nvbox::images {

void GuestfsSession::Close::operator()(guestfs_h *g) const noexcept {
  guestfs_shutdown(g);
  guestfs_close(g);
}

GuestfsSession::GuestfsSession(const GuestfsOptions &options) {
  g_.reset(guestfs_create_flags(GUESTFS_CREATE_NO_ENVIRONMENT));
  if (!g_) {
    throw Error("cannot create a libguestfs handle", "install libguestfs0 and its appliance");
  }
  // Errors come back through lastError(); libguestfs must not print them.
  guestfs_set_error_handler(g_.get(), nullptr, nullptr);
  if (guestfs_set_backend(g_.get(), "direct") != 0) {
    throw Error("cannot select the libguestfs 'direct' backend: " + lastError());
  }
  if (!options.allowKvm) {
    char tcg[] = "force_tcg";
    char *settings[] = {tcg, nullptr};
    if (guestfs_set_backend_settings(g_.get(), settings) != 0) {
      throw Error("cannot force TCG for libguestfs: " + lastError());
    }
  }
}

GuestfsSession::~GuestfsSession() = default;

std::string GuestfsSession::lastError() const {
  const char *msg = guestfs_last_error(g_.get());
  return msg != nullptr ? msg : "unknown libguestfs error";
}

void GuestfsSession::addScratchDisk(std::int64_t bytes) {
  if (guestfs_add_drive_scratch(g_.get(), bytes, -1) != 0) {
    throw Error("cannot add a scratch disk to libguestfs: " + lastError());
  }
}

void GuestfsSession::addDisk(const std::string &path, const std::string &format, bool readOnly) {
  const int rc =
      guestfs_add_drive_opts(g_.get(), path.c_str(), GUESTFS_ADD_DRIVE_OPTS_FORMAT, format.c_str(),
                             GUESTFS_ADD_DRIVE_OPTS_READONLY, readOnly ? 1 : 0, -1);
  check(rc, "cannot add disk '" + path + "' to libguestfs");
}

void GuestfsSession::check(int rc, const std::string &what) const {
  if (rc == -1) {
    throw Error(what + ": " + lastError());
  }
}

void GuestfsSession::launch() {
  if (guestfs_launch(g_.get()) != 0) {
    throw Error("cannot launch the libguestfs appliance: " + lastError(),
                "run 'libguestfs-test-tool' to see why");
  }
}

std::string GuestfsSession::version() const {
  std::unique_ptr<struct guestfs_version, decltype(&guestfs_free_version)> v(
      guestfs_version(g_.get()), guestfs_free_version);
  if (!v) {
    throw Error("cannot read the libguestfs version: " + lastError());
  }
  return std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
         std::to_string(v->release);
}

} // namespace nvbox::images
