// nvbox image push against the real libvirtd at qemu:///system: an image with
// a kernel and an initrd of random bytes and a real (empty) qcow2 disk is
// pushed into a throwaway pool nvbox-test-pool-<pid>-<n> in a temporary
// directory. Checks what lands in the volumes (read back through libvirt),
// that a second push uploads nothing, that a volume damaged on the host is
// uploaded again alone, and the CLI's output. The fixture removes the pool,
// its volumes and the directory even when a test fails.
#include "image_test_util.hpp"
#include "libvirtd_fixture.hpp"
#include "nvbox/error.hpp"
#include "nvbox/image_push.hpp"
#include "nvbox/images/digest.hpp"
#include "nvbox/images/image_store.hpp"
#include "nvbox/xml.hpp"
#include "process.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <sys/stat.h>

namespace nvbox {
namespace {

namespace fs = std::filesystem;
using images::PartRole;

constexpr std::uint64_t kDiskVirtualSize = 64ULL << 20U;

// The content of a volume, read back through a libvirt stream.
std::string download(const virt::Connection &conn, const std::string &path) {
  const virt::StorageVolPtr vol(virStorageVolLookupByPath(conn.get(), path.c_str()));
  const virt::StreamPtr stream(virStreamNew(conn.get(), 0));
  if (!vol || !stream || virStorageVolDownload(vol.get(), stream.get(), 0, 0, 0) != 0) {
    ADD_FAILURE() << "cannot download " << path << ": " << virt::lastError();
    return {};
  }
  std::string data;
  char buf[65536];
  int n = 0;
  while ((n = virStreamRecv(stream.get(), buf, sizeof buf)) > 0) {
    data.append(buf, static_cast<std::size_t>(n));
  }
  EXPECT_EQ(n, 0) << virt::lastError();
  EXPECT_EQ(virStreamFinish(stream.get()), 0) << virt::lastError();
  return data;
}

// Identifies one version of a file: a re-upload deletes and recreates it.
std::string fileIdentity(const fs::path &path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return std::to_string(st.st_ino) + "@" + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec);
}

std::vector<bool> uploadedFlags(const PushReport &r) {
  std::vector<bool> flags;
  for (const auto &p : r.parts) {
    flags.push_back(p.uploaded);
  }
  return flags;
}

class ImagePushHost : public test::LibvirtdTest {
protected:
  void SetUp() override {
    LibvirtdTest::SetUp();
    ASSERT_FALSE(HasFatalFailure());
    spec_ = {uniqueName("pool"), (tmp_.path() / "pool").string()};
    trackPool(spec_.name);
    manifest_ = addImage("osr", 300 * 1024, true);
  }

  // Adds image `name` to the store; its disk is `diskSize` random bytes, or
  // an empty qcow2 when `qcow2` (which libvirt probes as such).
  images::Manifest addImage(const std::string &name, std::size_t diskSize, bool qcow2) {
    auto sample = images::test::makeSample(tmp_.path() / ("src-" + name), name, diskSize);
    if (qcow2) {
      const fs::path disk = sample.files.at(PartRole::Disk);
      fs::remove(disk);
      const auto made = test::run({"qemu-img", "create", "-q", "-f", "qcow2", disk.string(),
                                   std::to_string(kDiskVirtualSize)});
      EXPECT_EQ(made.exitCode, 0) << made.err;
      const images::FileDigest digest = images::digestFile(disk);
      for (auto &part : sample.manifest.parts) {
        if (part.role == PartRole::Disk) {
          part.sha256 = digest.sha256;
          part.storedSize = digest.size;
          part.rawSize = kDiskVirtualSize;
        }
      }
    }
    return store_.add(name, sample.manifest, sample.files);
  }

  fs::path storedFile(const images::Manifest &m, PartRole role) const {
    return store_.imageDir(m.name) / m.part(role)->file;
  }

