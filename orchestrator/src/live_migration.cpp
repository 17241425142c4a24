#include "live_migration.hpp"

#include "nvbox/router_domain.hpp"
#include "nvbox/xml.hpp"
#include "volumes.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stop_token>
#include <thread>

namespace nvbox::detail {

namespace {

using Clock = std::chrono::steady_clock;

// Typed parameters that free themselves.
class TypedParams {
public:
  TypedParams() = default;
  ~TypedParams() { virTypedParamsFree(params_, count_); }
  TypedParams(const TypedParams &) = delete;
  TypedParams &operator=(const TypedParams &) = delete;

  void add(const char *key, const std::string &value) {
    if (virTypedParamsAddString(&params_, &count_, &max_, key, value.c_str()) != 0) {
      throw Error(std::string("cannot set migration parameter ") + key + ": " + virt::lastError());
    }
  }
  void add(const char *key, int value) {
    if (virTypedParamsAddInt(&params_, &count_, &max_, key, value) != 0) {
      throw Error(std::string("cannot set migration parameter ") + key + ": " + virt::lastError());
    }
  }
  [[nodiscard]] std::uint64_t get(const char *key) const {
    unsigned long long value = 0;
    return virTypedParamsGetULLong(params_, count_, key, &value) == 1 ? value : 0;
  }
  [[nodiscard]] bool has(const char *key) const {
    unsigned long long value = 0;
    return virTypedParamsGetULLong(params_, count_, key, &value) == 1;
  }
  virTypedParameterPtr *out() { return &params_; }
  int *outCount() { return &count_; }
  [[nodiscard]] virTypedParameterPtr get() const { return params_; }
  [[nodiscard]] int count() const { return count_; }

private:
  virTypedParameterPtr params_ = nullptr;
  int count_ = 0;
  int max_ = 0;
};

// Polls the source's migration job from a thread of its own, hands the
// figures to `progress` (if any) and keeps the disk bytes copied, until
// stopped. libvirt 9.0 keeps no disk figures in the completed job's
// statistics, but the running job has them from the start of the disk copy
// to the end of the migration.
class ProgressPoller {
public:
  ProgressPoller(virDomainPtr dom, const std::function<void(const RelocateProgress &)> &progress) {
    thread_ = std::jthread([dom, &progress, this](const std::stop_token &stop) {
      const auto began = Clock::now();
      while (!stop.stop_requested()) {
        virDomainJobInfo info{};
        if (virDomainGetJobInfo(dom, &info) == 0 && info.type == VIR_DOMAIN_JOB_UNBOUNDED) {
          RelocateProgress p;
          p.memoryDone = info.memProcessed;
          p.memoryTotal = info.memTotal;
          p.diskDone = info.fileProcessed;
          p.diskTotal = info.fileTotal;
          p.seconds = std::chrono::duration<double>(Clock::now() - began).count();
          diskDone_ = std::max<std::uint64_t>(diskDone_, p.diskDone);
          if (progress) {
            progress(p);
          }
        }
        std::unique_lock lock(mutex_);
        wake_.wait_for(lock, stop, std::chrono::milliseconds(250), [] { return false; });
      }
    });
  }
  ~ProgressPoller() { stop(); }
  ProgressPoller(const ProgressPoller &) = delete;
  ProgressPoller &operator=(const ProgressPoller &) = delete;

