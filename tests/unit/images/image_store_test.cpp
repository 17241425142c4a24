// ImageStore: the default root, the on-disk layout, list/get/verify/remove,
// and that add() is atomic: any failure leaves the store as it was.
#include "image_test_util.hpp"
#include "nvbox/error.hpp"
#include "nvbox/images/digest.hpp"
#include "nvbox/images/image_store.hpp"

#include <gtest/gtest.h>
#include <stdexcept>

namespace nvbox::images {
namespace {

namespace fs = std::filesystem;
using test::readFile;
using test::snapshot;
using test::writeFile;

class Store : public ::testing::Test {
protected:
  void SetUp() override {
    tmp_ = std::make_unique<test::TempDir>();
    root_ = tmp_->path() / "store";
    work_ = tmp_->path() / "work";
  }
  void TearDown() override { tmp_.reset(); }

  test::SampleImage sample(const std::string &name, std::uint32_t seed = 1) {
    return test::makeSample(work_ / (name + std::to_string(seed)), name, 300 * 1024, seed);
  }

  // Runs f, expects an nvbox::Error containing `message`, and checks that the
  // store is byte-for-byte what it was.
  template <class F> void expectRefused(F &&f, const std::string &message) {
    const std::string before = snapshot(root_);
    try {
      f();
      ADD_FAILURE() << "no error; expected '" << message << "'";
    } catch (const Error &e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    }
    EXPECT_EQ(snapshot(root_), before);
  }

  std::unique_ptr<test::TempDir> tmp_;
  fs::path root_;
  fs::path work_;
};

TEST(StoreRoot, DefaultFollowsUserAndXdg) {
  EXPECT_EQ(ImageStore::defaultRoot(true, "/x", "/home/u"), "/var/lib/nvbox/images");
  EXPECT_EQ(ImageStore::defaultRoot(false, "/data", "/home/u"), "/data/nvbox/images");
  EXPECT_EQ(ImageStore::defaultRoot(false, "", "/home/u"), "/home/u/.local/share/nvbox/images");
  // A relative XDG_DATA_HOME is ignored, as the XDG spec says.
  EXPECT_EQ(ImageStore::defaultRoot(false, "rel", "/home/u"), "/home/u/.local/share/nvbox/images");
  EXPECT_THROW((void)ImageStore::defaultRoot(false, "", ""), Error);
  EXPECT_FALSE(ImageStore::defaultRoot().empty());
  EXPECT_THROW(ImageStore(""), UsageError);
}

TEST_F(Store, AddLaysOutManifestAndParts) {
  ImageStore store(root_);
  const auto img = sample("osr");
  const Manifest m = store.add("osr", img.manifest, img.files);
  EXPECT_EQ(m, img.manifest);
  EXPECT_EQ(readFile(root_ / "osr" / "manifest.json"), img.manifest.dump());
  for (const auto &[file, bytes] : img.contents) {
    EXPECT_EQ(readFile(root_ / "osr" / file), bytes) << file;
  }
  // Nothing else: no staging directory left behind.
  std::vector<std::string> names;
  for (const auto &e : fs::directory_iterator(root_)) {
    names.push_back(e.path().filename().string());
  }
  EXPECT_EQ(names, std::vector<std::string>{"osr"});
  EXPECT_EQ(fs::status(root_ / "osr").permissions() & fs::perms::all,
            fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                fs::perms::others_read | fs::perms::others_exec);
  EXPECT_TRUE(store.contains("osr"));
  EXPECT_EQ(store.imageDir("osr"), root_ / "osr");
}

TEST_F(Store, AddStoresUnderTheGivenName) {
  ImageStore store(root_);
  const auto img = sample("osr");
  const Manifest m = store.add("osr-copy", img.manifest, img.files);
  EXPECT_EQ(m.name, "osr-copy");
  EXPECT_EQ(store.get("osr-copy").name, "osr-copy");
  EXPECT_FALSE(store.contains("osr"));
}

TEST_F(Store, ListIsSortedAndSkipsNonImages) {
  ImageStore store(root_);
  EXPECT_TRUE(store.list().empty()); // no root yet
  const auto b = sample("beta", 2);
  const auto a = sample("alpha", 3);
  store.add("beta", b.manifest, b.files);
  store.add("alpha", a.manifest, a.files);
  fs::create_directories(root_ / ".staging-abc123");
  writeFile(root_ / "stray-file", "x");
  fs::create_directories(root_ / "Not-An-Image");
  fs::create_directories(root_ / "broken");
  writeFile(root_ / "broken" / "manifest.json", "{");

  const auto images = store.list();
  ASSERT_EQ(images.size(), 3U);
  EXPECT_EQ(images[0].name, "alpha");
  ASSERT_TRUE(images[0].manifest.has_value());
  EXPECT_EQ(*images[0].manifest, a.manifest);
  EXPECT_EQ(images[1].name, "beta");
  EXPECT_EQ(images[2].name, "broken");
  EXPECT_FALSE(images[2].manifest.has_value());
  EXPECT_NE(images[2].problem.find("not valid JSON"), std::string::npos) << images[2].problem;
}

TEST_F(Store, GetMissingImageSaysSoWithAHint) {
  ImageStore store(root_);
  try {
    (void)store.get("osr");
    FAIL();
  } catch (const Error &e) {
    EXPECT_EQ(std::string(e.what()), "cannot find image 'osr'");
    EXPECT_NE(e.hint().find("nvbox image list"), std::string::npos) << e.hint();
  }
  EXPECT_THROW((void)store.get("../etc"), UsageError);
  EXPECT_THROW((void)store.get("Osr"), UsageError);
}

TEST_F(Store, GetRefusesAManifestForAnotherName) {
  ImageStore store(root_);
  const auto img = sample("osr");
  store.add("osr", img.manifest, img.files);
  fs::rename(root_ / "osr", root_ / "other");
  try {
    (void)store.get("other");
    FAIL();
  } catch (const Error &e) {
    EXPECT_NE(std::string(e.what()).find("names image 'osr', not 'other'"), std::string::npos);
  }
}

TEST_F(Store, VerifyPassesAnIntactImage) {
  ImageStore store(root_);
  const auto img = sample("osr");
  store.add("osr", img.manifest, img.files);
  const VerifyReport r = store.verify("osr");
  EXPECT_TRUE(r.ok());
  ASSERT_EQ(r.parts.size(), 3U);
  for (const PartCheck &c : r.parts) {
    EXPECT_EQ(c.status, PartStatus::Ok);
    EXPECT_EQ(c.actualSha256, c.expected.sha256);
    EXPECT_EQ(c.actualSize, c.expected.storedSize);
    EXPECT_TRUE(c.detail.empty());
  }
}

TEST_F(Store, VerifyFindsAFlippedByte) {
  ImageStore store(root_);
  const auto img = sample("osr");
  store.add("osr", img.manifest, img.files);
  std::string disk = readFile(root_ / "osr" / "root.qcow2");
  disk[disk.size() / 2] = static_cast<char>(disk[disk.size() / 2] ^ 0x01);
  writeFile(root_ / "osr" / "root.qcow2", disk);
  const VerifyReport r = store.verify("osr");
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.parts[0].status, PartStatus::Ok);
  EXPECT_EQ(r.parts[1].status, PartStatus::Ok);
  EXPECT_EQ(r.parts[2].status, PartStatus::WrongDigest);
  EXPECT_EQ(r.parts[2].actualSha256, sha256Hex(disk));
  EXPECT_NE(r.parts[2].detail.find("the manifest says " + img.manifest.parts[2].sha256),
            std::string::npos);
  EXPECT_EQ(toString(r.parts[2].status), "wrong-digest");
}

TEST_F(Store, VerifyFindsATruncatedAndAMissingPart) {
  ImageStore store(root_);
  const auto img = sample("osr");
  store.add("osr", img.manifest, img.files);
  fs::resize_file(root_ / "osr" / "initrd", 100);
  fs::remove(root_ / "osr" / "vmlinuz");
  const VerifyReport r = store.verify("osr");
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.parts[0].status, PartStatus::Missing);
  EXPECT_EQ(r.parts[1].status, PartStatus::WrongSize);
  EXPECT_EQ(r.parts[1].actualSize, 100U);
  EXPECT_EQ(r.parts[1].detail, "size 100 bytes, the manifest says 7007");
  EXPECT_EQ(r.parts[2].status, PartStatus::Ok);
}

