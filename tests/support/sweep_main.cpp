// nvbox-test-sweep — removes what earlier test runs left on this machine:
// libvirt domains named nvbox-test-* or nvbox-probe-*, and libvirt storage
// pools (with their volumes and directory) and network namespaces named
// nvbox-test-*, whose creating process (the pid in the name) is gone;
// a run still in progress keeps its objects. With --check it also fails
// (exit 1) when it had to remove anything, which is how the suite proves that
// tests clean up.
// Testbeds of examples/testbed (namespaces nvbox-tb-<TB>-h<N>, state in
// /run/nvbox-testbed/<TB>) go with `testbed down` when the process named in
// their owner file (`testbed up --owner PID`, as tests make them) is gone; a
// testbed without an owner file was made by hand and stays.
#include "libvirtd_fixture.hpp"
#include "nvbox/error.hpp"
#include "nvbox/naming.hpp"
#include "nvbox/netconfig/netns.hpp"
#include "process.hpp"

#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

namespace {

// The first all-digit '-'-separated field of a name is its creator's pid.
bool ownerAlive(const std::string &name) {
  std::istringstream fields(name);
  std::string field;
  while (std::getline(fields, field, '-')) {
    if (!field.empty() && field.find_first_not_of("0123456789") == std::string::npos) {
      return std::filesystem::exists("/proc/" + field);
    }
  }
  return false;
}

// An endpoint namespace of an overlay that overlay_test named t<pid>
// (nvbox-t<pid>.<endpoint>), left by a test process that is gone.
bool overlayTestEndpointLeft(const std::string &ns) {
  const std::string prefix = "nvbox-t";
  const auto dot = ns.find('.');
  if (!ns.starts_with(prefix) || dot == std::string::npos || dot == prefix.size()) {
    return false;
  }
  const std::string pid = ns.substr(prefix.size(), dot - prefix.size());
  return pid.find_first_not_of("0123456789") == std::string::npos &&
         !std::filesystem::exists("/proc/" + pid);
}

bool isTestbedName(const std::string &name) {
  return !name.empty() && name.size() <= 6 && name[0] >= 'a' && name[0] <= 'z' &&
         name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789") == std::string::npos;
}

// Testbeds with a trace on this machine: a namespace or a state directory.
std::set<std::string> testbedNames() {
  std::set<std::string> names;
  const std::string prefix = "nvbox-tb-";
  for (const auto &ns : nvbox::netconfig::listNamespaces()) {
    const auto host = ns.rfind("-h");
    if (ns.starts_with(prefix) && host != std::string::npos && host > prefix.size()) {
      const auto name = ns.substr(prefix.size(), host - prefix.size());
      if (isTestbedName(name)) {
        names.insert(name);
      }
    }
  }
  std::error_code ec;
  for (const auto &entry : std::filesystem::directory_iterator("/run/nvbox-testbed", ec)) {
    if (isTestbedName(entry.path().filename().string())) {
      names.insert(entry.path().filename().string());
    }
  }
  return names;
}

void sweepTestbeds(std::vector<std::string> &leftovers) {
  for (const auto &name : testbedNames()) {
    std::ifstream ownerFile("/run/nvbox-testbed/" + name + "/owner");
    std::string owner;
    if (!(ownerFile >> owner) || owner.find_first_not_of("0123456789") != std::string::npos ||
        std::filesystem::exists("/proc/" + owner)) {
      continue;
    }
    try {
      const auto r =
          nvbox::test::run({NVBOX_SOURCE_DIR "/examples/testbed/testbed", "down", "--name", name});
      if (r.exitCode != 0) {
        std::cerr << "sweep: testbed " << name << " not fully removed: " << r.err;
      }
    } catch (const nvbox::Error &e) {
      std::cerr << "sweep: testbed " << name << " not removed: " << e.what() << "\n";
    }
    leftovers.push_back("testbed " + name);
  }
}

} // namespace

int main(int argc, char **argv) {
  const bool check = argc > 1 && std::string(argv[1]) == "--check";
  std::vector<std::string> leftovers;
  try {
    const auto conn = nvbox::virt::Connection::open("qemu:///system");
    for (const char *prefix : {"nvbox-test-", nvbox::naming::kProbeDomainPrefix}) {
      for (const auto &name : nvbox::test::domainNames(conn)) {
        if (name.starts_with(prefix) && !ownerAlive(name)) {
          for (const auto &removed : nvbox::test::removeDomains(conn, name)) {
            leftovers.push_back("domain " + removed);
          }
        }
      }
    }
    for (const auto &name : nvbox::test::storagePoolNames(conn)) {
      if (name.starts_with("nvbox-test-") && !ownerAlive(name) &&
          nvbox::test::removeStoragePool(conn, name)) {
        leftovers.push_back("storage pool " + name);
      }
    }
  } catch (const nvbox::Error &e) {
    std::cerr << "sweep: libvirtd not reachable, domains and pools not swept: " << e.what() << "\n";
  }
  for (const auto &ns : nvbox::netconfig::listNamespaces()) {
    if ((ns.starts_with("nvbox-test-") && !ownerAlive(ns)) || overlayTestEndpointLeft(ns)) {
      nvbox::netconfig::removeNamespace(ns);
      leftovers.push_back("namespace " + ns);
    }
  }
  sweepTestbeds(leftovers);
  for (const auto &item : leftovers) {
    std::cout << "removed leftover " << item << "\n";
  }
  if (check && !leftovers.empty()) {
    std::cout << "tests left " << leftovers.size() << " object(s) behind\n";
    return 1;
  }
  std::cout << "host clean\n";
  return 0;
}
