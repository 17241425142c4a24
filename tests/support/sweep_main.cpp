// nvbox-test-sweep — removes what earlier test runs left on this machine:
// libvirt domains named nvbox-test-* or nvbox-probe-* and network namespaces
// named nvbox-test-*, whose creating process (the pid in the name) is gone;
// a run still in progress keeps its objects. With --check it also fails
// (exit 1) when it had to remove anything, which is how the suite proves that
// tests clean up.
#include "libvirtd_fixture.hpp"
#include "nvbox/error.hpp"
#include "nvbox/naming.hpp"
#include "nvbox/netconfig/netns.hpp"

#include <filesystem>
#include <iostream>
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
  } catch (const nvbox::Error &e) {
    std::cerr << "sweep: libvirtd not reachable, domains not swept: " << e.what() << "\n";
  }
  for (const auto &ns : nvbox::netconfig::listNamespaces()) {
    if (ns.starts_with("nvbox-test-") && !ownerAlive(ns)) {
      nvbox::netconfig::removeNamespace(ns);
      leftovers.push_back("namespace " + ns);
    }
  }
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
