// Bundles: export then import round trip, the format on the wire, and one
// hostile bundle per refusal rule. Every refusal must be one nvbox::Error and
// leave the store byte-for-byte as it was.
#include "image_test_util.hpp"
#include "nvbox/error.hpp"
#include "nvbox/images/bundle.hpp"
#include "nvbox/images/digest.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <functional>
#include <gtest/gtest.h>

namespace nvbox::images {
namespace {

namespace fs = std::filesystem;
using test::readFile;
using test::snapshot;
using test::TarEntry;
using test::writeFile;

class Bundle : public ::testing::Test {
protected:
  void SetUp() override {
    tmp_ = std::make_unique<test::TempDir>();
    root_ = tmp_->path() / "store";
    work_ = tmp_->path() / "work";
    fs::create_directories(work_);
    image_ = test::makeSample(work_ / "parts", "osr");
  }
  void TearDown() override { tmp_.reset(); }

  std::unique_ptr<test::TempDir> tmp_;
  fs::path root_;
  fs::path work_;
  test::SampleImage image_;
};

// The entries of a bundle in order: name, type, size.
struct Listed {
  std::string name;
  bool regular;
  std::int64_t size;
  std::int64_t mtime;
};

std::vector<Listed> listBundle(const fs::path &path, int &filterCode) {
  std::vector<Listed> out;
  archive *a = archive_read_new();
  archive_read_support_filter_all(a);
  archive_read_support_format_all(a);
  EXPECT_EQ(archive_read_open_filename(a, path.c_str(), 65536), ARCHIVE_OK);
  archive_entry *e = nullptr;
  while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
    out.push_back({archive_entry_pathname(e), archive_entry_filetype(e) == AE_IFREG,
                   archive_entry_size(e), archive_entry_mtime(e)});
  }
  filterCode = archive_filter_code(a, 0);
  archive_read_free(a);
  return out;
}

TEST_F(Bundle, RoundTripGivesIdenticalFilesAndManifest) {
  ImageStore source(root_);
  source.add("osr", image_.manifest, image_.files);
  const fs::path file = work_ / "osr.nvbox";
  std::vector<std::string> progressed;
  ExportOptions eo;
  eo.progress = [&](std::string_view f, std::uint64_t, std::uint64_t) {
    progressed.emplace_back(f);
  };
  const ExportResult r = exportBundle(source, "osr", file, eo);
  EXPECT_EQ(r.path, file);
  EXPECT_EQ(r.size, fs::file_size(file));
  EXPECT_EQ(r.sha256, digestFile(file).sha256);
  EXPECT_FALSE(progressed.empty());
  // Only the bundle: no temporary file left beside it.
  std::size_t files = 0;
  for ([[maybe_unused]] const auto &e : fs::directory_iterator(work_)) {
    ++files;
  }
  EXPECT_EQ(files, 2U); // parts/ and osr.nvbox

  ImageStore target(tmp_->path() / "other-store");
  const Manifest imported = importBundle(target, file);
  EXPECT_EQ(imported, image_.manifest);
  EXPECT_EQ(target.get("osr"), image_.manifest);
  EXPECT_EQ(readFile(target.root() / "osr" / "manifest.json"),
            readFile(root_ / "osr" / "manifest.json"));
  for (const auto &[name, bytes] : image_.contents) {
    EXPECT_EQ(readFile(target.root() / "osr" / name), bytes) << name;
  }
  EXPECT_TRUE(target.verify("osr").ok());
  EXPECT_EQ(snapshot(target.root()), snapshot(root_));
}

TEST_F(Bundle, FormatIsZstdTarWithManifestFirst) {
  ImageStore store(root_);
  store.add("osr", image_.manifest, image_.files);
  const fs::path file = work_ / "osr.nvbox";
  exportBundle(store, "osr", file);
  int filter = 0;
  const auto entries = listBundle(file, filter);
  EXPECT_EQ(filter, ARCHIVE_FILTER_ZSTD);
  ASSERT_EQ(entries.size(), 4U);
  EXPECT_EQ(entries[0].name, "manifest.json");
  EXPECT_EQ(entries[1].name, "vmlinuz");
  EXPECT_EQ(entries[2].name, "initrd");
  EXPECT_EQ(entries[3].name, "root.qcow2");
  for (const auto &e : entries) {
    EXPECT_TRUE(e.regular) << e.name;
    EXPECT_EQ(e.mtime, 1732557540) << e.name; // the build date
  }
  EXPECT_EQ(entries[3].size, 300 * 1024);
  // zstd magic number
  EXPECT_EQ(readFile(file).substr(0, 4), std::string("\x28\xb5\x2f\xfd", 4));
}

TEST_F(Bundle, ExportIsDeterministic) {
  ImageStore store(root_);
  store.add("osr", image_.manifest, image_.files);
  exportBundle(store, "osr", work_ / "a.nvbox");
  exportBundle(store, "osr", work_ / "b.nvbox");
  EXPECT_EQ(readFile(work_ / "a.nvbox"), readFile(work_ / "b.nvbox"));
}

TEST_F(Bundle, ExportRefusesToOverwriteUnlessAsked) {
  ImageStore store(root_);
  store.add("osr", image_.manifest, image_.files);
  const fs::path file = work_ / "osr.nvbox";
  writeFile(file, "keep me");
  try {
    exportBundle(store, "osr", file);
    FAIL();
  } catch (const UsageError &e) {
    EXPECT_NE(std::string(e.what()).find("already exists"), std::string::npos) << e.what();
    EXPECT_NE(e.hint().find("--force"), std::string::npos);
  }
  EXPECT_EQ(readFile(file), "keep me");
  ExportOptions o;
  o.overwrite = true;
  exportBundle(store, "osr", file, o);
  EXPECT_NE(readFile(file), "keep me");
  EXPECT_THROW(exportBundle(store, "osr", work_, o), UsageError); // a directory
  EXPECT_THROW(exportBundle(store, "nope", work_ / "x.nvbox"), Error);
  EXPECT_FALSE(fs::exists(work_ / "x.nvbox"));
}

TEST_F(Bundle, ExportRefusesADamagedImageAndLeavesNoFile) {
  ImageStore store(root_);
  store.add("osr", image_.manifest, image_.files);
  std::string disk = readFile(root_ / "osr" / "root.qcow2");
  disk[100] = static_cast<char>(disk[100] ^ 1);
  writeFile(root_ / "osr" / "root.qcow2", disk);
  try {
    exportBundle(store, "osr", work_ / "osr.nvbox");
    FAIL();
  } catch (const Error &e) {
    EXPECT_NE(std::string(e.what()).find(
                  "cannot export image 'osr': image 'osr' is damaged: part 'root.qcow2'"),
              std::string::npos)
        << e.what();
    EXPECT_NE(e.hint().find("nvbox image verify osr"), std::string::npos);
  }
  std::size_t files = 0;
  for ([[maybe_unused]] const auto &e : fs::directory_iterator(work_)) {
    ++files;
  }
  EXPECT_EQ(files, 1U); // only parts/: neither the bundle nor its temporary file
}

TEST_F(Bundle, ImportRefusesAnExistingNameUnlessReplacing) {
  ImageStore store(root_);
  store.add("osr", image_.manifest, image_.files);
  const fs::path file = work_ / "osr.nvbox";
  exportBundle(store, "osr", file);
  const std::string before = snapshot(root_);
  try {
    importBundle(store, file);
    FAIL();
  } catch (const Error &e) {
    EXPECT_EQ(std::string(e.what()), "cannot import bundle '" + file.string() +
                                         "': image 'osr' already exists in the store");
    EXPECT_NE(e.hint().find("--replace"), std::string::npos);
  }
  EXPECT_EQ(snapshot(root_), before);
  ImportOptions o;
  o.replace = true;
  EXPECT_EQ(importBundle(store, file, o), image_.manifest);
  EXPECT_EQ(snapshot(root_), before);
}

TEST_F(Bundle, ImportFromMemory) {
  ImageStore store(root_);
  const std::string bytes = test::makeTar(test::bundleEntries(image_));
  EXPECT_EQ(importBundle(store, bytes.data(), bytes.size(), "mem"), image_.manifest);
  EXPECT_TRUE(store.verify("osr").ok());
}

TEST_F(Bundle, ImportOfAMissingFileSaysSo) {
  ImageStore store(root_);
  try {
    importBundle(store, work_ / "nope.nvbox");
    FAIL();
  } catch (const Error &e) {
    EXPECT_NE(std::string(e.what()).find("cannot open it: No such file or directory"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(root_));
}

// --- hostile bundles ---------------------------------------------------------

struct Hostile {
  std::string label;
  // Builds the bundle bytes from a valid sample image.
  std::function<std::string(const test::SampleImage &)> build;
  std::string error; // expected part of the message
  ImportOptions options = {};
};

std::ostream &operator<<(std::ostream &out, const Hostile &h) {
  return out << h.label;
}

std::string valid(const test::SampleImage &img) {
  return test::makeTar(test::bundleEntries(img));
}

// The valid entries changed by `edit`, as a zstd tar.
std::function<std::string(const test::SampleImage &)>
entries(std::function<void(std::vector<TarEntry> &)> edit) {
  return [edit](const test::SampleImage &img) {
    auto e = test::bundleEntries(img);
    edit(e);
    return test::makeTar(e);
  };
}

ImportOptions withLimits(std::uint64_t part, std::uint64_t manifest) {
  ImportOptions o;
  o.limits.maxPartSize = part;
  o.limits.maxManifestSize = manifest;
  return o;
}

class HostileBundle : public Bundle, public ::testing::WithParamInterface<Hostile> {};

TEST_P(HostileBundle, IsRefusedAndTheStoreStaysUnchanged) {
  ImageStore store(root_);
  const auto base = test::makeSample(work_ / "base", "base", 1000, 9);
  store.add("base", base.manifest, base.files);
  const fs::path file = work_ / "hostile.nvbox";
  writeFile(file, GetParam().build(image_));

  const std::string before = snapshot(root_);
  try {
    importBundle(store, file, GetParam().options);
    FAIL() << "imported";
  } catch (const Error &e) {
    const std::string what = e.what();
    RecordProperty("error", what + "; " + e.hint()); // shown in --gtest_output=xml reports
    EXPECT_TRUE(what.starts_with("cannot import bundle '" + file.string() + "': ")) << what;
    EXPECT_NE(what.find(GetParam().error), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    EXPECT_FALSE(e.hint().empty());
  }
  EXPECT_EQ(snapshot(root_), before);
  EXPECT_TRUE(store.verify("base").ok());
}

TEST_P(HostileBundle, IsRefusedIntoAFreshStoreWithoutCreatingIt) {
  ImageStore store(root_);
  const std::string bytes = GetParam().build(image_);
  EXPECT_THROW(importBundle(store, bytes.data(), bytes.size(), "mem", GetParam().options), Error);
  EXPECT_FALSE(fs::exists(root_));
}

const std::uint64_t kHuge = std::uint64_t{5} << 30U; // 5 GiB

INSTANTIATE_TEST_SUITE_P(
    Cases, HostileBundle,
    ::testing::Values(
        Hostile{"Symlink", entries([](auto &e) {
                  e[1] = {"vmlinuz", "", TarEntry::Type::Symlink, "/etc/passwd"};
                }),
                "entry 'vmlinuz' is a symbolic link, not a regular file"},
        Hostile{"Hardlink", entries([](auto &e) {
                  e[2] = {"initrd", "", TarEntry::Type::Hardlink, "vmlinuz"};
                }),
                "entry 'initrd' is a hard link, not a regular file"},
        Hostile{"Directory",
                entries([](auto &e) { e[3] = {"root.qcow2", "", TarEntry::Type::Directory}; }),
                "is a directory, not a regular file"},
        Hostile{"CharDevice", entries([](auto &e) {
                  e[3] = {"root.qcow2", "", TarEntry::Type::CharDevice};
                }),
                "entry 'root.qcow2' is a character device, not a regular file"},
        Hostile{"Fifo", entries([](auto &e) { e[3] = {"root.qcow2", "", TarEntry::Type::Fifo}; }),
                "entry 'root.qcow2' is a FIFO, not a regular file"},
        Hostile{"PathTraversal", entries([](auto &e) { e[1].name = "../x"; }),
                "entry '../x' is not a plain file name"},
        Hostile{"DeepTraversal", entries([](auto &e) { e[1].name = "../../../../tmp/vmlinuz"; }),
                "is not a plain file name"},
        Hostile{"Subdirectory", entries([](auto &e) { e[1].name = "boot/vmlinuz"; }),
                "entry 'boot/vmlinuz' is not a plain file name"},
        Hostile{"DotSlash", entries([](auto &e) { e[0].name = "./manifest.json"; }),
                "entry './manifest.json' is not a plain file name"},
        Hostile{"AbsolutePath", entries([](auto &e) { e[1].name = "/tmp/vmlinuz"; }),
                "entry '/tmp/vmlinuz' has an absolute or empty path"},
        Hostile{"HiddenName", entries([](auto &e) { e[1].name = ".vmlinuz"; }),
                "entry '.vmlinuz' is not a valid part file name"},
        Hostile{"ExtraEntry",
                entries([](auto &e) { e.push_back({"extra.bin", "surprise"}); }),
                "entry 'extra.bin' is not listed in the manifest"},
        Hostile{"ExtraEntryBeforeParts",
                entries([](auto &e) { e.insert(e.begin() + 1, {"evil.sh", "rm -rf /"}); }),
                "entry 'evil.sh' is not listed in the manifest"},
        Hostile{"MissingPart", entries([](auto &e) { e.pop_back(); }),
                "the bundle has no entry for the 'disk' part 'root.qcow2'"},
        Hostile{"OnlyManifest", entries([](auto &e) { e.erase(e.begin() + 1, e.end()); }),
                "the bundle has no entry for the 'kernel' part 'vmlinuz'"},
        Hostile{"WrongDigest", entries([](auto &e) {
                  e[3].data[5000] = static_cast<char>(e[3].data[5000] ^ 0x10);
                }),
                "part 'root.qcow2' has sha256 "},
        Hostile{"WrongSize", entries([](auto &e) { e[2].data += "tail"; }),
                "entry 'initrd' is 7011 bytes, the manifest says 7007"},
        Hostile{"DuplicateEntry", entries([](auto &e) { e.push_back(e[1]); }),
                "entry 'vmlinuz' appears twice"},
        Hostile{"DuplicateManifest", entries([](auto &e) { e.push_back(e[0]); }),
                "entry 'manifest.json' appears twice"},
        Hostile{"ManifestNotFirst", entries([](auto &e) { std::swap(e[0], e[1]); }),
                "the first entry is 'vmlinuz', not 'manifest.json'"},
        Hostile{"ManifestLast", entries([](auto &e) { std::rotate(e.begin(), e.begin() + 1, e.end()); }),
                "the first entry is 'vmlinuz', not 'manifest.json'"},
        Hostile{"InvalidManifest", entries([](auto &e) { e[0].data = "{\"name\": 1}"; }),
                "invalid manifest 'manifest.json': missing field 'format_version'"},
        Hostile{"ManifestWithTraversalFile",
                entries([](auto &e) {
                  const std::string s = "\"file\": \"vmlinuz\"";
                  e[0].data.replace(e[0].data.find(s), s.size(), "\"file\": \"../vmlinuz\"");
                }),
                "field 'parts[0].file' must be a plain file name"},
        Hostile{"Truncated",
                [](const test::SampleImage &img) {
                  const std::string b = valid(img);
                  return b.substr(0, b.size() / 2);
                },
                "truncated or damaged"},
        Hostile{"TruncatedInManifest",
                [](const test::SampleImage &img) { return valid(img).substr(0, 40); },
                "cannot import bundle"},
        Hostile{"CorruptedBytes",
                [](const test::SampleImage &img) {
                  std::string b = valid(img);
                  for (std::size_t i = b.size() / 3; i < b.size() / 3 + 64; ++i) {
                    b[i] = static_cast<char>(b[i] ^ 0x5A);
                  }
                  return b;
                },
                "cannot import bundle"},
        Hostile{"CorruptedHeader",
                [](const test::SampleImage &img) {
                  std::string b = valid(img);
                  for (std::size_t i = 4; i < 40; ++i) {
                    b[i] = static_cast<char>(b[i] ^ 0xFF);
                  }
                  return b;
                },
                "cannot import bundle"},
        Hostile{"HugeDeclaredSize",
                [](const test::SampleImage &img) {
                  test::SampleImage big = img;
                  for (Part &p : big.manifest.parts) {
                    if (p.file == "root.qcow2") {
                      p.storedSize = kHuge;
                    }
                  }
                  std::string tar = test::makeTar(test::bundleEntries(big), false);
                  test::patchDeclaredSize(tar, "root.qcow2", kHuge);
                  return test::zstdCompress(tar);
                },
                "part 'root.qcow2' is 5368709120 bytes, above the limit of 4294967296 bytes"},
        Hostile{"HugeDeclaredSizeSmallManifest",
                [](const test::SampleImage &img) {
                  std::string tar = test::makeTar(test::bundleEntries(img), false);
                  test::patchDeclaredSize(tar, "root.qcow2", kHuge);
                  return test::zstdCompress(tar);
                },
                "entry 'root.qcow2' declares 5368709120 bytes, above the limit"},
        Hostile{"PartAboveConfiguredLimit", valid, "above the limit of 1000 bytes",
                withLimits(1000, 1 << 20)},
        Hostile{"ManifestAboveLimit", valid, "manifest.json is", withLimits(1 << 30, 100)},
        Hostile{"PlainTar",
                [](const test::SampleImage &img) {
                  return test::makeTar(test::bundleEntries(img), false);
                },
                "it is not zstd-compressed"},
        Hostile{"Gzip",
                [](const test::SampleImage &img) {
                  return test::makeTar(test::bundleEntries(img), true, true);
                },
                "it is not an nvbox bundle, or it is damaged"},
        Hostile{"Garbage",
                [](const test::SampleImage &) { return test::randomBytes(4096, 42); },
                "it is not an nvbox bundle, or it is damaged"},
        Hostile{"EmptyFile", [](const test::SampleImage &) { return std::string(); },
                "cannot import bundle"},
        Hostile{"EmptyArchive", entries([](auto &e) { e.clear(); }), "the bundle is empty"},
        Hostile{"ZstdOfGarbage",
                [](const test::SampleImage &) {
                  return test::zstdCompress(test::randomBytes(8192, 3));
                },
                "cannot import bundle"}),
    [](const ::testing::TestParamInfo<Hostile> &param) { return param.param.label; });

} // namespace
} // namespace nvbox::images
