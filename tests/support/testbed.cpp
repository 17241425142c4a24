#include "testbed.hpp"

#include <sstream>
#include <stdexcept>
#include <unistd.h>

namespace nvbox::test {
namespace {

const std::string kTestbed = NVBOX_SOURCE_DIR "/examples/testbed/testbed";

} // namespace

Testbed::Testbed(std::string name, int hosts, const std::vector<std::string> &flags)
    : name_(std::move(name)) {
  std::vector<std::string> args{kTestbed, "up",  "--hosts", std::to_string(hosts),
                                "--name", name_, "--owner", std::to_string(::getpid())};
  args.insert(args.end(), flags.begin(), flags.end());
  const RunResult up = run(args);
  // A half-made testbed is still one to take down.
  up_ = true;
  if (up.exitCode != 0) {
    (void)down();
    throw std::runtime_error("testbed up '" + name_ + "' failed: " + up.out + up.err);
  }
  std::istringstream lines(up.out); // NAME URI UNDERLAY-ADDRESS per host
  for (Host h; lines >> h.name >> h.uri >> h.address;) {
    hosts_.push_back(h);
  }
  if (hosts_.size() != static_cast<std::size_t>(hosts)) {
    (void)down();
    throw std::runtime_error("testbed up '" + name_ + "' printed " + std::to_string(hosts_.size()) +
                             " hosts, not " + std::to_string(hosts) + ": " + up.out);
  }
}

Testbed::~Testbed() {
  if (up_) {
    (void)down();
  }
}

std::vector<std::string> Testbed::uris() const {
  std::vector<std::string> out;
  for (const Host &h : hosts_) {
    out.push_back(h.uri);
  }
  return out;
}

std::string Testbed::uri(const std::string &host, const std::string &flag) const {
  const RunResult r = run({kTestbed, "uri", host, "--name", name_, flag});
  if (r.exitCode != 0) {
    throw std::runtime_error("testbed uri '" + host + "' " + flag + " failed: " + r.err);
  }
  return r.out.substr(0, r.out.find('\n'));
}

RunResult Testbed::down() {
  up_ = false;
  return run({kTestbed, "down", "--name", name_});
}

} // namespace nvbox::test
