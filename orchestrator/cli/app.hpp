// The nvbox command line: global options, dispatch to a Command, and the one
// place where errors become a single stderr line and an exit code.
//
//   nvbox [--json] [--host NAME] COMMAND [ARGS…]
//   exit codes: 0 ok, 1 failure, 2 usage error
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace nvbox::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

int runApp(std::vector<std::string> args, std::ostream &out, std::ostream &err, bool interactive);

} // namespace nvbox::cli
