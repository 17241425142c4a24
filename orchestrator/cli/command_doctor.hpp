// `nvbox doctor` — runs nvbox::runDoctor against one host and prints the
// report as an aligned table or as JSON. Exit 0 when no check failed, 1 when
// one did or the host could not be reached.
#pragma once

#include "command.hpp"
#include "nvbox/doctor.hpp"

namespace nvbox::cli {

class DoctorCommand : public Command {
public:
  [[nodiscard]] std::string name() const override { return "doctor"; }
  [[nodiscard]] std::string synopsis() const override;
  [[nodiscard]] std::string description() const override;
  int run(Terminal &term) override;

protected:
  void addOptions(boost::program_options::options_description &options,
                  boost::program_options::positional_options_description &positional) override;
  void validate(const boost::program_options::variables_map &vm) override;

private:
  bool deep_ = false;
  std::string only_;
  double kvmTimeout_ = 8.0;
  DoctorOptions options_;
};

// The human-readable report, as printed by `nvbox doctor`.
void printDoctorReport(const DoctorReport &report, std::ostream &out);

} // namespace nvbox::cli
