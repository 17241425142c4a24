#include "transfer.hpp"

#include <cstring>
#include <stdexcept>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace nvbox::test {
namespace {

struct Socket {
  int fd;
  explicit Socket(int f) : fd(f) {
    if (fd < 0) {
      throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
    }
  }
  ~Socket() { ::close(fd); }
  Socket(const Socket &) = delete;
  Socket &operator=(const Socket &) = delete;
};

} // namespace

nlohmann::json osrdControl(const std::string &socketPath, const nlohmann::json &request) {
  const Socket fd(::socket(AF_UNIX, SOCK_STREAM, 0));
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  socketPath.copy(sa.sun_path, sizeof sa.sun_path - 1);
  if (::connect(fd.fd, reinterpret_cast<const sockaddr *>(&sa), sizeof sa) != 0) {
    throw std::runtime_error("cannot reach osrd at " + socketPath);
  }
  const std::string line = request.dump() + "\n";
  if (::write(fd.fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    throw std::runtime_error("cannot write to " + socketPath);
  }
  std::string reply;
  char buf[65536];
  while (reply.find('\n') == std::string::npos) {
    const ssize_t n = ::read(fd.fd, buf, sizeof buf);
    if (n <= 0) {
      break;
    }
    reply.append(buf, static_cast<std::size_t>(n));
  }
  return nlohmann::json::parse(reply.substr(0, reply.find('\n')));
}

} // namespace nvbox::test
