#include "image_test_util.hpp"

#include "nvbox/images/digest.hpp"

#include <algorithm>
#include <archive.h>
#include <archive_entry.h>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <zstd.h>

namespace nvbox::images::test {

TempDir::TempDir() {
  static std::atomic<int> counter{0};
  std::random_device rd;
  path_ = fs::path("/tmp") / ("nvbox-images-test-" + std::to_string(::getpid()) + "-" +
                              std::to_string(counter++) + "-" + std::to_string(rd() % 1000000U));
  fs::remove_all(path_);
  fs::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::string readFile(const fs::path &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw std::runtime_error("cannot read " + path.string());
  }
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void writeFile(const fs::path &path, const std::string &data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!out) {
    throw std::runtime_error("cannot write " + path.string());
  }
}

std::string randomBytes(std::size_t size, std::uint32_t seed) {
  std::mt19937 gen(seed);
  std::string out(size, '\0');
  for (std::size_t i = 0; i < size; i += 4) {
    const auto word = static_cast<std::uint32_t>(gen());
    for (std::size_t j = 0; j < 4 && i + j < size; ++j) {
      out[i + j] = static_cast<char>((word >> (8 * j)) & 0xFFU);
    }
  }
  return out;
}

SampleImage makeSample(const fs::path &dir, const std::string &name, std::size_t diskSize,
                       std::uint32_t seed) {
  fs::create_directories(dir);
  SampleImage image;
  const std::map<PartRole, std::string> data = {
      {PartRole::Kernel, "kernel:" + randomBytes(5000, seed)},
      {PartRole::Initrd, "initrd:" + randomBytes(7000, seed + 1)},
      {PartRole::Disk, randomBytes(diskSize, seed + 2)}};
  Manifest &m = image.manifest;
  m.name = name;
  m.kernelVersion = "6.1.0-26-amd64";
  m.osrdVersion = "0.1.0";
  m.buildDate = "2024-11-25T17:59:00Z";
  m.buildInputs = {{"busybox", sha256Hex("busybox")},
                   {"osrd", sha256Hex("osrd " + std::to_string(seed))},
                   {"linux-image-amd64", sha256Hex("kernel")}};
  m.inputDigest = computeInputDigest(m.buildInputs);
  for (const PartRole role : kAllRoles) {
    const std::string file(defaultFileName(role));
    const std::string &bytes = data.at(role);
    writeFile(dir / file, bytes);
    Part part;
    part.role = role;
    part.file = file;
    part.sha256 = sha256Hex(bytes);
    part.storedSize = bytes.size();
    part.rawSize = role == PartRole::Disk ? std::uint64_t{1} << 30U : bytes.size();
    m.parts.push_back(part);
    image.files[role] = dir / file;
    image.contents[file] = bytes;
  }
  return image;
}

std::string snapshot(const fs::path &root) {
  if (!fs::exists(root)) {
    return "<absent>\n";
  }
  std::vector<std::string> lines;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    struct stat st {};
    ::lstat(it->path().c_str(), &st);
    std::ostringstream line;
    line << fs::relative(it->path(), root).string() << " mode=" << std::oct << st.st_mode
         << std::dec;
    if (S_ISREG(st.st_mode)) {
      line << " size=" << st.st_size << " sha256=" << digestFile(it->path()).sha256;
    } else if (S_ISLNK(st.st_mode)) {
      line << " -> " << fs::read_symlink(it->path()).string();
    }
    lines.push_back(line.str());
  }
  std::sort(lines.begin(), lines.end());
  std::string out;
  for (const auto &l : lines) {
    out += l + "\n";
  }
  return out;
}

namespace {

la_ssize_t appendTo(archive * /*a*/, void *context, const void *buf, std::size_t size) {
  static_cast<std::string *>(context)->append(static_cast<const char *>(buf), size);
  return static_cast<la_ssize_t>(size);
}

void check(archive *a, int rc, const char *what) {
  if (rc != ARCHIVE_OK) {
    throw std::runtime_error(std::string(what) + ": " + archive_error_string(a));
  }
}

} // namespace

