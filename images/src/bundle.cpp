#include "nvbox/images/bundle.hpp"

#include "archive_handles.hpp"
#include "internal.hpp"
#include "nvbox/error.hpp"
#include "nvbox/images/digest.hpp"

#include <algorithm>
#include <archive.h>
#include <archive_entry.h>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <functional>
#include <memory>
#include <set>
#include <sys/stat.h>
#include <vector>

namespace nvbox::images {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kChunk = std::size_t{1} << 20U;
constexpr const char *kBundleHint =
    "make the bundle again with 'nvbox image export' and copy the whole file";

using detail::Entry;
using detail::ReadArchive;
using detail::WriteArchive;

// A name from the bundle, made fit for a one-line message.
std::string q(std::string_view text) {
  std::string out = "'";
  for (const char c : text.substr(0, 100)) {
    const auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u == 0x7F) ? '?' : c;
  }
  return out + (text.size() > 100 ? "...'" : "'");
}

std::string qp(const fs::path &path) {
  return q(path.string());
}

std::string archiveError(archive *a) {
  const char *msg = archive_error_string(a);
  return msg != nullptr ? msg : "unknown libarchive error";
}

// Seconds since the epoch of an RFC 3339 date-time (already validated).
std::time_t epochOf(const std::string &date) {
  std::tm tm{};
  tm.tm_year = std::stoi(date.substr(0, 4)) - 1900;
  tm.tm_mon = std::stoi(date.substr(5, 2)) - 1;
  tm.tm_mday = std::stoi(date.substr(8, 2));
  tm.tm_hour = std::stoi(date.substr(11, 2));
  tm.tm_min = std::stoi(date.substr(14, 2));
  tm.tm_sec = std::min(std::stoi(date.substr(17, 2)), 59);
  std::time_t t = ::timegm(&tm);
  const auto zone = date.find_first_of("+-", 19);
  if (zone != std::string::npos) {
    const long offset =
        std::stol(date.substr(zone + 1, 2)) * 3600 + std::stol(date.substr(zone + 4, 2)) * 60;
    t -= date[zone] == '+' ? offset : -offset;
  }
  return t;
}

// ---------------------------------------------------------------------------
// export

// Where libarchive's output goes: the temporary file, hashed on the way.
struct Sink {
  int fd = -1;
  Sha256 hash;
  std::uint64_t size = 0;
  int error = 0;
};

la_ssize_t writeToSink(archive * /*a*/, void *context, const void *buf, std::size_t size) {
  auto *sink = static_cast<Sink *>(context);
  if (!detail::writeAll(sink->fd, buf, size)) {
    sink->error = errno;
    return -1;
  }
  sink->hash.update(buf, size);
  sink->size += size;
  return static_cast<la_ssize_t>(size);
}

class BundleWriter {
public:
  BundleWriter(Sink &sink, int level, std::time_t mtime) : sink_(sink), mtime_(mtime) {
    a_.reset(archive_write_new());
    if (!a_) {
      throw Error("cannot create a libarchive writer", "the process is out of memory");
    }
    const std::string levelText = std::to_string(level);
    if (archive_write_add_filter_zstd(a_.get()) != ARCHIVE_OK ||
        archive_write_set_filter_option(a_.get(), "zstd", "compression-level", levelText.c_str()) !=
            ARCHIVE_OK ||
        archive_write_set_format_pax_restricted(a_.get()) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(a_.get(), 1) != ARCHIVE_OK ||
        archive_write_open(a_.get(), &sink_, nullptr, writeToSink, nullptr) != ARCHIVE_OK) {
      fail("cannot start the bundle");
    }
  }

