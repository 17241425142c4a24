// Sha256 against the FIPS 180-2 test vectors, streaming in odd chunk sizes,
// and digestFile on real and missing files.
#include "image_test_util.hpp"
#include "nvbox/error.hpp"
#include "nvbox/images/digest.hpp"

#include <gtest/gtest.h>
#include <stdexcept>

namespace nvbox::images {
namespace {

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256, StreamingMillionAsInOddChunks) {
  Sha256 h;
  std::size_t left = 1000000;
  std::size_t chunk = 1;
  while (left > 0) {
    const std::size_t n = std::min(left, chunk);
    h.update(std::string(n, 'a'));
    left -= n;
    chunk = chunk * 3 + 1; // 1, 4, 13, 40, ... crosses every block boundary
  }
  EXPECT_EQ(h.hex(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, StreamingEqualsOneShot) {
  const std::string data = test::randomBytes(100000, 7);
  Sha256 h;
  for (std::size_t i = 0; i < data.size(); i += 777) {
    h.update(data.data() + i, std::min<std::size_t>(777, data.size() - i));
  }
  EXPECT_EQ(h.hex(), sha256Hex(data));
}

TEST(Sha256, EndsAfterHex) {
  Sha256 h;
  h.update("x");
  (void)h.hex();
  EXPECT_THROW(h.update("y"), std::logic_error);
  EXPECT_THROW((void)h.hex(), std::logic_error);
}

TEST(Sha256, MovedObjectKeepsState) {
  Sha256 a;
  a.update("ab");
  Sha256 b = std::move(a);
  b.update("c");
  EXPECT_EQ(b.hex(), sha256Hex("abc"));
}

TEST(DigestFile, HashesContentsAndCountsBytes) {
  test::TempDir dir;
  const std::string data = test::randomBytes(3 * 1024 * 1024 + 5, 3); // > one read chunk
  test::writeFile(dir.path() / "f", data);
  const FileDigest d = digestFile(dir.path() / "f");
  EXPECT_EQ(d.size, data.size());
  EXPECT_EQ(d.sha256, sha256Hex(data));

  test::writeFile(dir.path() / "empty", "");
  EXPECT_EQ(digestFile(dir.path() / "empty").sha256, sha256Hex(""));
  EXPECT_EQ(digestFile(dir.path() / "empty").size, 0U);
}

TEST(DigestFile, MissingFileIsAnErrorNamingIt) {
  test::TempDir dir;
  try {
    (void)digestFile(dir.path() / "nope");
    FAIL() << "no error";
  } catch (const Error &e) {
    EXPECT_NE(std::string(e.what()).find("cannot open '" + (dir.path() / "nope").string() + "'"),
              std::string::npos)
        << e.what();
  }
}

TEST(IsSha256Hex, AcceptsOnlyLowercase64) {
  EXPECT_TRUE(isSha256Hex(sha256Hex("x")));
  EXPECT_FALSE(isSha256Hex(""));
  EXPECT_FALSE(isSha256Hex(std::string(63, 'a')));
  EXPECT_FALSE(isSha256Hex(std::string(65, 'a')));
  EXPECT_FALSE(isSha256Hex(std::string(64, 'A')));
  EXPECT_FALSE(isSha256Hex(std::string(63, 'a') + "g"));
}

} // namespace
} // namespace nvbox::images
