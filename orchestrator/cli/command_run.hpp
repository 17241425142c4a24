// `nvbox run FILE` — plays the topology's scheduled link events against the
// deployed overlay while a TCP stream runs through its stripe, and prints
// what the stripe did: goodput per window between events, each path's share,
// which paths osrd took out or put back and how long after each event, and
// the longest stall (nvbox::runOverlay). `nvbox inspect` shows the last
// run's summary again (printRunSummary).
#pragma once

#include "command_overlay.hpp"

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
};

// A run's summary (OverlayRunReport::summary()) for humans.
void printRunSummary(std::ostream &out, const nlohmann::json &summary);

} // namespace nvbox::cli