  void begin(const std::string &name, std::uint64_t size) {
    Entry entry(archive_entry_new());
    if (!entry) {
      throw Error("cannot create a libarchive entry", "the process is out of memory");
    }
    archive_entry_set_pathname(entry.get(), name.c_str());
    archive_entry_set_filetype(entry.get(), AE_IFREG);
    archive_entry_set_perm(entry.get(), 0644);
    archive_entry_set_size(entry.get(), static_cast<la_int64_t>(size));
    archive_entry_set_uid(entry.get(), 0);
    archive_entry_set_gid(entry.get(), 0);
    archive_entry_set_mtime(entry.get(), mtime_, 0);
    if (archive_write_header(a_.get(), entry.get()) != ARCHIVE_OK) {
      fail("cannot write the header of " + q(name));
    }
  }

  void data(const char *buf, std::size_t size) {
    while (size > 0) {
      const la_ssize_t n = archive_write_data(a_.get(), buf, size);
      if (n <= 0) {
        fail("cannot write the bundle");
      }
      buf += n;
      size -= static_cast<std::size_t>(n);
    }
  }

  void end() {
    if (archive_write_finish_entry(a_.get()) != ARCHIVE_OK) {
      fail("cannot write the bundle");
    }
  }

  void close() {
    if (archive_write_close(a_.get()) != ARCHIVE_OK) {
      fail("cannot finish the bundle");
    }
  }

private:
  [[noreturn]] void fail(const std::string &what) {
    if (sink_.error != 0) {
      throw Error(what + ": " + std::strerror(sink_.error), "check the free space there");
    }
    throw Error(what + ": " + archiveError(a_.get()));
  }

  Sink &sink_;
  std::time_t mtime_;
  WriteArchive a_;
};

// ---------------------------------------------------------------------------
// import

std::string entryKind(archive_entry *entry) {
  if (archive_entry_hardlink(entry) != nullptr) {
    return "a hard link";
  }
  switch (archive_entry_filetype(entry)) {
  case AE_IFLNK:
    return "a symbolic link";
  case AE_IFDIR:
    return "a directory";
  case AE_IFCHR:
    return "a character device";
  case AE_IFBLK:
    return "a block device";
  case AE_IFIFO:
    return "a FIFO";
  case AE_IFSOCK:
    return "a socket";
  default:
    return "a special file";
  }
}

class BundleReader {
public:
  BundleReader(archive *a, const ImportOptions &options) : a_(a), options_(options) {}

  Manifest run(ImageStore &store) {
    archive_entry *entry = nullptr;
    // The manifest first: it says what may follow.
    const int first = archive_read_next_header(a_, &entry);
    if (first == ARCHIVE_EOF) {
      throw Error("the bundle is empty", kBundleHint);
    }
    if (first != ARCHIVE_OK) {
      throw Error("it is not an nvbox bundle, or it is damaged: " + archiveError(a_), kBundleHint);
    }
    requireZstd();
    const std::string firstName = checkEntry(entry);
    if (firstName != Manifest::kFileName) {
      throw Error("the first entry is " + q(firstName) + ", not 'manifest.json'", kBundleHint);
    }
    const Manifest manifest = readManifest(entry);
    for (const Part &part : manifest.parts) {
      if (part.storedSize > options_.limits.maxPartSize) {
        throw Error("part " + q(part.file) + " is " + std::to_string(part.storedSize) +
                        " bytes, above the limit of " +
                        std::to_string(options_.limits.maxPartSize) + " bytes",
                    kBundleHint);
      }
    }
    if (!options_.replace && store.contains(manifest.name)) {
      throw Error("image " + q(manifest.name) + " already exists in the store",
                  "remove it with 'nvbox image rm " + manifest.name +
                      "', or import with --replace");
    }

    StagedImage staged = store.stage(manifest);
    std::set<std::string> seen{std::string(Manifest::kFileName)};
    for (;;) {
      const int r = archive_read_next_header(a_, &entry);
      if (r == ARCHIVE_EOF) {
        break;
      }
      if (r != ARCHIVE_OK) {
        throw damaged();
      }
      const std::string name = checkEntry(entry);
      if (!seen.insert(name).second) {
        throw Error("entry " + q(name) + " appears twice", kBundleHint);
      }
      const Part *part = manifest.partByFile(name);
      if (part == nullptr) {
        throw Error("entry " + q(name) + " is not listed in the manifest", kBundleHint);
      }
      const std::uint64_t size = declaredSize(entry, name);
      if (size > options_.limits.maxPartSize) {
        throw Error("entry " + q(name) + " declares " + std::to_string(size) +
                        " bytes, above the limit of " +
                        std::to_string(options_.limits.maxPartSize) + " bytes",
                    kBundleHint);
      }
      if (size != part->storedSize) {
        throw Error("entry " + q(name) + " is " + std::to_string(size) +
                        " bytes, the manifest says " + std::to_string(part->storedSize),
                    kBundleHint);
      }
      staged.writePart(
          name,
          [this](char *buf, std::size_t capacity) {
            const la_ssize_t n = archive_read_data(a_, buf, capacity);
            if (n < 0) {
              throw damaged();
            }
            return static_cast<std::size_t>(n);
          },
          options_.progress);
    }
    for (const Part &part : manifest.parts) {
      if (seen.count(part.file) == 0U) {
        throw Error("the bundle has no entry for the '" + std::string(toString(part.role)) +
                        "' part " + q(part.file),
                    kBundleHint);
      }
    }
    staged.commit(options_.replace);
    return manifest;
  }

private:
  [[nodiscard]] Error damaged() const {
    return Error("the bundle is truncated or damaged: " + archiveError(a_), kBundleHint);
  }

