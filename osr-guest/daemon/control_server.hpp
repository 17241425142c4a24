// ControlServer — osrd's local control socket.
//
// What it does: listens on a Unix stream socket; each connection sends one
// JSON object per line ({"cmd": "status"}, {"cmd": "add_path", …}) and gets
// one JSON object per line back. Malformed JSON, oversize lines (> 64 KiB)
// and unknown commands get {"ok": false, "error": "…"}; nothing a client
// sends can stop the daemon.
//
// Authentication: the socket is created mode 0600 in a directory only root
// can write, so only root on the router can reach it; remote control goes
// through the orchestrator, which reaches routers through libvirt.
//
// Parameters: socket path; the request handler.
// Threading: runs on the event loop's thread; the handler is called there.
#pragma once

#include "event_loop.hpp"

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <string>

namespace nvbox::osr {

class ControlServer {
public:
  using Handler = std::function<nlohmann::json(const nlohmann::json &request)>;

  ControlServer(EventLoop &loop, std::string path, Handler handler);
  ~ControlServer();
  ControlServer(const ControlServer &) = delete;
  ControlServer &operator=(const ControlServer &) = delete;

  [[nodiscard]] const std::string &path() const { return path_; }

private:
  void accept();
  void readFrom(int fd);
  void close(int fd);
  std::string answer(const std::string &line);

  EventLoop &loop_;
  std::string path_;
  Handler handler_;
  int listen_ = -1;
  std::map<int, std::string> pending_; // per connection: bytes after the last newline
};

} // namespace nvbox::osr
