// Names nvbox gives to what it creates on a host. Anything carrying these
// prefixes is nvbox's own, which is what lets `destroy` and the test sweeper
// find leftovers after a crash without any local state file.
#pragma once

namespace nvbox::naming {

inline constexpr const char *kStoragePool = "nvbox";
inline constexpr const char *kProbeDomainPrefix = "nvbox-probe-";
inline constexpr const char *kMinLibvirtVersion = "7.0.0";
inline constexpr unsigned long kMinLibvirtVersionNumber = 7000000;

} // namespace nvbox::naming
