#include "nvbox/images/image_builder.hpp"

#include "internal.hpp"
#include "nvbox/error.hpp"
#include "nvbox/images/digest.hpp"
#include "nvbox/images/guest_files.hpp"
#include "nvbox/images/guest_kernel.hpp"
#include "nvbox/images/guestfs_session.hpp"
#include "nvbox/images/initramfs.hpp"
#include "nvbox/images/module_index.hpp"
#include "nvbox/process.hpp"

#include <chrono>
#include <cstdlib>
#include <elf.h>
#include <fcntl.h>
#include <guestfs.h>
#include <set>
#include <sys/stat.h>
#include <unistd.h>

namespace nvbox::images {

namespace fs = std::filesystem;

namespace {

// Where nvbox's guest files go, in both the initrd and the root disk. The
// root side keeps everything under /usr/lib/nvbox so that the same set can
// be injected into a user's own distribution (see the initrd's /init).
constexpr const char *kGuestDir = "/usr/lib/nvbox";
// Bumped whenever the layout below changes, so that old builds are redone.
constexpr int kLayoutVersion = 2;

struct Resolved {
  fs::path vmlinuz;
  fs::path moduleDir;
  std::string kernelVersion;
  std::vector<std::string> modules; // paths relative to moduleDir, load order
};

std::string q(const fs::path &path) {
  return "'" + path.string() + "'";
}

// Whether an ELF file has no program interpreter, i.e. runs without a
// dynamic loader, as binaries dropped into a busybox guest must.
bool isStaticElf(const fs::path &path) {
  detail::Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  Elf64_Ehdr eh{};
  if (!fd || ::pread(fd.get(), &eh, sizeof eh, 0) != static_cast<ssize_t>(sizeof eh) ||
      std::string_view(reinterpret_cast<const char *>(eh.e_ident), 4) != ELFMAG ||
      eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_phentsize != sizeof(Elf64_Phdr)) {
    return false;
  }
  for (unsigned i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph{};
    const auto offset = static_cast<off_t>(eh.e_phoff + i * sizeof ph);
    if (::pread(fd.get(), &ph, sizeof ph, offset) != static_cast<ssize_t>(sizeof ph)) {
      return false;
    }
    if (ph.p_type == PT_INTERP) {
      return false;
    }
  }
  return true;
}

void requireStaticBinary(const fs::path &path, const std::string &what) {
  std::error_code ec;
  if (path.empty() || !fs::is_regular_file(path, ec)) {
    throw UsageError("cannot find " + what + " " + q(path),
                     "build nvbox first, or name the file with --" + what);
  }
  if (!isStaticElf(path)) {
    throw UsageError(what + " " + q(path) + " is not a static x86-64 executable",
                     "routers run a busybox userland; build nvbox without NVBOX_SANITIZE");
  }
}

Resolved resolveKernel(const BuildOptions &options) {
  Resolved r;
  if (options.kernel) {
    r.vmlinuz = *options.kernel;
    if (options.modules) {
      r.moduleDir = *options.modules;
    } else {
      const std::string file = r.vmlinuz.filename().string();
      if (!file.starts_with("vmlinuz-")) {
        throw UsageError("cannot tell the version of kernel " + q(r.vmlinuz),
                         "name its module tree with --modules /lib/modules/VERSION");
      }
      r.moduleDir = fs::path("/lib/modules") / file.substr(8);
    }
  } else {
    const auto kernel = findGuestKernel();
    if (!kernel) {
      throw Error("cannot find a guest kernel in /boot with modules in /lib/modules",
                  "install linux-image-amd64 (scripts/setup-host.sh does), or give --kernel");
    }
    r.vmlinuz = kernel->vmlinuz;
    r.moduleDir = options.modules.value_or(kernel->moduleDir);
  }
  std::error_code ec;
  if (!fs::is_regular_file(r.vmlinuz, ec)) {
    throw UsageError("cannot find kernel " + q(r.vmlinuz), "give an existing file with --kernel");
  }
  r.kernelVersion = r.moduleDir.filename().string();
  try {
    r.modules = ModuleIndex::load(r.moduleDir).loadOrder(requiredGuestModules());
  } catch (const Error &e) {
    detail::rethrowWithContext("kernel modules in " + q(r.moduleDir), e);
  }
  return r;
}

// The parameters that shape the image without being files.
std::string buildParameters(const BuildOptions &options) {
  return "layout=" + std::to_string(kLayoutVersion) + "\ndisk_size=" +
         (options.baseDisk ? std::string("from-disk") : std::to_string(options.diskSize)) +
         "\ncmdline=" + std::string(kGuestCmdline) + "\n";
}

std::map<std::string, std::string> collectInputs(const BuildOptions &options, const Resolved &r) {
  std::map<std::string, std::string> inputs;
  inputs["kernel"] = digestFile(r.vmlinuz).sha256;
  for (const auto &module : r.modules) {
    inputs["module/" + module] = digestFile(r.moduleDir / module).sha256;
  }
  inputs["busybox"] = digestFile(options.busybox).sha256;
  inputs["osrd"] = digestFile(options.osrd).sha256;
  inputs["osrctl"] = digestFile(options.osrctl).sha256;
  inputs["osr-agent"] = digestFile(options.agent).sha256;
  for (const auto &file : guestFiles()) {
    inputs["guest/" + std::string(file.name)] = sha256Hex(file.text);
  }
  if (options.baseDisk) {
    inputs["disk"] = digestFile(*options.baseDisk).sha256;
  }
  inputs["parameters"] = sha256Hex(buildParameters(options));
  return inputs;
}

void checkInputs(const BuildOptions &options) {
  checkImageName(options.name);
  std::error_code ec;
  if (!fs::is_regular_file(options.busybox, ec)) {
    throw UsageError("cannot find busybox " + q(options.busybox),
                     "install busybox-static, or name it with --busybox");
  }
  requireStaticBinary(options.busybox, "busybox");
  requireStaticBinary(options.osrd, "osrd");
  requireStaticBinary(options.osrctl, "osrctl");
  requireStaticBinary(options.agent, "agent");
  if (options.diskSize < (std::uint64_t{32} << 20U) ||
      options.diskSize > (std::uint64_t{1} << 40U)) {
    throw UsageError("disk size " + std::to_string(options.diskSize) +
                         " is outside 32 MiB to 1 TiB",
                     "give --disk-size between 32M and 1T");
  }
}

// A scratch directory removed with everything in it, whatever happens.
class ScratchDir {
public:
  explicit ScratchDir(const fs::path &parent) {
    std::string pattern = (parent / "nvbox-build-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      throw Error("cannot make a scratch directory in " + q(parent) + ": " + detail::errnoText(),
                  "free space there or set TMPDIR");
    }
    path_ = pattern;
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir &) = delete;
  ScratchDir &operator=(const ScratchDir &) = delete;
  [[nodiscard]] const fs::path &path() const noexcept { return path_; }

private:
  fs::path path_;
};

// Adds every parent directory of `path` not added yet (the kernel unpacks
// entries in order, so a directory must precede its contents).
void addParents(InitramfsWriter &w, std::set<std::string> &made, const std::string &path) {
  for (std::size_t slash = path.find('/'); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    const std::string dir = path.substr(0, slash);
    if (made.insert(dir).second) {
      w.addDirectory(dir);
    }
  }
}

std::uint64_t writeInitrd(const fs::path &out, const BuildOptions &options, const Resolved &r) {
  InitramfsWriter w(out);
  std::set<std::string> made;
  for (const char *dir : {"bin", "dev", "etc", "etc/nvbox", "proc", "sys", "newroot"}) {
    made.insert(dir);
    w.addDirectory(dir);
  }
  // The kernel opens /dev/console for /init before devtmpfs is mounted.
  w.addCharDevice("dev/console", 5, 1, 0600);
  w.addFile("bin/busybox", options.busybox, 0755);
  w.addData("init", guestFile("init"), 0755);
  std::string order;
  for (const auto &module : r.modules) {
    const std::string path = "lib/modules/" + module;
    addParents(w, made, path);
    w.addFile(path, r.moduleDir / module, 0644);
    order += module + "\n";
  }
  w.addData("etc/nvbox/modules", order, 0644);
  w.finish();
  return w.uncompressedBytes();
}

// What goes into /usr/lib/nvbox on the root disk: busybox, the binaries and
// the embedded scripts. Shared by the build and by injection into a user's
// disk.
struct GuestPayload {
  std::vector<std::pair<std::string, fs::path>> files;         // guest path, host file
  std::vector<std::pair<std::string, std::string_view>> texts; // guest path, content
};

// The binaries as they go into the guest, stripped of their symbols.
struct GuestBinaries {
  fs::path busybox, osrd, osrctl, agent;
};

GuestPayload payload(const GuestBinaries &bin) {
  const std::string dir = kGuestDir;
  GuestPayload p;
  p.files = {{dir + "/busybox", bin.busybox},
             {dir + "/osrd", bin.osrd},
             {dir + "/osrctl", bin.osrctl},
             {dir + "/osr-agent", bin.agent}};
  p.texts = {{dir + "/nvbox-init", guestFile("nvbox-init")},
             {dir + "/rc.sysinit", guestFile("rc.sysinit")},
             {dir + "/osrd.run", guestFile("osrd.run")},
             {dir + "/inittab", guestFile("inittab")},
             {dir + "/acpi/PWRF/00000080", guestFile("acpi-power")}};
  return p;
}

// Debug information is most of a static binary's size and of no use in a
// router; the build machine keeps the unstripped originals.
fs::path stripped(const fs::path &binary, const fs::path &dir) {
  const fs::path out = dir / binary.filename();
  const ProcessResult r = runProgram({"strip", "--strip-all", "-o", out.string(), binary.string()});
  if (r.exitCode != 0) {
    throw Error("cannot strip " + q(binary) + ": " + r.err.substr(0, r.err.find('\n')),
                "install binutils");
  }
  return out;
}

// Makes a fresh ext4 filesystem on the whole disk (no partition table to
// grow past later) and returns its device. Inode tables and the journal are
// written now, not lazily by the guest kernel after its first mount: that
// would put megabytes into every router's overlay.
std::string makeFreshRoot(GuestfsSession &session) {
  guestfs_h *g = session.get();
  session.check(guestfs_mke2fs(g, "/dev/sda", GUESTFS_MKE2FS_FSTYPE, "ext4", GUESTFS_MKE2FS_LABEL,
                               "nvbox-root", GUESTFS_MKE2FS_LAZYITABLEINIT, 0,
                               GUESTFS_MKE2FS_LAZYJOURNALINIT, 0, -1),
                "cannot make the root filesystem");
  return "/dev/sda";
}

// Takes a NULL-terminated list libguestfs returns, freeing it.
std::vector<std::string> takeStrings(char **list) {
  std::vector<std::string> out;
  for (std::size_t i = 0; list != nullptr && list[i] != nullptr; ++i) {
    out.emplace_back(list[i]);
    std::free(list[i]);
  }
  std::free(list);
  return out;
}

// The root filesystem of a user's disk: the one libguestfs inspection finds,
// or else the only ext2/3/4 filesystem there is.
std::string findUserRoot(GuestfsSession &session, const fs::path &disk) {
  guestfs_h *g = session.get();
  std::vector<std::string> candidates = takeStrings(guestfs_inspect_os(g));
  if (candidates.empty()) {
    const auto fss = takeStrings(guestfs_list_filesystems(g)); // device, type, ...
    for (std::size_t i = 0; i + 1 < fss.size(); i += 2) {
      if (fss[i + 1].starts_with("ext")) {
        candidates.push_back(fss[i]);
      }
    }
  }
  if (candidates.size() != 1) {
    throw UsageError("cannot tell the root filesystem of disk " + q(disk) + ": found " +
                         std::to_string(candidates.size()) + " candidates",
                     "give a disk with exactly one Linux root filesystem (ext2/3/4)");
  }
  char *type = guestfs_vfs_type(g, candidates[0].c_str());
  const std::string vfs = type != nullptr ? type : "";
  std::free(type);
  if (!vfs.starts_with("ext")) {
    throw UsageError("the root filesystem of disk " + q(disk) + " (" + candidates[0] + ") is " +
                         (vfs.empty() ? std::string("unknown") : "'" + vfs + "'") +
                         ", not ext2/3/4",
                     "the router initrd mounts ext2/3/4 roots only");
  }
  return candidates[0];
}

void writeRootDisk(const fs::path &raw, const BuildOptions &options, const GuestBinaries &bin) {
  if (!options.baseDisk) {
    detail::Fd fd(::open(raw.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd || ::ftruncate(fd.get(), static_cast<off_t>(options.diskSize)) != 0) {
      throw Error("cannot make scratch disk " + q(raw) + ": " + detail::errnoText());
    }
  }
  GuestfsSession session;
  session.addDisk(raw.string(), "raw");
  session.launch();
  guestfs_h *g = session.get();
  const std::string root =
      options.baseDisk ? findUserRoot(session, *options.baseDisk) : makeFreshRoot(session);
  session.check(guestfs_mount(g, root.c_str(), "/"), "cannot mount the root filesystem " + root);
  for (const char *dir : {"/proc", "/sys", "/dev", "/run", "/tmp", "/etc", "/root", "/var/log",
                          "/usr/lib/nvbox/acpi/PWRF"}) {
    session.check(guestfs_mkdir_p(g, dir), std::string("cannot make ") + dir);
  }
  const GuestPayload p = payload(bin);
  for (const auto &[path, source] : p.files) {
    session.check(guestfs_upload(g, source.c_str(), path.c_str()),
                  "cannot copy " + q(source) + " to " + path);
    session.check(guestfs_chmod(g, 0755, path.c_str()), "cannot chmod " + path);
  }
  for (const auto &[path, text] : p.texts) {
    session.check(guestfs_write(g, path.c_str(), text.data(), text.size()), "cannot write " + path);
    session.check(guestfs_chmod(g, path.ends_with("inittab") ? 0644 : 0755, path.c_str()),
                  "cannot chmod " + path);
  }
  if (!options.baseDisk) {
    session.check(guestfs_chmod(g, 01777, "/tmp"), "cannot chmod /tmp");
    // A conventional /bin/sh for the console and for users' scripts; a
    // user's own disk keeps its own.
    session.check(guestfs_mkdir_p(g, "/bin"), "cannot make /bin");
    session.check(guestfs_ln_s(g, "/usr/lib/nvbox/busybox", "/bin/sh"), "cannot link /bin/sh");
  }
  session.check(guestfs_umount_all(g), "cannot unmount the root filesystem");
  session.check(guestfs_shutdown(g), "cannot close the root disk");
}

// qemu-img with fixed arguments; its stderr's first line on failure.
void qemuImg(const std::vector<std::string> &args, const std::string &what) {
  std::vector<std::string> argv{"qemu-img"};
  argv.insert(argv.end(), args.begin(), args.end());
  const ProcessResult r = runProgram(argv);
  if (r.exitCode != 0) {
    throw Error(what + ": " + r.err.substr(0, r.err.find('\n')),
                "install qemu-utils 5.1 or newer (zstd clusters)");
  }
}

// A writable raw copy of the user's disk, and its virtual size.
std::uint64_t copyUserDisk(const fs::path &disk, const fs::path &raw) {
  std::error_code ec;
  if (!fs::is_regular_file(disk, ec)) {
    throw UsageError("cannot find disk " + q(disk), "give an existing disk image with --disk");
  }
  qemuImg({"convert", "-q", "-O", "raw", disk.string(), raw.string()},
          "cannot read disk " + q(disk));
  return fs::file_size(raw);
}

void compressDisk(const fs::path &raw, const fs::path &qcow2) {
  // Compressed clusters stay readable by QEMU as a backing file; writes go
  // to each router's own overlay.
  qemuImg({"convert", "-q", "-f", "raw", "-O", "qcow2", "-c", "-o", "compression_type=zstd",
           raw.string(), qcow2.string()},
          "qemu-img cannot compress the root disk");
}

std::string osrdVersion(const fs::path &osrd) {
  const ProcessResult r = runProgram({osrd.string(), "--version"});
  const std::string line = r.out.substr(0, r.out.find('\n'));
  const std::size_t space = line.rfind(' ');
  if (r.exitCode != 0 || space == std::string::npos || space + 1 == line.size()) {
    throw Error("cannot read the version of osrd " + q(osrd) + ": it printed '" + line + "'");
  }
  return line.substr(space + 1);
}

Part makePart(PartRole role, const fs::path &file, std::uint64_t rawSize) {
  const FileDigest d = digestFile(file);
  return Part{role, std::string(defaultFileName(role)), d.sha256, rawSize, d.size};
}

class StepClock {
public:
  StepClock(const BuildOptions &options, std::vector<BuildStep> &steps)
      : options_(options), steps_(steps) {}
  void start(std::string name) {
    stop();
    if (options_.onStep) {
      options_.onStep(name);
    }
    steps_.push_back({std::move(name), 0});
    began_ = std::chrono::steady_clock::now();
  }
  void stop() {
    if (!steps_.empty() && steps_.back().seconds == 0) {
      steps_.back().seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - began_).count();
    }
  }

private:
  const BuildOptions &options_;
  std::vector<BuildStep> &steps_;
  std::chrono::steady_clock::time_point began_;
};

} // namespace

