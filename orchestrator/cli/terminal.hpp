// Terminal — where a command writes: results to `out`, errors and progress to
// `err`. Progress lines appear only when `err` is a terminal, rewritten in
// place, and are erased before anything else is printed, so redirected output
// and --json stay clean.
#pragma once

#include <chrono>
#include <iosfwd>
#include <string>

namespace nvbox::cli {

class Terminal {
public:
  Terminal(std::ostream &out, std::ostream &err, bool interactive)
      : out_(out), err_(err), interactive_(interactive) {}

  [[nodiscard]] std::ostream &out();
  [[nodiscard]] std::ostream &err();
  [[nodiscard]] bool interactive() const { return interactive_; }

  // Shows "… what (12 s)" on an interactive terminal; no-op otherwise.
  void progress(const std::string &what);
  void clearProgress();

private:
  std::ostream &out_;
  std::ostream &err_;
  bool interactive_;
  bool shown_ = false;
};

} // namespace nvbox::cli
