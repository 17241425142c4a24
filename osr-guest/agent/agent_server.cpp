#include "agent_server.hpp"

#include "net_apply.hpp"
#include "net_config.hpp"

#include <cerrno>
#include <climits>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <poll.h>
#include <stdexcept>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

namespace nvbox::agent {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxLine = std::size_t{64} * 1024;
constexpr std::size_t kMaxOsrdReply = std::size_t{1} << 20;
constexpr int kMaxDepth = 64;
constexpr auto kWriteTimeout = std::chrono::seconds(5);

// nlohmann's parser is iterative, but copying and printing a value recurse:
// a hostile "[[[[…" of 64 KiB must not reach the code that echoes `id`.
json parseLimited(std::string_view text) {
  return json::parse(text, [](int depth, json::parse_event_t, json &) {
    if (depth > kMaxDepth) {
      throw std::invalid_argument("nested deeper than " + std::to_string(kMaxDepth) + " levels");
    }
    return true;
  });
}

// Waits until fd is ready for `events` or the deadline passes.
bool waitFor(int fd, short events, Clock::time_point deadline) {
  while (true) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      return false;
    }
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, static_cast<int>(left));
    if (n > 0) {
      return true;
    }
    if (n < 0 && errno != EINTR) {
      return false;
    }
  }
}

// send() with MSG_NOSIGNAL where fd is a socket, so that a vanished peer is
// an error and not SIGPIPE; write() on devices.
ssize_t writeSome(int fd, const char *data, std::size_t size) {
  const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
  return n < 0 && errno == ENOTSOCK ? ::write(fd, data, size) : n;
}

bool writeAll(int fd, std::string_view data, Clock::time_point deadline) {
  while (!data.empty()) {
    const ssize_t n = writeSome(fd, data.data(), data.size());
    if (n > 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n == 0 || errno != EAGAIN || !waitFor(fd, POLLOUT, deadline)) {
      return false;
    }
  }
  return true;
}

std::string printable(const json &reply) {
  // Error texts may quote bytes that are not UTF-8 (a net file, a parse
  // error's "last read"): replaced rather than thrown on.
  return reply.dump(-1, ' ', false, json::error_handler_t::replace);
}

netconfig::Fd connectUnix(const std::string &path, const std::string &what) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof sa.sun_path) {
    throw std::runtime_error("cannot connect to " + what + ": bad socket path");
  }
  path.copy(sa.sun_path, sizeof sa.sun_path - 1);
  netconfig::Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd || ::connect(fd.get(), reinterpret_cast<const sockaddr *>(&sa), sizeof sa) != 0) {
    throw std::runtime_error(netconfig::sysError("cannot connect to " + what));
  }
  return fd;
}

} // namespace

json AgentServer::handle(const json &request) const {
  json reply = json::object();
  const auto id = request.find("id"); // end() unless request is an object with an id
  if (id != request.end()) {
    reply["id"] = *id;
  }
  try {
    const auto cmd = request.find("cmd");
    if (cmd == request.end() || !cmd->is_string()) {
      throw std::invalid_argument("a request is a JSON object with a string 'cmd'");
    }
    const auto &name = cmd->get_ref<const std::string &>();
    if (name == "status") {
      reply.update(status());
    } else if (name == "osrd") {
      const auto forward = request.find("request");
      if (forward == request.end() || !forward->is_object()) {
        throw std::invalid_argument("'osrd' needs 'request', a JSON object to pass to osrd");
      }
      reply["reply"] = askOsrd(*forward);
    } else if (name == "net") {
      if (options_.netFile.empty()) {
        throw std::invalid_argument("no network configuration: the agent has no --net file");
      }
      reply["config"] = readNetConfigFile(options_.netFile);
    } else if (name == "shape") {
      const auto iface = request.find("iface");
      if (iface == request.end() || !iface->is_string()) {
        throw std::invalid_argument(
            "'shape' needs 'iface', a string like \"mac=52:54:00:6e:76:01,rate=4M,delay=2ms\"");
      }
      applyShape(parseShape(iface->get_ref<const std::string &>()));
    } else if (name != "ping") {
      throw std::invalid_argument("unknown command " + quoteValue(name) +
                                  "; known: ping, status, osrd, net, shape");
    }
    reply["ok"] = true;
    return reply;
  } catch (const std::exception &e) {
    json error = {{"ok", false}, {"error", e.what()}};
    if (id != request.end()) {
      error["id"] = *id;
    }
    return error;
  }
}

std::string AgentServer::handleLine(std::string_view line) const {
  try {
    return printable(handle(parseLimited(line)));
  } catch (const std::exception &e) {
    return printable({{"ok", false}, {"error", std::string("malformed request: ") + e.what()}});
  }
}

