// Helpers for the image store tests: unique temporary directories, sample
// images with real digests, a byte-exact listing of a directory tree, and
// tar builders (libarchive, plus libzstd for hand-patched headers) for the
// hostile-bundle cases.
#pragma once

#include "nvbox/images/manifest.hpp"

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace nvbox::images::test {

namespace fs = std::filesystem;

// /tmp/nvbox-images-test-<pid>-<n>, removed on destruction.
class TempDir {
public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir &) = delete;
  TempDir &operator=(const TempDir &) = delete;
  [[nodiscard]] const fs::path &path() const { return path_; }

private:
  fs::path path_;
};

std::string readFile(const fs::path &path);
void writeFile(const fs::path &path, const std::string &data);
// Deterministic incompressible bytes.
std::string randomBytes(std::size_t size, std::uint32_t seed);

struct SampleImage {
  Manifest manifest;
  std::map<PartRole, fs::path> files;
  std::map<std::string, std::string> contents; // file name -> bytes
};

// Writes three part files into dir and returns a valid manifest for them.
SampleImage makeSample(const fs::path &dir, const std::string &name,
                       std::size_t diskSize = 300 * 1024, std::uint32_t seed = 1);

// Every file and directory below root with type, mode, size and sha256, one
// per line, sorted: equal snapshots mean byte-for-byte equal trees.
std::string snapshot(const fs::path &root);

struct TarEntry {
  enum class Type { File, Symlink, Hardlink, Directory, CharDevice, Fifo };
  TarEntry(std::string entryName, std::string entryData = {}, Type entryType = Type::File,
           std::string linkTarget = {})
      : name(std::move(entryName)), data(std::move(entryData)), type(entryType),
        target(std::move(linkTarget)) {}
  std::string name;
  std::string data;
  Type type = Type::File;
  std::string target; // symlink or hard link target
};

// A tar (pax restricted) of the entries, zstd-compressed unless `compress`
// is false; `gzip` uses gzip instead of zstd.
std::string makeTar(const std::vector<TarEntry> &entries, bool compress = true, bool gzip = false);
// Sets the declared size of entry `name` in an uncompressed ustar stream
// (fixing the header checksum) without changing the data that follows.
void patchDeclaredSize(std::string &tar, const std::string &name, std::uint64_t size);
std::string zstdCompress(const std::string &data);

// The entries of a sample image as a bundle would hold them.
std::vector<TarEntry> bundleEntries(const SampleImage &image);

} // namespace nvbox::images::test
