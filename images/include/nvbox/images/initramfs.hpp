// InitramfsWriter — writes a Linux initramfs: a cpio "newc" archive
// compressed with zstd (the guest kernel has CONFIG_RD_ZSTD), built in
// process with libarchive, without root and without running cpio.
//
// Entries are written in the order they are added; the kernel unpacks them
// in that order, so add a directory before what it contains. Every entry is
// owned by root and dated `mtime` (0 by default), so the same inputs give a
// byte-identical archive and the image build can be reproduced.
//
// Parameters: the output file, the zstd level (default 19: the initrd is
// written once per build and loaded at every boot).
//
// Threading: one thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

struct archive;

namespace nvbox::images {

class InitramfsWriter {
public:
  explicit InitramfsWriter(const std::filesystem::path &out, int zstdLevel = 19,
                           std::int64_t mtime = 0);
  ~InitramfsWriter();
  InitramfsWriter(const InitramfsWriter &) = delete;
  InitramfsWriter &operator=(const InitramfsWriter &) = delete;

  // Paths inside the archive are relative ("bin/busybox"); modes are
  // permission bits (0755).
  void addDirectory(std::string_view path, unsigned mode = 0755);
  void addFile(std::string_view path, const std::filesystem::path &source, unsigned mode);
  void addData(std::string_view path, std::string_view data, unsigned mode);
  void addSymlink(std::string_view path, std::string_view target);
  void addCharDevice(std::string_view path, unsigned major, unsigned minor, unsigned mode);
  // Writes the trailer and closes the file; throws when any write failed.
  void finish();
  // Bytes of the cpio stream before compression; valid after finish().
  [[nodiscard]] std::uint64_t uncompressedBytes() const;

private:
  void writeEntry(std::string_view path, unsigned type, unsigned mode, std::int64_t size,
                  std::string_view symlink, unsigned devMajor, unsigned devMinor);
  void writeData(const void *data, std::size_t size);
  [[noreturn]] void fail(const std::string &what) const;

  std::filesystem::path out_;
  std::int64_t mtime_;
  archive *a_ = nullptr; // owned: archive_write_free() in the destructor
  bool finished_ = false;
};

} // namespace nvbox::images
