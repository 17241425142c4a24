// ImageStore — the local store of OSR router images: one directory per image
// under a root, holding manifest.json and the part files it lists.
//
//   <root>/<name>/manifest.json
//   <root>/<name>/vmlinuz, initrd, root.qcow2   (the names the manifest gives)
//   <root>/.staging-XXXXXX/                      (an add or import in progress)
//
// The default root is /var/lib/nvbox/images for root (euid 0), else
// $XDG_DATA_HOME/nvbox/images, else ~/.local/share/nvbox/images.
//
// Every change is atomic. add() and bundle import assemble the image in a
// staging directory inside the root, check every part's size and sha256
// against the manifest while writing it, and only then rename the directory
// into place (an exchange when replacing). remove() renames the image away
// before deleting it. A failure, or a crash, never leaves a half image
// visible: entries starting with '.' are not images.
//
// Threading: an ImageStore holds only its root; any number of threads and
// processes may use one store. Concurrent adds of the same name: one wins,
// the other fails with "already exists" (or, with replace, the last one wins).
#pragma once

#include "nvbox/images/manifest.hpp"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace nvbox::images {

// Called while parts are copied: the part's file, bytes done, bytes in total.
using Progress =
    std::function<void(std::string_view file, std::uint64_t done, std::uint64_t total)>;

enum class PartStatus { Ok, Missing, WrongSize, WrongDigest, Unreadable };
// "ok", "missing", "wrong-size", "wrong-digest", "unreadable".
[[nodiscard]] std::string_view toString(PartStatus status) noexcept;

struct PartCheck {
  Part expected; // what the manifest says
  PartStatus status = PartStatus::Ok;
  std::uint64_t actualSize = 0; // when the file exists
  std::string actualSha256;     // when it was hashed (its size was right)
  std::string detail;           // one line: what is wrong; empty when Ok
};

struct VerifyReport {
  std::string name;
  std::vector<PartCheck> parts; // manifest order
  [[nodiscard]] bool ok() const noexcept;
};

// One entry of list(): an image, or a directory that should be one but whose
// manifest cannot be read (then `problem` says why).
struct StoredImage {
  std::string name;
  std::optional<Manifest> manifest;
  std::string problem;
};

class StagedImage;

class ImageStore {
public:
  explicit ImageStore(std::filesystem::path root);

  // The default root for this process (see above). Throws nvbox::Error when
  // no home directory can be found.
  [[nodiscard]] static std::filesystem::path defaultRoot();
  // The rule itself: root user, $XDG_DATA_HOME and $HOME as given ("" = unset).
  [[nodiscard]] static std::filesystem::path
  defaultRoot(bool rootUser, std::string_view xdgDataHome, std::string_view home);

  [[nodiscard]] const std::filesystem::path &root() const noexcept { return root_; }
  // <root>/<name>; throws nvbox::UsageError for an invalid name.
  [[nodiscard]] std::filesystem::path imageDir(std::string_view name) const;

  [[nodiscard]] bool contains(std::string_view name) const;
  // All images, sorted by name; an empty list when the root does not exist.
  [[nodiscard]] std::vector<StoredImage> list() const;
  // The manifest of one image. Throws "cannot find image 'NAME'" when absent.
  [[nodiscard]] Manifest get(std::string_view name) const;
  // Checks each part's presence, size and sha256 against the manifest. Damage
  // is reported, not thrown; throws only when the image cannot be read at all.
  [[nodiscard]] VerifyReport verify(std::string_view name) const;
  void remove(std::string_view name);

  // Copies `files` (one per part role of the manifest) into the store as
  // image `name`; the stored manifest carries that name. Atomic; fails when
  // the image exists unless `replace`, or when a file's size or sha256 is not
  // what the manifest says.
  Manifest add(std::string_view name, const Manifest &manifest,
               const std::map<PartRole, std::filesystem::path> &files, bool replace = false,
               const Progress &progress = {});

  // Starts assembling image manifest.name in a staging directory (creating
  // the root if needed). For add() and bundle import.
  [[nodiscard]] StagedImage stage(const Manifest &manifest);

private:
  std::filesystem::path root_;
};

// An image being assembled in <root>/.staging-XXXXXX, invisible to list()
// and get(). Parts are streamed in and checked as they arrive; commit()
// renames the directory into place. Destroying an uncommitted StagedImage
// deletes it (and the root, if stage() created it and it is empty again).
//
// Threading: one thread.
class StagedImage {
public:
  // Fills buf with up to `capacity` bytes; returns how many, 0 at the end.
  using Reader = std::function<std::size_t(char *buf, std::size_t capacity)>;

  ~StagedImage();
  StagedImage(StagedImage &&other) noexcept;
  StagedImage &operator=(StagedImage &&) = delete;
  StagedImage(const StagedImage &) = delete;
  StagedImage &operator=(const StagedImage &) = delete;

  // Writes the manifest part whose file name is `file` from `read`, hashing
  // on the way. Throws nvbox::Error, keeping nothing, when the file is not a
  // part, was written already, grows past its stored_size (reading stops
  // there), ends short of it, or has another sha256.
  void writePart(std::string_view file, const Reader &read, const Progress &progress = {});
  // Writes manifest.json and renames the directory to <root>/<name>. Throws
  // when a part was not written, or when the image exists and !replace.
  void commit(bool replace);

  [[nodiscard]] const std::filesystem::path &dir() const noexcept { return dir_; }
  [[nodiscard]] const Manifest &manifest() const noexcept { return manifest_; }

private:
  friend class ImageStore;
  StagedImage(std::filesystem::path root, std::filesystem::path dir, Manifest manifest,
              bool createdRoot);

  std::filesystem::path root_;
  std::filesystem::path dir_;
  Manifest manifest_;
  std::set<std::string> written_;
  bool createdRoot_ = false;
  bool done_ = false; // committed, or moved from
};

} // namespace nvbox::images