  void requireZstd() const {
    const int filters = archive_filter_count(a_);
    for (int i = 0; i < filters; ++i) {
      if (archive_filter_code(a_, i) == ARCHIVE_FILTER_ZSTD) {
        return;
      }
    }
    throw Error("it is not zstd-compressed", kBundleHint);
  }

  // The entry's name when it is a regular file with a plain name.
  static std::string checkEntry(archive_entry *entry) {
    const char *path = archive_entry_pathname(entry);
    if (path == nullptr) {
      throw Error("an entry has no usable name", kBundleHint);
    }
    const std::string name = path;
    if (archive_entry_filetype(entry) != AE_IFREG || archive_entry_hardlink(entry) != nullptr ||
        archive_entry_symlink(entry) != nullptr) {
      throw Error("entry " + q(name) + " is " + entryKind(entry) + ", not a regular file",
                  kBundleHint);
    }
    if (name.empty() || name.front() == '/') {
      throw Error("entry " + q(name) + " has an absolute or empty path", kBundleHint);
    }
    if (name.find('/') != std::string::npos || name == "." || name == "..") {
      throw Error("entry " + q(name) + " is not a plain file name", kBundleHint);
    }
    if (name != Manifest::kFileName && !isValidPartFileName(name)) {
      throw Error("entry " + q(name) + " is not a valid part file name", kBundleHint);
    }
    if (archive_entry_sparse_count(entry) > 0) {
      throw Error("entry " + q(name) + " is a sparse file", kBundleHint);
    }
    return name;
  }

  static std::uint64_t declaredSize(archive_entry *entry, const std::string &name) {
    if (archive_entry_size_is_set(entry) == 0 || archive_entry_size(entry) < 0) {
      throw Error("entry " + q(name) + " has no size", kBundleHint);
    }
    return static_cast<std::uint64_t>(archive_entry_size(entry));
  }

  Manifest readManifest(archive_entry *entry) {
    const std::uint64_t size = declaredSize(entry, std::string(Manifest::kFileName));
    if (size > options_.limits.maxManifestSize) {
      throw Error("manifest.json is " + std::to_string(size) + " bytes, above the limit of " +
                      std::to_string(options_.limits.maxManifestSize) + " bytes",
                  kBundleHint);
    }
    std::string text(static_cast<std::size_t>(size), '\0');
    std::size_t done = 0;
    while (done < text.size()) {
      const la_ssize_t n = archive_read_data(a_, text.data() + done, text.size() - done);
      if (n < 0) {
        throw damaged();
      }
      if (n == 0) {
        throw Error("the bundle is truncated: manifest.json ends after " + std::to_string(done) +
                        " of " + std::to_string(size) + " bytes",
                    kBundleHint);
      }
      done += static_cast<std::size_t>(n);
    }
    return Manifest::parse(text, std::string(Manifest::kFileName));
  }

