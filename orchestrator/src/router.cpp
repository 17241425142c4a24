#include "nvbox/router.hpp"

#include "live_migration.hpp"
#include "nvbox/accelerator.hpp"
#include "nvbox/error.hpp"
#include "nvbox/images/image_builder.hpp"
#include "nvbox/xml.hpp"
#include "save_image_compressor.hpp"
#include "volumes.hpp"

#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

namespace nvbox {

namespace {

using Clock = std::chrono::steady_clock;

// Runs the undo steps of a half-done operation in reverse, unless the
// operation completed.
class Rollback {
public:
  ~Rollback() {
    if (!done_) {
      for (auto it = steps_.rbegin(); it != steps_.rend(); ++it) {
        (*it)();
      }
    }
  }
  void add(std::function<void()> undo) { steps_.push_back(std::move(undo)); }
  void commit() { done_ = true; }

private:
  std::vector<std::function<void()>> steps_;
  bool done_ = false;
};

RouterState stateOf(virDomainPtr dom) {
  int state = VIR_DOMAIN_NOSTATE;
  if (virDomainGetState(dom, &state, nullptr, 0) != 0) {
    return RouterState::Other;
  }
  switch (state) {
  case VIR_DOMAIN_RUNNING:
    return RouterState::Running;
  case VIR_DOMAIN_PAUSED:
    return RouterState::Paused;
  case VIR_DOMAIN_SHUTDOWN:
    return RouterState::ShuttingDown;
  case VIR_DOMAIN_SHUTOFF:
    return RouterState::Shutoff;
  case VIR_DOMAIN_CRASHED:
    return RouterState::Crashed;
  default:
    return RouterState::Other;
  }
}

std::optional<RouterMetadata> metadataOf(virDomainPtr dom) {
  std::unique_ptr<char, decltype(&free)> xml(
      virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, kMetadataNamespace, 0), free);
  if (!xml) {
    return std::nullopt; // not one of nvbox's
  }
  try {
    return parseRouterMetadata(xml.get());
  } catch (const Error &) {
    return std::nullopt;
  }
}

std::string pathOf(const std::vector<PushedPart> &parts, images::PartRole role) {
  for (const auto &p : parts) {
    if (p.role == role) {
      return p.path;
    }
  }
  throw Error("the pushed image has no " + std::string(images::toString(role)) + " part");
}

std::string poolPath(virStoragePoolPtr pool, const std::string &where) {
  std::unique_ptr<char, decltype(&free)> xml(virStoragePoolGetXMLDesc(pool, 0), free);
  if (!xml) {
    throw Error("cannot read " + where + ": " + virt::lastError());
  }
  return XmlDocument(xml.get(), where).first("/pool/target/path").value_or("");
}

virt::StoragePoolPtr lookupPool(const virt::Connection &conn, const std::string &name,
                                const std::string &where) {
  virt::StoragePoolPtr pool(virStoragePoolLookupByName(conn.get(), name.c_str()));
  if (!pool) {
    throw Error("cannot find storage pool '" + name + "' on " + where + ": " + virt::lastError());
  }
  return pool;
}

struct Copied {
  std::uint64_t read = 0;  // bytes read from the source volume
  std::uint64_t moved = 0; // bytes written to the target (compressed or not)
};

// Streams volume `from` (on its host) into a new raw volume `name` in pool
// `to` (on another host): byte for byte, or, given `saveCodec`, as a save
// image whose state is compressed on the way (SaveImageCompressor). The new
// volume is removed again when the copy fails.
Copied copyVolume(const virt::Connection &fromConn, virStorageVolPtr from,
                  const virt::Connection &toConn, virStoragePoolPtr to, const std::string &name,
                  const std::string &where, std::optional<StateCompression> saveCodec) {
  const std::uint64_t size = detail::fileSize(from, "volume '" + name + "'");
  const std::string xml = "<volume><name>" + xmlEscape(name) +
                          "</name><capacity unit='bytes'>0</capacity><target><format "
                          "type='raw'/></target></volume>";
  detail::CreatedVolume created(virStorageVolCreateXML(to, xml.c_str(), 0));
  if (!created.get()) {
    throw Error("cannot make volume '" + name + "' on " + where + ": " + virt::lastError());
  }
  detail::Transfer down(fromConn);
  detail::Transfer up(toConn);
  // Length 0 uploads until the stream ends: the compressed size is not
  // known in advance.
  if (virStorageVolDownload(from, down.get(), 0, size, 0) != 0 ||
      virStorageVolUpload(created.get(), up.get(), 0, saveCodec ? 0 : size, 0) != 0) {
    throw Error("cannot move volume '" + name + "' to " + where + ": " + virt::lastError());
  }
  std::vector<char> buf(std::size_t{1} << 20U);
  Copied c;
  try {
    std::optional<detail::SaveImageCompressor> compressor;
    if (saveCodec) {
      compressor.emplace([&](const char *d, std::size_t n) { up.send(d, n); }, *saveCodec);
    }
    for (std::size_t n = down.receive(buf.data(), buf.size()); n > 0;
         n = down.receive(buf.data(), buf.size())) {
      c.read += n;
      if (compressor) {
        compressor->write(buf.data(), n);
      } else {
        up.send(buf.data(), n);
      }
    }
    c.moved = compressor ? compressor->finish() : c.read;
    down.finish();
    up.finish();
  } catch (const Error &e) {
    throw Error("cannot move volume '" + name + "' to " + where + ": " + e.what());
  }
  if (c.read != size) {
    throw Error("volume '" + name + "' moved " + std::to_string(c.read) + " of " +
                std::to_string(size) + " bytes to " + where);
  }
  (void)created.keep();
  return c;
}

// The domain type the accelerator probe found for a host, probed once per
// host URI in this process, with the router's own kernel as pushed there: a
// probe boots guests for seconds, and a host's accelerator does not change
// while nvbox runs. Probes run one at a time, for all hosts (one lock):
// routers created at once on a host wait for its one probe rather than each
// booting their own.
std::string probedDomainType(const virt::Connection &conn, const std::string &uri,
                             const std::string &kernel) {
  static std::mutex mutex;
  static std::map<std::string, std::string> known;
  const std::lock_guard lock(mutex);
  if (const auto it = known.find(uri); it != known.end()) {
    return it->second;
  }
  AcceleratorProbeOptions options;
  options.kernel = kernel;
  const std::string type = probeAccelerator(conn, options).domainType();
  if (!type.empty()) {
    known.emplace(uri, type);
  }
  return type;
}

} // namespace

