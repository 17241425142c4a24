// GuestAgent — the host end of a router's osr-agent: line-delimited JSON
// over the virtio-serial port kAgentChannel, opened through libvirt
// (virDomainOpenChannel), so it reaches routers on remote hosts with nothing
// but libvirtd. The protocol is in docs/guest.md.
//
// A GuestAgent is a handle on the process's one channel to that router
// (src/agent_channel.hpp): every GuestAgent of one router (same host URI,
// same domain) in a process shares it, and requests through it are
// serialised, so that two users cannot take the channel from each other.
// The channel opens at the first request and closes when the last handle
// goes. libvirt lets one client hold a channel; one that another process
// holds is waited for within the request's timeout (with one notice, see
// setAgentNotice), never taken over.
//
// Every request gets an "id"; replies to other ids (left over from an
// earlier client or a resent request) are skipped; each channel numbers
// its requests from a random start, so an earlier client's ids do not recur.
// A request that sees no reply is sent again every `resend`, until the
// deadline. The guest drops what arrives before osr-agent has opened its
// port, so until a channel has had a reply it first pings, every 100 ms,
// and sends its request once the agent answers.
// Nothing is written while the guest's end of the port is closed (libvirt's
// live state of the channel): QEMU does not read the channel then, the
// writes would pile up in libvirtd, and once five are stuck libvirtd stops
// reading the whole connection ("Client hit max requests limit"), which
// hung every call on it, for every router of that host, while routers
// booted slowly.
//
// Threading: GuestAgent handles may be used from any threads; the
// Connection may be shared.
#pragma once

#include "nvbox/libvirt.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace nvbox {

class GuestAgent {
public:
  // The process's channel to `domain`'s agent on `conn` (opened at the
  // first request). Throws nvbox::Error when libvirt cannot name the domain.
  GuestAgent(const virt::Connection &conn, virDomainPtr domain);
  ~GuestAgent();
  GuestAgent(const GuestAgent &) = delete;
  GuestAgent &operator=(const GuestAgent &) = delete;

  // Sends `request` (an object; "id" is set) and returns the reply object.
  // Everything happens within `timeout`: waiting for this process's other
  // requests to the router, for another process to let go of the channel,
  // and the exchange. Throws nvbox::Error when no reply arrives in time, the
  // channel stays held elsewhere, the domain has no such channel or is not
  // running, or the stream fails (the next request then opens it anew).
  nlohmann::json request(nlohmann::json request, std::chrono::milliseconds timeout,
                         std::chrono::milliseconds resend = std::chrono::milliseconds(1000));

private:
  struct Hold;
  std::unique_ptr<Hold> hold_;
};

// Where a GuestAgent tells, once per wait, that it waits for a router's
// channel held by another process ("waiting for the agent of router 'X',
// held by another nvbox process"), from any thread. The CLI prints it on
// stderr; without a receiver nothing is told. Returns the previous one.
std::function<void(const std::string &)>
setAgentNotice(std::function<void(const std::string &)> notice);

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
