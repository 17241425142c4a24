// Routers — the virtual routers on one NV-box host and the six verbs the
// paper asks of an NV-box: instantiate (create), start, suspend, resume,
// stop, destroy; plus list and inspect.
//
// A router is a persistent libvirt domain named kRouterDomainPrefix + NAME,
// booting an OSR image's kernel and initrd with its own copy-on-write
// overlay volume over the image's pushed root disk (RouterDomain). What
// nvbox made is in the domain's <metadata> (image, digest, role, overlay
// volume, pool), so list() and inspect() rebuild everything from the host:
// there is no local state file to drift, and two machines running nvbox see
// the same routers.
//
// create() undoes what it made when a step fails (volume, domain); destroy()
// removes the domain and its overlay, never the shared base image.
//
// Threading: a RouterManager uses its Connection from the calling thread;
// managers on different threads may share one Connection.
#pragma once

#include "nvbox/guest_agent.hpp"
#include "nvbox/hosts.hpp"
#include "nvbox/image_push.hpp"
#include "nvbox/images/image_store.hpp"
#include "nvbox/libvirt.hpp"
#include "nvbox/router_domain.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace nvbox {

inline constexpr const char *kRouterDomainPrefix = "nvbox-";

// [a-z0-9][a-z0-9-]{0,31}
[[nodiscard]] bool isValidRouterName(const std::string &name) noexcept;
[[nodiscard]] std::string routerDomainName(const std::string &router);

struct RouterCreateOptions {
  std::string name;
  std::string image = "osr";
  std::uint64_t memoryMiB = 128;
  unsigned vcpus = 1;
  std::vector<RouterNic> nics;
  std::map<std::string, std::string> config; // fw_cfg key -> text
  std::string role = "router";
  std::string overlay;    // the topology it belongs to, if any
  std::string spec;       // overlay members: digest of the planned router (RouterMetadata)
  std::string plan;       // overlay members: the overlay plan JSON (RouterMetadata)
  std::string domainType; // "qemu" or "kvm"; empty: probe the host
  PoolSpec pool;
};

enum class RouterState { Shutoff, Running, Paused, ShuttingDown, Crashed, Other };
// "shutoff", "running", "paused", "shutting-down", "crashed", "other".
[[nodiscard]] std::string toString(RouterState state);

struct RouterInfo {
  std::string name;   // the router's name (domain name without the prefix)
  std::string domain; // the libvirt domain
  HostRef host;
  RouterState state = RouterState::Other;
  std::string domainType;
  RouterMetadata metadata;
  std::uint64_t memoryMiB = 0;
  unsigned vcpus = 0;
  std::vector<std::string> macs;

  [[nodiscard]] nlohmann::json toJson() const;
};

struct StopReport {
  bool graceful = false; // the guest powered off by itself within the timeout
  double seconds = 0;
};

// How relocate() moves a running router: `Live` migrates it while it runs
// (libvirt's live migration with an incremental copy of its overlay), `Offline`
// saves, moves and restores it, `Auto` tries live and falls back to offline
// when libvirt refuses with the router untouched on the source.
enum class RelocateMode { Auto, Live, Offline };
// "auto", "live", "offline".
[[nodiscard]] std::string toString(RelocateMode mode);
[[nodiscard]] std::optional<RelocateMode> parseRelocateMode(const std::string &text);

// How an offline relocation compresses the saved state on the way: the two
// codecs a libvirt 9.0 target both has and restores fast. xz moves about a
// fifth less than gzip and costs about 3 s more of downtime on a 2-core TCG
// host, where a 128 MiB router's offline move takes 4 s with gzip (numbers
// in save_image_compressor.hpp).
enum class StateCompression { Gzip, Xz };

[[nodiscard]] std::string toString(StateCompression codec);
[[nodiscard]] std::optional<StateCompression> parseStateCompression(const std::string &text);

// A live migration under way, as libvirt's job info reports it.
struct RelocateProgress {
  std::uint64_t memoryDone = 0; // guest memory processed (including zero pages)
  std::uint64_t memoryTotal = 0;
  std::uint64_t diskDone = 0; // the overlay's blocks copied
  std::uint64_t diskTotal = 0;
  double seconds = 0; // since the migration began
};

