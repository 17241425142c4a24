// NetnsTest — a GoogleTest fixture that hands out throwaway named network
// namespaces (nvbox-test-<pid>-<n>). Each is owned by a NetworkNamespace, so
// it is removed when the fixture is torn down, after a failed assertion too;
// whatever a test leaves in it (veth, bridges, qdiscs) goes with it.
#pragma once

#include "nvbox/netconfig/netns.hpp"

#include <gtest/gtest.h>
#include <memory>
#include <string>
#include <vector>

namespace nvbox::test {

class NetnsTest : public ::testing::Test {
protected:
  // Creates a new namespace and returns its name.
  std::string makeNamespace();
  void TearDown() override { namespaces_.clear(); }

private:
  std::vector<std::unique_ptr<netconfig::NetworkNamespace>> namespaces_;
};

} // namespace nvbox::test
