#include "nvbox/image_push.hpp"

#include "nvbox/error.hpp"
#include "nvbox/images/digest.hpp"
#include "nvbox/netconfig/fd.hpp"
#include "nvbox/xml.hpp"
#include "volumes.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <unistd.h>
#include <utility>

namespace nvbox {
namespace {

using detail::CreatedVolume;
using detail::fileSize;
using detail::lookupVolume;
using detail::Transfer;
using detail::volumePath;

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// Big enough that a remote stream's per-message cost does not matter, small
// enough for smooth progress.
constexpr std::size_t kChunk = std::size_t{1} << 20U;

// Volume names stay unique per part while short enough to read: 24 hex
// digits are 96 bits of the digest.
constexpr std::size_t kDigestPrefix = 24;

std::string q(std::string_view text) {
  return "'" + std::string(text) + "'";
}

double secondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string virshHint(const virt::Connection &conn, const std::string &command) {
  return "check with 'virsh -c " + conn.uri() + " " + command + "'";
}

void refreshPool(const virt::Connection &conn, virStoragePoolPtr pool, const std::string &name) {
  if (virStoragePoolRefresh(pool, 0) != 0) {
    throw Error("cannot refresh storage pool " + q(name) + " on host " + q(conn.uri()) + ": " +
                    virt::lastError(),
                virshHint(conn, "pool-info " + name));
  }
}

// Defines, builds and starts a new 'dir' pool; undefines it again when it
// cannot be built or started, so that the next attempt starts afresh.
virt::StoragePoolPtr createPool(const virt::Connection &conn, const PoolSpec &spec,
                                const std::string &where) {
  const std::string xml = "<pool type='dir'><name>" + xmlEscape(spec.name) +
                          "</name><target><path>" + xmlEscape(spec.path) +
                          "</path></target></pool>";
  virt::StoragePoolPtr pool(virStoragePoolDefineXML(conn.get(), xml.c_str(), 0));
  if (!pool) {
    const std::string reason = virt::lastError();
    // Another nvbox may have defined it since our lookup.
    pool.reset(virStoragePoolLookupByName(conn.get(), spec.name.c_str()));
    if (!pool) {
      throw Error("cannot define " + where + " in " + q(spec.path) + ": " + reason,
                  "choose another pool name or directory");
    }
    return pool;
  }
  if (virStoragePoolBuild(pool.get(), 0) != 0 || virStoragePoolCreate(pool.get(), 0) != 0) {
    const std::string reason = virt::lastError();
    virStoragePoolUndefine(pool.get());
    throw Error("cannot create " + where + " in " + q(spec.path) + ": " + reason,
                "check that the directory can be made on the host, or choose another one");
  }
  return pool;
}

class Pusher {
public:
  Pusher(const virt::Connection &conn, const PoolSpec &spec, std::string_view image,
         const PushProgress &progress)
      : conn_(conn), pool_(ensureStoragePool(conn, spec)), poolName_(spec.name), image_(image),
        progress_(progress) {}

  PushedPart push(const images::Part &part, const fs::path &file, PushReport &report) {
    PushedPart pushed{part.role, volumeName(part), {}, false, part.storedSize};
    const std::string where =
        "volume " + q(pushed.volume) + " in pool " + q(poolName_) + " on host " + q(conn_.uri());
    virt::StorageVolPtr vol = lookupVolume(pool_.get(), pushed.volume, where);
    if (vol && !holds(vol.get(), part, pushed.volume, where)) {
      if (virStorageVolDelete(vol.get(), 0) != 0) {
        throw Error("cannot delete " + where + ", which does not hold part " + q(part.file) +
                        " of image " + q(image_) + ": " + virt::lastError(),
                    virshHint(conn_, "vol-info --pool " + poolName_ + " " + pushed.volume));
      }
      vol.reset();
    }
    if (!vol) {
      const auto start = Clock::now();
      vol = upload(part, file, pushed.volume, where);
      report.uploadSeconds += secondsSince(start);
      report.bytesUploaded += part.storedSize;
      pushed.uploaded = true;
    }
    pushed.path = volumePath(vol.get(), where);
    return pushed;
  }

  void refresh() { refreshPool(conn_, pool_.get(), poolName_); }

private:
  void notify(PushStep step, std::string_view subject, std::uint64_t done,
              std::uint64_t total) const {
    if (progress_) {
      progress_(step, subject, done, total);
    }
  }

