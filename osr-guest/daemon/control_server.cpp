#include "control_server.hpp"

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace nvbox::osr {
namespace {

constexpr std::size_t kMaxLine = std::size_t{64} * 1024;

} // namespace

ControlServer::ControlServer(EventLoop &loop, std::string path, Handler handler)
    : loop_(loop), path_(std::move(path)), handler_(std::move(handler)) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path_.empty() || path_.size() >= sizeof sa.sun_path) {
    throw std::runtime_error("invalid control socket path '" + path_ + "'");
  }
  path_.copy(sa.sun_path, sizeof sa.sun_path - 1);
  listen_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_ < 0) {
    throw std::runtime_error(std::string("cannot open the control socket: ") +
                             std::strerror(errno));
  }
  ::unlink(path_.c_str()); // a stale socket of an earlier run
  const mode_t old = ::umask(0077);
  const int rc = ::bind(listen_, reinterpret_cast<const sockaddr *>(&sa), sizeof sa);
  ::umask(old);
  if (rc != 0 || ::listen(listen_, 16) != 0) {
    const std::string why = std::strerror(errno);
    ::close(listen_);
    throw std::runtime_error("cannot listen on control socket '" + path_ + "': " + why);
  }
  loop_.watch(listen_, [this] { accept(); });
}

ControlServer::~ControlServer() {
  while (!pending_.empty()) {
    close(pending_.begin()->first);
  }
  loop_.unwatch(listen_);
  ::close(listen_);
  ::unlink(path_.c_str());
}

void ControlServer::accept() {
  const int fd = ::accept4(listen_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) {
    return;
  }
  pending_[fd] = {};
  loop_.watch(fd, [this, fd] { readFrom(fd); });
}

void ControlServer::close(int fd) {
  loop_.unwatch(fd);
  pending_.erase(fd);
  ::close(fd);
}

std::string ControlServer::answer(const std::string &line) {
  nlohmann::json reply;
  try {
    const auto request = nlohmann::json::parse(line);
    if (!request.is_object() || !request.contains("cmd") || !request["cmd"].is_string()) {
      reply = {{"ok", false}, {"error", "a request is a JSON object with a string 'cmd'"}};
    } else {
      reply = handler_(request);
    }
  } catch (const nlohmann::json::exception &e) {
    reply = {{"ok", false}, {"error", std::string("malformed request: ") + e.what()}};
  } catch (const std::exception &e) {
    reply = {{"ok", false}, {"error", e.what()}};
  }
  return reply.dump() + "\n";
}

void ControlServer::readFrom(int fd) {
  char buf[4096];
  const ssize_t got = ::read(fd, buf, sizeof buf);
  if (got <= 0) {
    if (got < 0 && (errno == EAGAIN || errno == EINTR)) {
      return;
    }
    close(fd);
    return;
  }
  std::string &pending = pending_[fd];
  pending.append(buf, static_cast<std::size_t>(got));
  std::size_t newline = 0;
  while ((newline = pending.find('\n')) != std::string::npos) {
    const std::string reply = answer(pending.substr(0, newline));
    pending.erase(0, newline + 1);
    // Replies are small; a client that does not read them is dropped.
    if (::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT) !=
        static_cast<ssize_t>(reply.size())) {
      close(fd);
      return;
    }
  }
  if (pending.size() > kMaxLine) {
    const std::string reply = R"({"ok":false,"error":"request longer than 64 KiB"})"
                              "\n";
    (void)::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    close(fd);
  }
}

} // namespace nvbox::osr
