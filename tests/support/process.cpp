#include "process.hpp"

#include "nvbox/process.hpp"

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <stdexcept>
#include <thread>
#include <utility>

namespace nvbox::test {

namespace {

volatile std::sig_atomic_t interrupted = 0;

extern "C" void onTermination(int /*sig*/) {
  interrupted = 1;
}

} // namespace

void catchTermination() {
  struct sigaction action {};
  action.sa_handler = onTermination;
  sigemptyset(&action.sa_mask);
  for (const int sig : {SIGINT, SIGTERM, SIGHUP}) {
    ::sigaction(sig, &action, nullptr);
  }
  ::signal(SIGPIPE, SIG_IGN);
}

void throwIfInterrupted() {
  if (interrupted != 0) {
    throw std::runtime_error("interrupted by a signal");
  }
}

void sleepFor(std::chrono::steady_clock::duration d) {
  const auto until = std::chrono::steady_clock::now() + d;
  for (auto now = std::chrono::steady_clock::now(); now < until;
       now = std::chrono::steady_clock::now()) {
    throwIfInterrupted();
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(until - now, std::chrono::milliseconds(10)));
  }
  throwIfInterrupted();
}

RunResult run(const std::vector<std::string> &argv) {
  throwIfInterrupted();
  ProcessResult result = runProgram(argv);
  throwIfInterrupted();
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
