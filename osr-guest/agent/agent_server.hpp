// AgentServer — the router's end of the host channel: line-delimited JSON
// requests on a virtio-serial port (or any stream descriptor), one reply
// line per request line (docs/guest.md has every field):
//
//   {"id":1,"cmd":"ping"}                     → {"id":1,"ok":true}
//   {"id":2,"cmd":"status"}                   → host name, interfaces, osrd's status
//   {"id":3,"cmd":"osrd","request":{…}}       → osrd's reply through its control socket
//   {"id":4,"cmd":"net"}                      → the text of the --net file
//
// `id`, any JSON value, is echoed. Malformed JSON, unknown commands and lines
// over 64 KiB get {"ok":false,"error":"…"}; nothing the host sends can stop
// the agent.
//
// Parameters: AgentOptions — osrd's control socket, the network
// configuration file, how long osrd may take to answer.
// Threading: handle() and handleLine() only read the options and may be
// called from any thread; serveFd() blocks its caller until the peer leaves.
#pragma once

#include "nvbox/netconfig/fd.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace nvbox::agent {

struct AgentOptions {
  std::string osrdSocket = "/run/osrd.sock";
  std::string netFile; // empty: the agent was given no network configuration
  std::chrono::milliseconds osrdTimeout{2000};
};

class AgentServer {
public:
  explicit AgentServer(AgentOptions options) : options_(std::move(options)) {}

  // The reply to one request; failures become {"ok":false,"error":…}.
  [[nodiscard]] nlohmann::json handle(const nlohmann::json &request) const;
  // The reply line (without '\n') to one request line, malformed or not.
  [[nodiscard]] std::string handleLine(std::string_view line) const;
  // Answers requests on fd until the peer hangs up (EOF, POLLHUP), a reply
  // cannot be written within 5 s, or fd fails. Does not close fd.
  void serveFd(int fd) const;

private:
  [[nodiscard]] nlohmann::json status() const;
  [[nodiscard]] nlohmann::json askOsrd(const nlohmann::json &request) const;

  AgentOptions options_;
};

// The device (/dev/vportNpM) of the virtio-serial port called `name`, as
// listed under classDir; nothing while the port is not there.
[[nodiscard]] std::optional<std::string>
findVirtioPort(const std::string &name, const std::string &classDir = "/sys/class/virtio-ports");

// Opens what serveFd() reads: a Unix socket path is connected to, anything
// else opened read-write (a terminal is switched to raw mode). The
// descriptor is non-blocking. Throws std::runtime_error.
[[nodiscard]] netconfig::Fd openDevice(const std::string &path);

} // namespace nvbox::agent