  // Whether an existing volume holds exactly the part: a file of the part's
  // size whose content, read back through a stream, hashes to its sha256.
  bool holds(virStorageVolPtr vol, const images::Part &part, const std::string &volume,
             const std::string &where) {
    if (fileSize(vol, where) != part.storedSize) {
      return false;
    }
    try {
      Transfer transfer(conn_);
      if (virStorageVolDownload(vol, transfer.get(), 0, part.storedSize, 0) != 0) {
        throw Error(virt::lastError());
      }
      images::Sha256 hash;
      std::vector<char> buf(kChunk);
      std::uint64_t done = 0;
      notify(PushStep::CheckVolume, volume, 0, part.storedSize);
      while (const std::size_t n = transfer.receive(buf.data(), buf.size())) {
        hash.update(buf.data(), n);
        done += n;
        notify(PushStep::CheckVolume, volume, done, part.storedSize);
      }
      transfer.finish();
      return done == part.storedSize && hash.hex() == part.sha256;
    } catch (const Error &e) {
      throw Error("cannot read back " + where + ": " + e.what(),
                  virshHint(conn_, "vol-info --pool " + poolName_ + " " + volume));
    }
  }

  virt::StorageVolPtr upload(const images::Part &part, const fs::path &file,
                             const std::string &volume, const std::string &where) {
    try {
      const netconfig::Fd in(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
      if (!in) {
        throw Error(netconfig::sysError("cannot open " + q(file.string())));
      }
      // Created empty, the volume's file grows as the upload writes it: a
      // crash mid-upload leaves it short, which findPushedImage() rejects.
      const std::string xml = "<volume><name>" + xmlEscape(volume) +
                              "</name><capacity unit='bytes'>0</capacity>"
                              "<target><format type='raw'/></target></volume>";
      CreatedVolume created(virStorageVolCreateXML(pool_.get(), xml.c_str(), 0));
      if (!created.get()) {
        throw Error("cannot create it: " + virt::lastError());
      }
      // Declared after the volume, so a failed transfer is aborted before the
      // volume is deleted.
      Transfer transfer(conn_);
      if (virStorageVolUpload(created.get(), transfer.get(), 0, part.storedSize, 0) != 0) {
        throw Error(virt::lastError());
      }
      // Hashed again on the way: the volume's name promises this digest, and
      // the file may have changed since the image was verified.
      images::Sha256 hash;
      std::vector<char> buf(kChunk);
      std::uint64_t done = 0;
      notify(PushStep::Upload, volume, 0, part.storedSize);
      while (done < part.storedSize) {
        const ssize_t n = ::read(
            in.get(), buf.data(),
            static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), part.storedSize - done)));
        if (n < 0 && errno == EINTR) {
          continue;
        }
        if (n < 0) {
          throw Error(netconfig::sysError("cannot read " + q(file.string())));
        }
        if (n == 0) {
          throw Error(q(file.string()) + " ends after " + std::to_string(done) + " of " +
                          std::to_string(part.storedSize) + " bytes",
                      "run 'nvbox image verify " + image_ + "'");
        }
        const auto count = static_cast<std::size_t>(n);
        hash.update(buf.data(), count);
        transfer.send(buf.data(), count);
        done += count;
        notify(PushStep::Upload, volume, done, part.storedSize);
      }
      const std::string digest = hash.hex();
      if (digest != part.sha256) {
        throw Error("the part changed since it was verified: sha256 " + digest +
                        ", the manifest says " + part.sha256,
                    "run 'nvbox image verify " + image_ + "'");
      }
      transfer.finish();
      return created.keep();
    } catch (const Error &e) {
      throw Error("cannot upload part " + q(part.file) + " of image " + q(image_) + " to " + where +
                      ": " + e.what(),
                  !e.hint().empty()
                      ? e.hint()
                      : "the volume was removed again; " +
                            virshHint(conn_, "pool-info " + poolName_) + " and push again");
    }
  }

  const virt::Connection &conn_;
  virt::StoragePoolPtr pool_;
  std::string poolName_;
  std::string image_;
  const PushProgress &progress_;
};

// Refuses the image when a part failed: "image 'osr' is damaged: part
// 'initrd': size 10 bytes, the manifest says 12".
void refuseDamaged(const images::VerifyReport &report) {
  for (const auto &c : report.parts) {
    if (c.status != images::PartStatus::Ok) {
      throw Error("image " + q(report.name) + " is damaged: part " + q(c.expected.file) + ": " +
                      c.detail,
                  "run 'nvbox image verify " + report.name + "'; remove it with 'nvbox image rm " +
                      report.name + "' and import or build it again");
    }
  }
}

} // namespace

