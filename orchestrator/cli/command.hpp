// Command — one nvbox subcommand ("doctor", later "image build", …).
//
// Modelled on osmium-tool: setup() only parses and validates the command's
// arguments and must not touch any host; run() does the work. A
// CommandFactory maps names to constructors; app.cpp dispatches.
//
// Every command gets --help, --json and --host from the base class, so that
// `nvbox --json doctor` and `nvbox doctor --json` mean the same.
#pragma once

#include "terminal.hpp"

#include <boost/program_options.hpp>

#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace nvbox::cli {

// Options given before the command name.
struct GlobalOptions {
  bool json = false;
  std::string host; // empty: the default host
};

class Command {
public:
  Command();
  virtual ~Command() = default;
  Command(const Command &) = delete;
  Command &operator=(const Command &) = delete;

  // Parses the command's own arguments. Throws nvbox::UsageError.
  // Returns false when --help was asked for (help already printed to out).
  bool setup(const std::vector<std::string> &args, const GlobalOptions &global, std::ostream &out);
  // Does the work; returns the exit code. Throws nvbox::Error on failure.
  virtual int run(Terminal &term) = 0;

  [[nodiscard]] virtual std::string name() const = 0;
  [[nodiscard]] virtual std::string synopsis() const = 0;
  [[nodiscard]] virtual std::string description() const = 0;

  void printHelp(std::ostream &out);

protected:
  // Adds the command's own options and positionals.
  virtual void addOptions(boost::program_options::options_description &options,
                          boost::program_options::positional_options_description &positional);
  // Validates what was parsed (no side effects).
  virtual void validate(const boost::program_options::variables_map &vm);

  [[nodiscard]] bool json() const { return json_; }
  [[nodiscard]] const std::string &host() const { return host_; }

private:
  boost::program_options::options_description options_{"Options", 100, 50};
  boost::program_options::positional_options_description positional_;
  bool json_ = false;
  std::string host_;
  bool initialised_ = false;
  void initialise();
};

class CommandFactory {
public:
  using Creator = std::function<std::unique_ptr<Command>()>;

  void add(const std::string &name, std::string summary, Creator creator);
  // The command named by the first one or two words of args; consumed words
  // are removed from args. Returns nullptr when nothing matches.
  [[nodiscard]] std::unique_ptr<Command> create(std::vector<std::string> &args) const;
  // Whether `word` is a noun with verbs ("image" for "image build").
  [[nodiscard]] bool isNoun(const std::string &word) const;
  // Prints "  NAME  SUMMARY" lines for all commands (or one noun's verbs).
  void list(std::ostream &out, const std::string &noun = {}) const;

private:
  struct Entry {
    std::string summary;
    Creator creator;
  };
  std::map<std::string, Entry> entries_;
};

// All built-in commands.
[[nodiscard]] const CommandFactory &commands();

} // namespace nvbox::cli
