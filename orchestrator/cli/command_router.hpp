// `nvbox router create|start|suspend|resume|stop|destroy|relocate|list|
// inspect|stats|console` — the virtual routers on one NV-box host (nvbox::RouterManager),
// from the command line.
//
// Every verb acts on the host given by the global --host (a registered name,
// 'local' or a libvirt URI; default local), except that `router list`
// without --host lists the routers of every registered host. The arguments
// (names, --nic specs, --config keys, sizes) are checked before any host is
// contacted. Lifecycle verbs print one line per step; list, inspect and stats
// print aligned tables, or JSON with --json. inspect and stats ask the
// router's guest agent (nvbox::GuestAgent) for what only the guest knows.
#pragma once

#include "command.hpp"
#include "nvbox/hosts.hpp"
#include "nvbox/router.hpp"

#include <chrono>
#include <cstddef>
#include <iosfwd>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace nvbox::cli {

// A --nic SPEC: bridge=BR[,mac=MAC][,tap=NAME][,rate=KBYTES_PER_S][,mtu=N],
// network=NET[,...] or tap[=NAME][,mac=...][,rate=...][,mtu=...]. The MAC is
// left empty when not given. Throws nvbox::UsageError quoting the spec.
[[nodiscard]] RouterNic parseNicSpec(const std::string &spec);
// The MAC a NIC gets when its spec names none: nvbox::derivedMac with the
// host's name as the scope, so it is the same every time the router is
// created on that host.
using nvbox::derivedMac;

// A --config KEY=VALUE: the literal text, or the file named by VALUE @FILE.
struct ConfigValue {
  std::string text;
  std::string file; // non-empty: read this file at run time
};
// Parses every --config; KEY is net, osrd or key, each at most once. Throws
// nvbox::UsageError.
[[nodiscard]] std::map<std::string, ConfigValue>
parseConfigArguments(const std::vector<std::string> &args);
// The texts, files read. Throws nvbox::Error naming a file that cannot be
// read.
[[nodiscard]] std::map<std::string, std::string>
readConfigValues(const std::map<std::string, ConfigValue> &values);

// The agent's "status" reply as `router inspect` shows it (host name,
// interfaces, osrd), indented by two spaces.
void printAgentStatus(const nlohmann::json &status, std::ostream &out);
// osrd's status object as `router stats` shows it: counters, then stripes
// with their paths, then the egress flows with theirs.
void printOsrdStatus(const nlohmann::json &status, std::ostream &out);

// What the router verbs share: the host from --host (resolved, never
// contacted, in validate()), the router NAME argument, and the connection.
class RouterCommand : public Command {
protected:
  void addOptions(boost::program_options::options_description &options,
                  boost::program_options::positional_options_description &positional) override;
  void validate(const boost::program_options::variables_map &vm) override;
  // Whether the verb takes a router NAME.
  [[nodiscard]] virtual bool takesName() const { return true; }
  // Adds --timeout SECONDS (default `seconds`).
  void addTimeout(boost::program_options::options_description &options, double seconds,
                  const char *help);
  [[nodiscard]] std::chrono::milliseconds timeout() const;
  // " --host NAME" for hints, empty for the default host.
  [[nodiscard]] std::string hostFlag() const;
  // "router 'r1' on host 'local'"
  [[nodiscard]] std::string where() const;

  std::string router_;
  HostRef target_;

private:
  double timeoutSeconds_ = 0;
};

class RouterCreateCommand : public RouterCommand {
public:
  [[nodiscard]] std::string name() const override { return "router create"; }
  [[nodiscard]] std::string synopsis() const override;
  [[nodiscard]] std::string description() const override;
  int run(Terminal &term) override;

protected:
  void addOptions(boost::program_options::options_description &options,
                  boost::program_options::positional_options_description &positional) override;
  void validate(const boost::program_options::variables_map &vm) override;

private:
  std::string memory_ = "128M";
  std::vector<std::string> nicSpecs_;
  std::vector<std::string> configArgs_;
  std::string accel_ = "auto";
  bool start_ = false;
  bool wait_ = false;
  std::string storeDir_;
  RouterCreateOptions options_;
  std::map<std::string, ConfigValue> config_;
};

