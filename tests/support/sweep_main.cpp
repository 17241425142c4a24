// nvbox-test-sweep — removes what earlier test runs left on this machine:
// libvirt domains named nvbox-test-* or nvbox-probe-* and network namespaces
// named nvbox-test-*. With --check it also fails (exit 1) when it had to
// remove anything, which is how the suite proves that tests clean up.
#include "libvirtd_fixture.hpp"
#include "nvbox/error.hpp"
#include "nvbox/naming.hpp"
#include "nvbox/netconfig/netns.hpp"

#include <iostream>

int main(int argc, char **argv) {
  const bool check = argc > 1 && std::string(argv[1]) == "--check";
  std::vector<std::string> leftovers;
  try {
    const auto conn = nvbox::virt::Connection::open("qemu:///system");
    for (const char *prefix : {"nvbox-test-", nvbox::naming::kProbeDomainPrefix}) {
      for (auto &name : nvbox::test::removeDomains(conn, prefix)) {
        leftovers.push_back("domain " + name);
      }
    }
  } catch (const nvbox::Error &e) {
    std::cerr << "sweep: libvirtd not reachable, domains not swept: " << e.what() << "\n";
  }
  for (const auto &ns : nvbox::netconfig::listNamespaces()) {
    if (ns.starts_with("nvbox-test-")) {
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
