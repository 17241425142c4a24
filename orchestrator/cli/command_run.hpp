// `nvbox run FILE` — plays the topology's scheduled link events against the
// deployed overlay while a TCP stream runs through its stripe, and prints
// what the stripe did: goodput per window between events, each path's share,
// which paths osrd took out or put back and how long after each event, and
// the longest stall (nvbox::runOverlay). `nvbox inspect` shows the last
// run's summary again (printRunSummary). --plot draws the goodput over time
// (nvbox::GoodputPlot).
#pragma once

#include "command_overlay.hpp"

#include "nvbox/goodput_plot.hpp"
#include "nvbox/overlay_run.hpp"

#include <nlohmann/json.hpp>

#include <iosfwd>
#include <string>

namespace nvbox::cli {

class RunCommand : public OverlayCommand {
public:
  [[nodiscard]] std::string name() const override { return "run"; }
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
  double tail_ = 10;
  std::string csv_;
  std::string plot_;
};

// A run's summary (OverlayRunReport::summary()) for humans.
void printRunSummary(std::ostream &out, const nlohmann::json &summary);

// What --plot draws of a run: the receiver's goodput (over half a second,
// every tenth), each path's rate at the ingress (named by relay), the
// events where they took effect.
[[nodiscard]] GoodputPlot runPlot(const OverlayRunReport &report);

} // namespace nvbox::cli