std::string toString(RelocateMode mode) {
  switch (mode) {
  case RelocateMode::Live:
    return "live";
  case RelocateMode::Offline:
    return "offline";
  case RelocateMode::Auto:
    break;
  }
  return "auto";
}

std::string toString(StateCompression codec) {
  return codec == StateCompression::Gzip ? "gzip" : "xz";
}

std::optional<StateCompression> parseStateCompression(const std::string &text) {
  for (const StateCompression c : {StateCompression::Gzip, StateCompression::Xz}) {
    if (text == toString(c)) {
      return c;
    }
  }
  return std::nullopt;
}

std::optional<RelocateMode> parseRelocateMode(const std::string &text) {
  for (const RelocateMode m : {RelocateMode::Auto, RelocateMode::Live, RelocateMode::Offline}) {
    if (text == toString(m)) {
      return m;
    }
  }
  return std::nullopt;
}

nlohmann::json RelocateReport::toJson() const {
  const double mem = static_cast<double>(memoryMiB) * 1024.0 * 1024.0;
  return {{"router", router},
          {"from", from.name},
          {"to", to.name},
          {"live", live},
          {"reason", reason},
          {"state_bytes", stateBytes},
          {"state_raw_bytes", stateRawBytes},
          // Nothing compressed when no state moved (live, or a shut-off router).
          {"state_compression",
           live || stateBytes == 0 ? nlohmann::json() : nlohmann::json(toString(compression))},
          {"disk_bytes", diskBytes},
          {"image_bytes", imageBytes},
          {"memory_mib", memoryMiB},
          {"moved_per_memory", mem > 0 ? static_cast<double>(stateBytes + diskBytes) / mem : 0.0},
          {"downtime_seconds", downtime},
          {"seconds", seconds}};
}

