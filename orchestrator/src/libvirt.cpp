#include "nvbox/libvirt.hpp"

#include "nvbox/error.hpp"

#include <chrono>
#include <csignal>
#include <mutex>
#include <thread>

namespace nvbox::virt {
namespace {

void silence(void * /*userdata*/, virErrorPtr /*error*/) {}

// Once per process, before the first connection: errors go to lastError()
// rather than stderr, and SIGPIPE is not fatal.
void initialise() {
  static std::once_flag once;
  std::call_once(once, [] {
    virInitialize();
    virSetErrorFunc(nullptr, silence);
    // libvirt writes to its sockets without MSG_NOSIGNAL: a libvirtd, a
    // stream or a keepalive peer that goes away must give an error, not kill
    // the process. Left alone when the program handles SIGPIPE itself.
    struct sigaction current {};
    if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
      std::signal(SIGPIPE, SIG_IGN);
    }
  });
}

} // namespace

std::string lastError(const char *fallback) {
  const virErrorPtr err = virGetLastError();
  if (err == nullptr || err->message == nullptr) {
    return fallback;
  }
  return err->message;
}

std::string formatVersion(unsigned long version) {
  return std::to_string(version / 1000000) + "." + std::to_string((version / 1000) % 1000) + "." +
         std::to_string(version % 1000);
}

Connection Connection::open(const std::string &uri) {
  initialise();
  std::unique_ptr<virConnect, Closer> conn(virConnectOpen(uri.c_str()));
  if (!conn) {
    throw Error("cannot connect to host '" + uri + "': " + lastError(),
                "check that libvirtd runs there and that the URI is right");
  }
  return {std::move(conn), uri};
}

std::string Connection::canonicalUri() const {
  std::unique_ptr<char, decltype(&free)> uri(virConnectGetURI(get()), free);
  return uri ? uri.get() : uri_;
}

std::string Connection::hostname() const {
  std::unique_ptr<char, decltype(&free)> name(virConnectGetHostname(get()), free);
  return name ? name.get() : std::string();
}

std::string Connection::libvirtVersion() const {
  unsigned long version = 0;
  if (virConnectGetLibVersion(get(), &version) != 0) {
    throw Error("cannot read the libvirt version of '" + uri_ + "': " + lastError());
  }
  return formatVersion(version);
}

std::string Connection::hypervisorVersion() const {
  unsigned long version = 0;
  if (virConnectGetVersion(get(), &version) != 0 || version == 0) {
    return {};
  }
  return formatVersion(version);
}

std::string Connection::driverType() const {
  const char *type = virConnectGetType(get());
  return type != nullptr ? type : "";
}

std::string Connection::capabilities() const {
  std::unique_ptr<char, decltype(&free)> xml(virConnectGetCapabilities(get()), free);
  if (!xml) {
    throw Error("cannot read the capabilities of '" + uri_ + "': " + lastError());
  }
  return xml.get();
}

std::string Connection::domainCapabilities(const std::string &virtType,
                                           const std::string &arch) const {
  std::unique_ptr<char, decltype(&free)> xml(
      virConnectGetDomainCapabilities(get(), nullptr, arch.c_str(), nullptr, virtType.c_str(), 0),
      free);
  if (!xml) {
    throw Error(lastError());
  }
  return xml.get();
}

} // namespace nvbox::virt
