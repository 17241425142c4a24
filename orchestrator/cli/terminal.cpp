#include "terminal.hpp"

#include <ostream>

namespace nvbox::cli {

std::ostream &Terminal::out() {
  clearProgress();
  return out_;
}

std::ostream &Terminal::err() {
  clearProgress();
  return err_;
}

void Terminal::progress(const std::string &what) {
  if (!interactive_) {
    return;
  }
  err_ << "\r\033[K… " << what << std::flush;
  shown_ = true;
}

void Terminal::clearProgress() {
  if (shown_) {
    err_ << "\r\033[K" << std::flush;
    shown_ = false;
  }
}

} // namespace nvbox::cli