std::string makeTar(const std::vector<TarEntry> &entries, bool compress, bool gzip) {
  std::string out;
  archive *a = archive_write_new();
  if (compress) {
    check(a, gzip ? archive_write_add_filter_gzip(a) : archive_write_add_filter_zstd(a), "filter");
  }
  check(a, archive_write_set_format_pax_restricted(a), "format");
  check(a, archive_write_set_bytes_in_last_block(a, 1), "block");
  check(a, archive_write_open(a, &out, nullptr, appendTo, nullptr), "open");
  for (const TarEntry &e : entries) {
    archive_entry *entry = archive_entry_new();
    archive_entry_set_pathname(entry, e.name.c_str());
    archive_entry_set_perm(entry, 0644);
    archive_entry_set_mtime(entry, 1732557540, 0);
    switch (e.type) {
    case TarEntry::Type::File:
      archive_entry_set_filetype(entry, AE_IFREG);
      archive_entry_set_size(entry, static_cast<la_int64_t>(e.data.size()));
      break;
    case TarEntry::Type::Symlink:
      archive_entry_set_filetype(entry, AE_IFLNK);
      archive_entry_set_symlink(entry, e.target.c_str());
      archive_entry_set_size(entry, 0);
      break;
    case TarEntry::Type::Hardlink:
      archive_entry_set_filetype(entry, AE_IFREG);
      archive_entry_set_hardlink(entry, e.target.c_str());
      archive_entry_set_size(entry, 0);
      break;
    case TarEntry::Type::Directory:
      archive_entry_set_filetype(entry, AE_IFDIR);
      archive_entry_set_size(entry, 0);
      break;
    case TarEntry::Type::CharDevice:
      archive_entry_set_filetype(entry, AE_IFCHR);
      archive_entry_set_rdev(entry, makedev(1, 3));
      archive_entry_set_size(entry, 0);
      break;
    case TarEntry::Type::Fifo:
      archive_entry_set_filetype(entry, AE_IFIFO);
      archive_entry_set_size(entry, 0);
      break;
    }
    check(a, archive_write_header(a, entry), "header");
    if (e.type == TarEntry::Type::File && !e.data.empty()) {
      if (archive_write_data(a, e.data.data(), e.data.size()) !=
          static_cast<la_ssize_t>(e.data.size())) {
        throw std::runtime_error(std::string("data: ") + archive_error_string(a));
      }
    }
    archive_entry_free(entry);
  }
  check(a, archive_write_close(a), "close");
  archive_write_free(a);
  return out;
}

void patchDeclaredSize(std::string &tar, const std::string &name, std::uint64_t size) {
  std::size_t pos = 0;
  while (pos + 512 <= tar.size()) {
    const std::string header = tar.substr(pos, 512);
    if (header[0] == '\0') {
      break;
    }
    const std::string entryName = header.substr(0, header.find('\0'));
    const std::uint64_t entrySize = std::stoull(header.substr(124, 12), nullptr, 8);
    if (entryName == name) {
      char field[13];
      std::snprintf(field, sizeof field, "%011llo", static_cast<unsigned long long>(size));
      tar.replace(pos + 124, 12, std::string(field, 12)); // 11 digits + NUL
      tar.replace(pos + 148, 8, std::string(8, ' '));
      unsigned sum = 0;
      for (std::size_t i = 0; i < 512; ++i) {
        sum += static_cast<unsigned char>(tar[pos + i]);
      }
      char chk[9];
      std::snprintf(chk, sizeof chk, "%06o", sum);
      tar.replace(pos + 148, 8, std::string(chk, 6) + std::string("\0 ", 2));
      return;
    }
    pos += 512 + (entrySize + 511) / 512 * 512;
  }
  throw std::runtime_error("no tar entry " + name);
}

std::string zstdCompress(const std::string &data) {
  std::string out(ZSTD_compressBound(data.size()), '\0');
  const std::size_t n = ZSTD_compress(out.data(), out.size(), data.data(), data.size(), 3);
  if (ZSTD_isError(n) != 0U) {
    throw std::runtime_error(ZSTD_getErrorName(n));
  }
  out.resize(n);
  return out;
}

std::vector<TarEntry> bundleEntries(const SampleImage &image) {
  std::vector<TarEntry> entries;
  entries.push_back({"manifest.json", image.manifest.dump()});
  for (const Part &p : image.manifest.parts) {
    entries.push_back({p.file, image.contents.at(p.file)});
  }
  return entries;
}

} // namespace nvbox::images::test