json AgentServer::status() const {
  json interfaces = json::array();
  for (const auto &link : listInterfaces()) {
    if (!link.loopback) {
      interfaces.push_back({{"name", link.name},
                            {"mac", link.mac},
                            {"mtu", link.mtu},
                            {"up", link.up},
                            {"addresses", link.addresses}});
    }
  }
  char host[HOST_NAME_MAX + 1] = {};
  ::gethostname(host, sizeof host - 1);
  json out = {{"hostname", host}, {"interfaces", interfaces}, {"ready", false}, {"osrd", nullptr}};
  try {
    const json answer = askOsrd({{"cmd", "status"}});
    if (answer.value("ok", false) && answer.contains("status")) {
      out["ready"] = true;
      out["osrd"] = answer["status"];
    } else {
      out["osrd_error"] = answer.value("error", "osrd answered without a status");
    }
  } catch (const std::exception &e) {
    out["osrd_error"] = e.what();
  }
  return out;
}

json AgentServer::askOsrd(const json &request) const {
  const std::string what = "osrd at '" + options_.osrdSocket + "'";
  const auto deadline = Clock::now() + options_.osrdTimeout;
  const netconfig::Fd fd = connectUnix(options_.osrdSocket, what);
  if (!writeAll(fd.get(), request.dump() + "\n", deadline)) {
    throw std::runtime_error(netconfig::sysError("cannot send to " + what));
  }
  std::string reply;
  char buf[16384];
  while (reply.find('\n') == std::string::npos) {
    if (!waitFor(fd.get(), POLLIN, deadline)) {
      throw std::runtime_error(what + " did not answer within " +
                               std::to_string(options_.osrdTimeout.count()) + " ms");
    }
    const ssize_t got = ::read(fd.get(), buf, sizeof buf);
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) {
      continue;
    }
    if (got <= 0) {
      throw std::runtime_error(what + " closed the connection without a reply");
    }
    reply.append(buf, static_cast<std::size_t>(got));
    if (reply.size() > kMaxOsrdReply) {
      throw std::runtime_error(what + " sent a reply longer than 1 MiB");
    }
  }
  try {
    return parseLimited(std::string_view(reply).substr(0, reply.find('\n')));
  } catch (const std::exception &e) {
    throw std::runtime_error(what + " sent an invalid reply: " + e.what());
  }
}

void AgentServer::serveFd(int fd) const {
  std::string line;
  bool discarding = false; // inside an over-long line, until its newline
  std::string buf(kMaxLine, '\0');
  while (true) {
    pollfd p{fd, POLLIN, 0};
    const int ready = ::poll(&p, 1, -1);
    if (ready < 0 && errno == EINTR) {
      continue;
    }
    // POLLHUP without data: virtio-serial's way of saying the host is gone.
    if (ready < 0 || (p.revents & POLLIN) == 0) {
      return;
    }
    const ssize_t got = ::read(fd, buf.data(), buf.size());
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) {
      continue;
    }
    if (got <= 0) {
      return;
    }
    std::string_view chunk(buf.data(), static_cast<std::size_t>(got));
    while (!chunk.empty()) {
      const std::size_t newline = chunk.find('\n');
      const std::string_view piece = chunk.substr(0, newline);
      chunk.remove_prefix(newline == std::string_view::npos ? chunk.size() : newline + 1);
      if (discarding) {
        discarding = newline == std::string_view::npos;
        continue;
      }
      std::string reply;
      if (line.size() + piece.size() > kMaxLine) {
        reply = printable({{"ok", false},
                           {"error", "request line longer than " + std::to_string(kMaxLine) +
                                         " bytes; discarded"}});
        line.clear();
        discarding = newline == std::string_view::npos;
      } else {
        line += piece;
        if (newline == std::string_view::npos) {
          continue;
        }
        // Blank lines are not requests (a host may send them to resync).
        if (line.find_first_not_of(" \t\r") != std::string::npos) {
          reply = handleLine(line);
        }
        line.clear();
      }
      if (!reply.empty() && !writeAll(fd, reply + "\n", Clock::now() + kWriteTimeout)) {
        return;
      }
    }
  }
}

std::optional<std::string> findVirtioPort(const std::string &name, const std::string &classDir) {
  std::error_code ec;
  for (std::filesystem::directory_iterator it(classDir, ec), end; !ec && it != end;
       it.increment(ec)) {
    std::ifstream in(it->path() / "name");
    std::string portName;
    if (std::getline(in, portName) && portName == name) {
      return "/dev/" + it->path().filename().string();
    }
  }
  return std::nullopt;
}

netconfig::Fd openDevice(const std::string &path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    throw std::runtime_error(netconfig::sysError("cannot open '" + path + "'"));
  }
  if (S_ISSOCK(st.st_mode)) {
    return connectUnix(path, "'" + path + "'");
  }
  netconfig::Fd fd(::open(path.c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC));
  if (!fd) {
    throw std::runtime_error(netconfig::sysError("cannot open '" + path + "'"));
  }
  // A serial line's discipline would echo requests back and rewrite bytes.
  termios tio{};
  if (::tcgetattr(fd.get(), &tio) == 0) {
    ::cfmakeraw(&tio);
    if (::tcsetattr(fd.get(), TCSANOW, &tio) != 0) {
      throw std::runtime_error(netconfig::sysError("cannot set '" + path + "' to raw mode"));
    }
  }
  return fd;
}

} // namespace nvbox::agent
