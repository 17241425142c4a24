// UndoLog: what a deploy created, removed again in reverse when it fails.
#include "link_wiring.hpp"

namespace nvbox::links {

void UndoLog::add(std::string what, std::function<void()> step) {
  const std::lock_guard lock(mutex_);
  steps_.emplace_back(std::move(what), std::move(step));
}

std::vector<std::string> UndoLog::created() {
  const std::lock_guard lock(mutex_);
  std::vector<std::string> out;
  for (const auto &step : steps_) {
    out.push_back(step.first);
  }
  return out;
}

std::vector<std::string> UndoLog::rollback() {
  const std::lock_guard lock(mutex_);
  std::vector<std::string> failures;
  for (auto it = steps_.rbegin(); it != steps_.rend(); ++it) {
    try {
      it->second();
    } catch (const std::exception &e) {
      failures.push_back(it->first + ": " + e.what());
    }
  }
  steps_.clear();
  return failures;
}

void UndoLog::clear() {
  const std::lock_guard lock(mutex_);
  steps_.clear();
}

} // namespace nvbox::links
