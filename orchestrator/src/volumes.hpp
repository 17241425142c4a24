// Internal to nvbox_orchestrator: libvirt storage volumes as image push and
// router relocation use them — streams in both directions, volumes removed
// again when an operation fails, and the lookups whose failures matter.
#pragma once

#include "nvbox/error.hpp"
#include "nvbox/libvirt.hpp"

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

namespace nvbox::detail {

// A stream with a transfer under way. Destroying it before finish() aborts
// the transfer, so the host side never waits for data that will not come.
class Transfer {
public:
  explicit Transfer(const virt::Connection &conn) : stream_(virStreamNew(conn.get(), 0)) {
    if (!stream_) {
      throw Error("cannot open a libvirt stream: " + virt::lastError());
    }
  }
  ~Transfer() {
    if (!finished_) {
      virStreamAbort(stream_.get());
    }
  }
  Transfer(const Transfer &) = delete;
  Transfer &operator=(const Transfer &) = delete;

  [[nodiscard]] virStreamPtr get() const noexcept { return stream_.get(); }

  void send(const char *data, std::size_t size) {
    // A blocking stream may take less than it is given.
    while (size > 0) {
      const int n = virStreamSend(stream_.get(), data, size);
      if (n < 0) {
        throw Error(virt::lastError());
      }
      data += n;
      size -= static_cast<std::size_t>(n);
    }
  }

  // Fills buf; returns how many bytes, 0 at the end of the stream.
  std::size_t receive(char *buf, std::size_t capacity) {
    const int n = virStreamRecv(stream_.get(), buf, capacity);
    if (n < 0) {
      throw Error(virt::lastError());
    }
    return static_cast<std::size_t>(n);
  }

  // Waits until the host has written (or read) everything.
  void finish() {
    if (virStreamFinish(stream_.get()) != 0) {
      throw Error(virt::lastError());
    }
    finished_ = true;
  }

private:
  virt::StreamPtr stream_;
  bool finished_ = false;
};

// A volume this push created: deleted on destruction unless kept, so an
// upload that fails leaves no volume behind.
class CreatedVolume {
public:
  explicit CreatedVolume(virStorageVolPtr vol) : vol_(vol) {}
  ~CreatedVolume() {
    if (vol_) {
      virStorageVolDelete(vol_.get(), 0);
    }
  }
  CreatedVolume(const CreatedVolume &) = delete;
  CreatedVolume &operator=(const CreatedVolume &) = delete;

  [[nodiscard]] virStorageVolPtr get() const noexcept { return vol_.get(); }
  [[nodiscard]] virt::StorageVolPtr keep() noexcept { return std::move(vol_); }

private:
  virt::StorageVolPtr vol_;
};

// The volume `name` in `pool`, or null when there is none. Throws on any
// other failure (a lost connection is not "absent").
inline virt::StorageVolPtr lookupVolume(virStoragePoolPtr pool, const std::string &name,
                                        const std::string &where) {
  virt::StorageVolPtr vol(virStorageVolLookupByName(pool, name.c_str()));
  if (!vol && virGetLastErrorCode() != VIR_ERR_NO_STORAGE_VOL) {
    throw Error("cannot look up " + where + ": " + virt::lastError());
  }
  return vol;
}

// The size of the volume's file. Not its capacity: once libvirt has probed a
// qcow2 part as qcow2, the capacity is the disk's virtual size.
inline std::uint64_t fileSize(virStorageVolPtr vol, const std::string &where) {
  virStorageVolInfo info{};
  if (virStorageVolGetInfoFlags(vol, &info, VIR_STORAGE_VOL_GET_PHYSICAL) != 0) {
    throw Error("cannot read the size of " + where + ": " + virt::lastError());
  }
  return info.allocation; // the physical size, with VIR_STORAGE_VOL_GET_PHYSICAL
}

inline std::string volumePath(virStorageVolPtr vol, const std::string &where) {
  std::unique_ptr<char, decltype(&free)> path(virStorageVolGetPath(vol), free);
  if (!path) {
    throw Error("cannot read the path of " + where + ": " + virt::lastError());
  }
  return path.get();
}

} // namespace nvbox::detail
