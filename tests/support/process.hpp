// Runs a program (never through a shell) and captures its exit code, stdout
// and stderr: how CLI tests drive the real `nvbox` binary.
#pragma once

#include <string>
#include <vector>

namespace nvbox::test {

struct RunResult {
  int exitCode = -1;
  std::string out;
  std::string err;
};

// argv[0] is a path or a name looked up in PATH.
RunResult run(const std::vector<std::string> &argv);

// Path of a binary built by this project ($NVBOX_BIN/<name>).
std::string builtBinary(const std::string &name);

// Shorthand: run the built nvbox with these arguments.
RunResult nvbox(const std::vector<std::string> &args);

// Number of lines in text (a final line without '\n' counts).
std::size_t lineCount(const std::string &text);

} // namespace nvbox::test
