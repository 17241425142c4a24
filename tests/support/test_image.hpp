// The OSR image that vm tests and benchmarks boot: built by the real
// `nvbox image build` into <build>/test-images, once per build tree (later
// calls are no-ops while the inputs stay the same), so a test run pays the
// libguestfs launch once.
#pragma once

#include <filesystem>

namespace nvbox::test {

// The store holding image "osr", built if needed. Throws std::runtime_error
// with nvbox's error output when the build fails.
std::filesystem::path testImageStore();

} // namespace nvbox::test
