#include "nvbox/images/initramfs.hpp"

#include "internal.hpp"
#include "nvbox/error.hpp"

#include <algorithm>
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <memory>
#include <sys/stat.h>

namespace nvbox::images {

namespace {

struct EntryFree {
  void operator()(archive_entry *e) const noexcept { archive_entry_free(e); }
};

} // namespace

InitramfsWriter::InitramfsWriter(const std::filesystem::path &out, int zstdLevel,
                                 std::int64_t mtime)
    : out_(out), mtime_(mtime), a_(archive_write_new()) {
  if (a_ == nullptr) {
    throw Error("cannot write initramfs '" + out.string() + "': out of memory");
  }
  const std::string level = std::to_string(zstdLevel);
  if (archive_write_add_filter_zstd(a_) != ARCHIVE_OK ||
      archive_write_set_filter_option(a_, "zstd", "compression-level", level.c_str()) !=
          ARCHIVE_OK ||
      archive_write_set_format_cpio_newc(a_) != ARCHIVE_OK ||
      // The kernel reads the stream to its end; no padding to a block size.
      archive_write_set_bytes_in_last_block(a_, 1) != ARCHIVE_OK ||
      archive_write_open_filename(a_, out.c_str()) != ARCHIVE_OK) {
    const std::string reason = archive_error_string(a_) != nullptr ? archive_error_string(a_) : "";
    archive_write_free(a_);
    a_ = nullptr;
    throw Error("cannot write initramfs '" + out.string() + "': " + reason);
  }
}

InitramfsWriter::~InitramfsWriter() {
  if (a_ != nullptr) {
    archive_write_free(a_);
  }
}

void InitramfsWriter::fail(const std::string &what) const {
  const char *reason = archive_error_string(a_);
  throw Error("cannot write initramfs '" + out_.string() + "': " + what +
              (reason != nullptr ? std::string(": ") + reason : std::string()));
}

void InitramfsWriter::writeEntry(std::string_view path, unsigned type, unsigned mode,
                                 std::int64_t size, std::string_view symlink, unsigned devMajor,
                                 unsigned devMinor) {
  std::unique_ptr<archive_entry, EntryFree> entry(archive_entry_new());
  const std::string name(path);
  archive_entry_set_pathname(entry.get(), name.c_str());
  archive_entry_set_filetype(entry.get(), type);
  archive_entry_set_perm(entry.get(), mode);
  archive_entry_set_uid(entry.get(), 0);
  archive_entry_set_gid(entry.get(), 0);
  archive_entry_set_mtime(entry.get(), mtime_, 0);
  archive_entry_set_size(entry.get(), size);
  if (!symlink.empty()) {
    const std::string target(symlink);
    archive_entry_set_symlink(entry.get(), target.c_str());
  }
  if (type == AE_IFCHR) {
    archive_entry_set_rdevmajor(entry.get(), devMajor);
    archive_entry_set_rdevminor(entry.get(), devMinor);
  }
  if (archive_write_header(a_, entry.get()) != ARCHIVE_OK) {
    fail("entry '" + name + "'");
  }
}

void InitramfsWriter::writeData(const void *data, std::size_t size) {
  if (size > 0 && archive_write_data(a_, data, size) != static_cast<la_ssize_t>(size)) {
    fail("data");
  }
}

void InitramfsWriter::addDirectory(std::string_view path, unsigned mode) {
  writeEntry(path, AE_IFDIR, mode, 0, {}, 0, 0);
}

void InitramfsWriter::addData(std::string_view path, std::string_view data, unsigned mode) {
  writeEntry(path, AE_IFREG, mode, static_cast<std::int64_t>(data.size()), {}, 0, 0);
  writeData(data.data(), data.size());
}

void InitramfsWriter::addFile(std::string_view path, const std::filesystem::path &source,
                              unsigned mode) {
  detail::Fd fd(::open(source.c_str(), O_RDONLY | O_CLOEXEC));
  struct stat st {};
  if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    throw Error("cannot read '" + source.string() + "' for the initramfs: " +
                (fd ? std::string("not a regular file") : detail::errnoText()));
  }
  writeEntry(path, AE_IFREG, mode, st.st_size, {}, 0, 0);
  char buf[1 << 16];
  std::int64_t left = st.st_size;
  while (left > 0) {
    const long got = detail::readSome(
        fd.get(), buf, static_cast<std::size_t>(std::min<std::int64_t>(left, sizeof buf)));
    if (got <= 0) {
      throw Error("cannot read '" + source.string() + "' for the initramfs: " +
                  (got == 0 ? std::string("file shrank while being read") : detail::errnoText()));
    }
    writeData(buf, static_cast<std::size_t>(got));
    left -= got;
  }
}

void InitramfsWriter::addSymlink(std::string_view path, std::string_view target) {
  writeEntry(path, AE_IFLNK, 0777, 0, target, 0, 0);
}

void InitramfsWriter::addCharDevice(std::string_view path, unsigned major, unsigned minor,
                                    unsigned mode) {
  writeEntry(path, AE_IFCHR, mode, 0, {}, major, minor);
}

void InitramfsWriter::finish() {
  if (finished_) {
    return;
  }
  finished_ = true;
  if (archive_write_close(a_) != ARCHIVE_OK) {
    fail("closing");
  }
}

} // namespace nvbox::images

namespace nvbox::images {

std::uint64_t InitramfsWriter::uncompressedBytes() const {
  // Filter 0 is the format's own output, before the zstd filter.
  return static_cast<std::uint64_t>(archive_filter_bytes(a_, 0));
}

} // namespace nvbox::images
