#include "nvbox/process.hpp"

#include "nvbox/error.hpp"

#include <array>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

namespace nvbox {

namespace {

// Closes a pipe end once, whoever gets there first.
struct PipeEnd {
  int fd = -1;
  ~PipeEnd() { reset(); }
  void reset() noexcept {
    if (fd >= 0) {
      ::close(fd);
      fd = -1;
    }
  }
};

struct SpawnActions {
  posix_spawn_file_actions_t actions{};
  SpawnActions() { posix_spawn_file_actions_init(&actions); }
  ~SpawnActions() { posix_spawn_file_actions_destroy(&actions); }
  SpawnActions(const SpawnActions &) = delete;
  SpawnActions &operator=(const SpawnActions &) = delete;
};

} // namespace

ProcessResult runProgram(const std::vector<std::string> &argv) {
  if (argv.empty()) {
    throw Error("cannot run a program: no program given");
  }
  std::array<PipeEnd, 2> out;
  std::array<PipeEnd, 2> err;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    throw Error("cannot run '" + argv[0] + "': pipe2: " + std::strerror(errno));
  }
  out[0].fd = fds[0];
  out[1].fd = fds[1];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    throw Error("cannot run '" + argv[0] + "': pipe2: " + std::strerror(errno));
  }
  err[0].fd = fds[0];
  err[1].fd = fds[1];

  SpawnActions spawn;
  posix_spawn_file_actions_adddup2(&spawn.actions, out[1].fd, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&spawn.actions, err[1].fd, STDERR_FILENO);
  posix_spawn_file_actions_addopen(&spawn.actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  std::vector<char *> args;
  args.reserve(argv.size() + 1);
  for (const auto &a : argv) {
    args.push_back(const_cast<char *>(a.c_str()));
  }
  args.push_back(nullptr);
  pid_t pid = 0;
  const int rc = ::posix_spawnp(&pid, args[0], &spawn.actions, nullptr, args.data(), environ);
  out[1].reset();
  err[1].reset();
  if (rc != 0) {
    throw Error("cannot run '" + argv[0] + "': " + std::strerror(rc));
  }

  ProcessResult result;
  std::array<pollfd, 2> polled{{{out[0].fd, POLLIN, 0}, {err[0].fd, POLLIN, 0}}};
  int open = 2;
  char buf[4096];
  while (open > 0) {
    if (::poll(polled.data(), polled.size(), -1) < 0) {
      if (errno == EINTR) {
        continue;
      }
      break;
    }
    for (std::size_t i = 0; i < polled.size(); ++i) {
      if (polled[i].fd < 0 || polled[i].revents == 0) {
        continue;
      }
      const ssize_t got = ::read(polled[i].fd, buf, sizeof buf);
      if (got <= 0) {
        polled[i].fd = -1;
        --open;
      } else {
        (i == 0 ? result.out : result.err).append(buf, static_cast<std::size_t>(got));
      }
    }
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exitCode = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

} // namespace nvbox
