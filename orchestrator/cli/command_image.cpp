#include "command_image.hpp"

#include "command_image_build.hpp"

#include "nvbox/error.hpp"
#include "nvbox/images/bundle.hpp"

#include <algorithm>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>
#include <vector>

namespace po = boost::program_options;

namespace nvbox::cli {
namespace {

using Json = nlohmann::json;

} // namespace

// ---------------------------------------------------------------------------
// ImageCommand

void ImageCommand::addOptions(po::options_description &options,
                              po::positional_options_description & /*positional*/) {
  options.add_options()("store", po::value<std::string>(&storeDir_)->value_name("DIR"),
                        "the image store (default: /var/lib/nvbox/images as root, else "
                        "$XDG_DATA_HOME/nvbox/images or ~/.local/share/nvbox/images)");
}

void ImageCommand::addPositional(po::options_description &options,
                                 po::positional_options_description &positional, const char *key,
                                 const char *valueName, const char *help) {
  options.add_options()(key, po::value<std::string>(&argument_)->value_name(valueName), help);
  positional.add(key, 1);
}

void ImageCommand::validate(const po::variables_map &vm) {
  if (!usesHost() && !host().empty()) {
    throw UsageError("nvbox " + name() + ": --host does not apply; images live in the local store",
                     "choose a store with --store DIR");
  }
  if (vm.count("store") != 0U && storeDir_.empty()) {
    throw UsageError("nvbox " + name() + ": --store needs a directory",
                     "see 'nvbox " + name() + " --help'");
  }
}

void ImageCommand::requireArgument(const std::string &what) const {
  if (argument_.empty()) {
    throw UsageError("nvbox " + name() + ": missing " + what, "see 'nvbox " + name() + " --help'");
  }
}

images::ImageStore ImageCommand::store() const {
  return images::ImageStore(storeDir_.empty() ? images::ImageStore::defaultRoot()
                                              : std::filesystem::path(storeDir_));
}

void ImageCommand::progress(Terminal &term, std::string_view file, std::uint64_t done,
                            std::uint64_t total) {
  term.progress(std::string(file) + " " + formatMiB(done) + " of " + formatMiB(total));
}

// ---------------------------------------------------------------------------
// image list

std::string ImageListCommand::synopsis() const {
  return "image list [--store DIR] [--json]";
}

std::string ImageListCommand::description() const {
  return "Lists the images in the local store: name, guest kernel, osrd version, stored\n"
         "size and build date. An image directory whose manifest cannot be read is listed\n"
         "as damaged, with the reason.";
}

int ImageListCommand::run(Terminal &term) {
  const images::ImageStore s = store();
  const auto images = s.list();
  if (json()) {
    Json list = Json::array();
    for (const auto &image : images) {
      if (image.manifest) {
        list.push_back({{"name", image.name},
                        {"ok", true},
                        {"stored_size", image.manifest->storedSize()},
                        {"raw_size", image.manifest->rawSize()},
                        {"manifest", image.manifest->toJson()}});
      } else {
        list.push_back({{"name", image.name}, {"ok", false}, {"problem", image.problem}});
      }
    }
    term.out() << Json{{"store", s.root().string()}, {"images", list}}.dump(2) << "\n";
    return 0;
  }
  if (images.empty()) {
    term.out() << "no images in " << quote(s.root().string()) << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows{{"NAME", "KERNEL", "OSRD", "SIZE", "BUILT"}};
  for (const auto &image : images) {
    if (image.manifest) {
      const auto &m = *image.manifest;
      rows.push_back(
          {image.name, m.kernelVersion, m.osrdVersion, formatMiB(m.storedSize()), m.buildDate});
    } else {
      rows.push_back({image.name, "damaged: " + image.problem});
    }
  }
  printTable(term.out(), rows);
  return 0;
}

// ---------------------------------------------------------------------------
// image inspect

std::string ImageInspectCommand::synopsis() const {
  return "image inspect NAME [--store DIR] [--json]";
}

std::string ImageInspectCommand::description() const {
  return "Shows an image's manifest: versions, build date, the digest of its build inputs,\n"
         "and each part (kernel, initrd, disk) with its file, sizes and sha256. With --json\n"
         "prints manifest.json as stored.";
}

void ImageInspectCommand::addOptions(po::options_description &options,
                                     po::positional_options_description &positional) {
  ImageCommand::addOptions(options, positional);
  addPositional(options, positional, "name", "NAME", "the image (also the first argument)");
}

void ImageInspectCommand::validate(const po::variables_map &vm) {
  ImageCommand::validate(vm);
  requireArgument("image name");
  images::checkImageName(argument_);
}

int ImageInspectCommand::run(Terminal &term) {
  const images::ImageStore s = store();
  const images::Manifest m = s.get(argument_);
  if (json()) {
    term.out() << m.toJson().dump(2) << "\n";
    return 0;
  }
  std::ostream &out = term.out();
  printTable(
      out, {{"image:", m.name},
            {"directory:", s.imageDir(m.name).string()},
            {"format:", std::to_string(m.formatVersion)},
            {"kernel:", m.kernelVersion},
            {"osrd:", m.osrdVersion},
            {"built:", m.buildDate},
            {"input digest:", m.inputDigest},
            {"size:", formatMiB(m.storedSize()) + " stored, " + formatMiB(m.rawSize()) + " raw"}});
  out << "parts:\n";
  std::vector<std::vector<std::string>> parts{{"ROLE", "FILE", "STORED", "RAW", "SHA256"}};
  for (const auto &p : m.parts) {
    parts.push_back({std::string(images::toString(p.role)), p.file, formatMiB(p.storedSize),
                     formatMiB(p.rawSize), p.sha256});
  }
  printTable(out, parts, "  ");
  out << "build inputs:\n";
  if (m.buildInputs.empty()) {
    out << "  (none)\n";
  } else {
    std::vector<std::vector<std::string>> inputs{{"NAME", "SHA256"}};
    for (const auto &[input, digest] : m.buildInputs) {
      inputs.push_back({input, digest});
    }
    printTable(out, inputs, "  ");
  }
  return 0;
}

// ---------------------------------------------------------------------------
// image verify

std::string ImageVerifyCommand::synopsis() const {
  return "image verify NAME [--store DIR] [--json]";
}

std::string ImageVerifyCommand::description() const {
  return "Reads every part of an image and checks its size and sha256 against the\n"
         "manifest. Exit 0 when all parts are intact, 1 when one is missing, has the\n"
         "wrong size or the wrong digest, or cannot be read.";
}

void ImageVerifyCommand::addOptions(po::options_description &options,
                                    po::positional_options_description &positional) {
  ImageCommand::addOptions(options, positional);
  addPositional(options, positional, "name", "NAME", "the image (also the first argument)");
}

void ImageVerifyCommand::validate(const po::variables_map &vm) {
  ImageCommand::validate(vm);
  requireArgument("image name");
  images::checkImageName(argument_);
}

int ImageVerifyCommand::run(Terminal &term) {
  const images::ImageStore s = store();
  term.progress("verifying image " + quote(argument_));
  const images::VerifyReport report = s.verify(argument_);
  std::size_t failed = 0;
  for (const auto &c : report.parts) {
    failed += c.status == images::PartStatus::Ok ? 0U : 1U;
  }
  if (json()) {
    Json parts = Json::array();
    for (const auto &c : report.parts) {
      parts.push_back({{"role", std::string(images::toString(c.expected.role))},
                       {"file", c.expected.file},
                       {"status", std::string(images::toString(c.status))},
                       {"expected_size", c.expected.storedSize},
                       {"actual_size", c.actualSize},
                       {"expected_sha256", c.expected.sha256},
                       {"actual_sha256", c.actualSha256},
                       {"detail", c.detail}});
    }
    term.out() << Json{{"name", report.name}, {"ok", report.ok()}, {"parts", parts}}.dump(2)
               << "\n";
    return report.ok() ? 0 : 1;
  }
  std::ostream &out = term.out();
  std::vector<std::vector<std::string>> rows{{"ROLE", "FILE", "SIZE", "RESULT", "DETAIL"}};
  for (const auto &c : report.parts) {
    rows.push_back({std::string(images::toString(c.expected.role)), c.expected.file,
                    formatMiB(c.expected.storedSize), std::string(images::toString(c.status)),
                    c.detail});
  }
  printTable(out, rows);
  if (report.ok()) {
    out << "result: image " << quote(report.name) << " is intact\n";
    return 0;
  }
  out << "result: image " << quote(report.name) << " is damaged: " << failed << " of "
      << report.parts.size() << " parts failed; remove it with 'nvbox image rm " << report.name
      << "' and import or build it again\n";
  return 1;
}

// ---------------------------------------------------------------------------
// image rm

std::string ImageRmCommand::synopsis() const {
  return "image rm NAME [--store DIR]";
}

std::string ImageRmCommand::description() const {
  return "Removes an image from the local store (also a damaged one). The image\n"
         "disappears in one step; its files are deleted after.";
}

void ImageRmCommand::addOptions(po::options_description &options,
                                po::positional_options_description &positional) {
  ImageCommand::addOptions(options, positional);
  addPositional(options, positional, "name", "NAME", "the image (also the first argument)");
}

void ImageRmCommand::validate(const po::variables_map &vm) {
  ImageCommand::validate(vm);
  requireArgument("image name");
  images::checkImageName(argument_);
}

int ImageRmCommand::run(Terminal &term) {
  images::ImageStore s = store();
  s.remove(argument_);
  if (json()) {
    term.out() << Json{{"removed", argument_}, {"store", s.root().string()}}.dump(2) << "\n";
  } else {
    term.out() << "removed image " << quote(argument_) << "\n";
  }
  return 0;
}

// ---------------------------------------------------------------------------
// image export

std::string ImageExportCommand::synopsis() const {
  return "image export NAME -o FILE [--force] [--store DIR]";
}

std::string ImageExportCommand::description() const {
  return "Writes an image to one bundle file: a zstd-compressed tar holding manifest.json\n"
         "and the parts. Each part is checked against its sha256 on the way; a damaged\n"
         "image is refused. The file appears only when complete.";
}

void ImageExportCommand::addOptions(po::options_description &options,
                                    po::positional_options_description &positional) {
  ImageCommand::addOptions(options, positional);
  options.add_options()("output,o", po::value<std::string>(&output_)->value_name("FILE"),
                        "the bundle file to write")("force", po::bool_switch(&force_),
                                                    "overwrite FILE if it exists");
  addPositional(options, positional, "name", "NAME", "the image (also the first argument)");
}

void ImageExportCommand::validate(const po::variables_map &vm) {
  ImageCommand::validate(vm);
  requireArgument("image name");
  images::checkImageName(argument_);
  if (output_.empty()) {
    throw UsageError("nvbox image export: missing -o FILE", "see 'nvbox image export --help'");
  }
}

int ImageExportCommand::run(Terminal &term) {
  const images::ImageStore s = store();
  images::ExportOptions options;
  options.overwrite = force_;
  options.progress = [&](std::string_view file, std::uint64_t done, std::uint64_t total) {
    progress(term, file, done, total);
  };
  const images::ExportResult r = images::exportBundle(s, argument_, output_, options);
  if (json()) {
    term.out() << Json{{"name", argument_},
                       {"file", r.path.string()},
                       {"size", r.size},
                       {"sha256", r.sha256}}
                      .dump(2)
               << "\n";
  } else {
    term.out() << "exported image " << quote(argument_) << " to " << quote(r.path.string()) << " ("
               << formatMiB(r.size) << ", sha256 " << r.sha256 << ")\n";
  }
  return 0;
}

// ---------------------------------------------------------------------------
// image import

std::string ImageImportCommand::synopsis() const {
  return "image import FILE [--replace] [--store DIR]\n"
         "       nvbox image import --disk DISK --name NAME [--kernel VMLINUZ] [--modules DIR] "
         "[--force]";
}

std::string ImageImportCommand::description() const {
  return "Adds the image in a bundle made by 'nvbox image export' to the local store. The\n"
         "bundle is checked entry by entry and every part against the manifest's sha256\n"
         "before the image appears; anything unexpected refuses the whole bundle and leaves\n"
         "the store unchanged. An image of the same name is replaced only with --replace.\n"
         "\n"
         "With --disk, brings your own router distribution instead: osrd, osr-agent, busybox\n"
         "and nvbox's init go into a copy of DISK (any format qemu-img reads, an ext2/3/4\n"
         "root; DISK itself is not written) with libguestfs, and the copy becomes image NAME\n"
         "with nvbox's guest kernel and initrd (or --kernel/--modules).";
}

void ImageImportCommand::addOptions(po::options_description &options,
                                    po::positional_options_description &positional) {
  ImageCommand::addOptions(options, positional);
  options.add_options()("replace", po::bool_switch(&replace_), "replace an image of the same name")(
      "disk", po::value(&disk_)->value_name("DISK"),
      "bring your own disk image instead of a bundle")(
      "name", po::value(&imageName_)->value_name("NAME"), "with --disk: the image's name");
  build_.addOptions(options);
  addPositional(options, positional, "file", "FILE", "the bundle (also the first argument)");
}

void ImageImportCommand::validate(const po::variables_map &vm) {
  ImageCommand::validate(vm);
  const bool buildOption = vm.count("kernel") + vm.count("modules") + vm.count("busybox") +
                                   vm.count("osrd") + vm.count("osrctl") + vm.count("agent") !=
                               0U ||
                           build_.force;
  if (disk_.empty()) {
    if (buildOption || !imageName_.empty()) {
      throw UsageError("nvbox image import: --name, --kernel, --modules, --force and the binary "
                       "options go with --disk",
                       "see 'nvbox image import --help'");
    }
    requireArgument("bundle FILE");
    return;
  }
  if (!argument_.empty() || replace_) {
    throw UsageError("nvbox image import: give a bundle FILE or --disk DISK, not both",
                     "see 'nvbox image import --help'");
  }
  if (imageName_.empty()) {
    throw UsageError("nvbox image import: --disk needs --name NAME",
                     "see 'nvbox image import --help'");
  }
  images::checkImageName(imageName_);
}

int ImageImportCommand::run(Terminal &term) {
  images::ImageStore s = store();
  if (!disk_.empty()) {
    images::BuildOptions options = build_.toOptions(imageName_);
    options.baseDisk = disk_;
    return runBuild(term, s, std::move(options), json());
  }
  images::ImportOptions options;
  options.replace = replace_;
  options.progress = [&](std::string_view file, std::uint64_t done, std::uint64_t total) {
    progress(term, file, done, total);
  };
  const images::Manifest m = images::importBundle(s, argument_, options);
  if (json()) {
    term.out() << Json{{"name", m.name},
                       {"file", argument_},
                       {"store", s.root().string()},
                       {"manifest", m.toJson()}}
                      .dump(2)
               << "\n";
  } else {
    term.out() << "imported image " << quote(m.name) << " from " << quote(argument_) << " ("
               << m.parts.size() << " parts, " << formatMiB(m.storedSize()) << ")\n";
  }
  return 0;
}

// ---------------------------------------------------------------------------
// image push

std::string ImagePushCommand::synopsis() const {
  return "image push NAME [--host NAME|URI] [--pool NAME] [--pool-path DIR] [--store DIR] "
         "[--json]";
}

std::string ImagePushCommand::description() const {
  return "Uploads an image from the local store to a host's storage pool through libvirt\n"
         "streams; the host needs nothing but libvirtd. Each part becomes the volume\n"
         "nvbox-<first 24 hex digits of its sha256>-<file>. A volume that is already there\n"
         "is read back and kept when its sha256 matches, else uploaded again. A damaged\n"
         "local image is refused before the host is touched. The pool is created (a 'dir'\n"
         "pool, autostarted) when missing, and started when inactive.";
}

void ImagePushCommand::addOptions(po::options_description &options,
                                  po::positional_options_description &positional) {
  ImageCommand::addOptions(options, positional);
  const PoolSpec defaults;
  options.add_options()("pool", po::value<std::string>(&pool_.name)->value_name("NAME"),
                        ("the storage pool on the host (default: " + defaults.name + ")").c_str())(
      "pool-path", po::value<std::string>(&pool_.path)->value_name("DIR"),
      ("a new pool's directory on the host (default: " + defaults.path + ")").c_str());
  addPositional(options, positional, "name", "NAME", "the image (also the first argument)");
}

void ImagePushCommand::validate(const po::variables_map &vm) {
  ImageCommand::validate(vm);
  requireArgument("image name");
  images::checkImageName(argument_);
  if (pool_.name.empty()) {
    throw UsageError("nvbox image push: --pool needs a name", "see 'nvbox image push --help'");
  }
  if (!pool_.path.starts_with("/")) {
    throw UsageError("nvbox image push: --pool-path must be an absolute directory on the host, "
                     "not " +
                         quote(pool_.path),
                     "see 'nvbox image push --help'");
  }
  target_ = resolveHost(host());
}

int ImagePushCommand::run(Terminal &term) {
  const images::ImageStore s = store();
  term.progress("connecting to " + target_.uri);
  const virt::Connection conn = virt::Connection::open(target_.uri);
  const PushReport r = pushImage(conn, s, argument_, pool_, pushProgress(term));
  if (json()) {
    Json report = r.toJson();
    report["host"] = target_.name;
    term.out() << report.dump(2) << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto &p : r.parts) {
    rows.push_back({std::string(images::toString(p.role)), p.volume,
                    p.uploaded ? "uploaded " + formatMiB(p.bytes) : "already there"});
  }
  printTable(term.out(), rows);
  const std::string where = "host " + quote(target_.name) + ", pool " + quote(r.pool);
  if (r.bytesUploaded == 0) {
    term.out() << "image " << quote(r.image) << " is already on " << where << ": nothing uploaded ("
               << formatDuration(r.seconds, 2) << ")\n";
    return 0;
  }
  const double rate =
      r.uploadSeconds > 0 ? static_cast<double>(r.bytesUploaded) / r.uploadSeconds : 0.0;
  term.out() << "pushed image " << quote(r.image) << " to " << where << ": "
             << formatMiB(r.bytesUploaded) << " uploaded in " << formatDuration(r.uploadSeconds, 2)
             << " (" << formatMiB(static_cast<std::uint64_t>(rate)) << "/s), "
             << formatDuration(r.seconds, 2) << " in all\n";
  return 0;
}

PushProgress pushProgress(Terminal &term) {
  return [&term](PushStep step, std::string_view subject, std::uint64_t done, std::uint64_t total) {
    switch (step) {
    case PushStep::VerifyLocal:
      term.progress("verifying image " + quote(std::string(subject)) + " (" + formatMiB(total) +
                    ")");
      break;
    case PushStep::CheckVolume:
    case PushStep::Upload:
      term.progress(std::string(step == PushStep::Upload ? "uploading " : "reading back ") +
                    std::string(subject) + " " + progressBar(done, total) + " " + formatMiB(done) +
                    " of " + formatMiB(total));
      break;
    }
  };
}

} // namespace nvbox::cli
