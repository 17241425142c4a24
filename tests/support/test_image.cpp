#include "test_image.hpp"

#include "process.hpp"

#include <stdexcept>

namespace nvbox::test {

std::filesystem::path testImageStore() {
  const std::filesystem::path store = std::filesystem::path(NVBOX_BINARY_DIR) / "test-images";
  const RunResult r = nvbox({"image", "build", "--store", store.string()});
  if (r.exitCode != 0) {
    throw std::runtime_error("nvbox image build failed: " + r.err);
  }
  return store;
}

} // namespace nvbox::test
