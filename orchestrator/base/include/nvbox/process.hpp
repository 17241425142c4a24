// runProgram — runs a program with an argument vector (never through a shell)
// and captures its exit code, stdout and stderr. For the few external tools
// nvbox drives (qemu-img, the built binaries it inspects) and for the tests.
//
// stdin is /dev/null. The call blocks until the program exits.
//
// Threading: thread-safe (posix_spawn, no shared state).
#pragma once

#include <string>
#include <vector>

namespace nvbox {

struct ProcessResult {
  int exitCode = -1; // the exit status, or 128 + signal number
  std::string out;
  std::string err;
};

// argv[0] is a path or a name looked up in PATH. Throws nvbox::Error when the
// program cannot be started.
ProcessResult runProgram(const std::vector<std::string> &argv);

} // namespace nvbox
