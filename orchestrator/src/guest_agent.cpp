#include "nvbox/guest_agent.hpp"

#include "agent_channel.hpp"

#include "nvbox/error.hpp"
#include "nvbox/router_domain.hpp"
#include "nvbox/xml.hpp"

#include <cstdlib>
#include <memory>
#include <thread>

namespace nvbox {

namespace {

using Clock = std::chrono::steady_clock;

bool running(virDomainPtr domain) {
  int state = VIR_DOMAIN_NOSTATE;
  return virDomainGetState(domain, &state, nullptr, 0) == 0 && state == VIR_DOMAIN_RUNNING;
}

std::string domainName(virDomainPtr domain) {
  const char *name = virDomainGetName(domain);
  return name != nullptr ? name : "?";
}

// The channel as a libvirt stream on the domain's connection.
class LibvirtTransport final : public AgentTransport {
public:
  explicit LibvirtTransport(virDomainPtr domain) : name_(domainName(domain)) {
    if (virDomainRef(domain) == 0) {
      domain_.reset(domain); // keeps the domain's connection open too
    }
  }

  bool open() override {
    // Non-blocking, so that a silent guest cannot hang the caller: the
    // channel polls against its deadline instead.
    stream_.reset(virStreamNew(virDomainGetConnect(domain_.get()), VIR_STREAM_NONBLOCK));
    // Without VIR_DOMAIN_CHANNEL_FORCE: forcing aborts the stream of
    // whoever holds the channel, mid-request.
    if (stream_ && virDomainOpenChannel(domain_.get(), kAgentChannel, stream_.get(), 0) == 0) {
      return true;
    }
    // libvirt (9.0, qemuDomainOpenChannel) says a channel another client
    // holds with VIR_ERR_OPERATION_FAILED, "Active channel stream exists for
    // this domain"; nothing else that opening does fails with that code.
    const virErrorPtr err = virGetLastError();
    const bool busy = stream_ && err != nullptr && err->code == VIR_ERR_OPERATION_FAILED;
    const std::string why = virt::lastError();
    stream_.reset();
    if (busy) {
      return false;
    }
    throw Error("cannot open the agent channel of router '" + name_ + "': " + why,
                "is the router running an nvbox image?");
  }

  void close() noexcept override {
    if (stream_) {
      virStreamAbort(stream_.get());
      stream_.reset();
    }
  }

  void send(const std::string &line) override {
    std::size_t done = 0;
    const auto deadline = Clock::now() + std::chrono::seconds(5);
    while (done < line.size()) {
      const int n = virStreamSend(stream_.get(), line.data() + done, line.size() - done);
      if (n > 0) {
        done += static_cast<std::size_t>(n);
      } else if (n == -2 && Clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      } else {
        throw Error("cannot write to the agent of router '" + name_ +
                    "': " + (n == -2 ? std::string("the channel is full") : virt::lastError()));
      }
    }
  }

  bool receive(std::string &into) override {
    char buf[4096];
    for (;;) {
      const int n = virStreamRecv(stream_.get(), buf, sizeof buf);
      if (n > 0) {
        into.append(buf, static_cast<std::size_t>(n));
        continue;
      }
      return n == -2; // -2: nothing more for now; 0: the stream ended; -1: failed
    }
  }

  [[nodiscard]] std::string why() const override { return virt::lastError("the guest went away"); }

  // Whether the guest has its end of the port open; true when libvirt does
  // not say (no state tracked).
  bool peerListening() override {
    std::unique_ptr<char, decltype(&free)> xml(virDomainGetXMLDesc(domain_.get(), 0), free);
    if (!xml) {
      return true; // let the write find out what is wrong
    }
    const auto state = XmlDocument(xml.get(), "router '" + name_ + "'")
                           .first(std::string("/domain/devices/channel/target[@name='") +
                                  kAgentChannel + "']/@state");
    return state.value_or("connected") != "disconnected";
  }

  // Without an event loop, a client reads what its streams received only
  // while it makes a call: a cheap one brings the reply in now rather than
  // at the next resend. (libvirt's default event loop would too, but under
  // load libvirtd then broke the connection of concurrent boots.)
  void poke() override {
    int state = 0;
    (void)virDomainGetState(domain_.get(), &state, nullptr, 0);
  }

private:
  std::string name_;
  virt::DomainPtr domain_; // a reference of our own
  virt::StreamPtr stream_;
};

} // namespace

struct GuestAgent::Hold {
  AgentChannels::Lease lease;
};

GuestAgent::GuestAgent(const virt::Connection &conn, virDomainPtr domain) {
  char uuid[VIR_UUID_STRING_BUFLEN] = {};
  if (virDomainGetUUIDString(domain, uuid) != 0) {
    throw Error("cannot read the UUID of router '" + domainName(domain) +
                "': " + virt::lastError());
  }
  // By host and domain: one libvirtd lets one client hold a channel, and a
  // UUID alone may exist on two hosts while a router migrates.
  const std::string key = conn.canonicalUri() + " " + uuid;
  hold_ = std::make_unique<Hold>(Hold{AgentChannels::process().acquire(
      key, domainName(domain), [domain] { return std::make_unique<LibvirtTransport>(domain); })});
}

GuestAgent::~GuestAgent() = default;

nlohmann::json GuestAgent::request(nlohmann::json request, std::chrono::milliseconds timeout,
                                   std::chrono::milliseconds resend) {
  return hold_->lease->request(std::move(request), timeout, resend);
}

std::function<void(const std::string &)>
setAgentNotice(std::function<void(const std::string &)> notice) {
  return AgentChannels::process().setNotice(std::move(notice));
}

ReadyReport waitUntilReady(const virt::Connection &conn, virDomainPtr domain,
                           std::chrono::milliseconds timeout) {
  ReadyReport report;
  const auto start = Clock::now();
  const auto deadline = start + timeout;
  const std::string name = domainName(domain);
  if (!running(domain)) {
    throw Error("router '" + name + "' is not running", "start it first");
  }
  GuestAgent agent(conn, domain);
  while (Clock::now() < deadline) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    try {
      report.status =
          agent.request({{"cmd", "status"}}, std::min(left, std::chrono::milliseconds(5000)));
      if (report.status.value("ready", false)) {
        report.ready = true;
        break;
      }
      report.reason = "osrd is not answering yet: " + report.status.value("osrd_error", "");
    } catch (const Error &e) {
      report.reason = e.what();
      if (!running(domain)) {
        throw Error("router '" + name + "' stopped while booting", "look at its console log");
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  report.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return report;
}

} // namespace nvbox
