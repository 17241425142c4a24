# Project-wide compile flags: strict warnings (errors in CI) and the optional
# ASan+UBSan build. Applied through an interface target so that third-party
# code pulled in later does not inherit them.
add_library(nvbox_flags INTERFACE)
target_compile_options(nvbox_flags INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion
  -Wnon-virtual-dtor -Wold-style-cast -Woverloaded-virtual -Wnull-dereference
  -Wimplicit-fallthrough)
if(NVBOX_WERROR)
  target_compile_options(nvbox_flags INTERFACE -Werror)
endif()
if(NVBOX_SANITIZE)
  target_compile_options(nvbox_flags INTERFACE
    -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  target_link_options(nvbox_flags INTERFACE -fsanitize=address,undefined)
endif()
