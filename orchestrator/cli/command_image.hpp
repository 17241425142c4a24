// `nvbox image list|inspect|verify|rm|export|import|push` — the local image
// store (nvbox::images::ImageStore) and bundles, from the command line, and
// the upload of an image to a host (nvbox/image_push.hpp).
//
// Every verb takes --store DIR (default: ImageStore::defaultRoot()). All but
// push refuse --host: images live on the machine nvbox runs on and reach
// hosts only through push. list, inspect and verify print an aligned table or,
// with --json, JSON; sizes are MiB with one decimal. verify exits 1 when a
// part is damaged; the others exit 0 or fail with one error line.
#pragma once

#include "command.hpp"
#include "format.hpp"
#include "nvbox/hosts.hpp"
#include "nvbox/image_push.hpp"
#include "nvbox/images/image_builder.hpp"
#include "nvbox/images/image_store.hpp"

#include <cstdint>
#include <string>

namespace nvbox::cli {

// Shows a push's steps on the terminal (verifying, reading back, uploading
// with a bar); for `image push` and for router creation, which pushes too.
[[nodiscard]] PushProgress pushProgress(Terminal &term);

// What the image verbs share: --store, the refusal of --host, and the
// positional argument (an image name or a file) each verb names.
class ImageCommand : public Command {
protected:
  void addOptions(boost::program_options::options_description &options,
                  boost::program_options::positional_options_description &positional) override;
  void validate(const boost::program_options::variables_map &vm) override;
  // Whether the verb acts on a host, so that --host applies.
  [[nodiscard]] virtual bool usesHost() const { return false; }

  // The store chosen by --store, or the default one.
  [[nodiscard]] images::ImageStore store() const;
  // Adds the positional argument `key` (value name `valueName`).
  void addPositional(boost::program_options::options_description &options,
                     boost::program_options::positional_options_description &positional,
                     const char *key, const char *valueName, const char *help);
  // Throws a UsageError unless the positional argument was given.
  void requireArgument(const std::string &what) const;
  void progress(Terminal &term, std::string_view file, std::uint64_t done, std::uint64_t total);

  std::string argument_; // NAME or FILE

private:
  std::string storeDir_;
};

// What `image build` and `image import --disk` share: the build's inputs on
// the command line, turned into BuildOptions, and the report of a build.
struct BuildArguments {
  std::string kernel;
  std::string modules;
  std::string busybox = "/bin/busybox";
  std::string osrd;
  std::string osrctl;
  std::string agent;
  bool force = false;

  void addOptions(boost::program_options::options_description &options);
  // Binaries not named default to the ones beside the running nvbox.
  [[nodiscard]] images::BuildOptions toOptions(const std::string &imageName) const;
};

class ImageListCommand : public ImageCommand {
public:
  [[nodiscard]] std::string name() const override { return "image list"; }
  [[nodiscard]] std::string synopsis() const override;
  [[nodiscard]] std::string description() const override;
  int run(Terminal &term) override;
};

class ImageInspectCommand : public ImageCommand {
public:
  [[nodiscard]] std::string name() const override { return "image inspect"; }
  [[nodiscard]] std::string synopsis() const override;
  [[nodiscard]] std::string description() const override;
  int run(Terminal &term) override;

protected:
  void addOptions(boost::program_options::options_description &options,
                  boost::program_options::positional_options_description &positional) override;
  void validate(const boost::program_options::variables_map &vm) override;
};

class ImageVerifyCommand : public ImageCommand {
public:
  [[nodiscard]] std::string name() const override { return "image verify"; }
  [[nodiscard]] std::string synopsis() const override;
  [[nodiscard]] std::string description() const override;
  int run(Terminal &term) override;

protected:
  void addOptions(boost::program_options::options_description &options,
                  boost::program_options::positional_options_description &positional) override;
  void validate(const boost::program_options::variables_map &vm) override;
};

class ImageRmCommand : public ImageCommand {
public:
  [[nodiscard]] std::string name() const override { return "image rm"; }
  [[nodiscard]] std::string synopsis() const override;
  [[nodiscard]] std::string description() const override;
  int run(Terminal &term) override;

protected:
  void addOptions(boost::program_options::options_description &options,
                  boost::program_options::positional_options_description &positional) override;
  void validate(const boost::program_options::variables_map &vm) override;
};

class ImageExportCommand : public ImageCommand {
public:
  [[nodiscard]] std::string name() const override { return "image export"; }
  [[nodiscard]] std::string synopsis() const override;
  [[nodiscard]] std::string description() const override;
  int run(Terminal &term) override;

protected:
  void addOptions(boost::program_options::options_description &options,
                  boost::program_options::positional_options_description &positional) override;
  void validate(const boost::program_options::variables_map &vm) override;

private:
  std::string output_;
  bool force_ = false;
};

class ImageImportCommand : public ImageCommand {
public:
  [[nodiscard]] std::string name() const override { return "image import"; }
  [[nodiscard]] std::string synopsis() const override;
  [[nodiscard]] std::string description() const override;
  int run(Terminal &term) override;

protected:
  void addOptions(boost::program_options::options_description &options,
                  boost::program_options::positional_options_description &positional) override;
  void validate(const boost::program_options::variables_map &vm) override;

private:
  bool replace_ = false;
  std::string disk_;      // --disk: bring your own disk instead of a bundle
  std::string imageName_; // --name, with --disk
  BuildArguments build_;
};

class ImagePushCommand : public ImageCommand {
public:
  [[nodiscard]] std::string name() const override { return "image push"; }
  [[nodiscard]] std::string synopsis() const override;
  [[nodiscard]] std::string description() const override;
  int run(Terminal &term) override;

protected:
  void addOptions(boost::program_options::options_description &options,
                  boost::program_options::positional_options_description &positional) override;
  void validate(const boost::program_options::variables_map &vm) override;
  [[nodiscard]] bool usesHost() const override { return true; }

private:
  PoolSpec pool_;
  HostRef target_;
};

} // namespace nvbox::cli
