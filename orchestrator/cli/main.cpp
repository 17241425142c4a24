// nvbox — thin entry point; everything lives in nvbox_cli and libnvbox.
#include "app.hpp"

#include <iostream>
#include <unistd.h>

int main(int argc, char **argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return nvbox::cli::runApp(std::move(args), std::cout, std::cerr, ::isatty(STDERR_FILENO) != 0);
}
