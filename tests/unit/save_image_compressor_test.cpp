// SaveImageCompressor: a libvirt save image leaves with its header and XML
// as they were except the compression field (1 gzip, 3 xz, libvirt's
// numbers), and a state that the codec's own decoder gives back byte for
// byte, whatever the chunking; anything that is not an uncompressed save
// image passes through untouched.
#include "save_image_compressor.hpp"

#include <cstring>
#include <gtest/gtest.h>
#include <lzma.h>
#include <random>
#include <string>
#include <zlib.h>

namespace nvbox::detail {
namespace {

constexpr std::size_t kHeaderLen = 16 + 19 * 4;
constexpr std::size_t kCompressedAt = 16 + 12;

std::string u32(std::uint32_t v) {
  std::string s(4, '\0');
  std::memcpy(s.data(), &v, 4);
  return s;
}

// Header (version 2, data_len, was_running 1, compressed), XML, state.
std::string saveImage(const std::string &xml, const std::string &state,
                      std::uint32_t compressed = 0) {
  std::string s = "LibvirtQemudSave" + u32(2) + u32(static_cast<std::uint32_t>(xml.size())) +
                  u32(1) + u32(compressed);
  s.resize(kHeaderLen, '\0');
  return s + xml + state;
}

// A state like a guest's: runs of zeros, repeated text, random bytes.
std::string sampleState() {
  std::mt19937 rng(7);
  std::string s;
  for (int i = 0; i < 64; ++i) {
    s.append(4096, '\0');
    s.append(std::string("QEMU RAM page ") + std::to_string(i) + std::string(500, 'x'));
    for (int j = 0; j < 1000; ++j) {
      s.push_back(static_cast<char>(rng()));
    }
  }
  return s;
}

std::string gunzip(const std::string &in) {
  z_stream z{};
  EXPECT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
  std::string out(std::size_t{8} << 20U, '\0');
  z.next_in = reinterpret_cast<Bytef *>(const_cast<char *>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef *>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(inflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  inflateEnd(&z);
  return out;
}

std::string unxz(const std::string &in) {
  std::string out(std::size_t{8} << 20U, '\0');
  std::size_t inPos = 0;
  std::size_t outPos = 0;
  std::uint64_t memlimit = UINT64_MAX;
  EXPECT_EQ(lzma_stream_buffer_decode(
                &memlimit, 0, nullptr, reinterpret_cast<const std::uint8_t *>(in.data()), &inPos,
                in.size(), reinterpret_cast<std::uint8_t *>(out.data()), &outPos, out.size()),
            LZMA_OK);
  EXPECT_EQ(inPos, in.size()) << "bytes after the xz stream";
  out.resize(outPos);
  return out;
}

std::string run(const std::string &image, StateCompression codec, std::size_t chunk,
                std::uint64_t *counted = nullptr) {
  std::string out;
  SaveImageCompressor c([&](const char *d, std::size_t n) { out.append(d, n); }, codec);
  for (std::size_t at = 0; at < image.size(); at += chunk) {
    c.write(image.data() + at, std::min(chunk, image.size() - at));
  }
  const std::uint64_t n = c.finish();
  if (counted != nullptr) {
    *counted = n;
  }
  return out;
}

std::uint32_t compressionOf(const std::string &image) {
  std::uint32_t v = 0;
  std::memcpy(&v, image.data() + kCompressedAt, 4);
  return v;
}

class Codecs : public ::testing::TestWithParam<StateCompression> {};

TEST_P(Codecs, StateComesBackByteForByteAndTheHeaderNamesTheCodec) {
  const std::string xml = "<domain><name>nvbox-r1</name></domain>";
  const std::string state = sampleState();
  const std::string image = saveImage(xml, state);
  for (const std::size_t chunk :
       {std::size_t{1}, std::size_t{7}, std::size_t{4096}, image.size()}) {
    std::uint64_t counted = 0;
    const std::string out = run(image, GetParam(), chunk, &counted);
    EXPECT_EQ(counted, out.size()) << chunk;
    ASSERT_GT(out.size(), kHeaderLen + xml.size()) << chunk;
    EXPECT_EQ(compressionOf(out), GetParam() == StateCompression::Xz ? 3U : 1U) << chunk;
    // Everything but the compression field is as libvirt wrote it.
    std::string head = out.substr(0, kHeaderLen + xml.size());
    std::memset(head.data() + kCompressedAt, 0, 4);
    EXPECT_EQ(head, image.substr(0, kHeaderLen + xml.size())) << chunk;
    const std::string body = out.substr(kHeaderLen + xml.size());
    const std::string back = GetParam() == StateCompression::Xz ? unxz(body) : gunzip(body);
    EXPECT_EQ(back, state) << chunk;
    EXPECT_LT(body.size(), state.size() / 2) << chunk;
  }
}

TEST_P(Codecs, WhatIsNotAnUncompressedSaveImagePassesThrough) {
  const std::string state = sampleState();
  const std::string inputs[] = {
      "not a save image at all, but long enough to hold a header: " + std::string(200, 'z'),
      saveImage("<domain/>", state, 1), // already gzip
      "LibvirtQemudSave" + u32(2) + u32(0x7fffffff) + u32(1) + u32(0) + std::string(80, '\0'),
      "LibvirtQemu", // shorter than a header
      ""};
  for (const auto &in : inputs) {
    std::uint64_t counted = 0;
    EXPECT_EQ(run(in, GetParam(), 5, &counted), in);
    EXPECT_EQ(counted, in.size());
  }
}

INSTANTIATE_TEST_SUITE_P(SaveImageCompressor, Codecs,
                         ::testing::Values(StateCompression::Gzip, StateCompression::Xz),
                         [](const auto &p) { return toString(p.param); });

TEST(StateCompression, NamesRoundTripAndUnknownIsRefused) {
  for (const auto c : {StateCompression::Gzip, StateCompression::Xz}) {
    EXPECT_EQ(parseStateCompression(toString(c)), c);
  }
  EXPECT_EQ(parseStateCompression("zstd"), std::nullopt);
  EXPECT_EQ(parseStateCompression(""), std::nullopt);
}

} // namespace
} // namespace nvbox::detail
