// `nvbox deploy | destroy | inspect | graph | transfer` — routing overlays
// from a topology file (docs/topology.md) across NV-box hosts.
//
// deploy parses and validates the file (every error with file:line:col),
// plans it (nvbox::planOverlay), and with --dry-run prints the plan host by
// host and stops; otherwise it converges the hosts on the plan
// (nvbox::deployOverlay), printing a line per step. destroy, inspect, graph
// and transfer take the overlay's NAME (found on the registered hosts and the
// hosts its routers' plans name) or its FILE (whose hosts are searched).
#pragma once

#include "command.hpp"
#include "nvbox/hosts.hpp"
#include "nvbox/overlay_plan.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace nvbox::cli {

// NAME|FILE: a topology file when it names an existing file or ends in
// .yaml/.yml; otherwise an overlay name.
struct OverlayTarget {
  std::string name;
  std::optional<OverlayPlan> plan; // from the file
  std::vector<HostRef> hosts;      // where to look
  std::vector<PlannedHost> networks;
};

// Shared by the overlay verbs: the NAME|FILE argument.
class OverlayCommand : public Command {
protected:
  void addOptions(boost::program_options::options_description &options,
                  boost::program_options::positional_options_description &positional) override;
  void validate(const boost::program_options::variables_map &vm) override;
  // Loads the file or takes the name; registered hosts (and local) are
  // searched for a name.
  [[nodiscard]] OverlayTarget target() const;

  std::string target_;
};

class DeployCommand : public OverlayCommand {
public:
  [[nodiscard]] std::string name() const override { return "deploy"; }
  [[nodiscard]] std::string synopsis() const override;
  [[nodiscard]] std::string description() const override;
  int run(Terminal &term) override;

protected:
  void addOptions(boost::program_options::options_description &options,
                  boost::program_options::positional_options_description &positional) override;
  void validate(const boost::program_options::variables_map &vm) override;

private:
  bool dryRun_ = false;
  unsigned boots_ = 4;
  double timeout_ = 300;
  std::string storeDir_;
};

class DestroyCommand : public OverlayCommand {
public:
  [[nodiscard]] std::string name() const override { return "destroy"; }
  [[nodiscard]] std::string synopsis() const override;
  [[nodiscard]] std::string description() const override;
  int run(Terminal &term) override;
};

// The live part of `inspect` for one router: per stripe osrd is ingress of,
// its paths (up, RTT, loss, traffic and, from an osrd that measures them,
// the rate each delivers, its queueing delay and share), then the egress
// flows' re-sequencing counters. `osrd` is osrd's status as it came.
void printLiveStatus(std::ostream &out, const std::string &router, const nlohmann::json &osrd);

class InspectCommand : public OverlayCommand {
public:
  [[nodiscard]] std::string name() const override { return "inspect"; }
  [[nodiscard]] std::string synopsis() const override;
  [[nodiscard]] std::string description() const override;
  int run(Terminal &term) override;

protected:
  void addOptions(boost::program_options::options_description &options,
                  boost::program_options::positional_options_description &positional) override;

private:
  bool noLive_ = false;
};

class GraphCommand : public OverlayCommand {
public:
  [[nodiscard]] std::string name() const override { return "graph"; }
  [[nodiscard]] std::string synopsis() const override;
  [[nodiscard]] std::string description() const override;
  int run(Terminal &term) override;

protected:
  void addOptions(boost::program_options::options_description &options,
                  boost::program_options::positional_options_description &positional) override;
  void validate(const boost::program_options::variables_map &vm) override;

private:
  std::string output_;
};

class TransferCommand : public OverlayCommand {
public:
  [[nodiscard]] std::string name() const override { return "transfer"; }
  [[nodiscard]] std::string synopsis() const override;
  [[nodiscard]] std::string description() const override;
  int run(Terminal &term) override;

protected:
  void addOptions(boost::program_options::options_description &options,
                  boost::program_options::positional_options_description &positional) override;
  void validate(const boost::program_options::variables_map &vm) override;

private:
  std::string from_;
  std::string to_;
  std::string bytesText_ = "32M";
  std::uint64_t bytes_ = 0;
  bool compare_ = false;
};

// The overlay as Graphviz DOT: routers grouped by host, links labelled with
// their rates and delays, endpoints as boxes. `plan` is OverlayPlan::toJson().
[[nodiscard]] std::string overlayDot(const nlohmann::json &plan);

} // namespace nvbox::cli