bool isValidRouterName(const std::string &name) noexcept {
  static const std::regex pattern("[a-z0-9][a-z0-9-]{0,31}");
  return std::regex_match(name, pattern);
}

std::string routerDomainName(const std::string &router) {
  return kRouterDomainPrefix + router;
}

std::string toString(RouterState state) {
  switch (state) {
  case RouterState::Shutoff:
    return "shutoff";
  case RouterState::Running:
    return "running";
  case RouterState::Paused:
    return "paused";
  case RouterState::ShuttingDown:
    return "shutting-down";
  case RouterState::Crashed:
    return "crashed";
  case RouterState::Other:
    break;
  }
  return "other";
}

nlohmann::json RouterInfo::toJson() const {
  return {{"name", name},
          {"domain", domain},
          {"host", host.name},
          {"uri", host.uri},
          {"state", toString(state)},
          {"domain_type", domainType},
          {"memory_mib", memoryMiB},
          {"vcpus", vcpus},
          {"macs", macs},
          {"image", metadata.image},
          {"image_digest", metadata.imageDigest},
          {"overlay", metadata.overlay},
          {"role", metadata.role},
          {"volume", metadata.volume},
          {"pool", metadata.pool}};
}

RouterManager::RouterManager(const virt::Connection &conn, HostRef host)
    : conn_(conn), host_(std::move(host)) {}

std::string RouterManager::hostText() const {
  return "host '" + host_.name + "'";
}

RouterInfo RouterManager::describe(virDomainPtr dom) const {
  RouterInfo info;
  info.domain = virDomainGetName(dom);
  info.name = info.domain.substr(std::string(kRouterDomainPrefix).size());
  info.host = host_;
  info.state = stateOf(dom);
  info.metadata = metadataOf(dom).value_or(RouterMetadata{});
  std::unique_ptr<char, decltype(&free)> xml(virDomainGetXMLDesc(dom, 0), free);
  if (xml) {
    const XmlDocument doc(xml.get(), "router '" + info.name + "'");
    info.domainType = doc.first("/domain/@type").value_or("");
    info.macs = doc.all("/domain/devices/interface/mac/@address");
  }
  virDomainInfo di{};
  if (virDomainGetInfo(dom, &di) == 0) {
    info.memoryMiB = di.maxMem / 1024;
    info.vcpus = di.nrVirtCpu;
  }
  return info;
}

virt::DomainPtr RouterManager::domain(const std::string &name) const {
  virt::DomainPtr dom;
  if (isValidRouterName(name)) {
    dom.reset(virDomainLookupByName(conn_.get(), routerDomainName(name).c_str()));
  }
  if (!dom || !metadataOf(dom.get())) {
    throw UsageError("cannot find router '" + name + "' on " + hostText(),
                     "see 'nvbox router list'");
  }
  return dom;
}

RouterInfo RouterManager::inspect(const std::string &name) const {
  return describe(domain(name).get());
}

