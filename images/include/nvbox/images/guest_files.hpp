// The guest side of an OSR router image that is not a binary: the initrd's
// /init, the root's nvbox-init, busybox init's inittab and the scripts it
// runs. The sources live in images/guest/; the build embeds them into nvbox,
// so `nvbox image build` needs nothing but the nvbox binary and its siblings.
#pragma once

#include <string_view>
#include <vector>

namespace nvbox::images {

struct GuestFile {
  std::string_view name; // file name in images/guest/, e.g. "nvbox-init"
  std::string_view text;
};

// Every embedded file, sorted by name.
const std::vector<GuestFile> &guestFiles();
// One of them; throws nvbox::Error for an unknown name (a build bug).
std::string_view guestFile(std::string_view name);

} // namespace nvbox::images
