#include "nvbox/netconfig/netns.hpp"

#include "nvbox/error.hpp"
#include "nvbox/netconfig/fd.hpp"

#include <exception>
#include <fcntl.h>
#include <filesystem>
#include <sched.h>
#include <sys/mount.h>
#include <thread>
#include <unistd.h>

namespace nvbox::netconfig {
namespace {

constexpr const char *kNetnsDir = "/run/netns";

std::string pathOf(const std::string &name) {
  return std::string(kNetnsDir) + "/" + name;
}

void checkName(const std::string &name) {
  // The name becomes a file name under /run/netns and an interface-style
  // label in messages: keep it to what iproute2 accepts.
  if (name.empty() || name.size() > 64 || name.find('/') != std::string::npos || name == "." ||
      name == "..") {
    throw UsageError("invalid network namespace name '" + name + "'",
                     "use 1-64 characters without '/'");
  }
}

// Makes /run/netns a shared mount point, as iproute2 does, so that namespaces
// created here are visible from other mount namespaces (the testbed's hosts).
void prepareNetnsDir() {
  std::error_code ec;
  std::filesystem::create_directories(kNetnsDir, ec);
  if (ec) {
    throw Error("cannot create '" + std::string(kNetnsDir) + "': " + ec.message(), "run as root");
  }
  if (::mount("", kNetnsDir, "none", MS_SHARED | MS_REC, nullptr) == 0) {
    return;
  }
  if (errno != EINVAL) {
    throw Error(sysError("cannot make '" + std::string(kNetnsDir) + "' a shared mount"),
                "run as root");
  }
  if (::mount(kNetnsDir, kNetnsDir, "none", MS_BIND | MS_REC, nullptr) != 0 ||
      ::mount("", kNetnsDir, "none", MS_SHARED | MS_REC, nullptr) != 0) {
    throw Error(sysError("cannot make '" + std::string(kNetnsDir) + "' a shared mount"),
                "run as root");
  }
}

// Runs fn on a new thread and rethrows whatever it threw.
void onThread(const std::function<void()> &fn) {
  std::exception_ptr failure;
  std::thread worker([&] {
    try {
      fn();
    } catch (...) {
      failure = std::current_exception();
    }
  });
  worker.join();
  if (failure) {
    std::rethrow_exception(failure);
  }
}

} // namespace

NetworkNamespace::NetworkNamespace(std::string name) : name_(std::move(name)) {
  checkName(name_);
  prepareNetnsDir();
  const std::string path = pathOf(name_);
  {
    const Fd file(::open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444));
    if (!file) {
      if (errno == EEXIST) {
        throw Error("network namespace '" + name_ + "' already exists",
                    "remove it with 'ip netns del " + name_ + "' or pick another name");
      }
      throw Error(sysError("cannot create '" + path + "'"), "run as root");
    }
  }
  try {
    onThread([&] {
      if (::unshare(CLONE_NEWNET) != 0) {
        throw Error(sysError("cannot create network namespace '" + name_ + "'"),
                    "nvbox needs CAP_SYS_ADMIN: run as root");
      }
      // /proc/self would name the thread-group leader's namespace.
      if (::mount("/proc/thread-self/ns/net", path.c_str(), "none", MS_BIND, nullptr) != 0) {
        throw Error(sysError("cannot bind network namespace '" + name_ + "'"), "run as root");
      }
    });
  } catch (...) {
    ::unlink(path.c_str());
    throw;
  }
}

NetworkNamespace::NetworkNamespace(NetworkNamespace &&other) noexcept
    : name_(std::move(other.name_)) {
  other.name_.clear();
}

NetworkNamespace::~NetworkNamespace() {
  if (!name_.empty()) {
    removeNamespace(name_);
  }
}

bool namespaceExists(const std::string &name) {
  std::error_code ec;
  return std::filesystem::exists(pathOf(name), ec);
}

bool removeNamespace(const std::string &name) {
  const std::string path = pathOf(name);
  if (!namespaceExists(name)) {
    return false;
  }
  ::umount2(path.c_str(), MNT_DETACH);
  return ::unlink(path.c_str()) == 0;
}

std::vector<std::string> listNamespaces() {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto &entry : std::filesystem::directory_iterator(kNetnsDir, ec)) {
    names.push_back(entry.path().filename().string());
  }
  return names;
}

void runIn(const std::string &name, const std::function<void()> &fn) {
  checkName(name);
  const std::string path = pathOf(name);
  const Fd ns(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns) {
    throw Error(sysError("cannot open network namespace '" + name + "'"),
                "check that it exists with 'ip netns list'");
  }
  onThread([&] {
    if (::setns(ns.get(), CLONE_NEWNET) != 0) {
      throw Error(sysError("cannot enter network namespace '" + name + "'"), "run as root");
    }
    fn();
  });
}

void runInFresh(const std::function<void()> &fn) {
  onThread([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      throw Error(sysError("cannot create a network namespace"),
                  "nvbox needs CAP_SYS_ADMIN: run as root");
    }
    fn();
  });
}

} // namespace nvbox::netconfig
