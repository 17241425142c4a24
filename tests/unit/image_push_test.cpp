// Pushing images (nvbox/image_push.hpp) against libvirt's test driver: the
// storage pool set-up, volume names, and everything refused before or instead
// of an upload, also through `nvbox image push`. The test driver implements
// neither volume upload nor download, so uploads and the skip by digest are
// tested against the real libvirtd in tests/integration/image_push_host_test.cpp.
#include "app.hpp"
#include "image_test_util.hpp"
#include "nvbox/error.hpp"
#include "nvbox/image_push.hpp"
#include "nvbox/images/image_store.hpp"
#include "nvbox/xml.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <sstream>

namespace nvbox {
namespace {

namespace fs = std::filesystem;

constexpr const char *kTestUri = "test:///default";

// The error f() throws; fails the test when it throws none.
template <class F> Error errorOf(F &&f) {
  try {
    f();
  } catch (const Error &e) {
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    return e;
  }
  ADD_FAILURE() << "no error thrown";
  return Error("no error thrown");
}

bool poolExists(const virt::Connection &conn, const std::string &name) {
  return virt::StoragePoolPtr(virStoragePoolLookupByName(conn.get(), name.c_str())) != nullptr;
}

std::string uuidOf(virStoragePoolPtr pool) {
  char uuid[VIR_UUID_STRING_BUFLEN] = {};
  virStoragePoolGetUUIDString(pool, uuid);
  return uuid;
}

int autostartOf(virStoragePoolPtr pool) {
  int autostart = -1;
  virStoragePoolGetAutostart(pool, &autostart);
  return autostart;
}

XmlDocument xmlOf(virStoragePoolPtr pool) {
  std::unique_ptr<char, decltype(&free)> xml(virStoragePoolGetXMLDesc(pool, 0), free);
  return {xml ? xml.get() : "", "pool XML"};
}

std::vector<std::string> volumesOf(virStoragePoolPtr pool) {
  virStorageVolPtr *vols = nullptr;
  const int n = virStoragePoolListAllVolumes(pool, &vols, 0);
  std::vector<std::string> names;
  for (int i = 0; i < n; ++i) {
    const virt::StorageVolPtr vol(vols[i]);
    names.emplace_back(virStorageVolGetName(vol.get()));
  }
  free(vols);
  return names;
}

TEST(StoragePool, CreatesAPersistentAutostartedActiveDirPool) {
  const auto conn = virt::Connection::open(kTestUri);
  const PoolSpec spec{"nvbox-unit", "/srv/nvbox-unit"};
  const virt::StoragePoolPtr pool = ensureStoragePool(conn, spec);
  ASSERT_TRUE(pool);
  EXPECT_EQ(virStoragePoolIsActive(pool.get()), 1);
  EXPECT_EQ(virStoragePoolIsPersistent(pool.get()), 1);
  EXPECT_EQ(autostartOf(pool.get()), 1);
  const XmlDocument xml = xmlOf(pool.get());
  EXPECT_EQ(xml.first("/pool/@type").value_or(""), "dir");
  EXPECT_EQ(xml.first("/pool/name").value_or(""), "nvbox-unit");
  EXPECT_EQ(xml.first("/pool/target/path").value_or(""), "/srv/nvbox-unit");
}

TEST(StoragePool, IsIdempotent) {
  const auto conn = virt::Connection::open(kTestUri);
  const PoolSpec spec{"nvbox-unit", "/srv/nvbox-unit"};
  const std::string first = uuidOf(ensureStoragePool(conn, spec).get());
  const virt::StoragePoolPtr again = ensureStoragePool(conn, spec);
  EXPECT_EQ(uuidOf(again.get()), first);
  EXPECT_EQ(virStoragePoolIsActive(again.get()), 1);
}

TEST(StoragePool, StartsAnInactivePoolWhereverItIs) {
  const auto conn = virt::Connection::open(kTestUri);
  const virt::StoragePoolPtr defined(virStoragePoolDefineXML(
      conn.get(),
      "<pool type='dir'><name>nvbox-unit</name><target><path>/elsewhere</path></target></pool>",
      0));
  ASSERT_TRUE(defined);
  ASSERT_EQ(virStoragePoolIsActive(defined.get()), 0);
  ASSERT_EQ(autostartOf(defined.get()), 0);

  const virt::StoragePoolPtr pool = ensureStoragePool(conn, {"nvbox-unit", "/srv/nvbox-unit"});
  EXPECT_EQ(uuidOf(pool.get()), uuidOf(defined.get()));
  EXPECT_EQ(virStoragePoolIsActive(pool.get()), 1);
  EXPECT_EQ(autostartOf(pool.get()), 1);
  EXPECT_EQ(xmlOf(pool.get()).first("/pool/target/path").value_or(""), "/elsewhere");
}

TEST(StoragePool, QuotesNameAndPathIntoTheXml) {
  const auto conn = virt::Connection::open(kTestUri);
  const virt::StoragePoolPtr pool = ensureStoragePool(conn, {"nvbox-a&b", "/srv/<a>&'b'"});
  EXPECT_EQ(xmlOf(pool.get()).first("/pool/name").value_or(""), "nvbox-a&b");
  EXPECT_EQ(xmlOf(pool.get()).first("/pool/target/path").value_or(""), "/srv/<a>&'b'");
}

TEST(StoragePool, DefaultsToNvboxUnderLibvirtImages) {
  const PoolSpec spec;
  EXPECT_EQ(spec.name, "nvbox");
  EXPECT_EQ(spec.path, "/var/lib/libvirt/images/nvbox");
}

TEST(VolumeName, IsTheDigestPrefixAndTheFile) {
  images::Part part;
  part.role = images::PartRole::Disk;
  part.file = "root.qcow2";
  part.sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  EXPECT_EQ(volumeName(part), "nvbox-0123456789abcdef01234567-root.qcow2");
  images::Part renamed = part;
  renamed.file = "disk.qcow2";
  EXPECT_EQ(volumeName(renamed), "nvbox-0123456789abcdef01234567-disk.qcow2");
  images::Part other = part;
  other.sha256[23] = 'f';
  EXPECT_NE(volumeName(other), volumeName(part));
}

// An image 'osr' in a temporary store, and a connection to the test driver.
class Push : public ::testing::Test {
protected:
  void SetUp() override {
    const auto sample = images::test::makeSample(tmp_.path() / "src", "osr");
    manifest_ = store_.add("osr", sample.manifest, sample.files);
  }

