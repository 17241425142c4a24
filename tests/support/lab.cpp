#include "lab.hpp"

#include "process.hpp"

#include "nvbox/netconfig/netns.hpp"
#include "nvbox/netconfig/rtnetlink.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <fstream>
#include <sched.h>
#include <sstream>
#include <stdexcept>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace nvbox::test {

Child::~Child() {
  if (pid_ <= 0) {
    return;
  }
  ::kill(pid_, SIGTERM);
  for (int i = 0; i < 200; ++i) {
    if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
      ::unlink(log_.c_str());
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  ::unlink(log_.c_str());
}

bool Child::running() const {
  return pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0;
}

std::string Child::output() const {
  std::ifstream in(log_);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

Child spawnIn(const std::string &ns, const std::vector<std::string> &argv) {
  char logTemplate[] = "/tmp/nvbox-test-log-XXXXXX";
  const int log = ::mkstemp(logTemplate);
  const int nsFd = ::open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
  if (log < 0 || nsFd < 0) {
    throw std::runtime_error("cannot prepare to start '" + argv.at(0) + "' in '" + ns + "'");
  }
  std::vector<char *> args;
  args.reserve(argv.size() + 1);
  for (const auto &a : argv) {
    args.push_back(const_cast<char *>(a.c_str()));
  }
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec.
    if (::setns(nsFd, CLONE_NEWNET) != 0) {
      ::_exit(126);
    }
    ::dup2(log, STDOUT_FILENO);
    ::dup2(log, STDERR_FILENO);
    const int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, STDIN_FILENO);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(nsFd);
  ::close(log);
  if (pid < 0) {
    throw std::runtime_error("cannot fork");
  }
  return Child(pid, logTemplate);
}

std::string NetLab::makeNamespace() {
  static int counter = 0;
  std::string name =
      "nvbox-test-" + std::to_string(::getpid()) + "-lab" + std::to_string(counter++);
  namespaces_.push_back(std::make_unique<netconfig::NetworkNamespace>(name));
  return name;
}

void NetLab::link(const std::string &nsA, const std::string &ifA, const std::string &cidrA,
                  const std::string &nsB, const std::string &ifB, const std::string &cidrB) {
  netconfig::runIn(nsA, [&] {
    netconfig::Rtnetlink nl;
    nl.addVeth(ifA, ifB);
    nl.moveToNamespace(ifB, nsB);
    nl.addAddress(ifA, cidrA);
    nl.setUp(ifA);
    nl.setUp("lo");
  });
  netconfig::runIn(nsB, [&] {
    netconfig::Rtnetlink nl;
    nl.addAddress(ifB, cidrB);
    nl.setUp(ifB);
    nl.setUp("lo");
  });
}

void NetLab::route(const std::string &ns, const std::string &dst, const std::string &via,
                   const std::string &dev) {
  netconfig::runIn(ns, [&] { netconfig::Rtnetlink().addRoute(dst, via, dev); });
}

void NetLab::loopbackAddress(const std::string &ns, const std::string &cidr) {
  netconfig::runIn(ns, [&] {
    netconfig::Rtnetlink nl;
    nl.addAddress("lo", cidr);
    nl.setUp("lo");
  });
}

void NetLab::sysctl(const std::string &ns, const std::string &key, const std::string &value) {
  std::string path = "/proc/sys/" + key;
  std::replace(path.begin() + 10, path.end(), '.', '/');
  netconfig::runIn(ns, [&] {
    // /proc/sys/net is resolved against the opening thread's namespace.
    std::ofstream out(path);
    out << value;
    if (!out.flush()) {
      throw std::runtime_error("cannot set " + key);
    }
  });
}

void NetLab::shape(const std::string &ns, const std::string &dev, std::uint64_t bitsPerSecond) {
  const std::uint64_t bytes = bitsPerSecond / 8;
  // Burst: 10 ms of traffic, at least 2 MTUs; queue: 50 ms, at least 32 KB.
  const auto burst = static_cast<std::uint32_t>(std::max<std::uint64_t>(bytes / 100, 3000));
  const auto limit = static_cast<std::uint32_t>(std::max<std::uint64_t>(bytes / 20, 32768));
  netconfig::runIn(ns, [&] { netconfig::Rtnetlink().addTbf(dev, bytes, burst, limit); });
}

void NetLab::deleteLink(const std::string &ns, const std::string &dev) {
  netconfig::runIn(ns, [&] { netconfig::Rtnetlink().deleteLink(dev); });
}

void ip(const std::vector<std::string> &args) {
  std::vector<std::string> argv{"ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  const auto r = run(argv);
  if (r.exitCode != 0) {
    std::string line;
    for (const auto &a : argv) {
      line += a + " ";
    }
    throw std::runtime_error(line + "failed: " + r.err);
  }
}

void waitFor(const std::function<bool()> &ready, const std::string &what) {
  for (int i = 0; i < 300; ++i) {
    try {
      if (ready()) {
        return;
      }
    } catch (const std::exception &) {
    }
    sleepFor(std::chrono::milliseconds(20));
  }
  throw std::runtime_error("timed out waiting for " + what);
}

} // namespace nvbox::test
