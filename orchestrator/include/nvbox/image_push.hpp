// Pushing images to hosts: uploads the parts of an image in the local store
// (kernel, initrd, disk) into a libvirt storage pool on a host, through
// libvirt streams only, so a remote host needs nothing but libvirtd — no ssh,
// no shared file system. Router creation finds the pushed parts with
// findPushedImage().
//
// Volumes are content-addressed: a part becomes the volume
// "nvbox-<first 24 hex digits of its sha256>-<part file>", so images that
// share a part share its volume, versions coexist, and a part already on the
// host is not sent again. "Already there" is proven, not assumed: the volume
// file must have the part's stored size and its content, read back through a
// stream, must hash to the part's sha256. Anything else (a volume left by an
// interrupted upload, a file changed on the host) is deleted and uploaded
// again. A volume is created empty and grows as the upload writes it, so a
// crash mid-upload leaves a short file that findPushedImage() rejects at once.
//
// Errors are nvbox::Error quoting the image, volume, pool and host URI with
// libvirt's reason. An upload that fails aborts its stream and deletes the
// volume it created.
//
// Threading: every function uses its Connection from the calling thread only
// (libvirt connections may be shared). Two pushes into the same pool must not
// run at once: each may take the other's half-written volume for damaged and
// delete it.
#pragma once

#include "nvbox/images/image_store.hpp"
#include "nvbox/images/manifest.hpp"
#include "nvbox/libvirt.hpp"
#include "nvbox/naming.hpp"

#include <cstdint>
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace nvbox {

// The storage pool that holds pushed parts.
struct PoolSpec {
  std::string name = naming::kStoragePool;
  // Its directory on the host, used only when the pool has to be created; an
  // existing pool stays wherever it is.
  std::string path = "/var/lib/libvirt/images/nvbox";
};

// Makes sure the pool exists and is active: defines, builds (creates the
// directory) and starts a persistent 'dir' pool when there is none, starts it
// when inactive, and marks a persistent pool autostarted so that routers'
// disks are there after the host reboots. A pool that exists is used as it
// is, whatever its type and directory. Throws nvbox::Error with libvirt's
// reason; a pool it defined but could not build or start is undefined again.
[[nodiscard]] virt::StoragePoolPtr ensureStoragePool(const virt::Connection &conn,
                                                     const PoolSpec &spec);

// "nvbox-0123456789abcdef01234567-root.qcow2" for a part with that sha256
// prefix and file name.
[[nodiscard]] std::string volumeName(const images::Part &part);

struct PushedPart {
  images::PartRole role = images::PartRole::Kernel;
  std::string volume;      // volumeName(part)
  std::string path;        // the volume's path on the host
  bool uploaded = false;   // false: it was already there
  std::uint64_t bytes = 0; // the part's stored size
};

struct PushReport {
  std::string image;
  std::string uri;  // the host's libvirt URI as given
  std::string pool; // the pool's name
  std::vector<PushedPart> parts;
  std::uint64_t bytesUploaded = 0;
  double seconds = 0;       // the whole push, local and remote checks included
  double uploadSeconds = 0; // time spent streaming parts up

  // {"image", "uri", "pool", "parts": [{"role", "volume", "path", "uploaded",
  // "bytes"}], "bytes_uploaded", "seconds", "upload_seconds"}
  [[nodiscard]] nlohmann::json toJson() const;
};

enum class PushStep {
  VerifyLocal, // hashing the image in the local store; subject: the image
  CheckVolume, // reading back a volume that already exists; subject: the volume
  Upload,      // streaming a part up; subject: the volume
};

// Called as a push proceeds: the step, what it works on, bytes done and in
// total (VerifyLocal is reported once, with done = 0).
using PushProgress = std::function<void(PushStep step, std::string_view subject, std::uint64_t done,
                                        std::uint64_t total)>;

// Pushes image `image` from `store` into the pool `spec` on `conn`'s host
// (ensureStoragePool first) and refreshes the pool. The image is verified
// (ImageStore::verify) before the host is touched and refused when damaged;
// each part is hashed again while it is sent, and a part whose content no
// longer matches its sha256 is not kept. Parts are handled in manifest order;
// when one fails, those before it stay on the host.
PushReport pushImage(const virt::Connection &conn, const images::ImageStore &store,
                     std::string_view image, const PoolSpec &spec = {},
                     const PushProgress &progress = {});

// The volumes holding the parts of `manifest` on `conn`'s host, in manifest
// order, without uploading or reading them: for router creation. Checks that
// each volume exists with the part's stored size; throws "image 'osr' is not
// on host 'URI'; run 'nvbox image push osr --host URI'" when one does not
// (or the pool does not exist), and asks for the same push when the pool is
// inactive.
[[nodiscard]] std::vector<PushedPart> findPushedImage(const virt::Connection &conn,
                                                      const images::Manifest &manifest,
                                                      const PoolSpec &spec = {});

} // namespace nvbox