  images::test::TempDir tmp_;
  images::ImageStore store_{tmp_.path() / "store"};
  images::Manifest manifest_;
  virt::Connection conn_ = virt::Connection::open(kTestUri);
  PoolSpec spec_{"nvbox-unit", "/srv/nvbox-unit"};
};

TEST_F(Push, RefusesAnUnknownImageBeforeTouchingTheHost) {
  const Error e = errorOf([&] { (void)pushImage(conn_, store_, "nope", spec_); });
  EXPECT_STREQ(e.what(), "cannot find image 'nope'");
  EXPECT_FALSE(poolExists(conn_, spec_.name));
}

TEST_F(Push, RefusesADamagedImageBeforeTouchingTheHost) {
  const fs::path initrd = store_.imageDir("osr") / "initrd";
  std::string bytes = images::test::readFile(initrd);
  bytes[100] = static_cast<char>(bytes[100] ^ 1);
  images::test::writeFile(initrd, bytes);
  const Error e = errorOf([&] { (void)pushImage(conn_, store_, "osr", spec_); });
  EXPECT_EQ(std::string(e.what()).rfind("image 'osr' is damaged: part 'initrd': sha256 ", 0), 0U)
      << e.what();
  EXPECT_NE(e.hint().find("'nvbox image verify osr'"), std::string::npos) << e.hint();
  EXPECT_FALSE(poolExists(conn_, spec_.name));
}

TEST_F(Push, AFailedUploadNamesHostVolumeAndReasonAndLeavesNoVolume) {
  std::vector<std::string> steps;
  const auto progress = [&](PushStep step, std::string_view subject, std::uint64_t done,
                            std::uint64_t total) {
    steps.push_back(std::to_string(static_cast<int>(step)) + " " + std::string(subject) + " " +
                    std::to_string(done) + "/" + std::to_string(total));
  };
  const Error e = errorOf([&] { (void)pushImage(conn_, store_, "osr", spec_, progress); });
  const std::string volume = volumeName(*manifest_.part(images::PartRole::Kernel));
  EXPECT_EQ(std::string(e.what()),
            "cannot upload part 'vmlinuz' of image 'osr' to volume '" + volume +
                "' in pool 'nvbox-unit' on host 'test:///default': this function is not "
                "supported by the connection driver: virStorageVolUpload");
  EXPECT_EQ(e.hint(), "the volume was removed again; check with 'virsh -c test:///default "
                      "pool-info nvbox-unit' and push again");
  const virt::StoragePoolPtr pool(virStoragePoolLookupByName(conn_.get(), "nvbox-unit"));
  ASSERT_TRUE(pool);
  EXPECT_EQ(virStoragePoolIsActive(pool.get()), 1);
  EXPECT_EQ(volumesOf(pool.get()), std::vector<std::string>{});
  // The image was verified first; no upload progress before the failure.
  EXPECT_EQ(steps, std::vector<std::string>{"0 osr 0/" + std::to_string(manifest_.storedSize())});
}

TEST_F(Push, FindSaysAnImageIsNotOnTheHostWhenThePoolIsMissing) {
  const Error e = errorOf([&] { (void)findPushedImage(conn_, manifest_); });
  EXPECT_STREQ(e.what(), "image 'osr' is not on host 'test:///default'");
  EXPECT_EQ(e.hint(), "run 'nvbox image push osr --host test:///default'");
}

TEST_F(Push, FindSaysAnImageIsNotOnTheHostWhenAVolumeIsMissing) {
  (void)ensureStoragePool(conn_, spec_);
  const Error e = errorOf([&] { (void)findPushedImage(conn_, manifest_, spec_); });
  EXPECT_STREQ(e.what(), "image 'osr' is not on host 'test:///default'");
  EXPECT_EQ(e.hint(), "run 'nvbox image push osr --host test:///default --pool nvbox-unit'");
}

TEST_F(Push, FindAsksForAPushWhenThePoolIsInactive) {
  const virt::StoragePoolPtr pool = ensureStoragePool(conn_, spec_);
  ASSERT_EQ(virStoragePoolDestroy(pool.get()), 0);
  const Error e = errorOf([&] { (void)findPushedImage(conn_, manifest_, spec_); });
  EXPECT_STREQ(e.what(), "storage pool 'nvbox-unit' on host 'test:///default' is not active");
  EXPECT_EQ(e.hint(), "run 'nvbox image push osr --host test:///default --pool nvbox-unit', "
                      "which starts it");
}

// `nvbox image push` in-process: --host, --pool and --store reach pushImage,
// and a failure is one stderr line with exit 1, with or without --json.
TEST_F(Push, CliFailureIsOneLineAndExitOne) {
  for (const bool json : {false, true}) {
    std::vector<std::string> args{
        "--host", kTestUri,   "image", "push", "osr", "--store", store_.root().string(),
        "--pool", "nvbox-cli"};
    if (json) {
      args.emplace_back("--json");
    }
    std::ostringstream out;
    std::ostringstream err;
    EXPECT_EQ(cli::runApp(args, out, err, false), cli::kExitFailure);
    EXPECT_EQ(out.str(), "");
    const std::string text = err.str();
    EXPECT_EQ(text.rfind("nvbox: error: cannot upload part 'vmlinuz' of image 'osr' to volume "
                         "'nvbox-",
                         0),
              0U)
        << text;
    EXPECT_NE(text.find("in pool 'nvbox-cli' on host 'test:///default'"), std::string::npos)
        << text;
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
  }
}

} // namespace
} // namespace nvbox
