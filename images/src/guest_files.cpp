#include "nvbox/images/guest_files.hpp"

#include "nvbox/error.hpp"

#include <string>

namespace nvbox::images {

std::string_view guestFile(std::string_view name) {
  for (const auto &file : guestFiles()) {
    if (file.name == name) {
      return file.text;
    }
  }
  throw Error("nvbox has no embedded guest file '" + std::string(name) + "'",
              "rebuild nvbox; this is a bug");
}

} // namespace nvbox::images
