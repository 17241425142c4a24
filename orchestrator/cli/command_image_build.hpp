// `nvbox image build` — makes the OSR router image (nvbox::images::buildImage)
// from the guest kernel, busybox-static and the static osrd, osrctl and
// osr-agent that sit beside the nvbox binary, and stores it in the local
// store. A second build with the same inputs does nothing and says so.
#pragma once

#include "command_image.hpp"

#include <cstdint>
#include <string>

namespace nvbox::cli {

// Runs the build with progress on the terminal and prints its report (or
// JSON); returns the exit code.
int runBuild(Terminal &term, images::ImageStore &store, images::BuildOptions options, bool json);

class ImageBuildCommand : public ImageCommand {
public:
  [[nodiscard]] std::string name() const override { return "image build"; }
  [[nodiscard]] std::string synopsis() const override;
  [[nodiscard]] std::string description() const override;
  int run(Terminal &term) override;

protected:
  void addOptions(boost::program_options::options_description &options,
                  boost::program_options::positional_options_description &positional) override;
  void validate(const boost::program_options::variables_map &vm) override;

private:
  std::string imageName_ = "osr";
  BuildArguments build_;
  std::string diskSize_ = "256M";
  std::uint64_t diskBytes_ = 0;
};

// "256M", "1G", "300000000" -> bytes (K, M, G, T are powers of 1024).
// Throws nvbox::UsageError naming `option` for anything else.
[[nodiscard]] std::uint64_t parseByteSize(const std::string &text, const std::string &option);

} // namespace nvbox::cli