virt::StoragePoolPtr ensureStoragePool(const virt::Connection &conn, const PoolSpec &spec) {
  const std::string where = "storage pool " + q(spec.name) + " on host " + q(conn.uri());
  virt::StoragePoolPtr pool(virStoragePoolLookupByName(conn.get(), spec.name.c_str()));
  if (!pool) {
    if (virGetLastErrorCode() != VIR_ERR_NO_STORAGE_POOL) {
      throw Error("cannot look up " + where + ": " + virt::lastError());
    }
    pool = createPool(conn, spec, where);
  }
  if (virStoragePoolIsActive(pool.get()) != 1 && virStoragePoolCreate(pool.get(), 0) != 0) {
    const std::string reason = virt::lastError();
    // Another nvbox may have started it meanwhile.
    if (virStoragePoolIsActive(pool.get()) != 1) {
      throw Error("cannot start " + where + ": " + reason,
                  virshHint(conn, "pool-info " + spec.name));
    }
  }
  int autostart = 0;
  if (virStoragePoolIsPersistent(pool.get()) == 1 &&
      (virStoragePoolGetAutostart(pool.get(), &autostart) != 0 ||
       (autostart == 0 && virStoragePoolSetAutostart(pool.get(), 1) != 0))) {
    throw Error("cannot mark " + where + " autostarted: " + virt::lastError(),
                virshHint(conn, "pool-info " + spec.name));
  }
  return pool;
}

std::string volumeName(const images::Part &part) {
  return "nvbox-" + part.sha256.substr(0, kDigestPrefix) + "-" + part.file;
}

nlohmann::json PushReport::toJson() const {
  nlohmann::json list = nlohmann::json::array();
  for (const auto &p : parts) {
    list.push_back({{"role", std::string(images::toString(p.role))},
                    {"volume", p.volume},
                    {"path", p.path},
                    {"uploaded", p.uploaded},
                    {"bytes", p.bytes}});
  }
  return {{"image", image},
          {"uri", uri},
          {"pool", pool},
          {"parts", list},
          {"bytes_uploaded", bytesUploaded},
          {"seconds", seconds},
          {"upload_seconds", uploadSeconds}};
}

PushReport pushImage(const virt::Connection &conn, const images::ImageStore &store,
                     std::string_view image, const PoolSpec &spec, const PushProgress &progress) {
  const auto start = Clock::now();
  const images::Manifest manifest = store.get(image);
  if (progress) {
    progress(PushStep::VerifyLocal, image, 0, manifest.storedSize());
  }
  // Before the host is touched: a damaged image must not reach it at all.
  refuseDamaged(store.verify(image));
  Pusher pusher(conn, spec, image, progress);
  // libvirt's view of the pool may be stale (files changed behind its back):
  // look at what is really there before deciding what to skip.
  pusher.refresh();
  PushReport report{std::string(image), conn.uri(), spec.name, {}, 0, 0, 0};
  const fs::path dir = store.imageDir(image);
  for (const auto &part : manifest.parts) {
    report.parts.push_back(pusher.push(part, dir / part.file, report));
  }
  // Lets libvirt probe the new volumes (a qcow2 part shows as qcow2).
  pusher.refresh();
  report.seconds = secondsSince(start);
  return report;
}

std::vector<PushedPart> findPushedImage(const virt::Connection &conn,
                                        const images::Manifest &manifest, const PoolSpec &spec) {
  std::string push = "nvbox image push " + manifest.name + " --host " + conn.uri();
  if (spec.name != naming::kStoragePool) {
    push += " --pool " + spec.name;
  }
  const Error missing("image " + q(manifest.name) + " is not on host " + q(conn.uri()),
                      "run " + q(push));
  const std::string poolWhere = "storage pool " + q(spec.name) + " on host " + q(conn.uri());
  const virt::StoragePoolPtr pool(virStoragePoolLookupByName(conn.get(), spec.name.c_str()));
  if (!pool) {
    if (virGetLastErrorCode() != VIR_ERR_NO_STORAGE_POOL) {
      throw Error("cannot look up " + poolWhere + ": " + virt::lastError());
    }
    throw missing;
  }
  if (virStoragePoolIsActive(pool.get()) != 1) {
    throw Error(poolWhere + " is not active", "run " + q(push) + ", which starts it");
  }
  std::vector<PushedPart> parts;
  for (const auto &part : manifest.parts) {
    PushedPart found{part.role, volumeName(part), {}, false, part.storedSize};
    const std::string where = "volume " + q(found.volume) + " in " + poolWhere;
    const virt::StorageVolPtr vol = lookupVolume(pool.get(), found.volume, where);
    if (!vol || fileSize(vol.get(), where) != part.storedSize) {
      throw missing;
    }
    found.path = volumePath(vol.get(), where);
    parts.push_back(std::move(found));
  }
  return parts;
}

} // namespace nvbox
