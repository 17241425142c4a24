#include "nvbox/guest_agent.hpp"

#include "nvbox/error.hpp"
#include "nvbox/router_domain.hpp"
#include "nvbox/xml.hpp"

#include <cstdlib>
#include <memory>
#include <random>
#include <thread>

namespace nvbox {

namespace {

using Clock = std::chrono::steady_clock;
// A reply line longer than this is not osr-agent talking.
constexpr std::size_t kMaxLine = std::size_t{1} << 20U;
// How often a closed port is looked at again.
constexpr auto kPortPoll = std::chrono::milliseconds(100);

bool running(virDomainPtr domain) {
  int state = VIR_DOMAIN_NOSTATE;
  return virDomainGetState(domain, &state, nullptr, 0) == 0 && state == VIR_DOMAIN_RUNNING;
}

} // namespace

GuestAgent::GuestAgent(const virt::Connection &conn, virDomainPtr domain) {
  // Ids start at random, so that a reply left in the channel for an earlier
  // client (one its resend caused, after it had its answer) cannot pass for
  // the reply to this client's request of the same number.
  std::random_device seed;
  nextId_ = std::uniform_int_distribution<long>(1, 1L << 40)(seed);
  const char *name = virDomainGetName(domain);
  domainName_ = name != nullptr ? name : "?";
  if (virDomainRef(domain) == 0) {
    domain_.reset(domain);
  }
  // Non-blocking, so that a silent guest cannot hang the caller: request()
  // polls against its deadline instead.
  stream_.reset(virStreamNew(conn.get(), VIR_STREAM_NONBLOCK));
  if (!stream_ ||
      virDomainOpenChannel(domain, kAgentChannel, stream_.get(), VIR_DOMAIN_CHANNEL_FORCE) != 0) {
    throw Error("cannot open the agent channel of router '" + domainName_ +
                    "': " + virt::lastError(),
                "is the router running an nvbox image?");
  }
}

GuestAgent::~GuestAgent() {
  if (stream_) {
    virStreamAbort(stream_.get());
  }
}

void GuestAgent::send(const std::string &line) {
  std::size_t done = 0;
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  while (done < line.size()) {
    const int n = virStreamSend(stream_.get(), line.data() + done, line.size() - done);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
    } else if (n == -2 && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    } else {
      throw Error("cannot write to the agent of router '" + domainName_ +
                  "': " + (n == -2 ? std::string("the channel is full") : virt::lastError()));
    }
  }
}

bool GuestAgent::pump() {
  char buf[4096];
  for (;;) {
    const int n = virStreamRecv(stream_.get(), buf, sizeof buf);
    if (n > 0) {
      buffer_.append(buf, static_cast<std::size_t>(n));
      if (buffer_.size() > kMaxLine && buffer_.find('\n') == std::string::npos) {
        buffer_.clear(); // a runaway line: drop it, the next request resyncs
      }
      continue;
    }
    return n == -2; // -2: nothing more for now; 0: the stream ended; -1: failed
  }
}

bool GuestAgent::portOpen() const {
  std::unique_ptr<char, decltype(&free)> xml(virDomainGetXMLDesc(domain_.get(), 0), free);
  if (!xml) {
    return true; // let the write find out what is wrong
  }
  const auto state = XmlDocument(xml.get(), "router '" + domainName_ + "'")
                         .first(std::string("/domain/devices/channel/target[@name='") +
                                kAgentChannel + "']/@state");
  return state.value_or("connected") != "disconnected";
}

nlohmann::json GuestAgent::request(nlohmann::json request, std::chrono::milliseconds timeout,
                                   std::chrono::milliseconds resend) {
  if (!answered_ && request.value("cmd", "") != "ping") {
    // The guest drops what arrives before osr-agent has (re)opened its port,
    // which it does some 100 ms after the previous client left. A ping,
    // harmless to repeat, finds out when it listens; the request itself is
    // then sent once, unless it goes unanswered for `resend`.
    try {
      (void)this->request({{"cmd", "ping"}}, timeout, std::chrono::milliseconds(100));
    } catch (const Error &) {
      // No answer to a ping: the request below fails the same way, in its words.
    }
  }
  const long id = nextId_++;
  request["id"] = id;
  const std::string line = request.dump() + "\n";
  const auto deadline = Clock::now() + timeout;
  auto nextSend = Clock::now();
  while (Clock::now() < deadline) {
    if (Clock::now() >= nextSend) {
      const bool open = portOpen();
      if (open) {
        send(line);
      }
      nextSend = Clock::now() + (open ? resend : std::min(resend, kPortPoll));
    }
    if (!pump()) {
      throw Error("the agent channel of router '" + domainName_ +
                  "' closed: " + virt::lastError("the guest went away"));
    }
    for (std::size_t eol = buffer_.find('\n'); eol != std::string::npos; eol = buffer_.find('\n')) {
      const std::string reply = buffer_.substr(0, eol);
      buffer_.erase(0, eol + 1);
      nlohmann::json parsed = nlohmann::json::parse(reply, nullptr, /*allow_exceptions=*/false);
      if (parsed.is_object() && parsed.value("id", nlohmann::json()) == id) {
        answered_ = true;
        return parsed;
      }
    }
    // Without an event loop, a client reads what its streams received only
    // while it makes a call: a cheap one brings the reply in now rather
    // than at the next resend. (libvirt's default event loop would too, but
    // under load libvirtd then broke the connection of concurrent boots.)
    int state = 0;
    (void)virDomainGetState(domain_.get(), &state, nullptr, 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  throw Error("router '" + domainName_ + "' did not answer '" + request.value("cmd", "") +
                  "' within " + std::to_string(timeout.count()) + " ms",
              "look at its console with 'virsh console " + domainName_ + "'");
}

ReadyReport waitUntilReady(const virt::Connection &conn, virDomainPtr domain,
                           std::chrono::milliseconds timeout) {
  ReadyReport report;
  const auto start = Clock::now();
  const auto deadline = start + timeout;
  const char *name = virDomainGetName(domain);
  if (!running(domain)) {
    throw Error(std::string("router '") + (name != nullptr ? name : "?") + "' is not running",
                "start it first");
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
        throw Error(std::string("router '") + (name != nullptr ? name : "?") +
                        "' stopped while booting",
                    "look at its console log");
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  report.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return report;
}

} // namespace nvbox
