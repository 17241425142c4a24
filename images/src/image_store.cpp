#include "nvbox/images/image_store.hpp"

#include "internal.hpp"
#include "nvbox/error.hpp"
#include "nvbox/images/digest.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <pwd.h>
#include <stdexcept>
#include <sys/stat.h>
#include <system_error>
#include <utility>
#include <vector>

namespace nvbox::images {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kChunk = std::size_t{1} << 20U;
constexpr std::size_t kMaxManifestFile = std::size_t{1} << 20U;
constexpr std::uint64_t kProgressEvery = std::uint64_t{8} << 20U;

std::string qp(const fs::path &path) {
  return "'" + path.string() + "'";
}

std::string q(std::string_view text) {
  return "'" + std::string(text) + "'";
}

std::string existsHint(std::string_view name) {
  return "remove it first with 'nvbox image rm " + std::string(name) + "', or replace it";
}

std::string notFoundHint(const fs::path &root) {
  return "'nvbox image list' shows the images in " + qp(root) +
         "; add one with 'nvbox image import FILE'";
}

// A fresh directory <parent>/<prefix>XXXXXX (mode 0700).
fs::path makeTempDir(const fs::path &parent, const std::string &prefix) {
  std::string templ = (parent / (prefix + "XXXXXX")).string();
  if (::mkdtemp(templ.data()) == nullptr) {
    throw Error("cannot create a directory in " + qp(parent) + ": " + detail::errnoText(),
                "check that the image store is writable, or pass --store DIR");
  }
  return templ;
}

void fsyncPath(const fs::path &path, int flags) {
  detail::Fd fd(::open(path.c_str(), flags | O_CLOEXEC));
  if (!fd || ::fsync(fd.get()) != 0) {
    throw Error("cannot sync " + qp(path) + ": " + detail::errnoText());
  }
}

void fsyncDir(const fs::path &path) {
  fsyncPath(path, O_RDONLY | O_DIRECTORY);
}

// After the change is done: a failing sync must not make it look undone.
void fsyncDirQuietly(const fs::path &path) noexcept {
  detail::Fd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd) {
    (void)::fsync(fd.get());
  }
}

bool isDirectory(const fs::path &path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string readManifestFile(const fs::path &path) {
  detail::Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) {
    throw Error("cannot read " + qp(path) + ": " + detail::errnoText());
  }
  std::string text;
  std::vector<char> buf(64 * 1024);
  for (;;) {
    const long n = detail::readSome(fd.get(), buf.data(), buf.size());
    if (n < 0) {
      throw Error("cannot read " + qp(path) + ": " + detail::errnoText());
    }
    if (n == 0) {
      return text;
    }
    text.append(buf.data(), static_cast<std::size_t>(n));
    if (text.size() > kMaxManifestFile) {
      throw Error("manifest " + qp(path) + " is larger than 1 MiB",
                  "the store was changed by hand; remove the image and import it again");
    }
  }
}

// renameat2 with a flag; returns 0 or an errno value.
int renameWith(const fs::path &from, const fs::path &to, unsigned flags) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), flags) == 0) {
    return 0;
  }
  return errno;
}

bool notSupported(int err) {
  return err == EINVAL || err == ENOSYS || err == ENOTSUP;
}

} // namespace

std::string_view toString(PartStatus status) noexcept {
  switch (status) {
  case PartStatus::Ok:
    return "ok";
  case PartStatus::Missing:
    return "missing";
  case PartStatus::WrongSize:
    return "wrong-size";
  case PartStatus::WrongDigest:
    return "wrong-digest";
  case PartStatus::Unreadable:
    return "unreadable";
  }
  return "unknown";
}

bool VerifyReport::ok() const noexcept {
  return std::all_of(parts.begin(), parts.end(),
                     [](const PartCheck &c) { return c.status == PartStatus::Ok; });
}

// ---------------------------------------------------------------------------
// ImageStore

