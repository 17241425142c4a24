// NetLab — a small network of namespaces for data-plane tests and
// benchmarks: veth links with addresses, routes, sysctls, loopback addresses,
// tbf shaping, and daemons started inside a namespace. Everything is made
// through netconfig (rtnetlink). NetLab owns its namespaces (RAII), so the
// whole lab disappears with it, after a failure too; processes started here
// are killed by their Child destructors. Lab is the GoogleTest fixture form.
#pragma once

#include "nvbox/netconfig/netns.hpp"

#include <gtest/gtest.h>
#include <memory>

#include <cstdint>
#include <functional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace nvbox::test {

// A process started in a namespace; killed (SIGTERM, then SIGKILL after 2 s)
// and reaped on destruction.
class Child {
public:
  Child(pid_t pid, std::string log) : pid_(pid), log_(std::move(log)) {}
  ~Child();
  Child(const Child &) = delete;
  Child &operator=(const Child &) = delete;
  Child(Child &&other) noexcept : pid_(other.pid_), log_(std::move(other.log_)) { other.pid_ = -1; }
  Child &operator=(Child &&) = delete;

  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] bool running() const;
  // Everything the process wrote to stdout and stderr so far.
  [[nodiscard]] std::string output() const;

private:
  pid_t pid_;
  std::string log_;
};

// Starts argv inside network namespace `ns`, output to a temporary log.
Child spawnIn(const std::string &ns, const std::vector<std::string> &argv);

// Runs iproute2's `ip ARGS…` (never through a shell), for what netconfig does
// not cover: policy routing, MPTCP endpoints, route replacement. Throws
// std::runtime_error with the command line and ip's error.
void ip(const std::vector<std::string> &args);

// Polls `ready` every 20 ms for up to 6 s (an exception counts as not ready
// yet); throws std::runtime_error("timed out waiting for WHAT").
void waitFor(const std::function<bool()> &ready, const std::string &what);

class NetLab {
public:
  // A new namespace nvbox-test-<pid>-<n>; returns its name.
  std::string makeNamespace();
  // Removes every namespace of this lab (and so everything in them).
  void clear() { namespaces_.clear(); }

  // A veth pair between two namespaces: ifA in nsA with cidrA, ifB in nsB.
  void link(const std::string &nsA, const std::string &ifA, const std::string &cidrA,
            const std::string &nsB, const std::string &ifB, const std::string &cidrB);
  void route(const std::string &ns, const std::string &dst, const std::string &via,
             const std::string &dev = {});
  void loopbackAddress(const std::string &ns, const std::string &cidr);
  void sysctl(const std::string &ns, const std::string &key, const std::string &value);
  // Shapes egress of dev in ns to `bitsPerSecond`.
  void shape(const std::string &ns, const std::string &dev, std::uint64_t bitsPerSecond);
  void deleteLink(const std::string &ns, const std::string &dev);

private:
  std::vector<std::unique_ptr<netconfig::NetworkNamespace>> namespaces_;
};

class Lab : public ::testing::Test, protected NetLab {
protected:
  void TearDown() override { clear(); }
};

} // namespace nvbox::test
