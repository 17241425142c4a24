#include "command_image_build.hpp"

#include "nvbox/error.hpp"

#include <charconv>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unistd.h>

namespace po = boost::program_options;

namespace nvbox::cli {
namespace {

// The directory of the running nvbox: osrd, osrctl and osr-agent are built
// and installed beside it.
std::filesystem::path selfDir() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::filesystem::path() : exe.parent_path();
}

} // namespace

std::uint64_t parseByteSize(const std::string &text, const std::string &option) {
  std::uint64_t value = 0;
  const char *end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  unsigned shift = 0;
  if (ec == std::errc() && ptr + 1 == end) {
    switch (*ptr) {
    case 'K':
      shift = 10;
      break;
    case 'M':
      shift = 20;
      break;
    case 'G':
      shift = 30;
      break;
    case 'T':
      shift = 40;
      break;
    default:
      shift = 64;
      break;
    }
  } else if (ec != std::errc() || ptr != end) {
    shift = 64;
  }
  if (shift == 64 || (shift > 0 && value > (UINT64_MAX >> shift))) {
    throw UsageError("nvbox: --" + option + " '" + text + "' is not a size",
                     "give bytes, or a number with K, M, G or T (powers of 1024), e.g. 256M");
  }
  return value << shift;
}

void BuildArguments::addOptions(po::options_description &options) {
  options.add_options()("kernel", po::value(&kernel)->value_name("VMLINUZ"),
                        "guest kernel (default: the newest /boot/vmlinuz-* with modules)")(
      "modules", po::value(&modules)->value_name("DIR"),
      "its module tree (default: /lib/modules/VERSION)")(
      "busybox", po::value(&busybox)->value_name("FILE"),
      "static busybox (default /bin/busybox, from busybox-static)")(
      "osrd", po::value(&osrd)->value_name("FILE"), "static osrd (default: beside nvbox)")(
      "osrctl", po::value(&osrctl)->value_name("FILE"), "static osrctl (default: beside nvbox)")(
      "agent", po::value(&agent)->value_name("FILE"), "static osr-agent (default: beside nvbox)")(
      "force", po::bool_switch(&force), "build even when the store has these inputs");
}

images::BuildOptions BuildArguments::toOptions(const std::string &imageName) const {
  images::BuildOptions options;
  options.name = imageName;
  if (!kernel.empty()) {
    options.kernel = kernel;
  }
  if (!modules.empty()) {
    options.modules = modules;
  }
  const std::filesystem::path dir = selfDir();
  options.busybox = busybox;
  options.osrd = osrd.empty() ? dir / "osrd" : std::filesystem::path(osrd);
  options.osrctl = osrctl.empty() ? dir / "osrctl" : std::filesystem::path(osrctl);
  options.agent = agent.empty() ? dir / "osr-agent" : std::filesystem::path(agent);
  options.force = force;
  return options;
}

int runBuild(Terminal &term, images::ImageStore &store, images::BuildOptions options, bool json) {
  const std::string name = options.name;
  options.onStep = [&](std::string_view step) {
    term.progress("image " + name + ": " + std::string(step));
  };
  const images::BuildResult r = images::buildImage(store, options);
  term.clearProgress();
  const images::Manifest &m = r.manifest;
  if (json) {
    nlohmann::json steps = nlohmann::json::array();
    for (const auto &step : r.steps) {
      steps.push_back({{"step", step.name}, {"seconds", step.seconds}});
    }
    term.out() << nlohmann::json{{"name", m.name},
                                 {"up_to_date", r.upToDate},
                                 {"seconds", r.seconds},
                                 {"steps", steps},
                                 {"manifest", m.toJson()}}
                      .dump(2)
               << "\n";
    return 0;
  }
  std::ostream &out = term.out();
  if (r.upToDate) {
    out << "image '" << m.name << "' is up to date (built " << m.buildDate
        << " from the same inputs, digest " << m.inputDigest.substr(0, 16) << ")\n";
    return 0;
  }
  out << "built image '" << m.name << "' in " << formatDuration(r.seconds) << " (kernel "
      << m.kernelVersion << ", osrd " << m.osrdVersion << ")\n";
  for (const auto &step : r.steps) {
    out << "  " << std::left << std::setw(42) << step.name << formatDuration(step.seconds) << "\n";
  }
  for (const auto &p : m.parts) {
    out << "  " << std::left << std::setw(8) << images::toString(p.role) << std::setw(12) << p.file
        << formatMiB(p.storedSize) << " stored, " << formatMiB(p.rawSize) << " raw\n";
  }
  out << "  total   " << formatMiB(m.storedSize()) << " stored, " << formatMiB(m.rawSize())
      << " raw\n";
  return 0;
}

std::string ImageBuildCommand::synopsis() const {
  return "image build [--name NAME] [--kernel VMLINUZ] [--modules DIR] [--disk-size SIZE]\n"
         "       [--force] [--store DIR]";
}

std::string ImageBuildCommand::description() const {
  return "Builds the OSR router image and stores it: the guest kernel, an initrd with\n"
         "busybox and the kernel modules routers load, and an ext4 root disk laid out with\n"
         "libguestfs (one appliance launch) holding osrd, osrctl, osr-agent and the init,\n"
         "stored as qcow2 with zstd-compressed clusters. The inputs are hashed first; if\n"
         "the store holds an image built from the same inputs, nothing is done. The\n"
         "binaries default to the ones beside nvbox; they must be static.";
}

void ImageBuildCommand::addOptions(po::options_description &options,
                                   po::positional_options_description &positional) {
  ImageCommand::addOptions(options, positional);
  options.add_options()("name", po::value(&imageName_)->value_name("NAME"),
                        "image name (default osr)")("disk-size",
                                                    po::value(&diskSize_)->value_name("SIZE"),
                                                    "virtual size of the root disk (default 256M)");
  build_.addOptions(options);
}

void ImageBuildCommand::validate(const po::variables_map &vm) {
  ImageCommand::validate(vm);
  images::checkImageName(imageName_);
  diskBytes_ = parseByteSize(diskSize_, "disk-size");
}

int ImageBuildCommand::run(Terminal &term) {
  images::ImageStore s = store();
  images::BuildOptions options = build_.toOptions(imageName_);
  options.diskSize = diskBytes_;
  return runBuild(term, s, std::move(options), json());
}

} // namespace nvbox::cli