  archive *a_;
  const ImportOptions &options_;
};

ReadArchive newReader() {
  ReadArchive a(archive_read_new());
  if (!a) {
    throw Error("cannot create a libarchive reader", "the process is out of memory");
  }
  if (archive_read_support_filter_zstd(a.get()) != ARCHIVE_OK ||
      archive_read_support_format_tar(a.get()) != ARCHIVE_OK) {
    throw Error("this libarchive cannot read zstd-compressed tar: " + archiveError(a.get()),
                "install libarchive13 3.3.3 or newer with zstd support");
  }
  return a;
}

Manifest importWith(ImageStore &store, const std::string &label, const ImportOptions &options,
                    const std::function<int(archive *)> &open) {
  try {
    ReadArchive a = newReader();
    if (open(a.get()) != ARCHIVE_OK) {
      throw Error("it is not an nvbox bundle, or it is damaged: " + archiveError(a.get()),
                  kBundleHint);
    }
    return BundleReader(a.get(), options).run(store);
  } catch (const Error &e) {
    detail::rethrowWithContext("cannot import bundle " + q(label),
                               e.hint().empty() ? Error(e.what(), kBundleHint, e.kind()) : e);
  }
}

} // namespace

ExportResult exportBundle(const ImageStore &store, const std::string &name, const fs::path &out,
                          const ExportOptions &options) {
  try {
    if (options.compressionLevel < 1 || options.compressionLevel > 19) {
      throw UsageError("zstd level " + std::to_string(options.compressionLevel) +
                           " is not between 1 and 19",
                       "choose a level from 1 (fast) to 19 (small)");
    }
    const Manifest manifest = store.get(name);
    const fs::path dir = store.imageDir(name);
    struct stat st {};
    if (::stat(out.c_str(), &st) == 0) {
      if (S_ISDIR(st.st_mode)) {
        throw UsageError(qp(out) + " is a directory", "give a file name with -o FILE");
      }
      if (!options.overwrite) {
        throw UsageError(qp(out) + " already exists",
                         "pass --force to overwrite it, or choose another -o FILE");
      }
    }
    const fs::path parent = out.has_parent_path() ? out.parent_path() : fs::path(".");
    std::string tempBase = ".";
    tempBase += out.filename().string();
    tempBase += ".XXXXXX";
    std::string tempName = (parent / tempBase).string();
    detail::Fd fd(::mkostemp(tempName.data(), O_CLOEXEC));
    if (!fd) {
      throw Error("cannot create a file in " + qp(parent) + ": " + detail::errnoText(),
                  "check that the directory exists and is writable");
    }
    struct Unlink {
      const std::string &path;
      bool keep = false;
      ~Unlink() {
        if (!keep) {
          ::unlink(path.c_str());
        }
      }
    } unlinkGuard{tempName};
    if (::fchmod(fd.get(), 0644) != 0) {
      throw Error("cannot change the mode of " + q(tempName) + ": " + detail::errnoText());
    }

    Sink sink;
    sink.fd = fd.get();
    BundleWriter writer(sink, options.compressionLevel, epochOf(manifest.buildDate));
    const std::string text = manifest.dump();
    writer.begin(std::string(Manifest::kFileName), text.size());
    writer.data(text.data(), text.size());
    writer.end();

    const std::string damagedHint = "run 'nvbox image verify " + name + "'";
    std::vector<char> buf(kChunk);
    for (const Part &part : manifest.parts) {
      const fs::path file = dir / part.file;
      detail::Fd in(::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
      struct stat pst {};
      if (!in || ::fstat(in.get(), &pst) != 0) {
        throw Error("image " + q(name) + " is damaged: cannot open " + qp(file) + ": " +
                        detail::errnoText(),
                    damagedHint);
      }
      if (static_cast<std::uint64_t>(pst.st_size) != part.storedSize) {
        throw Error("image " + q(name) + " is damaged: part " + q(part.file) + " is " +
                        std::to_string(pst.st_size) + " bytes, the manifest says " +
                        std::to_string(part.storedSize),
                    damagedHint);
      }
      writer.begin(part.file, part.storedSize);
      Sha256 hash;
      std::uint64_t done = 0;
      std::uint64_t reported = 0;
      if (options.progress) {
        options.progress(part.file, 0, part.storedSize);
      }
      for (;;) {
        const long n = detail::readSome(in.get(), buf.data(), buf.size());
        if (n < 0) {
          throw Error("cannot read " + qp(file) + ": " + detail::errnoText());
        }
        if (n == 0) {
          break;
        }
        const auto count = static_cast<std::size_t>(n);
        if (count > part.storedSize - done) {
          throw Error("image " + q(name) + " is damaged: part " + q(part.file) +
                          " grew while it was read",
                      damagedHint);
        }
        done += count;
        hash.update(buf.data(), count);
        writer.data(buf.data(), count);
        if (options.progress && done - reported >= (std::uint64_t{8} << 20U)) {
          reported = done;
          options.progress(part.file, done, part.storedSize);
        }
      }
      if (done != part.storedSize) {
        throw Error("image " + q(name) + " is damaged: part " + q(part.file) +
                        " shrank while it was read",
                    damagedHint);
      }
      if (hash.hex() != part.sha256) {
        throw Error("image " + q(name) + " is damaged: part " + q(part.file) +
                        " does not match its sha256",
                    damagedHint);
      }
      writer.end();
    }
    writer.close();
    if (::fsync(fd.get()) != 0 || !fd.close()) {
      throw Error("cannot write " + q(tempName) + ": " + detail::errnoText(),
                  "check the free space there");
    }
    const unsigned flags = options.overwrite ? 0U : static_cast<unsigned>(RENAME_NOREPLACE);
    int err =
        ::renameat2(AT_FDCWD, tempName.c_str(), AT_FDCWD, out.c_str(), flags) == 0 ? 0 : errno;
    if (err == 0) {
      unlinkGuard.keep = true;
    } else if (err == EINVAL && flags != 0U) {
      // No RENAME_NOREPLACE on this file system: link() refuses an existing
      // file just the same, and the guard then drops the temporary name.
      err = ::link(tempName.c_str(), out.c_str()) == 0 ? 0 : errno;
    }
    if (err == EEXIST) {
      throw UsageError(qp(out) + " already exists",
                       "pass --force to overwrite it, or choose another -o FILE");
    }
    if (err != 0) {
      throw Error("cannot rename " + q(tempName) + " to " + qp(out) + ": " + std::strerror(err));
    }
    ExportResult result;
    result.path = out;
    result.size = sink.size;
    result.sha256 = sink.hash.hex();
    return result;
  } catch (const Error &e) {
    detail::rethrowWithContext("cannot export image " + q(name), e);
  }
}

Manifest importBundle(ImageStore &store, const fs::path &path, const ImportOptions &options) {
  detail::Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    throw Error("cannot import bundle " + qp(path) + ": cannot open it: " + detail::errnoText(),
                "check the path");
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) == 0 && S_ISDIR(st.st_mode)) {
    throw UsageError("cannot import bundle " + qp(path) + ": it is a directory",
                     "give the bundle file made by 'nvbox image export'");
  }
  return importWith(store, path.string(), options,
                    [&](archive *a) { return archive_read_open_fd(a, fd.get(), kChunk); });
}

Manifest importBundle(ImageStore &store, const void *data, std::size_t size,
                      const std::string &label, const ImportOptions &options) {
  return importWith(store, label, options,
                    [&](archive *a) { return archive_read_open_memory(a, data, size); });
}

} // namespace nvbox::images
