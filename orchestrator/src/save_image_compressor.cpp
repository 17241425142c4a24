#include "save_image_compressor.hpp"

#include "nvbox/error.hpp"

#include <cstring>
#include <lzma.h>
#include <vector>
#include <zlib.h>

namespace nvbox::detail {

namespace {

constexpr char kMagic[] = "LibvirtQemudSave";
constexpr std::size_t kMagicLen = sizeof kMagic - 1;
// magic, then uint32 version, data_len, was_running, compressed,
// cookieOffset and 14 unused words.
constexpr std::size_t kHeaderLen = kMagicLen + 19 * 4;
constexpr std::size_t kDataLenAt = kMagicLen + 4;
constexpr std::size_t kCompressedAt = kMagicLen + 12;
// libvirt's QEMU_SAVE_FORMAT numbers.
constexpr std::uint32_t kGzip = 1;
constexpr std::uint32_t kXz = 3;
// The domain XML and cookie; anything bigger is not a save image.
constexpr std::uint32_t kMaxData = 64U << 20U;
constexpr std::size_t kOutChunk = std::size_t{1} << 18U;

std::uint32_t readU32(const std::string &s, std::size_t at) {
  std::uint32_t v = 0;
  std::memcpy(&v, s.data() + at, 4); // libvirt writes host byte order
  return v;
}

} // namespace

class SaveImageCompressor::Encoder {
public:
  using Emit = std::function<void(const char *, std::size_t)>;
  virtual ~Encoder() = default;
  virtual void compress(const char *data, std::size_t size, bool last, const Emit &emit) = 0;
};

namespace {

// gzip (windowBits 15 + 16: the wrapper `gzip -dc` reads), level 1.
class GzipEncoder final : public SaveImageCompressor::Encoder {
public:
  GzipEncoder() {
    if (deflateInit2(&z_, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
      throw Error("cannot compress the saved state: zlib cannot start");
    }
  }
  ~GzipEncoder() override { deflateEnd(&z_); }
  GzipEncoder(const GzipEncoder &) = delete;
  GzipEncoder &operator=(const GzipEncoder &) = delete;

  void compress(const char *data, std::size_t size, bool last, const Emit &emit) override {
    z_.next_in = reinterpret_cast<Bytef *>(const_cast<char *>(data));
    z_.avail_in = static_cast<uInt>(size);
    do {
      z_.next_out = reinterpret_cast<Bytef *>(buf_.data());
      z_.avail_out = static_cast<uInt>(buf_.size());
      if (deflate(&z_, last ? Z_FINISH : Z_NO_FLUSH) == Z_STREAM_ERROR) {
        throw Error("cannot compress the saved state: zlib stream error");
      }
      emit(buf_.data(), buf_.size() - z_.avail_out);
    } while (z_.avail_out == 0);
  }

private:
  z_stream z_{};
  std::vector<char> buf_ = std::vector<char>(kOutChunk);
};

// xz (the .xz container `xz -dc` reads), preset 0, CRC64 like xz(1).
class XzEncoder final : public SaveImageCompressor::Encoder {
public:
  XzEncoder() {
    if (lzma_easy_encoder(&s_, 0, LZMA_CHECK_CRC64) != LZMA_OK) {
      throw Error("cannot compress the saved state: liblzma cannot start");
    }
  }
  ~XzEncoder() override { lzma_end(&s_); }
  XzEncoder(const XzEncoder &) = delete;
  XzEncoder &operator=(const XzEncoder &) = delete;

  void compress(const char *data, std::size_t size, bool last, const Emit &emit) override {
    s_.next_in = reinterpret_cast<const std::uint8_t *>(data);
    s_.avail_in = size;
    for (;;) {
      s_.next_out = reinterpret_cast<std::uint8_t *>(buf_.data());
      s_.avail_out = buf_.size();
      const lzma_ret rc = lzma_code(&s_, last ? LZMA_FINISH : LZMA_RUN);
      if (rc != LZMA_OK && rc != LZMA_STREAM_END) {
        throw Error("cannot compress the saved state: liblzma error " + std::to_string(rc));
      }
      emit(buf_.data(), buf_.size() - s_.avail_out);
      if (rc == LZMA_STREAM_END || (!last && s_.avail_in == 0 && s_.avail_out != 0)) {
        return;
      }
    }
  }

private:
  lzma_stream s_ = LZMA_STREAM_INIT;
  std::vector<char> buf_ = std::vector<char>(kOutChunk);
};

} // namespace

SaveImageCompressor::SaveImageCompressor(Sink sink, StateCompression codec)
    : sink_(std::move(sink)), codec_(codec) {}

SaveImageCompressor::~SaveImageCompressor() = default;

void SaveImageCompressor::emit(const char *data, std::size_t size) {
  if (size > 0) {
    sink_(data, size);
    out_ += size;
  }
}

void SaveImageCompressor::write(const char *data, std::size_t size) {
  if (mode_ == Mode::Passthrough) {
    emit(data, size);
    return;
  }
  if (mode_ == Mode::Compress) {
    encoder_->compress(data, size, false, forward_);
    return;
  }
  // Header mode: collect the header and the XML after it.
  head_.append(data, size);
  if (head_.size() < kHeaderLen) {
    return;
  }
  const std::uint32_t dataLen = readU32(head_, kDataLenAt);
  if (head_.compare(0, kMagicLen, kMagic) != 0 || readU32(head_, kCompressedAt) != 0 ||
      dataLen > kMaxData) {
    mode_ = Mode::Passthrough; // not ours to change
    emit(head_.data(), head_.size());
    head_.clear();
    return;
  }
  rawPrefix_ = kHeaderLen + dataLen;
  if (head_.size() < rawPrefix_) {
    return;
  }
  if (codec_ == StateCompression::Xz) {
    encoder_ = std::make_unique<XzEncoder>();
  } else {
    encoder_ = std::make_unique<GzipEncoder>();
  }
  const std::uint32_t format = codec_ == StateCompression::Xz ? kXz : kGzip;
  std::memcpy(head_.data() + kCompressedAt, &format, 4);
  emit(head_.data(), rawPrefix_);
  mode_ = Mode::Compress;
  const std::string rest = head_.substr(rawPrefix_);
  head_.clear();
  encoder_->compress(rest.data(), rest.size(), false, forward_);
}

std::uint64_t SaveImageCompressor::finish() {
  if (mode_ == Mode::Compress) {
    encoder_->compress(nullptr, 0, true, forward_);
  } else if (!head_.empty()) {
    emit(head_.data(), head_.size()); // shorter than a header: pass it on
    head_.clear();
  }
  return out_;
}

} // namespace nvbox::detail