std::vector<RouterInfo> RouterManager::list() const {
  virDomainPtr *doms = nullptr;
  const int n = virConnectListAllDomains(conn_.get(), &doms, 0);
  if (n < 0) {
    throw Error("cannot list the domains of " + hostText() + ": " + virt::lastError());
  }
  std::vector<virt::DomainPtr> owned;
  for (int i = 0; i < n; ++i) {
    owned.emplace_back(doms[i]);
  }
  free(doms);
  std::vector<RouterInfo> out;
  for (const auto &dom : owned) {
    const std::string name = virDomainGetName(dom.get());
    if (name.starts_with(kRouterDomainPrefix) && metadataOf(dom.get())) {
      out.push_back(describe(dom.get()));
    }
  }
  std::sort(out.begin(), out.end(),
            [](const RouterInfo &a, const RouterInfo &b) { return a.name < b.name; });
  return out;
}

RouterInfo RouterManager::create(const images::ImageStore &store,
                                 const RouterCreateOptions &options, const PushProgress &progress) {
  const std::string &name = options.name;
  if (!isValidRouterName(name)) {
    throw UsageError("router name '" + name +
                         "' is not 1-32 of [a-z0-9-] starting with a letter or digit",
                     "choose another name");
  }
  const std::string domName = routerDomainName(name);
  if (virt::DomainPtr existing{virDomainLookupByName(conn_.get(), domName.c_str())}) {
    throw UsageError("router '" + name + "' already exists on " + hostText(),
                     "choose another name, or 'nvbox router destroy " + name + "' first");
  }
  const unsigned long long freeBytes = virNodeGetFreeMemory(conn_.get());
  const std::uint64_t need = options.memoryMiB << 20U;
  if (freeBytes > 0 && freeBytes < need) {
    throw Error("not enough memory on " + hostText() + ": router '" + name + "' needs " +
                    std::to_string(options.memoryMiB) + " MiB, " +
                    std::to_string(freeBytes >> 20U) + " MiB are free",
                "give less with --memory, or choose another host");
  }

  const images::Manifest manifest = store.get(options.image);

  std::vector<PushedPart> parts;
  try {
    parts = findPushedImage(conn_, manifest, options.pool);
  } catch (const Error &) {
    parts = pushImage(conn_, store, options.image, options.pool, progress).parts;
  }

  std::string domainType = options.domainType;
  if (domainType.empty()) {
    domainType = probedDomainType(conn_, host_.uri, pathOf(parts, images::PartRole::Kernel));
    if (domainType.empty()) {
      throw Error("no accelerator runs guests on " + hostText(),
                  "see 'nvbox doctor --host " + host_.name + "'");
    }
  }

  Rollback rollback;
  virt::StoragePoolPtr pool(virStoragePoolLookupByName(conn_.get(), options.pool.name.c_str()));
  if (!pool) {
    throw Error("cannot find storage pool '" + options.pool.name + "' on " + hostText() + ": " +
                virt::lastError());
  }
  const std::string volName = domName + ".qcow2";
  if (virt::StorageVolPtr stale{virStorageVolLookupByName(pool.get(), volName.c_str())}) {
    throw Error("volume '" + volName + "' exists in pool '" + options.pool.name + "' on " +
                    hostText() + " without its router",
                "remove it with 'virsh vol-delete " + volName + " --pool " + options.pool.name +
                    "'");
  }
  const images::Part *disk = manifest.part(images::PartRole::Disk);
  const std::string volXml =
      overlayVolumeXml(volName, pathOf(parts, images::PartRole::Disk), disk->rawSize);
  virt::StorageVolPtr vol(virStorageVolCreateXML(pool.get(), volXml.c_str(), 0));
  if (!vol) {
    throw Error("cannot make the overlay volume '" + volName + "' of router '" + name + "' on " +
                hostText() + ": " + virt::lastError());
  }
  // The undo looks the volume up again: the handles here are gone by then.
  rollback.add([conn = conn_.get(), poolName = options.pool.name, volName] {
    virt::StoragePoolPtr p(virStoragePoolLookupByName(conn, poolName.c_str()));
    virt::StorageVolPtr v(p ? virStorageVolLookupByName(p.get(), volName.c_str()) : nullptr);
    if (v) {
      virStorageVolDelete(v.get(), 0);
    }
  });
  std::unique_ptr<char, decltype(&free)> volPath(virStorageVolGetPath(vol.get()), free);

  RouterDomainSpec spec;
  spec.name = domName;
  spec.domainType = domainType;
  spec.memoryMiB = options.memoryMiB;
  spec.vcpus = options.vcpus;
  spec.kernel = pathOf(parts, images::PartRole::Kernel);
  spec.initrd = pathOf(parts, images::PartRole::Initrd);
  spec.cmdline = std::string(images::kGuestCmdline);
  spec.disk = volPath ? volPath.get() : "";
  spec.nics = options.nics;
  spec.config = options.config;
  spec.metadata = {options.image,
                   manifest.inputDigest,
                   options.overlay,
                   options.role,
                   volName,
                   options.pool.name,
                   options.spec,
                   options.plan,
                   ""};
  const std::string xml = routerDomainXml(spec);
  virt::DomainPtr dom(virDomainDefineXML(conn_.get(), xml.c_str()));
  if (!dom) {
    throw Error("cannot define router '" + name + "' on " + hostText() + ": " + virt::lastError());
  }
  rollback.commit();
  return describe(dom.get());
}

