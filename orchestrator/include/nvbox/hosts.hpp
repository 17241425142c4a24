// Host names → libvirt URIs.
//
// With no configuration there is exactly one host, `local` = qemu:///system.
// Anything containing "://" is taken as a libvirt URI as it stands
// (qemu+ssh://…, qemu+tcp://…, qemu+unix:///system?socket=…, test:///default).
#pragma once

#include <string>

namespace nvbox {

struct HostRef {
  std::string name; // "local", or the URI itself when given one
  std::string uri;
};

inline constexpr const char *kLocalHostName = "local";
inline constexpr const char *kLocalHostUri = "qemu:///system";

// Throws nvbox::UsageError for a name that is neither known nor a URI.
[[nodiscard]] HostRef resolveHost(const std::string &nameOrUri);

} // namespace nvbox
