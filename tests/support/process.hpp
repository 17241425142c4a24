// Runs a program (never through a shell) and captures its exit code, stdout
// and stderr: how CLI tests drive the real `nvbox` binary.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace nvbox::test {

struct RunResult {
  int exitCode = -1;
  std::string out;
  std::string err;
};

// argv[0] is a path or a name looked up in PATH. Throws when interrupted
// (see catchTermination()) before or while the program ran.
RunResult run(const std::vector<std::string> &argv);

// For a benchmark's main: from now on SIGINT, SIGTERM and SIGHUP only mark
// the process interrupted; run(), waitFor() and sleepFor() then throw
// std::runtime_error("interrupted by a signal"), so that the stack unwinds
// and destructors stop daemons and remove namespaces instead of leaving
// them behind. Without it those signals end the process at once. It also
// ignores SIGPIPE: a benchmark whose output is piped into `head` must finish
// and clean up, not die at its next line with its lab still up.
void catchTermination();
// Throws if a caught signal arrived.
void throwIfInterrupted();
// Sleeps for `d`, but throws within 10 ms of a caught signal.
void sleepFor(std::chrono::steady_clock::duration d);

// Path of a binary built by this project ($NVBOX_BIN/<name>).
std::string builtBinary(const std::string &name);

// Shorthand: run the built nvbox with these arguments.
RunResult nvbox(const std::vector<std::string> &args);

// Number of lines in text (a final line without '\n' counts).
std::size_t lineCount(const std::string &text);

} // namespace nvbox::test