void RouterManager::start(const std::string &name) {
  const virt::DomainPtr dom = domain(name);
  if (stateOf(dom.get()) != RouterState::Shutoff) {
    throw UsageError("router '" + name + "' on " + hostText() + " is " +
                         toString(stateOf(dom.get())) + ", not shut off",
                     "stop it first, or resume it if it is paused");
  }
  if (virDomainCreate(dom.get()) != 0) {
    throw Error("cannot start router '" + name + "' on " + hostText() + ": " + virt::lastError());
  }
}

ReadyReport RouterManager::waitReady(const std::string &name, std::chrono::milliseconds timeout) {
  const virt::DomainPtr dom = domain(name);
  return waitUntilReady(conn_, dom.get(), timeout);
}

void RouterManager::setMetadata(const std::string &name, const RouterMetadata &metadata) {
  const virt::DomainPtr dom = domain(name);
  const int active = virDomainIsActive(dom.get());
  unsigned flags = VIR_DOMAIN_AFFECT_CONFIG;
  if (active == 1) {
    flags |= VIR_DOMAIN_AFFECT_LIVE;
  }
  if (virDomainSetMetadata(dom.get(), VIR_DOMAIN_METADATA_ELEMENT,
                           routerMetadataXml(metadata).c_str(), kMetadataPrefix, kMetadataNamespace,
                           flags) != 0) {
    throw Error("cannot record the metadata of router '" + name + "' on " + hostText() + ": " +
                virt::lastError());
  }
}

void RouterManager::setLinkState(const std::string &name, RouterNic nic, bool up) {
  const virt::DomainPtr dom = domain(name);
  nic.linkUp = up;
  if (virDomainUpdateDeviceFlags(dom.get(), routerNicXml(nic).c_str(), VIR_DOMAIN_AFFECT_LIVE) !=
      0) {
    throw Error("cannot set the link of router '" + name + "' NIC '" + nic.mac + "' " +
                (up ? "up" : "down") + " on " + hostText() + ": " + virt::lastError());
  }
}

void RouterManager::suspend(const std::string &name) {
  const virt::DomainPtr dom = domain(name);
  if (stateOf(dom.get()) != RouterState::Running) {
    throw UsageError("router '" + name + "' is " + toString(stateOf(dom.get())) + ", not running",
                     "start it first");
  }
  if (virDomainSuspend(dom.get()) != 0) {
    throw Error("cannot suspend router '" + name + "' on " + hostText() + ": " + virt::lastError());
  }
}