struct RelocateOptions {
  RelocateMode mode = RelocateMode::Auto;
  // Where the source's QEMU reaches the target for a live migration
  // (an IP address or a host name: the migration stream goes to
  // tcp://ADDRESS, the disk copy to the same address). Empty: the host part
  // of the target's URI when it has one (qemu+tcp://ADDRESS/system), else
  // the target's host name as its libvirtd gives it.
  std::string migrationAddress;
  // Called about twice a second during a live migration, from another thread
  // (the calling thread waits in libvirt meanwhile).
  std::function<void(const RelocateProgress &)> progress;
  // Offline only (live migration compresses with zlib, in QEMU).
  StateCompression compression = StateCompression::Xz;
};

struct RelocateReport {
  std::string router;
  HostRef from;
  HostRef to;
  bool live = false;               // true: migrated live; false: saved, moved and restored
  std::string reason;              // why it was not live (empty when live)
  std::uint64_t stateBytes = 0;    // live: memory moved; offline: saved state moved (compressed)
  std::uint64_t stateRawBytes = 0; // live: the guest's non-zero pages; offline: as libvirt saved it
  StateCompression compression = StateCompression::Xz; // offline: the saved state's codec
  std::uint64_t diskBytes = 0;  // the router's overlay moved (the base is shared)
  std::uint64_t imageBytes = 0; // image parts pushed because the target lacked them
  std::uint64_t memoryMiB = 0;  // the guest's memory
  double downtime = 0; // live: QEMU's (source paused to target running); offline: save to restore
  double seconds = 0;  // the whole relocation

  [[nodiscard]] nlohmann::json toJson() const;
};

class RouterManager {
public:
  RouterManager(const virt::Connection &conn, HostRef host);

  // Instantiates the router (pushing the image first when the host lacks
  // it) without starting it. Throws nvbox::Error: unknown image, name taken,
  // not enough memory, or a libvirt step failing (after undoing the others).
  RouterInfo create(const images::ImageStore &store, const RouterCreateOptions &options,
                    const PushProgress &progress = {});
  void start(const std::string &name);
  // Polls the guest agent until osrd answers.
  [[nodiscard]] ReadyReport waitReady(const std::string &name, std::chrono::milliseconds timeout);
  void suspend(const std::string &name);
  void resume(const std::string &name);
  // ACPI power button, then forced off after `timeout`.
  StopReport stop(const std::string &name, std::chrono::milliseconds timeout);
  // Domain (stopped first if running) and overlay volume.
  void destroy(const std::string &name);

  // Moves the router to `target`'s host, keeping its state: pushes the
  // image there if needed. A running or paused router is migrated live when
  // options.mode allows and both libvirtds agree (virDomainMigrate3 with
  // VIR_MIGRATE_LIVE | PERSIST_DEST | UNDEFINE_SOURCE | NON_SHARED_INC: its
  // overlay is pre-created on the target over the same base and only its
  // own blocks are copied); memory, disk bytes and downtime come from
  // libvirt's completed-job statistics. Should libvirt refuse or fail with
  // the router still running here, the pre-created overlay is removed and,
  // in Auto mode, the router moves offline (report.reason says why); in
  // Live mode that is an error. Offline, for a running or paused router, it
  // saves its state
  // into its pool on this host (virDomainSaveFlags), moves the state (gzip-
  // compressed on the way, which the target's libvirt undoes at restore) and
  // its overlay through libvirt streams (download here, upload there), defines
  // and restores it on the target, then removes it here. A shut-off router
  // moves its overlay and definition only. Both pools must keep the base
  // image at the same path (the overlay's qcow2 header names it), which
  // holds for nvbox's content-addressed pools. When a step fails, what the
  // target got is removed and the router is restored here.
  RelocateReport relocate(const std::string &name, RouterManager &target,
                          const images::ImageStore &store, const RelocateOptions &options = {});

  // Replaces the router's nvbox metadata, in its definition and, while it
  // runs, live.
  void setMetadata(const std::string &name, const RouterMetadata &metadata);
  // Sets the carrier of one of the router's NICs (`nic` as the router was
  // created with it; libvirt finds it by MAC): the guest sees its link go
  // down or come back. Live only: a restarted router's NICs are up.
  void setLinkState(const std::string &name, RouterNic nic, bool up);

  [[nodiscard]] std::vector<RouterInfo> list() const;
  // Throws "cannot find router 'NAME' on host 'H'" when absent.
  [[nodiscard]] RouterInfo inspect(const std::string &name) const;
  // The router's domain; throws like inspect().
  [[nodiscard]] virt::DomainPtr domain(const std::string &name) const;

private:
  [[nodiscard]] RouterInfo describe(virDomainPtr dom) const;
  [[nodiscard]] std::string hostText() const;
  const virt::Connection &conn_;
  HostRef host_;
};

} // namespace nvbox
