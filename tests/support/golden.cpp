#include "golden.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <sstream>

namespace nvbox::test {

void expectGolden(const std::string &actual, const std::string &name) {
  const std::filesystem::path path =
      std::filesystem::path(NVBOX_SOURCE_DIR) / "tests/golden" / name;
  const char *update = std::getenv("NVBOX_UPDATE_GOLDEN");
  if (update != nullptr && std::string(update) == "1") {
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << actual;
    return;
  }
  std::ifstream in(path, std::ios::binary);
  ASSERT_TRUE(in) << "missing golden file " << path << " (run with NVBOX_UPDATE_GOLDEN=1)";
  std::ostringstream expected;
  expected << in.rdbuf();
  EXPECT_EQ(actual, expected.str()) << "output differs from " << path;
}

} // namespace nvbox::test
