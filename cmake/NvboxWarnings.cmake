# Project-wide compile flags: strict warnings (errors in CI) and the optional
# ASan+UBSan build. Applied through an interface target so that third-party
# code pulled in later does not inherit them.
add_library(nvbox_flags INTERFACE)
target_compile_options(nvbox_flags INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion
  -Wnon-virtual-dtor -Wold-style-cast -Woverloaded-virtual
  -Wimplicit-fallthrough)
if(NVBOX_WERROR)
  target_compile_options(nvbox_flags INTERFACE -Werror)
endif()
if(NVBOX_SANITIZE)
  target_compile_options(nvbox_flags INTERFACE
    -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  target_link_options(nvbox_flags INTERFACE -fsanitize=address,undefined)
endif()
if(NVBOX_FUZZ)
  # Every library gets libFuzzer's coverage instrumentation; only the fuzz
  # targets link the fuzzer's main (tests/fuzz).
  target_compile_options(nvbox_flags INTERFACE
    -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all)
  target_link_options(nvbox_flags INTERFACE -fsanitize=address,undefined)
endif()
