// SaveImageCompressor — compresses a libvirt QEMU save image on its way from
// one host to another, so that relocation moves the compressed state through
// libvirt streams and the target's libvirt decompresses it at restore.
//
// A save image is libvirt's header (magic "LibvirtQemudSave", version, the
// length of the domain XML that follows, whether it was running, and the
// compression of what comes after), the XML, then QEMU's migration stream.
// The header's compression field is libvirt's on-disk format ("do not change
// or re-use numbers"): 1 is gzip and 3 is xz, which libvirt restores by
// piping the rest through `gzip -dc` or `xz -dc`. (zstd is 5 only in libvirt
// releases newer than the 9.0 these hosts run.) An image that is already
// compressed, or that does not look like a save image, passes through
// untouched.
//
// Parameters: the codec. gzip runs at level 1 and xz at preset 0: on an idle
// 128 MiB router (59 MiB of non-zero state) gzip -1 gives 16.8 MiB in 0.8 s,
// xz -0 13.1 MiB in 2.2 s; higher levels cost seconds of downtime for little
// (gzip -6 15.4 MiB in 1.9 s, xz -6 11.2 MiB in 29 s).
//
// Threading: one transfer, one thread.
#pragma once

#include "nvbox/router.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace nvbox::detail {

class SaveImageCompressor {
public:
  using Sink = std::function<void(const char *data, std::size_t size)>;

  SaveImageCompressor(Sink sink, StateCompression codec);
  ~SaveImageCompressor();
  SaveImageCompressor(const SaveImageCompressor &) = delete;
  SaveImageCompressor &operator=(const SaveImageCompressor &) = delete;

  void write(const char *data, std::size_t size);
  // Flushes the codec's trailer; returns the bytes handed to the sink.
  std::uint64_t finish();

  class Encoder; // one codec's stream (zlib or liblzma)

private:
  enum class Mode { Header, Passthrough, Compress };
  void emit(const char *data, std::size_t size);

  Sink sink_;
  StateCompression codec_;
  Mode mode_ = Mode::Header;
  std::string head_;            // the header and XML, until complete
  std::uint64_t rawPrefix_ = 0; // header + XML bytes, forwarded uncompressed
  std::unique_ptr<Encoder> encoder_;
  std::uint64_t out_ = 0;
  // What the encoder produces goes to emit() (the object never moves).
  const std::function<void(const char *, std::size_t)> forward_ =
      [this](const char *d, std::size_t n) { emit(d, n); };
};

} // namespace nvbox::detail
