// nvbox — thin entry point; everything lives in nvbox_cli and libnvbox.
#include "app.hpp"

#include <csignal>
#include <iostream>
#include <unistd.h>

int main(int argc, char **argv) {
  // A libvirt daemon or guest channel that goes away mid-write must surface
  // as an error, not kill nvbox (libvirt asks applications to do this).
  std::signal(SIGPIPE, SIG_IGN);
  std::vector<std::string> args(argv + 1, argv + argc);
  return nvbox::cli::runApp(std::move(args), std::cout, std::cerr, ::isatty(STDERR_FILENO) != 0);
}
