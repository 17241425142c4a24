#include "libvirtd_fixture.hpp"

#include "nvbox/error.hpp"
#include "process.hpp"

#include <chrono>
#include <memory>
#include <thread>
#include <unistd.h>

namespace nvbox::test {

std::string ensureLibvirtd() {
  try {
    (void)virt::Connection::open("qemu:///system");
    return {};
  } catch (const Error &) {
  }
  const RunResult up = run({"bash", std::string(NVBOX_SOURCE_DIR) + "/scripts/libvirtd-up.sh"});
  if (up.exitCode != 0) {
    return "scripts/libvirtd-up.sh failed: " + up.err;
  }
  try {
    (void)virt::Connection::open("qemu:///system");
    return {};
  } catch (const Error &e) {
    return e.what();
  }
}

std::vector<std::string> domainNames(const virt::Connection &conn) {
  virDomainPtr *domains = nullptr;
  const int n = virConnectListAllDomains(conn.get(), &domains, 0);
  std::vector<std::string> names;
  for (int i = 0; i < n; ++i) {
    const virt::DomainPtr dom(domains[i]);
    names.emplace_back(virDomainGetName(dom.get()));
  }
  free(domains);
  return names;
}

std::vector<std::string> removeDomains(const virt::Connection &conn, const std::string &prefix) {
  std::vector<std::string> removed;
  for (const auto &name : domainNames(conn)) {
    if (!name.starts_with(prefix)) {
      continue;
    }
    const virt::DomainPtr dom(virDomainLookupByName(conn.get(), name.c_str()));
    if (!dom) {
      continue;
    }
    if (virDomainIsActive(dom.get()) == 1) {
      virDomainDestroy(dom.get());
    }
    if (virDomainIsPersistent(dom.get()) == 1) {
      virDomainUndefineFlags(dom.get(), VIR_DOMAIN_UNDEFINE_NVRAM |
                                            VIR_DOMAIN_UNDEFINE_MANAGED_SAVE |
                                            VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA);
    }
    removed.push_back(name);
  }
  return removed;
}

std::vector<std::string> storagePoolNames(const virt::Connection &conn) {
  virStoragePoolPtr *pools = nullptr;
  const int n = virConnectListAllStoragePools(conn.get(), &pools, 0);
  std::vector<std::string> names;
  for (int i = 0; i < n; ++i) {
    const virt::StoragePoolPtr pool(pools[i]);
    names.emplace_back(virStoragePoolGetName(pool.get()));
  }
  free(pools);
  return names;
}

bool removeStoragePool(const virt::Connection &conn, const std::string &name) {
  const virt::StoragePoolPtr pool(virStoragePoolLookupByName(conn.get(), name.c_str()));
  if (!pool) {
    return false;
  }
  // Volumes can only be listed and deleted while the pool is active; a pool
  // whose directory is gone does not start and is just undefined.
  if (virStoragePoolIsActive(pool.get()) == 1 || virStoragePoolCreate(pool.get(), 0) == 0) {
    virStoragePoolRefresh(pool.get(), 0);
    virStorageVolPtr *vols = nullptr;
    const int n = virStoragePoolListAllVolumes(pool.get(), &vols, 0);
    for (int i = 0; i < n; ++i) {
      const virt::StorageVolPtr vol(vols[i]);
      virStorageVolDelete(vol.get(), 0);
    }
    free(vols);
    virStoragePoolDestroy(pool.get());
  }
  if (virStoragePoolIsPersistent(pool.get()) == 1) {
    virStoragePoolDelete(pool.get(), 0); // removes the (now empty) directory
    virStoragePoolUndefine(pool.get());
  }
  return true;
}

void LibvirtdTest::SetUp() {
  const std::string problem = ensureLibvirtd();
  ASSERT_EQ(problem, "") << "libvirtd is not usable";
  conn_.emplace(virt::Connection::open("qemu:///system"));
}

void LibvirtdTest::TearDown() {
  if (!conn_) {
    return;
  }
  for (const auto &name : tracked_) {
    removeDomains(*conn_, name);
  }
  for (const auto &name : trackedPools_) {
    removeStoragePool(*conn_, name);
  }
}

std::string LibvirtdTest::uniqueName(const std::string &what) {
  static int counter = 0;
  return "nvbox-test-" + what + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

} // namespace nvbox::test
