// libFuzzer target: ModuleIndex::parse and loadOrder on arbitrary modules.dep
// text. A damaged file must give an nvbox::Error, never a crash or a hang.
#include "nvbox/error.hpp"
#include "nvbox/images/module_index.hpp"

#include <cstddef>
#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  const std::string text(reinterpret_cast<const char *>(data), size);
  // The first line, if any, doubles as the built-in list.
  const std::string builtin = text.substr(0, text.find('\n'));
  try {
    const auto index = nvbox::images::ModuleIndex::parse(text, builtin, "fuzz");
    (void)index.loadOrder({"ext4", "virtio_net", "a", "b"});
  } catch (const nvbox::Error &) {
    // Refusing bad input is the expected outcome.
  }
  return 0;
}