TEST_F(Store, RemoveDeletesOnlyThatImage) {
  ImageStore store(root_);
  const auto a = sample("a", 1);
  const auto b = sample("b", 2);
  store.add("a", a.manifest, a.files);
  store.add("b", b.manifest, b.files);
  store.remove("a");
  EXPECT_FALSE(store.contains("a"));
  EXPECT_FALSE(fs::exists(root_ / "a"));
  EXPECT_TRUE(store.verify("b").ok());
  std::size_t entries = 0;
  for ([[maybe_unused]] const auto &e : fs::directory_iterator(root_)) {
    ++entries;
  }
  EXPECT_EQ(entries, 1U); // no .removing-* left
  expectRefused([&] { store.remove("a"); }, "cannot find image 'a'");
}

TEST_F(Store, RemoveWorksOnADamagedImage) {
  ImageStore store(root_);
  fs::create_directories(root_ / "junk");
  store.remove("junk");
  EXPECT_FALSE(fs::exists(root_ / "junk"));
}

TEST_F(Store, AddRefusesAnExistingNameUnlessReplacing) {
  ImageStore store(root_);
  const auto first = sample("osr", 1);
  const auto second = sample("osr", 2);
  store.add("osr", first.manifest, first.files);
  expectRefused([&] { store.add("osr", second.manifest, second.files); },
                "cannot add image 'osr': image 'osr' already exists in the store");
  store.add("osr", second.manifest, second.files, /*replace=*/true);
  EXPECT_EQ(store.get("osr"), second.manifest);
  EXPECT_EQ(readFile(root_ / "osr" / "root.qcow2"), second.contents.at("root.qcow2"));
  EXPECT_TRUE(store.verify("osr").ok());
  std::size_t entries = 0;
  for ([[maybe_unused]] const auto &e : fs::directory_iterator(root_)) {
    ++entries;
  }
  EXPECT_EQ(entries, 1U); // the old image is gone, no staging left
}