ImageStore::ImageStore(fs::path root) : root_(std::move(root)) {
  if (root_.empty()) {
    throw UsageError("the image store directory must not be empty", "pass --store DIR");
  }
}

fs::path ImageStore::defaultRoot(bool rootUser, std::string_view xdgDataHome,
                                 std::string_view home) {
  if (rootUser) {
    return "/var/lib/nvbox/images";
  }
  // The XDG spec says relative values are to be ignored.
  if (!xdgDataHome.empty() && xdgDataHome.front() == '/') {
    return fs::path(xdgDataHome) / "nvbox" / "images";
  }
  if (!home.empty() && home.front() == '/') {
    return fs::path(home) / ".local" / "share" / "nvbox" / "images";
  }
  throw Error("cannot find a home directory for the image store",
              "set HOME or XDG_DATA_HOME, or pass --store DIR");
}

fs::path ImageStore::defaultRoot() {
  const char *xdg = std::getenv("XDG_DATA_HOME");
  const char *home = std::getenv("HOME");
  std::string passwdHome;
  if (home == nullptr || *home == '\0') {
    std::vector<char> buf(16384);
    struct passwd pw {};
    struct passwd *found = nullptr;
    if (::getpwuid_r(::geteuid(), &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr &&
        found->pw_dir != nullptr) {
      passwdHome = found->pw_dir;
    }
  }
  return defaultRoot(::geteuid() == 0, xdg != nullptr ? xdg : "",
                     home != nullptr && *home != '\0' ? std::string_view(home)
                                                      : std::string_view(passwdHome));
}

fs::path ImageStore::imageDir(std::string_view name) const {
  checkImageName(name);
  return root_ / std::string(name);
}

bool ImageStore::contains(std::string_view name) const {
  return isDirectory(imageDir(name));
}

Manifest ImageStore::get(std::string_view name) const {
  const fs::path dir = imageDir(name);
  if (!isDirectory(dir)) {
    throw Error("cannot find image " + q(name), notFoundHint(root_));
  }
  const fs::path file = dir / Manifest::kFileName;
  struct stat st {};
  if (::lstat(file.c_str(), &st) != 0 && errno == ENOENT) {
    throw Error("image " + q(name) + " has no " + std::string(Manifest::kFileName),
                "the image is damaged; remove it with 'nvbox image rm " + std::string(name) +
                    "' and import it again");
  }
  Manifest m = Manifest::parse(readManifestFile(file), file.string());
  if (m.name != name) {
    throw Error("manifest " + qp(file) + " names image " + q(m.name) + ", not " + q(name),
                "the store was changed by hand; remove the image with 'nvbox image rm " +
                    std::string(name) + "'");
  }
  return m;
}

std::vector<StoredImage> ImageStore::list() const {
  std::vector<StoredImage> images;
  std::error_code ec;
  if (!fs::exists(root_, ec)) {
    return images;
  }
  fs::directory_iterator it(root_, ec);
  if (ec) {
    throw Error("cannot read image store " + qp(root_) + ": " + ec.message(),
                "check its permissions, or pass --store DIR");
  }
  for (const fs::directory_iterator end; it != end; it.increment(ec)) {
    if (ec) {
      throw Error("cannot read image store " + qp(root_) + ": " + ec.message());
    }
    const std::string name = it->path().filename().string();
    if (!isValidImageName(name) || !isDirectory(it->path())) {
      continue; // staging directories, stray files
    }
    StoredImage image;
    image.name = name;
    try {
      image.manifest = get(name);
    } catch (const Error &e) {
      image.problem = e.what();
    }
    images.push_back(std::move(image));
  }
  if (ec) {
    throw Error("cannot read image store " + qp(root_) + ": " + ec.message());
  }
  std::sort(images.begin(), images.end(),
            [](const StoredImage &a, const StoredImage &b) { return a.name < b.name; });
  return images;
}

VerifyReport ImageStore::verify(std::string_view name) const {
  VerifyReport report;
  const Manifest m = get(name);
  report.name = m.name;
  const fs::path dir = imageDir(name);
  for (const Part &part : m.parts) {
    PartCheck check;
    check.expected = part;
    const fs::path file = dir / part.file;
    struct stat st {};
    if (::lstat(file.c_str(), &st) != 0) {
      const bool missing = errno == ENOENT;
      check.status = missing ? PartStatus::Missing : PartStatus::Unreadable;
      check.detail = missing ? "file " + q(part.file) + " is missing"
                             : "cannot stat " + qp(file) + ": " + detail::errnoText();
    } else if (!S_ISREG(st.st_mode)) {
      check.status = PartStatus::Unreadable;
      check.detail = q(part.file) + " is not a regular file";
    } else if (static_cast<std::uint64_t>(st.st_size) != part.storedSize) {
      check.status = PartStatus::WrongSize;
      check.actualSize = static_cast<std::uint64_t>(st.st_size);
      check.detail = "size " + std::to_string(check.actualSize) + " bytes, the manifest says " +
                     std::to_string(part.storedSize);
    } else {
      try {
        const FileDigest d = digestFile(file);
        check.actualSize = d.size;
        check.actualSha256 = d.sha256;
        if (d.size != part.storedSize) {
          check.status = PartStatus::WrongSize;
          check.detail = "size " + std::to_string(d.size) + " bytes, the manifest says " +
                         std::to_string(part.storedSize);
        } else if (d.sha256 != part.sha256) {
          check.status = PartStatus::WrongDigest;
          check.detail = "sha256 " + d.sha256 + ", the manifest says " + part.sha256;
        }
      } catch (const Error &e) {
        check.status = PartStatus::Unreadable;
        check.detail = e.what();
      }
    }
    report.parts.push_back(std::move(check));
  }
  return report;
}

void ImageStore::remove(std::string_view name) {
  const fs::path dir = imageDir(name);
  if (!isDirectory(dir)) {
    throw Error("cannot find image " + q(name), notFoundHint(root_));
  }
  // Out of sight in one step, then deleted at leisure.
  const fs::path trash = makeTempDir(root_, ".removing-");
  if (::rename(dir.c_str(), trash.c_str()) != 0) {
    const std::string reason = detail::errnoText();
    std::error_code ec;
    fs::remove(trash, ec);
    throw Error("cannot remove image " + q(name) + ": " + reason,
                "check that the image store " + qp(root_) + " is writable");
  }
  fsyncDirQuietly(root_);
  std::error_code ec;
  fs::remove_all(trash, ec);
  if (ec) {
    throw Error("image " + q(name) + " was removed but " + qp(trash) +
                    " could not be deleted: " + ec.message(),
                "delete it by hand");
  }
}

Manifest ImageStore::add(std::string_view name, const Manifest &manifest,
                         const std::map<PartRole, fs::path> &files, bool replace,
                         const Progress &progress) {
  checkImageName(name);
  const std::string image(name);
  try {
    Manifest m = manifest;
    m.name = image;
    m.validate(image);
    for (const Part &part : m.parts) {
      if (files.count(part.role) == 0U) {
        throw Error("no file given for the '" + std::string(toString(part.role)) + "' part");
      }
    }
    for (const auto &[role, path] : files) {
      if (m.part(role) == nullptr) {
        throw Error("a file is given for the '" + std::string(toString(role)) +
                    "' part, which the manifest does not list");
      }
    }
    if (!replace && contains(image)) {
      throw Error("image " + q(image) + " already exists in the store", existsHint(image));
    }
    StagedImage staged = stage(m);
    for (const Part &part : m.parts) {
      const fs::path &source = files.at(part.role);
      detail::Fd fd(::open(source.c_str(), O_RDONLY | O_CLOEXEC));
      if (!fd) {
        throw Error("cannot open " + qp(source) + ": " + detail::errnoText());
      }
      staged.writePart(
          part.file,
          [&](char *buf, std::size_t capacity) {
            const long n = detail::readSome(fd.get(), buf, capacity);
            if (n < 0) {
              throw Error("cannot read " + qp(source) + ": " + detail::errnoText());
            }
            return static_cast<std::size_t>(n);
          },
          progress);
    }
    staged.commit(replace);
    return m;
  } catch (const Error &e) {
    detail::rethrowWithContext("cannot add image " + q(image), e);
  }
}

StagedImage ImageStore::stage(const Manifest &manifest) {
  manifest.validate(manifest.name);
  std::error_code ec;
  const bool existed = fs::exists(root_, ec);
  if (!existed) {
    fs::create_directories(root_, ec);
    if (ec) {
      throw Error("cannot create image store " + qp(root_) + ": " + ec.message(),
                  "run as root, or pass --store DIR");
    }
  }
  try {
    fs::path dir = makeTempDir(root_, ".staging-");
    return StagedImage(root_, std::move(dir), manifest, !existed);
  } catch (...) {
    if (!existed) {
      fs::remove(root_, ec);
    }
    throw;
  }
}

// ---------------------------------------------------------------------------
// StagedImage

StagedImage::StagedImage(fs::path root, fs::path dir, Manifest manifest, bool createdRoot)
    : root_(std::move(root)), dir_(std::move(dir)), manifest_(std::move(manifest)),
      createdRoot_(createdRoot) {}

StagedImage::StagedImage(StagedImage &&other) noexcept
    : root_(std::move(other.root_)), dir_(std::move(other.dir_)),
      manifest_(std::move(other.manifest_)), written_(std::move(other.written_)),
      createdRoot_(other.createdRoot_), done_(other.done_) {
  other.done_ = true;
}

StagedImage::~StagedImage() {
  if (done_) {
    return;
  }
  std::error_code ec;
  fs::remove_all(dir_, ec);
  if (createdRoot_) {
    fs::remove(root_, ec); // only if empty again
  }
}

void StagedImage::writePart(std::string_view file, const Reader &read, const Progress &progress) {
  if (done_) {
    throw std::logic_error("StagedImage::writePart after commit");
  }
  const Part *part = manifest_.partByFile(file);
  if (part == nullptr) {
    throw Error(q(file) + " is not a part of image " + q(manifest_.name));
  }
  if (written_.count(part->file) != 0U) {
    throw Error("part " + q(file) + " arrives twice");
  }
  const fs::path path = dir_ / part->file;
  detail::Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!fd) {
    throw Error("cannot create " + qp(path) + ": " + detail::errnoText());
  }
  struct Unlink {
    const fs::path &path;
    bool keep = false;
    ~Unlink() {
      if (!keep) {
        ::unlink(path.c_str());
      }
    }
  } unlinkGuard{path};

  Sha256 hash;
  std::vector<char> buf(kChunk);
  std::uint64_t done = 0;
  std::uint64_t reported = 0;
  if (progress) {
    progress(part->file, 0, part->storedSize);
  }
  for (;;) {
    // Ask for at most one byte more than is left, so that an overlong part is
    // noticed at once instead of after reading all of it.
    const std::uint64_t left = part->storedSize - done;
    const std::size_t want = left >= buf.size() ? buf.size() : static_cast<std::size_t>(left) + 1;
    const std::size_t n = read(buf.data(), want);
    if (n == 0) {
      break;
    }
    if (n > want) {
      throw std::logic_error("StagedImage::Reader returned more than asked for");
    }
    if (n > left) {
      throw Error("part " + q(file) + " is longer than the " + std::to_string(part->storedSize) +
                  " bytes the manifest says");
    }
    done += n;
    hash.update(buf.data(), n);
    if (!detail::writeAll(fd.get(), buf.data(), n)) {
      throw Error("cannot write " + qp(path) + ": " + detail::errnoText(),
                  "check the free space in " + qp(root_));
    }
    if (progress && done - reported >= kProgressEvery) {
      reported = done;
      progress(part->file, done, part->storedSize);
    }
  }
  if (done != part->storedSize) {
    throw Error("part " + q(file) + " is " + std::to_string(done) + " bytes, the manifest says " +
                std::to_string(part->storedSize));
  }
  const std::string digest = hash.hex();
  if (digest != part->sha256) {
    throw Error("part " + q(file) + " has sha256 " + digest + ", the manifest says " +
                part->sha256);
  }
  if (::fsync(fd.get()) != 0 || !fd.close()) {
    throw Error("cannot write " + qp(path) + ": " + detail::errnoText(),
                "check the free space in " + qp(root_));
  }
  if (progress) {
    progress(part->file, done, part->storedSize);
  }
  written_.insert(part->file);
  unlinkGuard.keep = true;
}

