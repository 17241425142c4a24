// nvbox::Error — the one error type that crosses a library boundary.
//
// It carries what failed (a single line that quotes the values involved, in
// the libvirt style: "cannot connect to host 'qemu+tcp://x/system': ...") and,
// separately, what the user can do about it. The CLI prints both on one line
// and maps the kind to an exit code; nothing else is ever shown to the user.
#pragma once

#include <stdexcept>
#include <string>

namespace nvbox {

class Error : public std::runtime_error {
public:
  enum class Kind {
    Failure, // the operation could not be done (exit 1)
    Usage,   // the command line was wrong (exit 2)
  };

  explicit Error(const std::string &what, std::string hint = {}, Kind kind = Kind::Failure)
      : std::runtime_error(what), hint_(std::move(hint)), kind_(kind) {}

  [[nodiscard]] const std::string &hint() const noexcept { return hint_; }
  [[nodiscard]] Kind kind() const noexcept { return kind_; }

private:
  std::string hint_;
  Kind kind_;
};

class UsageError : public Error {
public:
  explicit UsageError(const std::string &what, std::string hint = {})
      : Error(what, std::move(hint), Kind::Usage) {}
};

} // namespace nvbox