class RouterStartCommand : public RouterCommand {
public:
  [[nodiscard]] std::string name() const override { return "router start"; }
  [[nodiscard]] std::string synopsis() const override;
  [[nodiscard]] std::string description() const override;
  int run(Terminal &term) override;

protected:
  void addOptions(boost::program_options::options_description &options,
                  boost::program_options::positional_options_description &positional) override;

private:
  bool wait_ = false;
};

class RouterSuspendCommand : public RouterCommand {
public:
  [[nodiscard]] std::string name() const override { return "router suspend"; }
  [[nodiscard]] std::string synopsis() const override;
  [[nodiscard]] std::string description() const override;
  int run(Terminal &term) override;
};

class RouterResumeCommand : public RouterCommand {
public:
  [[nodiscard]] std::string name() const override { return "router resume"; }
  [[nodiscard]] std::string synopsis() const override;
  [[nodiscard]] std::string description() const override;
  int run(Terminal &term) override;
};

class RouterStopCommand : public RouterCommand {
public:
  [[nodiscard]] std::string name() const override { return "router stop"; }
  [[nodiscard]] std::string synopsis() const override;
  [[nodiscard]] std::string description() const override;
  int run(Terminal &term) override;

protected:
  void addOptions(boost::program_options::options_description &options,
                  boost::program_options::positional_options_description &positional) override;
};

class RouterDestroyCommand : public RouterCommand {
public:
  [[nodiscard]] std::string name() const override { return "router destroy"; }
  [[nodiscard]] std::string synopsis() const override;
  [[nodiscard]] std::string description() const override;
  int run(Terminal &term) override;
};

class RouterRelocateCommand : public RouterCommand {
public:
  [[nodiscard]] std::string name() const override { return "router relocate"; }
  [[nodiscard]] std::string synopsis() const override;
  [[nodiscard]] std::string description() const override;
  int run(Terminal &term) override;

protected:
  void addOptions(boost::program_options::options_description &options,
                  boost::program_options::positional_options_description &positional) override;
  void validate(const boost::program_options::variables_map &vm) override;

private:
  std::string to_;
  HostRef toHost_;
  std::string storeDir_;
  std::string mode_ = "auto";
  std::string compress_ = "xz";
  RelocateOptions options_;
};

class RouterListCommand : public RouterCommand {
public:
  [[nodiscard]] std::string name() const override { return "router list"; }
  [[nodiscard]] std::string synopsis() const override;
  [[nodiscard]] std::string description() const override;
  int run(Terminal &term) override;

protected:
  void validate(const boost::program_options::variables_map &vm) override;
  [[nodiscard]] bool takesName() const override { return false; }

private:
  bool allHosts_ = false;
};

class RouterInspectCommand : public RouterCommand {
public:
  [[nodiscard]] std::string name() const override { return "router inspect"; }
  [[nodiscard]] std::string synopsis() const override;
  [[nodiscard]] std::string description() const override;
  int run(Terminal &term) override;
};

class RouterStatsCommand : public RouterCommand {
public:
  [[nodiscard]] std::string name() const override { return "router stats"; }
  [[nodiscard]] std::string synopsis() const override;
  [[nodiscard]] std::string description() const override;
  int run(Terminal &term) override;
};

class RouterConsoleCommand : public RouterCommand {
public:
  [[nodiscard]] std::string name() const override { return "router console"; }
  [[nodiscard]] std::string synopsis() const override;
  [[nodiscard]] std::string description() const override;
  int run(Terminal &term) override;

protected:
  void validate(const boost::program_options::variables_map &vm) override;
};

} // namespace nvbox::cli