  void stop() {
    if (thread_.joinable()) {
      thread_.request_stop();
      thread_.join();
    }
  }
  // The most disk bytes the job reported copied; valid after stop().
  [[nodiscard]] std::uint64_t diskDone() const { return diskDone_; }

private:
  std::atomic<std::uint64_t> diskDone_ = 0;
  std::mutex mutex_;
  std::condition_variable_any wake_;
  std::jthread thread_;
};

bool isActive(virDomainPtr dom) {
  return dom != nullptr && virDomainIsActive(dom) == 1;
}

void removeDomain(virDomainPtr dom) {
  if (isActive(dom)) {
    virDomainDestroy(dom);
  }
  virDomainUndefineFlags(dom,
                         VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA);
}

std::string hostOfUri(const std::string &uri) {
  const auto scheme = uri.find("://");
  if (scheme == std::string::npos) {
    return {};
  }
  std::string authority = uri.substr(scheme + 3);
  authority = authority.substr(0, authority.find_first_of("/?#"));
  if (const auto at = authority.rfind('@'); at != std::string::npos) {
    authority.erase(0, at + 1);
  }
  if (authority.starts_with('[')) { // [IPv6]:port
    const auto close = authority.find(']');
    return close == std::string::npos ? std::string{} : authority.substr(0, close + 1);
  }
  return authority.substr(0, authority.find(':'));
}

} // namespace

std::string liveMigrationObstacle(const virt::Connection &source, const std::string &sourceText,
                                  const virt::Connection &target, const std::string &targetText) {
  for (const auto &[conn, text] : {std::pair{&source, &sourceText}, {&target, &targetText}}) {
    std::string caps;
    try {
      caps = conn->capabilities();
    } catch (const Error &e) {
      return "cannot read the capabilities of " + *text + ": " + e.what();
    }
    if (XmlDocument(caps, "the capabilities of " + *text)
            .all("/capabilities/host/migration_features/live")
            .empty()) {
      return *text + " offers no live migration";
    }
  }
  return {};
}

std::string migrationUri(const std::string &targetLibvirtUri, const std::string &address) {
  std::string host = address;
  if (host.empty()) {
    host = hostOfUri(targetLibvirtUri);
  } else if (host.find(':') != std::string::npos && !host.starts_with('[')) {
    host = "[" + host + "]"; // a bare IPv6 address
  }
  return host.empty() ? std::string{} : "tcp://" + host;
}

LiveMigrationResult migrateLive(const virt::Connection &source, virDomainPtr dom,
                                const virt::Connection &target, const LiveMigrationSpec &spec,
                                const std::function<void(const RelocateProgress &)> &progress) {
  const std::string what = "router '" + spec.router + "'";
  int state = VIR_DOMAIN_NOSTATE;
  if (virDomainGetState(dom, &state, nullptr, 0) != 0) {
    throw Error("cannot read the state of " + what + " on " + spec.sourceText + ": " +
                virt::lastError());
  }
  const bool paused = state == VIR_DOMAIN_PAUSED;

  // The incremental storage copy needs a destination: the same overlay
  // (name, format, backing file) in the same pool on the target.
  virt::StoragePoolPtr srcPool(virStoragePoolLookupByName(source.get(), spec.pool.c_str()));
  virt::StoragePoolPtr dstPool(virStoragePoolLookupByName(target.get(), spec.pool.c_str()));
  if (!srcPool || !dstPool) {
    throw Error("cannot find storage pool '" + spec.pool + "' on " +
                (srcPool ? spec.targetText : spec.sourceText) + ": " + virt::lastError());
  }
  const virt::StorageVolPtr srcVol =
      lookupVolume(srcPool.get(), spec.volume, "volume '" + spec.volume + "'");
  if (!srcVol) {
    throw Error("cannot find the overlay volume '" + spec.volume + "' of " + what + " on " +
                spec.sourceText);
  }
  virStorageVolInfo info{};
  if (virStorageVolGetInfo(srcVol.get(), &info) != 0) {
    throw Error("cannot read volume '" + spec.volume + "' on " + spec.sourceText + ": " +
                virt::lastError());
  }
  if (lookupVolume(dstPool.get(), spec.volume, "volume '" + spec.volume + "'")) {
    throw Error("volume '" + spec.volume + "' exists in pool '" + spec.pool + "' on " +
                    spec.targetText + " already",
                "remove it there first");
  }
  const std::string volXml = overlayVolumeXml(spec.volume, spec.backingPath, info.capacity);
  CreatedVolume created(virStorageVolCreateXML(dstPool.get(), volXml.c_str(), 0));
  if (!created.get()) {
    throw Error("cannot make the overlay volume '" + spec.volume + "' of " + what + " on " +
                spec.targetText + ": " + virt::lastError());
  }
  virStorageVolInfo empty{};
  (void)virStorageVolGetInfo(created.get(), &empty);

  TypedParams params;
  if (!spec.migrateUri.empty()) {
    params.add(VIR_MIGRATE_PARAM_URI, spec.migrateUri);
  }
  unsigned int flags = VIR_MIGRATE_LIVE | VIR_MIGRATE_PERSIST_DEST | VIR_MIGRATE_UNDEFINE_SOURCE |
                       VIR_MIGRATE_NON_SHARED_INC;
  if (paused) {
    flags |= VIR_MIGRATE_PAUSED;
  }
  // Multithreaded zlib compression of the pages sent (libvirt 9.0 has no
  // zstd for migration): a router with 128 MiB sent 61.8 MiB of memory
  // uncompressed, 20.2 MiB at level 1 and 19.0 MiB at level 9, in about
  // twice the time (7 s instead of 3 s under TCG).
  flags |= VIR_MIGRATE_COMPRESSED;
  params.add(VIR_MIGRATE_PARAM_COMPRESSION, "mt");
  params.add(VIR_MIGRATE_PARAM_COMPRESSION_MT_LEVEL, 9);

  ProgressPoller poller(dom, progress);
  virt::DomainPtr moved(virDomainMigrate3(dom, target.get(), params.get(),
                                          static_cast<unsigned int>(params.count()), flags));
  const std::string why = moved ? std::string{} : virt::lastError();
  poller.stop();

  if (!moved) {
    virt::DomainPtr here(virDomainLookupByName(source.get(), spec.domain.c_str()));
    virt::DomainPtr there(virDomainLookupByName(target.get(), spec.domain.c_str()));
    if (isActive(here.get())) {
      // libvirt resumes a guest whose migration failed; make sure of it.
      int now = VIR_DOMAIN_NOSTATE;
      int reason = 0;
      if (!paused && virDomainGetState(here.get(), &now, &reason, 0) == 0 &&
          now == VIR_DOMAIN_PAUSED) {
        virDomainResume(here.get());
      }
      if (there) {
        removeDomain(there.get());
      }
      throw MigrationRefused("cannot migrate " + what + " live from " + spec.sourceText + " to " +
                             spec.targetText + ": " + why);
    }
    (void)created.keep(); // it may hold the only copy of the router's disk
    if (isActive(there.get())) {
      throw Error("the live migration of " + what + " to " + spec.targetText +
                      " ended in an error, but it runs there: " + why,
                  "check it with 'nvbox router inspect' on both hosts");
    }
    throw Error("the live migration of " + what + " from " + spec.sourceText + " to " +
                    spec.targetText + " failed and it runs on neither: " + why,
                "its overlay '" + spec.volume + "' is kept on both hosts");
  }
  const virt::StorageVolPtr copied = created.keep();

  // The completed job's statistics travel to the target with the guest.
  LiveMigrationResult result;
  TypedParams stats;
  int type = 0;
  if (virDomainGetJobStats(moved.get(), &type, stats.out(), stats.outCount(),
                           VIR_DOMAIN_JOB_STATS_COMPLETED) != 0 ||
      !stats.has(VIR_DOMAIN_JOB_MEMORY_PROCESSED)) {
    throw Error(what + " migrated live to " + spec.targetText +
                    ", but its statistics cannot be read there: " + virt::lastError(),
                "it runs there; see 'nvbox router inspect'");
  }
  result.memoryBytes = stats.get(VIR_DOMAIN_JOB_MEMORY_PROCESSED);
  const std::uint64_t zero =
      stats.get(VIR_DOMAIN_JOB_MEMORY_CONSTANT) * stats.get(VIR_DOMAIN_JOB_MEMORY_PAGE_SIZE);
  const std::uint64_t total = stats.get(VIR_DOMAIN_JOB_MEMORY_TOTAL);
  result.memoryPages = total > zero ? total - zero : 0;
  result.diskBytes = stats.has(VIR_DOMAIN_JOB_DISK_PROCESSED)
                         ? stats.get(VIR_DOMAIN_JOB_DISK_PROCESSED)
                         : poller.diskDone();
  if (result.diskBytes == 0) {
    // The job's disk figures come and go with the copy's block jobs: when
    // no poll saw them, what the copy wrote into the target's overlay.
    virStorageVolInfo full{};
    if (virStoragePoolRefresh(dstPool.get(), 0) == 0 &&
        virStorageVolGetInfo(copied.get(), &full) == 0 && full.allocation > empty.allocation) {
      result.diskBytes = full.allocation - empty.allocation;
    }
  }
  result.downtime = static_cast<double>(stats.get(VIR_DOMAIN_JOB_DOWNTIME)) / 1000.0;
  return result;
}

} // namespace nvbox::detail
