// LibvirtdTest — a GoogleTest fixture for tests that need the real libvirtd
// at qemu:///system. SetUp() starts the daemon with scripts/libvirtd-up.sh
// when it does not answer, and fails the test (never skips it) if it still
// does not. Domains the test registers with track() and storage pools it
// registers with trackPool() are removed in TearDown(), which gtest runs even
// after a failed assertion.
#pragma once

#include "nvbox/libvirt.hpp"

#include <gtest/gtest.h>
#include <optional>
#include <string>
#include <vector>

namespace nvbox::test {

// Makes sure libvirtd answers at qemu:///system; returns an error or "".
std::string ensureLibvirtd();

// Names of all domains (running or defined) on a connection.
std::vector<std::string> domainNames(const virt::Connection &conn);

// Destroys and undefines every domain whose name starts with prefix; returns
// the names it removed.
std::vector<std::string> removeDomains(const virt::Connection &conn, const std::string &prefix);

// Names of all storage pools (active or defined) on a connection.
std::vector<std::string> storagePoolNames(const virt::Connection &conn);

// Deletes every volume of the pool, destroys it, removes its directory and
// undefines it; false when there is no such pool.
bool removeStoragePool(const virt::Connection &conn, const std::string &name);

class LibvirtdTest : public ::testing::Test {
protected:
  void SetUp() override;
  void TearDown() override;

  // A name for a test domain or pool, unique per process:
  // nvbox-test-<what>-<pid>-<n>.
  std::string uniqueName(const std::string &what);
  void track(const std::string &domainName) { tracked_.push_back(domainName); }
  void trackPool(const std::string &poolName) { trackedPools_.push_back(poolName); }
  virt::Connection &conn() { return *conn_; }

private:
  std::optional<virt::Connection> conn_;
  std::vector<std::string> tracked_;
  std::vector<std::string> trackedPools_;
};

} // namespace nvbox::test