void StagedImage::commit(bool replace) {
  if (done_) {
    throw std::logic_error("StagedImage::commit twice");
  }
  for (const Part &part : manifest_.parts) {
    if (written_.count(part.file) == 0U) {
      throw Error("part '" + std::string(toString(part.role)) + "' (" + q(part.file) +
                  ") is missing");
    }
  }
  const fs::path manifestPath = dir_ / Manifest::kFileName;
  {
    const std::string text = manifest_.dump();
    detail::Fd fd(::open(manifestPath.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!fd || !detail::writeAll(fd.get(), text.data(), text.size()) || ::fsync(fd.get()) != 0 ||
        !fd.close()) {
      throw Error("cannot write " + qp(manifestPath) + ": " + detail::errnoText(),
                  "check the free space in " + qp(root_));
    }
  }
  if (::chmod(dir_.c_str(), 0755) != 0) {
    throw Error("cannot change the mode of " + qp(dir_) + ": " + detail::errnoText());
  }
  fsyncDir(dir_);

  const fs::path target = root_ / manifest_.name;
  const auto exists = [&] {
    return Error("image " + q(manifest_.name) + " already exists in the store",
                 existsHint(manifest_.name));
  };
  const auto renameFailed = [&](int err) {
    return Error("cannot move the new image into " + qp(target) + ": " + std::strerror(err),
                 "check that the image store " + qp(root_) + " is writable");
  };
  bool swapped = false; // dir_ now holds the old image
  int err = replace ? renameWith(dir_, target, RENAME_EXCHANGE) : ENOENT;
  if (replace && err == 0) {
    swapped = true;
  } else if (replace && notSupported(err)) {
    // No atomic exchange on this file system: move the old image aside first.
    const fs::path old = makeTempDir(root_, ".replaced-");
    if (::rename(target.c_str(), old.c_str()) != 0 && errno != ENOENT) {
      const int saved = errno;
      std::error_code ec;
      fs::remove(old, ec);
      throw renameFailed(saved);
    }
    if (::rename(dir_.c_str(), target.c_str()) != 0) {
      const int saved = errno;
      (void)::rename(old.c_str(), target.c_str()); // put the old image back
      throw renameFailed(saved);
    }
    std::error_code ec;
    fs::remove_all(old, ec);
  } else if (replace && err != ENOENT) {
    throw renameFailed(err);
  } else {
    // No image of that name (or not replacing): never overwrite one.
    err = renameWith(dir_, target, RENAME_NOREPLACE);
    if (notSupported(err)) {
      if (isDirectory(target)) {
        throw exists();
      }
      err = ::rename(dir_.c_str(), target.c_str()) == 0 ? 0 : errno;
    }
    if (err == EEXIST || err == ENOTEMPTY) {
      throw exists();
    }
    if (err != 0) {
      throw renameFailed(err);
    }
  }
  done_ = true;
  if (swapped) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  fsyncDirQuietly(root_);
}

} // namespace nvbox::images
