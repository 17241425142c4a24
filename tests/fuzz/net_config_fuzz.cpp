// libFuzzer target: osr-agent's network configuration parser on arbitrary
// text. The text comes from the host, so any input must give a NetConfig or
// a one-line std::invalid_argument, never a crash, a hang or an assert. The
// same text also goes to parseShape(), the agent's run-time shape request.
#include "net_config.hpp"

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char *>(data), size);
  try {
    const auto config = nvbox::agent::parseNetConfig(text);
    // What validation promised the apply step.
    for (const auto &iface : config.ifaces) {
      if (iface.mac.empty() == iface.name.empty() || iface.addresses.empty()) {
        __builtin_trap();
      }
    }
  } catch (const std::invalid_argument &e) {
    if (std::string_view(e.what()).find('\n') != std::string_view::npos) {
      __builtin_trap(); // errors are one line
    }
  }
  try {
    const auto shape = nvbox::agent::parseShape(text);
    if (shape.mac.empty() == shape.name.empty() || !shape.addresses.empty()) {
      __builtin_trap();
    }
  } catch (const std::invalid_argument &e) {
    if (std::string_view(e.what()).find('\n') != std::string_view::npos) {
      __builtin_trap();
    }
  }
  return 0;
}
