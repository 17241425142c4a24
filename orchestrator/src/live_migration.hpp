// Internal to nvbox_orchestrator: the live path of RouterManager::relocate —
// libvirt's managed live migration of a router between two hosts, with an
// incremental copy of its overlay (the base image is on both hosts already).
#pragma once

#include "nvbox/error.hpp"
#include "nvbox/libvirt.hpp"
#include "nvbox/router.hpp"

#include <cstdint>
#include <functional>
#include <string>

namespace nvbox::detail {

// Live migration did not happen and the router is as it was on the source
// (running or paused there, nothing of it on the target): the caller may
// move it another way.
class MigrationRefused : public Error {
public:
  using Error::Error;
};

struct LiveMigrationSpec {
  std::string router;      // for messages
  std::string domain;      // its libvirt domain
  std::string pool;        // the pool holding its overlay, on both hosts
  std::string volume;      // its overlay volume
  std::string backingPath; // the base image the overlay sits on, on both hosts
  std::string migrateUri;  // VIR_MIGRATE_PARAM_URI; empty: libvirt's choice
  std::string sourceText;  // "host 'h1'"
  std::string targetText;  // "host 'h2'"
};

struct LiveMigrationResult {
  std::uint64_t memoryBytes = 0; // VIR_DOMAIN_JOB_MEMORY_PROCESSED: memory bytes sent
  std::uint64_t memoryPages = 0; // the guest's non-zero pages (memory total - zero pages)
  std::uint64_t diskBytes = 0;   // overlay bytes copied (the running job's disk figures)
  double downtime = 0;           // VIR_DOMAIN_JOB_DOWNTIME, seconds
};

// Why a live migration from `source` to `target` cannot even be tried
// (a host that advertises no live migration), or empty.
[[nodiscard]] std::string liveMigrationObstacle(const virt::Connection &source,
                                                const std::string &sourceText,
                                                const virt::Connection &target,
                                                const std::string &targetText);

// The migration URI for a target: tcp://ADDRESS for an explicit address,
// else tcp://HOST for a libvirt URI naming a host (qemu+tcp://HOST/system,
// qemu+ssh://user@HOST:22/system), else empty (libvirt then uses the
// target's host name).
[[nodiscard]] std::string migrationUri(const std::string &targetLibvirtUri,
                                       const std::string &address);

// Migrates `dom` live to `target`: pre-creates the overlay volume there,
// runs virDomainMigrate3 (live, persistent on the target, undefined on the
// source, incremental storage copy) while a second thread reports progress,
// and reads the completed job's statistics on the target. Throws
// MigrationRefused (after removing the pre-created volume) when it fails
// with the router intact on the source; nvbox::Error otherwise. The source
// overlay volume stays: the caller removes it.
LiveMigrationResult migrateLive(const virt::Connection &source, virDomainPtr dom,
                                const virt::Connection &target, const LiveMigrationSpec &spec,
                                const std::function<void(const RelocateProgress &)> &progress);

} // namespace nvbox::detail
