// A testbed of examples/testbed/testbed (simulated hosts, each a network +
// mount namespace with its own libvirtd) for one test or benchmark: made
// with this process as its owner, so the sweeper removes it if the process
// dies, and taken down when the object goes.
#pragma once

#include "process.hpp"

#include <string>
#include <vector>

namespace nvbox::test {

class Testbed {
public:
  struct Host {
    std::string name;    // h1, h2, ...
    std::string uri;     // the host's libvirtd (qemu+unix)
    std::string address; // the host's underlay address
  };

  // `testbed up --hosts HOSTS --name NAME` plus `flags` (e.g. --ssh). Throws
  // std::runtime_error with up's output when it fails.
  Testbed(std::string name, int hosts, const std::vector<std::string> &flags = {});
  ~Testbed(); // down when not done yet; never throws
  Testbed(const Testbed &) = delete;
  Testbed &operator=(const Testbed &) = delete;

  [[nodiscard]] const std::string &name() const noexcept { return name_; }
  [[nodiscard]] const std::vector<Host> &hosts() const noexcept { return hosts_; }
  [[nodiscard]] std::vector<std::string> uris() const;
  // `testbed uri HOST FLAG` (--tcp or --ssh). Throws when it fails.
  [[nodiscard]] std::string uri(const std::string &host, const std::string &flag) const;
  // `testbed down`, for a test that checks how it went; the destructor then
  // does nothing.
  RunResult down();

private:
  std::string name_;
  std::vector<Host> hosts_;
  bool up_ = false;
};

} // namespace nvbox::test