std::map<std::string, std::string> collectBuildInputs(const BuildOptions &options) {
  checkInputs(options);
  return collectInputs(options, resolveKernel(options));
}

BuildResult buildImage(ImageStore &store, const BuildOptions &options) {
  const auto began = std::chrono::steady_clock::now();
  BuildResult result;
  StepClock clock(options, result.steps);

  clock.start("hashing inputs");
  checkInputs(options);
  const Resolved r = resolveKernel(options);
  const auto inputs = collectInputs(options, r);
  const std::string inputDigest = computeInputDigest(inputs);
  if (!options.force && store.contains(options.name)) {
    const Manifest current = store.get(options.name);
    if (current.inputDigest == inputDigest) {
      clock.stop();
      result.manifest = current;
      result.upToDate = true;
      result.seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
      return result;
    }
  }

  const ScratchDir scratch(options.scratch);
  const fs::path initrd = scratch.path() / "initrd";
  const fs::path raw = scratch.path() / "root.raw";
  const fs::path qcow2 = scratch.path() / "root.qcow2";

  clock.start("writing initrd");
  const std::uint64_t initrdRaw = writeInitrd(initrd, options, r);
  clock.start("stripping binaries");
  const GuestBinaries bin{options.busybox, stripped(options.osrd, scratch.path()),
                          stripped(options.osrctl, scratch.path()),
                          stripped(options.agent, scratch.path())};
  std::uint64_t diskSize = options.diskSize;
  if (options.baseDisk) {
    clock.start("copying the user's disk");
    diskSize = copyUserDisk(*options.baseDisk, raw);
  }
  clock.start("laying out the root disk (libguestfs)");
  writeRootDisk(raw, options, bin);
  clock.start("compressing the root disk (qcow2, zstd)");
  compressDisk(raw, qcow2);

  clock.start("storing");
  Manifest m;
  m.name = options.name;
  m.parts = {makePart(PartRole::Kernel, r.vmlinuz, fs::file_size(r.vmlinuz)),
             makePart(PartRole::Initrd, initrd, initrdRaw),
             makePart(PartRole::Disk, qcow2, diskSize)};
  m.kernelVersion = r.kernelVersion;
  m.osrdVersion = osrdVersion(options.osrd);
  m.buildInputs = inputs;
  m.buildDate = formatRfc3339(std::chrono::system_clock::now());
  m.inputDigest = inputDigest;
  result.manifest = store.add(
      options.name, m,
      {{PartRole::Kernel, r.vmlinuz}, {PartRole::Initrd, initrd}, {PartRole::Disk, qcow2}},
      /*replace=*/true);
  clock.stop();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
  return result;
}

} // namespace nvbox::images
