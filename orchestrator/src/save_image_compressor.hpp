// SaveImageGzip — compresses a libvirt QEMU save image on its way from one
// host to another, so that relocation moves the compressed state through
// libvirt streams and the target's libvirt decompresses it at restore.
//
// A save image is libvirt's header (magic "LibvirtQemudSave", version, the
// length of the domain XML that follows, whether it was running, and the
// compression of what comes after), the XML, then QEMU's migration stream.
// The header's compression field is libvirt's on-disk format ("do not change
// or re-use numbers"): 1 is gzip, which every libvirt since 0.x restores by
// piping the rest through `gzip -dc`. (zstd is 5 only in libvirt releases
// newer than the 9.0 these hosts run.) An image that is already compressed,
// or that does not look like a save image, passes through untouched.
//
// Threading: one transfer, one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

struct z_stream_s;

namespace nvbox::detail {

class SaveImageGzip {
public:
  using Sink = std::function<void(const char *data, std::size_t size)>;

  SaveImageGzip(Sink sink, int level);
  ~SaveImageGzip();
  SaveImageGzip(const SaveImageGzip &) = delete;
  SaveImageGzip &operator=(const SaveImageGzip &) = delete;

  void write(const char *data, std::size_t size);
  // Flushes the gzip trailer; returns the bytes handed to the sink.
  std::uint64_t finish();
  [[nodiscard]] bool compressed() const noexcept { return mode_ == Mode::Deflate; }

private:
  enum class Mode { Header, Passthrough, Deflate };
  void emit(const char *data, std::size_t size);
  void deflateChunk(const char *data, std::size_t size, int flush);

  Sink sink_;
  int level_;
  Mode mode_ = Mode::Header;
  std::string head_;            // the header and XML, until complete
  std::uint64_t rawPrefix_ = 0; // header + XML bytes, forwarded uncompressed
  std::unique_ptr<z_stream_s> z_;
  std::uint64_t out_ = 0;
};

} // namespace nvbox::detail
