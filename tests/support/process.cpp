#include "process.hpp"

#include "nvbox/process.hpp"

#include <cstdlib>
#include <utility>

namespace nvbox::test {

RunResult run(const std::vector<std::string> &argv) {
  ProcessResult result = runProgram(argv);
  return {result.exitCode, std::move(result.out), std::move(result.err)};
}

std::string builtBinary(const std::string &name) {
  const char *dir = std::getenv("NVBOX_BIN");
  return std::string(dir != nullptr ? dir : NVBOX_BINARY_DIR "/bin") + "/" + name;
}

RunResult nvbox(const std::vector<std::string> &args) {
  std::vector<std::string> argv{builtBinary("nvbox")};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv);
}

std::size_t lineCount(const std::string &text) {
  std::size_t lines = 0;
  for (const char c : text) {
    lines += c == '\n' ? 1U : 0U;
  }
  if (!text.empty() && text.back() != '\n') {
    ++lines;
  }
  return lines;
}

} // namespace nvbox::test
