#include "netns_fixture.hpp"

#include <unistd.h>

namespace nvbox::test {

std::string NetnsTest::makeNamespace() {
  static int counter = 0;
  const std::string name =
      "nvbox-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  namespaces_.push_back(std::make_unique<netconfig::NetworkNamespace>(name));
  return name;
}

} // namespace nvbox::test