void RouterManager::resume(const std::string &name) {
  const virt::DomainPtr dom = domain(name);
  if (stateOf(dom.get()) != RouterState::Paused) {
    throw UsageError("router '" + name + "' is " + toString(stateOf(dom.get())) + ", not paused",
                     "only a suspended router can be resumed");
  }
  if (virDomainResume(dom.get()) != 0) {
    throw Error("cannot resume router '" + name + "' on " + hostText() + ": " + virt::lastError());
  }
}

StopReport RouterManager::stop(const std::string &name, std::chrono::milliseconds timeout) {
  const virt::DomainPtr dom = domain(name);
  StopReport report;
  const auto start = Clock::now();
  if (stateOf(dom.get()) == RouterState::Shutoff) {
    report.graceful = true;
    return report;
  }
  // A paused guest cannot see the power button.
  if (stateOf(dom.get()) == RouterState::Paused) {
    virDomainResume(dom.get());
  }
  if (virDomainShutdown(dom.get()) == 0) {
    while (Clock::now() - start < timeout) {
      if (stateOf(dom.get()) == RouterState::Shutoff) {
        report.graceful = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  if (!report.graceful && stateOf(dom.get()) != RouterState::Shutoff &&
      virDomainDestroy(dom.get()) != 0) {
    throw Error("cannot stop router '" + name + "' on " + hostText() + ": " + virt::lastError());
  }
  report.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return report;
}

void RouterManager::destroy(const std::string &name) {
  const virt::DomainPtr dom = domain(name);
  const RouterMetadata meta = metadataOf(dom.get()).value_or(RouterMetadata{});
  if (virDomainIsActive(dom.get()) == 1 && virDomainDestroy(dom.get()) != 0) {
    throw Error("cannot destroy router '" + name + "' on " + hostText() + ": " + virt::lastError());
  }
  if (virDomainUndefineFlags(dom.get(), VIR_DOMAIN_UNDEFINE_MANAGED_SAVE |
                                            VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA) != 0) {
    throw Error("cannot undefine router '" + name + "' on " + hostText() + ": " +
                virt::lastError());
  }
  if (!meta.pool.empty() && !meta.volume.empty()) {
    virt::StoragePoolPtr pool(virStoragePoolLookupByName(conn_.get(), meta.pool.c_str()));
    virt::StorageVolPtr vol(pool ? virStorageVolLookupByName(pool.get(), meta.volume.c_str())
                                 : nullptr);
    if (vol && virStorageVolDelete(vol.get(), 0) != 0) {
      throw Error("router '" + name + "' is gone but its volume '" + meta.volume + "' remains on " +
                      hostText() + ": " + virt::lastError(),
                  "remove it with 'virsh vol-delete " + meta.volume + " --pool " + meta.pool + "'");
    }
  }
}

RelocateReport RouterManager::relocate(const std::string &name, RouterManager &target,
                                       const images::ImageStore &store,
                                       const RelocateOptions &options) {
  const auto began = Clock::now();
  const virt::DomainPtr dom = domain(name);
  const RouterInfo info = describe(dom.get());
  const RouterMetadata &meta = info.metadata;
  const std::string domName = routerDomainName(name);
  const std::string there = target.hostText();
  RelocateReport report;
  report.router = name;
  report.from = host_;
  report.to = target.host_;
  report.memoryMiB = info.memoryMiB;
  if (target.host_.uri == host_.uri) {
    throw UsageError("router '" + name + "' is on " + hostText() + " already",
                     "name another host with --to");
  }
  if (virt::DomainPtr taken{virDomainLookupByName(target.conn_.get(), domName.c_str())}) {
    throw UsageError("a domain '" + domName + "' exists on " + there + " already",
                     "destroy it there first");
  }
  const bool withState = info.state == RouterState::Running || info.state == RouterState::Paused;
  if (options.mode == RelocateMode::Live && !withState) {
    throw UsageError("router '" + name + "' on " + hostText() + " is " + toString(info.state) +
                         ": only a running or paused router migrates live",
                     "relocate it with --mode offline (or auto)");
  }
  const images::Manifest manifest = store.get(meta.image);
  if (manifest.inputDigest != meta.imageDigest) {
    throw Error("router '" + name + "' runs a build of image '" + meta.image +
                    "' that the local store no longer has",
                "relocation pushes the image from the local store; import that build first");
  }
  const PoolSpec poolSpec{meta.pool, PoolSpec{}.path};
  std::vector<PushedPart> targetParts;
  try {
    targetParts = findPushedImage(target.conn_, manifest, poolSpec);
  } catch (const Error &) {
    const PushReport pushed = pushImage(target.conn_, store, meta.image, poolSpec);
    report.imageBytes = pushed.bytesUploaded;
    targetParts = pushed.parts;
  }
  const auto sourceParts = findPushedImage(conn_, manifest, poolSpec);
  if (pathOf(sourceParts, images::PartRole::Disk) != pathOf(targetParts, images::PartRole::Disk)) {
    throw Error("the base image of router '" + name + "' is at '" +
                    pathOf(sourceParts, images::PartRole::Disk) + "' on " + hostText() +
                    " but at '" + pathOf(targetParts, images::PartRole::Disk) + "' on " + there,
                "give pool '" + meta.pool + "' the same directory on both hosts");
  }
  std::unique_ptr<char, decltype(&free)> xml(
      virDomainGetXMLDesc(dom.get(), VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE), free);
  if (!xml) {
    throw Error("cannot read router '" + name + "' on " + hostText() + ": " + virt::lastError());
  }
  const virt::StoragePoolPtr srcPool = lookupPool(conn_, meta.pool, hostText());
  const virt::StoragePoolPtr dstPool = lookupPool(target.conn_, meta.pool, there);

  if (!withState) {
    report.reason = "the router is " + toString(info.state);
  } else if (options.mode == RelocateMode::Offline) {
    report.reason = "offline relocation was asked for";
  } else {
    // Live: libvirt moves memory and the overlay's own blocks while the
    // router runs. Refused with the router intact here: offline (Auto).
    std::string why = detail::liveMigrationObstacle(conn_, hostText(), target.conn_, there);
    if (why.empty()) {
      detail::LiveMigrationSpec spec;
      spec.router = name;
      spec.domain = domName;
      spec.pool = meta.pool;
      spec.volume = meta.volume;
      spec.backingPath = pathOf(targetParts, images::PartRole::Disk);
      spec.migrateUri = detail::migrationUri(target.host_.uri, options.migrationAddress);
      spec.sourceText = hostText();
      spec.targetText = there;
      try {
        const detail::LiveMigrationResult m =
            detail::migrateLive(conn_, dom.get(), target.conn_, spec, options.progress);
        report.live = true;
        report.stateBytes = m.memoryBytes;
        report.stateRawBytes = m.memoryPages;
        report.diskBytes = m.diskBytes;
        report.downtime = m.downtime;
        // The domain left with the migration; its overlay stays behind.
        if (virt::StorageVolPtr v{virStorageVolLookupByName(srcPool.get(), meta.volume.c_str())}) {
          virStorageVolDelete(v.get(), 0);
        }
        report.seconds = std::chrono::duration<double>(Clock::now() - began).count();
        return report;
      } catch (const detail::MigrationRefused &e) {
        why = e.what();
      }
    }
    if (options.mode == RelocateMode::Live) {
      throw Error(why, "the router still runs on " + hostText() +
                           "; relocate it with --mode offline (or auto)");
    }
    report.reason = why;
  }

  // From here on the router is down: save its state next to its overlay.
  const std::string saveName = domName + ".save";
  const std::string savePath = poolPath(srcPool.get(), "pool '" + meta.pool + "'") + "/" + saveName;
  const auto down = Clock::now();
  Rollback undo;
  if (withState) {
    const unsigned flags =
        info.state == RouterState::Paused ? VIR_DOMAIN_SAVE_PAUSED : VIR_DOMAIN_SAVE_RUNNING;
    if (virDomainSaveFlags(dom.get(), savePath.c_str(), nullptr, flags) != 0) {
      throw Error("cannot save router '" + name + "' on " + hostText() + ": " + virt::lastError());
    }
    // Should anything below fail, the router comes back here as it was.
    undo.add([this, savePath, saveName, pool = meta.pool] {
      virDomainRestore(conn_.get(), savePath.c_str());
      virt::StoragePoolPtr p(virStoragePoolLookupByName(conn_.get(), pool.c_str()));
      if (p) {
        virStoragePoolRefresh(p.get(), 0);
        virt::StorageVolPtr v(virStorageVolLookupByName(p.get(), saveName.c_str()));
        if (v) {
          virStorageVolDelete(v.get(), 0);
        }
      }
    });
    if (virStoragePoolRefresh(srcPool.get(), 0) != 0) {
      throw Error("cannot refresh pool '" + meta.pool + "' on " + hostText() + ": " +
                  virt::lastError());
    }
  }

  const auto move = [&](const std::string &volName, std::optional<StateCompression> saveCodec) {
    virt::StorageVolPtr from(
        detail::lookupVolume(srcPool.get(), volName, "volume '" + volName + "'"));
    if (!from) {
      throw Error("cannot find volume '" + volName + "' of router '" + name + "' on " + hostText());
    }
    const Copied bytes =
        copyVolume(conn_, from.get(), target.conn_, dstPool.get(), volName, there, saveCodec);
    undo.add([&target, pool = meta.pool, volName] {
      virt::StoragePoolPtr p(virStoragePoolLookupByName(target.conn_.get(), pool.c_str()));
      virt::StorageVolPtr v(p ? virStorageVolLookupByName(p.get(), volName.c_str()) : nullptr);
      if (v) {
        virStorageVolDelete(v.get(), 0);
      }
    });
    return bytes;
  };
  report.diskBytes = move(meta.volume, std::nullopt).moved;
  report.compression = options.compression;
  if (withState) {
    const Copied state = move(saveName, options.compression);
    report.stateRawBytes = state.read;
    report.stateBytes = state.moved;
  }

  virt::DomainPtr moved(virDomainDefineXML(target.conn_.get(), xml.get()));
  if (!moved) {
    throw Error("cannot define router '" + name + "' on " + there + ": " + virt::lastError());
  }
  undo.add([&target, domName] {
    virt::DomainPtr d(virDomainLookupByName(target.conn_.get(), domName.c_str()));
    if (d) {
      virDomainDestroy(d.get());
      virDomainUndefine(d.get());
    }
  });
  if (withState) {
    const std::string targetSave =
        poolPath(dstPool.get(), "pool '" + meta.pool + "' on " + there) + "/" + saveName;
    if (virDomainRestore(target.conn_.get(), targetSave.c_str()) != 0) {
      throw Error("cannot restore router '" + name + "' on " + there + ": " + virt::lastError());
    }
  }
  report.downtime = std::chrono::duration<double>(Clock::now() - down).count();
  undo.commit();

  // The router runs on the target: tidy up both ends. Failures here leave
  // litter, not a broken router, so they are not errors.
  if (withState) {
    virt::StorageVolPtr s(virStorageVolLookupByName(dstPool.get(), saveName.c_str()));
    if (s) {
      virStorageVolDelete(s.get(), 0);
    }
  }
  virDomainUndefineFlags(dom.get(),
                         VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA);
  for (const std::string &volName : {meta.volume, saveName}) {
    virt::StorageVolPtr v(virStorageVolLookupByName(srcPool.get(), volName.c_str()));
    if (v) {
      virStorageVolDelete(v.get(), 0);
    }
  }
  report.seconds = std::chrono::duration<double>(Clock::now() - began).count();
  return report;
}

} // namespace nvbox
