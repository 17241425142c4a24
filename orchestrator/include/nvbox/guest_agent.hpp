// GuestAgent — the host end of a router's osr-agent: line-delimited JSON
// over the virtio-serial port kAgentChannel, opened through libvirt
// (virDomainOpenChannel), so it reaches routers on remote hosts with nothing
// but libvirtd. The protocol is in docs/guest.md.
//
// Every request gets an "id"; replies to other ids (left over from an
// earlier client or a resent request) are skipped; each GuestAgent numbers
// its requests from a random start, so an earlier client's ids do not recur.
// A request that sees no reply is sent again every `resend`, until the
// deadline. The guest drops what arrives before osr-agent has opened its
// port, so until a GuestAgent has had a reply it first pings, every 100 ms,
// and sends its request once the agent answers.
// Nothing is written while the guest's end of the port is closed (libvirt's
// live state of the channel): QEMU does not read the channel then, the
// writes would pile up in libvirtd, and once five are stuck libvirtd stops
// reading the whole connection ("Client hit max requests limit"), which
// hung every call on it, for every router of that host, while routers
// booted slowly.
//
// Threading: one thread per GuestAgent; the Connection may be shared.
#pragma once

#include "nvbox/libvirt.hpp"

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

namespace nvbox {

class GuestAgent {
public:
  // Opens the channel, taking it over from any earlier client. Throws
  // nvbox::Error naming the domain when it has no such channel or is not
  // running.
  GuestAgent(const virt::Connection &conn, virDomainPtr domain);
  ~GuestAgent();
  GuestAgent(const GuestAgent &) = delete;
  GuestAgent &operator=(const GuestAgent &) = delete;

  // Sends `request` (an object; "id" is set) and returns the reply object.
  // Throws nvbox::Error when no reply arrives in time or the stream fails.
  nlohmann::json request(nlohmann::json request, std::chrono::milliseconds timeout,
                         std::chrono::milliseconds resend = std::chrono::milliseconds(1000));

private:
  void send(const std::string &line);
  // Reads what is there; false when the stream has ended or failed.
  bool pump();
  // Whether the guest has its end of the port open; true when libvirt does
  // not say (no state tracked).
  bool portOpen() const;

  std::string domainName_;
  virt::DomainPtr domain_; // a reference of our own
  virt::StreamPtr stream_;
  std::string buffer_;
  long nextId_ = 1;
  bool answered_ = false; // osr-agent has replied on this channel
};

struct ReadyReport {
  bool ready = false;
  double seconds = 0;    // from the call until ready (or the deadline)
  nlohmann::json status; // the agent's last status reply (null if none)
  std::string reason;    // why not ready
};

// Polls the agent's status until it says ready or `timeout` passes. Never
// throws for a guest that is merely slow; throws nvbox::Error when the
// domain is not running.
[[nodiscard]] ReadyReport waitUntilReady(const virt::Connection &conn, virDomainPtr domain,
                                         std::chrono::milliseconds timeout);

} // namespace nvbox
