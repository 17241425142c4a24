// Bundles — one file that carries an image between machines: a tar stream
// (pax restricted) compressed with zstd, made and read with libarchive.
// manifest.json comes first, then the parts in manifest order, each a plain
// regular file at the top level (mode 0644, owner 0:0, mtime the build date).
// Exporting the same image twice gives the same bytes.
//
// importBundle() trusts nothing in the file. It refuses, with one nvbox::Error
// and the store left exactly as it was, a stream that is truncated, corrupted
// or not a zstd tar; entries that are not regular files or whose names are
// not plain file names; manifest.json not first, invalid, or larger than
// maxManifestSize; entries the manifest does not list, twice, or missing;
// an entry whose size differs from the manifest or exceeds maxPartSize
// (checked on the header, before reading); a part whose sha256 differs; and
// an image name already in the store unless `replace`. Parts are streamed
// into a staging directory and checked there; only a complete, verified image
// is renamed into the store.
//
// Threading: as ImageStore; a bundle file is read or written by one thread.
#pragma once

#include "nvbox/images/image_store.hpp"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

namespace nvbox::images {

struct BundleLimits {
  std::uint64_t maxPartSize = std::uint64_t{4} << 30U;     // 4 GiB
  std::uint64_t maxManifestSize = std::uint64_t{1} << 20U; // 1 MiB
};

struct ExportOptions {
  bool overwrite = false;   // replace an existing output file
  int compressionLevel = 3; // zstd level, 1-19
  Progress progress;
};

struct ExportResult {
  std::filesystem::path path;
  std::uint64_t size = 0; // bytes of the bundle file
  std::string sha256;     // of the bundle file
};

struct ImportOptions {
  bool replace = false; // replace an image of the same name
  BundleLimits limits;
  Progress progress;
};

// Writes image `name` to `out` (through a temporary file beside it, renamed
// at the end). Each part is checked against its sha256 on the way, so a
// damaged image is refused instead of shipped.
ExportResult exportBundle(const ImageStore &store, const std::string &name,
                          const std::filesystem::path &out, const ExportOptions &options = {});

// Imports the bundle file at `path`; returns the manifest of the new image.
Manifest importBundle(ImageStore &store, const std::filesystem::path &path,
                      const ImportOptions &options = {});

// The same from memory; `label` names the bundle in errors.
Manifest importBundle(ImageStore &store, const void *data, std::size_t size,
                      const std::string &label, const ImportOptions &options = {});

} // namespace nvbox::images
