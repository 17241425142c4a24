// Real TCP (or MPTCP) transfers between two network namespaces (the
// product's netconfig::transfer) and a tiny client for osrd's control
// socket. Shared by the osrd integration tests and benchmarks.
#pragma once

#include "nvbox/netconfig/transfer.hpp"

#include <nlohmann/json.hpp>
#include <string>

namespace nvbox::test {

using netconfig::transfer;
using netconfig::Transfer;
using netconfig::TransferOptions;

// One request/reply on an osrd control socket.
nlohmann::json osrdControl(const std::string &socketPath, const nlohmann::json &request);

} // namespace nvbox::test
