// Golden files, libvirt style: expected output lives beside the tests under
// tests/golden/. Set NVBOX_UPDATE_GOLDEN=1 to rewrite them from the actual
// output (then review the diff).
#pragma once

#include <string>

namespace nvbox::test {

// EXPECTs that `actual` equals tests/golden/<name>.
void expectGolden(const std::string &actual, const std::string &name);

} // namespace nvbox::test
