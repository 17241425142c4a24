// RAII handles for the libvirt objects nvbox uses, and one place that turns
// libvirt's last error into an nvbox::Error.
//
// libvirt prints every error to stderr by default; Connection::open installs a
// silent handler once per process so that a failing call reaches the user as
// one nvbox error line, never as a stack of libvirt messages.
//
// Threading: a Connection may be shared between threads (libvirt connections
// are thread-safe); Domain, Stream, StoragePool and StorageVol handles belong
// to one thread at a time.
#pragma once

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <memory>
#include <string>

namespace nvbox::virt {

template <typename T, int (*Free)(T)> struct Deleter {
  void operator()(T p) const noexcept { Free(p); }
};

using DomainPtr = std::unique_ptr<virDomain, Deleter<virDomainPtr, virDomainFree>>;
using StreamPtr = std::unique_ptr<virStream, Deleter<virStreamPtr, virStreamFree>>;
using StoragePoolPtr =
    std::unique_ptr<virStoragePool, Deleter<virStoragePoolPtr, virStoragePoolFree>>;
using StorageVolPtr = std::unique_ptr<virStorageVol, Deleter<virStorageVolPtr, virStorageVolFree>>;

// The message of libvirt's last error on this thread, or `fallback`.
[[nodiscard]] std::string lastError(const char *fallback = "unknown libvirt error");

class Connection {
public:
  // Opens `uri` read-write. Throws nvbox::Error naming the URI and libvirt's
  // reason when the host cannot be reached.
  static Connection open(const std::string &uri);

  Connection(Connection &&) noexcept = default;
  Connection &operator=(Connection &&) noexcept = default;
  ~Connection() = default;

  [[nodiscard]] virConnectPtr get() const noexcept { return conn_.get(); }
  [[nodiscard]] const std::string &uri() const noexcept { return uri_; }

  // The driver's own name for the connection (e.g. "qemu:///system").
  [[nodiscard]] std::string canonicalUri() const;
  [[nodiscard]] std::string hostname() const;
  // libvirt library version on the host, e.g. "9.0.0".
  [[nodiscard]] std::string libvirtVersion() const;
  // Hypervisor version, e.g. "7.2.22"; empty when the driver has none.
  [[nodiscard]] std::string hypervisorVersion() const;
  [[nodiscard]] std::string driverType() const;
  [[nodiscard]] std::string capabilities() const;
  // Domain capabilities for one virt type; throws with libvirt's reason.
  [[nodiscard]] std::string domainCapabilities(const std::string &virtType,
                                               const std::string &arch) const;

private:
  struct Closer {
    void operator()(virConnectPtr c) const noexcept { virConnectClose(c); }
  };
  Connection(std::unique_ptr<virConnect, Closer> conn, std::string uri)
      : conn_(std::move(conn)), uri_(std::move(uri)) {}

  std::unique_ptr<virConnect, Closer> conn_;
  std::string uri_;
};

// "9000000" → "9.0.0".
[[nodiscard]] std::string formatVersion(unsigned long version);

} // namespace nvbox::virt
