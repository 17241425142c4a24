#include "nvbox/hosts.hpp"

#include "nvbox/error.hpp"

namespace nvbox {

HostRef resolveHost(const std::string &nameOrUri) {
  if (nameOrUri.empty() || nameOrUri == kLocalHostName) {
    return {kLocalHostName, kLocalHostUri};
  }
  if (nameOrUri.find("://") != std::string::npos) {
    return {nameOrUri, nameOrUri};
  }
  throw UsageError("unknown host '" + nameOrUri + "'",
                   "use 'local' or a libvirt URI such as qemu+ssh://root@HOST/system");
}

} // namespace nvbox