  fs::path volumeFile(const images::Manifest &m, PartRole role) const {
    return fs::path(spec_.path) / volumeName(*m.part(role));
  }

  // Every part's volume holds exactly the stored part.
  void expectVolumesHoldTheImage(const images::Manifest &m) {
    for (const PartRole role : images::kAllRoles) {
      EXPECT_EQ(download(conn(), volumeFile(m, role).string()),
                images::test::readFile(storedFile(m, role)))
          << images::toString(role);
    }
  }

  images::test::TempDir tmp_;
  images::ImageStore store_{tmp_.path() / "store"};
  PoolSpec spec_;
  images::Manifest manifest_;
};

TEST_F(ImagePushHost, UploadsEveryPartIntoAnAutostartedPool) {
  const PushReport r = pushImage(conn(), store_, "osr", spec_);
  EXPECT_EQ(r.image, "osr");
  EXPECT_EQ(r.uri, "qemu:///system");
  EXPECT_EQ(r.pool, spec_.name);
  EXPECT_EQ(uploadedFlags(r), (std::vector<bool>{true, true, true}));
  EXPECT_EQ(r.bytesUploaded, manifest_.storedSize());
  ASSERT_EQ(r.parts.size(), 3U);
  for (std::size_t i = 0; i < r.parts.size(); ++i) {
    const images::Part &part = manifest_.parts[i];
    EXPECT_EQ(r.parts[i].role, part.role);
    EXPECT_EQ(r.parts[i].volume, volumeName(part));
    EXPECT_EQ(r.parts[i].path, (fs::path(spec_.path) / volumeName(part)).string());
    EXPECT_EQ(r.parts[i].bytes, part.storedSize);
  }
  expectVolumesHoldTheImage(manifest_);

  const virt::StoragePoolPtr pool(virStoragePoolLookupByName(conn().get(), spec_.name.c_str()));
  ASSERT_TRUE(pool);
  int autostart = 0;
  virStoragePoolGetAutostart(pool.get(), &autostart);
  EXPECT_EQ(autostart, 1);
  EXPECT_EQ(virStoragePoolIsPersistent(pool.get()), 1);

  // After the refresh libvirt sees the disk as the qcow2 it is, with its
  // virtual size as capacity; nvbox goes by the file's size, so that is fine.
  const virt::StorageVolPtr disk(
      virStorageVolLookupByPath(conn().get(), volumeFile(manifest_, PartRole::Disk).c_str()));
  ASSERT_TRUE(disk);
  std::unique_ptr<char, decltype(&free)> xml(virStorageVolGetXMLDesc(disk.get(), 0), free);
  const XmlDocument doc(xml.get(), "volume XML");
  EXPECT_EQ(doc.first("/volume/target/format/@type").value_or(""), "qcow2");
  EXPECT_EQ(doc.first("/volume/capacity").value_or(""), std::to_string(kDiskVirtualSize));

  const std::vector<PushedPart> found = findPushedImage(conn(), manifest_, spec_);
  ASSERT_EQ(found.size(), 3U);
  for (std::size_t i = 0; i < found.size(); ++i) {
    EXPECT_EQ(found[i].volume, r.parts[i].volume);
    EXPECT_EQ(found[i].path, r.parts[i].path);
  }
}

TEST_F(ImagePushHost, ASecondPushReadsBackAndUploadsNothing) {
  (void)pushImage(conn(), store_, "osr", spec_);
  std::vector<std::string> before;
  for (const PartRole role : images::kAllRoles) {
    before.push_back(fileIdentity(volumeFile(manifest_, role)));
  }
  std::vector<std::string> checked;
  const auto progress = [&](PushStep step, std::string_view subject, std::uint64_t done,
                            std::uint64_t total) {
    EXPECT_NE(step, PushStep::Upload) << subject;
    if (step == PushStep::CheckVolume && done == total) {
      checked.emplace_back(subject);
    }
  };
  const PushReport r = pushImage(conn(), store_, "osr", spec_, progress);
  EXPECT_EQ(uploadedFlags(r), (std::vector<bool>{false, false, false}));
  EXPECT_EQ(r.bytesUploaded, 0U);
  EXPECT_EQ(r.uploadSeconds, 0.0);
  EXPECT_EQ(checked.size(), 3U);
  std::vector<std::string> after;
  for (const PartRole role : images::kAllRoles) {
    after.push_back(fileIdentity(volumeFile(manifest_, role)));
  }
  EXPECT_EQ(after, before);
}

TEST_F(ImagePushHost, AVolumeChangedOnTheHostIsUploadedAgainAlone) {
  (void)pushImage(conn(), store_, "osr", spec_);
  const fs::path initrd = volumeFile(manifest_, PartRole::Initrd);
  {
    std::fstream f(initrd, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(1000);
    f.write("XXXX", 4);
  }
  ASSERT_EQ(fs::file_size(initrd), manifest_.part(PartRole::Initrd)->storedSize);
  const PushReport r = pushImage(conn(), store_, "osr", spec_);
  EXPECT_EQ(uploadedFlags(r), (std::vector<bool>{false, true, false}));
  EXPECT_EQ(r.bytesUploaded, manifest_.part(PartRole::Initrd)->storedSize);
  expectVolumesHoldTheImage(manifest_);
}

TEST_F(ImagePushHost, AShortVolumeIsNotFoundAndIsUploadedAgain) {
  (void)pushImage(conn(), store_, "osr", spec_);
  // What a crash halfway through an upload leaves.
  fs::resize_file(volumeFile(manifest_, PartRole::Kernel), 1000);
  try {
    (void)findPushedImage(conn(), manifest_, spec_);
    ADD_FAILURE() << "expected an error";
  } catch (const Error &e) {
    EXPECT_STREQ(e.what(), "image 'osr' is not on host 'qemu:///system'");
    EXPECT_EQ(e.hint(),
              "run 'nvbox image push osr --host qemu:///system --pool " + spec_.name + "'");
  }
  const PushReport r = pushImage(conn(), store_, "osr", spec_);
  EXPECT_EQ(uploadedFlags(r), (std::vector<bool>{true, false, false}));
  expectVolumesHoldTheImage(manifest_);
  EXPECT_EQ(findPushedImage(conn(), manifest_, spec_).size(), 3U);
}

TEST_F(ImagePushHost, ImagesSharingAPartShareItsVolume) {
  (void)pushImage(conn(), store_, "osr", spec_);
  // Same seed, so the same kernel and initrd; another disk.
  const images::Manifest other = addImage("osr2", 200 * 1024, false);
  const PushReport r = pushImage(conn(), store_, "osr2", spec_);
  EXPECT_EQ(uploadedFlags(r), (std::vector<bool>{false, false, true}));
  expectVolumesHoldTheImage(other);
  expectVolumesHoldTheImage(manifest_);
}

// A 10 MiB part crosses many 1 MiB chunks; prints the upload time.
TEST_F(ImagePushHost, UploadsAPartOfManyChunksWithProgress) {
  const images::Manifest big = addImage("big", 10U << 20U, false);
  const std::string disk = volumeName(*big.part(PartRole::Disk));
  std::vector<std::uint64_t> done;
  const auto progress = [&](PushStep step, std::string_view subject, std::uint64_t bytes,
                            std::uint64_t total) {
    if (step == PushStep::Upload && subject == disk) {
      EXPECT_EQ(total, 10U << 20U);
      done.push_back(bytes);
    }
  };
  const PushReport r = pushImage(conn(), store_, "big", spec_, progress);
  ASSERT_EQ(done.size(), 11U); // 0, then after each chunk
  EXPECT_TRUE(std::is_sorted(done.begin(), done.end()));
  EXPECT_EQ(done.back(), 10U << 20U);
  expectVolumesHoldTheImage(big);
  std::cout << "uploaded " << r.bytesUploaded << " bytes in " << r.uploadSeconds << " s ("
            << static_cast<double>(r.bytesUploaded) / r.uploadSeconds / (1 << 20U)
            << " MiB/s); push took " << r.seconds << " s\n";
  RecordProperty("upload_seconds", std::to_string(r.uploadSeconds));
}

// The lines of text, without their '\n'.
std::vector<std::string> linesOf(const std::string &text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    lines.push_back(line);
  }
  return lines;
}

TEST_F(ImagePushHost, CliPrintsAPartLineEachAndATotal) {
  const std::vector<std::string> args{
      "image",  "push",     "osr",         "--store", store_.root().string(),
      "--pool", spec_.name, "--pool-path", spec_.path};
  std::vector<std::string> volumes;
  for (const PartRole role : images::kAllRoles) {
    volumes.push_back(volumeName(*manifest_.part(role)));
  }
  const std::size_t width = volumes[2].size() + 2; // root.qcow2 is the longest file name
  const auto partLines = [&](const std::vector<std::string> &results) {
    std::vector<std::string> lines;
    const char *roles[] = {"kernel  ", "initrd  ", "disk    "};
    for (std::size_t i = 0; i < 3; ++i) {
      lines.push_back(roles[i] + volumes[i] + std::string(width - volumes[i].size(), ' ') +
                      results[i]);
    }
    return lines;
  };

  const auto first = test::nvbox(args);
  ASSERT_EQ(first.exitCode, 0) << first.err;
  std::vector<std::string> lines = linesOf(first.out);
  ASSERT_EQ(lines.size(), 4U) << first.out;
  const std::string total = lines.back();
  lines.pop_back();
  EXPECT_EQ(lines, partLines({"uploaded 0.0 MiB", "uploaded 0.0 MiB", "uploaded 0.2 MiB"}));
  EXPECT_EQ(total.rfind("pushed image 'osr' to host 'local', pool '" + spec_.name +
                            "': 0.2 MiB uploaded in ",
                        0),
            0U)
      << total;
  EXPECT_NE(total.find(" MiB/s), "), std::string::npos) << total;

  std::vector<std::string> withJson = args;
  withJson.emplace_back("--json");
  const auto again = test::nvbox(withJson);
  ASSERT_EQ(again.exitCode, 0) << again.err;
  const auto json = nlohmann::json::parse(again.out);
  EXPECT_EQ(json["host"], "local");
  EXPECT_EQ(json["uri"], "qemu:///system");
  EXPECT_EQ(json["image"], "osr");
  EXPECT_EQ(json["pool"], spec_.name);
  EXPECT_EQ(json["bytes_uploaded"], 0);
  ASSERT_EQ(json["parts"].size(), 3U);
  EXPECT_EQ(json["parts"][1]["role"], "initrd");
  EXPECT_EQ(json["parts"][1]["volume"], volumes[1]);
  EXPECT_EQ(json["parts"][1]["uploaded"], false);
  EXPECT_EQ(json["parts"][1]["bytes"], manifest_.part(PartRole::Initrd)->storedSize);
  EXPECT_EQ(json["parts"][1]["path"], (fs::path(spec_.path) / volumes[1]).string());

  const auto third = test::nvbox(args);
  ASSERT_EQ(third.exitCode, 0) << third.err;
  lines = linesOf(third.out);
  ASSERT_EQ(lines.size(), 4U) << third.out;
  EXPECT_EQ(lines.back().rfind("image 'osr' is already on host 'local', pool '" + spec_.name +
                                   "': nothing uploaded (",
                               0),
            0U)
      << lines.back();
  lines.pop_back();
  EXPECT_EQ(lines, partLines({"already there", "already there", "already there"}));
}

} // namespace
} // namespace nvbox
