// libFuzzer target: importBundle on arbitrary bytes, into a private temporary
// store. A hostile bundle must give an nvbox::Error, never a crash, a hang or
// a leak, and must leave the store as it was: no staging directory survives
// a refusal, and whatever is accepted verifies.
#include "nvbox/error.hpp"
#include "nvbox/images/bundle.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>
#include <unistd.h>

namespace {

namespace fs = std::filesystem;

// /tmp/nvbox-bundle-fuzz-PID/store. Created by the import when it needs it
// and deleted after every input, so nothing is left when libFuzzer exits
// (it does not run atexit handlers).
const fs::path &storeRoot() {
  static const fs::path root =
      fs::temp_directory_path() / ("nvbox-bundle-fuzz-" + std::to_string(::getpid())) / "store";
  return root;
}

// Anything left in the store after an input was handled is a bug.
void requireEmptyStore() {
  std::error_code ec;
  if (fs::exists(storeRoot(), ec) && !fs::is_empty(storeRoot(), ec)) {
    std::abort();
  }
  fs::remove_all(storeRoot().parent_path(), ec);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  nvbox::images::ImageStore store(storeRoot());
  nvbox::images::ImportOptions options;
  options.limits.maxPartSize = std::uint64_t{8} << 20U; // keep each run small
  options.limits.maxManifestSize = std::uint64_t{64} << 10U;
  try {
    const auto manifest = nvbox::images::importBundle(store, data, size, "fuzz", options);
    if (!store.verify(manifest.name).ok()) {
      std::abort(); // accepted, yet not what its manifest says
    }
    store.remove(manifest.name);
  } catch (const nvbox::Error &) {
    // Refusing bad input is the expected outcome.
  }
  requireEmptyStore();
  return 0;
}
