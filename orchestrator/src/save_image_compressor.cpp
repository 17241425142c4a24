#include "save_image_gzip.hpp"

#include "nvbox/error.hpp"

#include <cstring>
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
constexpr std::uint32_t kGzip = 1;
// The domain XML and cookie; anything bigger is not a save image.
constexpr std::uint32_t kMaxData = 64U << 20U;

std::uint32_t readU32(const std::string &s, std::size_t at) {
  std::uint32_t v = 0;
  std::memcpy(&v, s.data() + at, 4); // libvirt writes host byte order
  return v;
}

} // namespace

SaveImageGzip::SaveImageGzip(Sink sink, int level) : sink_(std::move(sink)), level_(level) {}

SaveImageGzip::~SaveImageGzip() {
  if (z_) {
    deflateEnd(z_.get());
  }
}

void SaveImageGzip::emit(const char *data, std::size_t size) {
  if (size > 0) {
    sink_(data, size);
    out_ += size;
  }
}

void SaveImageGzip::deflateChunk(const char *data, std::size_t size, int flush) {
  std::vector<char> buf(std::size_t{1} << 18U);
  z_->next_in = reinterpret_cast<Bytef *>(const_cast<char *>(data));
  z_->avail_in = static_cast<uInt>(size);
  do {
    z_->next_out = reinterpret_cast<Bytef *>(buf.data());
    z_->avail_out = static_cast<uInt>(buf.size());
    const int rc = deflate(z_.get(), flush);
    if (rc == Z_STREAM_ERROR) {
      throw Error("cannot compress the saved state: zlib stream error");
    }
    emit(buf.data(), buf.size() - z_->avail_out);
  } while (z_->avail_out == 0);
}

void SaveImageGzip::write(const char *data, std::size_t size) {
  if (mode_ == Mode::Passthrough) {
    emit(data, size);
    return;
  }
  if (mode_ == Mode::Deflate) {
    deflateChunk(data, size, Z_NO_FLUSH);
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
  const std::uint32_t gzip = kGzip;
  std::memcpy(head_.data() + kCompressedAt, &gzip, 4);
  emit(head_.data(), rawPrefix_);
  z_ = std::make_unique<z_stream_s>();
  std::memset(z_.get(), 0, sizeof(z_stream_s));
  // windowBits 15 + 16: a gzip wrapper, which is what `gzip -dc` reads.
  if (deflateInit2(z_.get(), level_, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    z_.reset();
    throw Error("cannot compress the saved state: zlib cannot start");
  }
  mode_ = Mode::Deflate;
  const std::string rest = head_.substr(rawPrefix_);
  head_.clear();
  deflateChunk(rest.data(), rest.size(), Z_NO_FLUSH);
}

std::uint64_t SaveImageGzip::finish() {
  if (mode_ == Mode::Deflate) {
    deflateChunk(nullptr, 0, Z_FINISH);
  } else if (!head_.empty()) {
    emit(head_.data(), head_.size()); // shorter than a header: pass it on
    head_.clear();
  }
  return out_;
}

} // namespace nvbox::detail