TEST_F(Store, AddIsAtomicWhenAPartDoesNotMatch) {
  ImageStore store(root_);
  const auto base = sample("base", 5);
  store.add("base", base.manifest, base.files);
  auto img = sample("osr");
  // Same size, different bytes: only the digest can tell.
  std::string disk = img.contents.at("root.qcow2");
  disk[10] = static_cast<char>(disk[10] ^ 0x40);
  writeFile(img.files.at(PartRole::Disk), disk);
  expectRefused([&] { store.add("osr", img.manifest, img.files); },
                "part 'root.qcow2' has sha256 " + sha256Hex(disk) + ", the manifest says");
  // Longer than the manifest says.
  writeFile(img.files.at(PartRole::Disk), img.contents.at("root.qcow2") + "x");
  expectRefused([&] { store.add("osr", img.manifest, img.files); },
                "part 'root.qcow2' is longer than the 307200 bytes the manifest says");
  // Shorter.
  writeFile(img.files.at(PartRole::Disk), "short");
  expectRefused([&] { store.add("osr", img.manifest, img.files); },
                "part 'root.qcow2' is 5 bytes, the manifest says 307200");
  // A missing source file.
  fs::remove(img.files.at(PartRole::Disk));
  expectRefused([&] { store.add("osr", img.manifest, img.files); }, "cannot open '");
}

TEST_F(Store, AddRefusesBadArguments) {
  ImageStore store(root_);
  const auto base = sample("base", 5);
  store.add("base", base.manifest, base.files);
  auto img = sample("osr");
  auto files = img.files;
  files.erase(PartRole::Initrd);
  expectRefused([&] { store.add("osr", img.manifest, files); },
                "no file given for the 'initrd' part");
  expectRefused([&] { store.add("Bad/Name", img.manifest, img.files); },
                "invalid image name 'Bad/Name'");
  Manifest broken = img.manifest;
  broken.parts[0].file = "../escape";
  expectRefused([&] { store.add("osr", broken, img.files); }, "field 'parts[0].file'");
}

TEST_F(Store, AFailedFirstAddLeavesNoRootBehind) {
  ImageStore store(root_);
  auto img = sample("osr");
  writeFile(img.files.at(PartRole::Kernel), "not the kernel");
  EXPECT_THROW(store.add("osr", img.manifest, img.files), Error);
  EXPECT_FALSE(fs::exists(root_));
}

TEST_F(Store, StagedPartStopsReadingOnceItIsTooLong) {
  ImageStore store(root_);
  const auto img = sample("osr");
  StagedImage staged = store.stage(img.manifest);
  const fs::path stagingDir = staged.dir();
  EXPECT_TRUE(fs::is_directory(stagingDir));
  EXPECT_TRUE(stagingDir.filename().string().starts_with(".staging-"));
  std::uint64_t delivered = 0;
  // An endless source: must be cut off right after the declared size.
  const auto endless = [&](char *buf, std::size_t capacity) {
    std::fill(buf, buf + capacity, 'z');
    delivered += capacity;
    return capacity;
  };
  EXPECT_THROW(staged.writePart("vmlinuz", endless), Error);
  EXPECT_LE(delivered, img.manifest.parts[0].storedSize + 1);
  EXPECT_FALSE(fs::exists(stagingDir / "vmlinuz"));
  EXPECT_THROW(staged.writePart("not-a-part", endless), Error);
  EXPECT_THROW(staged.commit(false), Error); // parts missing
  {
    StagedImage moved = std::move(staged);
    EXPECT_TRUE(fs::is_directory(stagingDir));
  }
  EXPECT_FALSE(fs::exists(stagingDir));
  EXPECT_FALSE(fs::exists(root_)); // created by stage(), removed again
}

TEST_F(Store, StagedPartCannotArriveTwice) {
  ImageStore store(root_);
  const auto img = sample("osr");
  StagedImage staged = store.stage(img.manifest);
  const std::string data = img.contents.at("vmlinuz");
  const auto source = [&data] {
    return [&data, offset = std::size_t{0}](char *buf, std::size_t capacity) mutable {
      const std::size_t n = std::min(capacity, data.size() - offset);
      std::copy_n(data.data() + offset, n, buf);
      offset += n;
      return n;
    };
  };
  staged.writePart("vmlinuz", source());
  try {
    staged.writePart("vmlinuz", source());
    FAIL();
  } catch (const Error &e) {
    EXPECT_EQ(std::string(e.what()), "part 'vmlinuz' arrives twice");
  }
}

} // namespace
} // namespace nvbox::images
