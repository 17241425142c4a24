// osrctl — a small client for osrd's control socket.
//
//   osrctl [--socket PATH] status
//   osrctl [--socket PATH] add-path STRIPE RELAY_IP:PORT [RATE]
//   osrctl [--socket PATH] remove-path STRIPE PATH_ID
//   osrctl [--socket PATH] set-rate STRIPE PATH_ID BYTES_PER_SECOND
//   osrctl [--socket PATH] set-scheduler STRIPE equal|weighted|delay
//   osrctl [--socket PATH] set-buffer N|auto [TIMEOUT_MS|auto]
//
// Prints osrd's JSON reply; exit 0 when it says ok, 1 otherwise, 2 on usage.
#include <nlohmann/json.hpp>

#include <cstring>
#include <iostream>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <vector>

namespace {

int usage() {
  std::cerr << "Usage: osrctl [--socket PATH] status | add-path STRIPE RELAY [RATE] | "
               "remove-path STRIPE ID | set-rate STRIPE ID RATE | set-scheduler STRIPE POLICY | "
               "set-buffer N|auto "
               "[TIMEOUT_MS|auto]\n";
  return 2;
}

std::optional<unsigned long> number(const std::string &s) {
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos || s.size() > 12) {
    return std::nullopt;
  }
  return std::stoul(s);
}

} // namespace

int main(int argc, char **argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string path = "/run/osrd.sock";
  if (args.size() >= 2 && args[0] == "--socket") {
    path = args[1];
    args.erase(args.begin(), args.begin() + 2);
  }
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    return usage();
  }
  nlohmann::json request;
  const std::string &cmd = args[0];
  if (cmd == "status" && args.size() == 1) {
    request = {{"cmd", "status"}};
  } else if (cmd == "add-path" && (args.size() == 3 || args.size() == 4)) {
    request = {{"cmd", "add_path"}, {"stripe", args[1]}, {"relay", args[2]}};
    if (args.size() == 4) {
      const auto rate = number(args[3]);
      if (!rate) {
        return usage();
      }
      request["rate"] = *rate;
    }
  } else if (cmd == "remove-path" && args.size() == 3 && number(args[2])) {
    request = {{"cmd", "remove_path"}, {"stripe", args[1]}, {"path", *number(args[2])}};
  } else if (cmd == "set-rate" && args.size() == 4 && number(args[2]) && number(args[3])) {
    request = {{"cmd", "set_rate"},
               {"stripe", args[1]},
               {"path", *number(args[2])},
               {"rate", *number(args[3])}};
  } else if (cmd == "set-scheduler" && args.size() == 3) {
    request = {{"cmd", "set_scheduler"}, {"stripe", args[1]}, {"scheduler", args[2]}};
  } else if (cmd == "set-buffer" && (args.size() == 2 || args.size() == 3)) {
    request = {{"cmd", "set_buffer"}};
    if (args[1] != "auto") {
      const auto n = number(args[1]);
      if (!n) {
        return usage();
      }
      request["n"] = *n;
    }
    if (args.size() == 3 && args[2] != "auto") {
      const auto ms = number(args[2]);
      if (!ms) {
        return usage();
      }
      request["timeout_ms"] = *ms;
    }
  } else {
    return usage();
  }

  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.size() >= sizeof sa.sun_path) {
    std::cerr << "osrctl: error: socket path too long: '" << path << "'\n";
    return 2;
  }
  path.copy(sa.sun_path, sizeof sa.sun_path - 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || ::connect(fd, reinterpret_cast<const sockaddr *>(&sa), sizeof sa) != 0) {
    std::cerr << "osrctl: error: cannot connect to osrd at '" << path
              << "': " << std::strerror(errno) << "; is osrd running?\n";
    return 1;
  }
  const std::string line = request.dump() + "\n";
  if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    std::cerr << "osrctl: error: cannot send to '" << path << "'\n";
    ::close(fd);
    return 1;
  }
  std::string reply;
  char buf[4096];
  while (reply.find('\n') == std::string::npos) {
    const ssize_t got = ::read(fd, buf, sizeof buf);
    if (got <= 0) {
      break;
    }
    reply.append(buf, static_cast<std::size_t>(got));
  }
  ::close(fd);
  try {
    const auto json = nlohmann::json::parse(reply.substr(0, reply.find('\n')));
    std::cout << json.dump(2) << "\n";
    return json.value("ok", false) ? 0 : 1;
  } catch (const nlohmann::json::exception &) {
    std::cerr << "osrctl: error: osrd sent no valid reply\n";
    return 1;
  }
}
