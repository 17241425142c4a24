#include "agent_channel.hpp"

#include "nvbox/error.hpp"

#include <algorithm>
#include <random>
#include <sstream>
#include <thread>

namespace nvbox {

namespace {

// A reply line longer than this is not osr-agent talking.
constexpr std::size_t kMaxLine = std::size_t{1} << 20U;
// How often a closed guest port, and a channel held elsewhere, are looked
// at again.
constexpr auto kPortPoll = std::chrono::milliseconds(100);
constexpr auto kBusyPoll = std::chrono::milliseconds(250);

std::string secondsText(std::chrono::steady_clock::duration d) {
  std::ostringstream out;
  out.precision(1);
  out << std::fixed << std::chrono::duration<double>(d).count() << " s";
  return out.str();
}

} // namespace

AgentChannel::AgentChannel(std::string router, std::unique_ptr<AgentTransport> transport,
                           AgentNotice notice)
    : router_(std::move(router)), transport_(std::move(transport)), notice_(std::move(notice)) {
  // Ids start at random, so that a reply left in the channel for an earlier
  // client (one its resend caused, after it had its answer) cannot pass for
  // the reply to this channel's request of the same number.
  std::random_device seed;
  nextId_ = std::uniform_int_distribution<long>(1, 1L << 40)(seed);
}

AgentChannel::~AgentChannel() {
  closeTransport();
}

void AgentChannel::closeTransport() noexcept {
  if (open_) {
    transport_->close();
    open_ = false;
  }
}

nlohmann::json AgentChannel::request(nlohmann::json request, std::chrono::milliseconds timeout,
                                     std::chrono::milliseconds resend) {
  const auto start = Clock::now();
  const auto deadline = start + timeout;
  const std::string cmd = request.value("cmd", "");
  std::unique_lock lock(mutex_, std::defer_lock);
  if (!lock.try_lock_until(deadline)) {
    throw Error("router '" + router_ + "' did not answer '" + cmd + "' within " +
                    std::to_string(timeout.count()) +
                    " ms: its agent was busy with another request of this process",
                "try again");
  }
  openBy(deadline);
  if (!answered_ && cmd != "ping") {
    // The guest drops what arrives before osr-agent has (re)opened its port,
    // which it does some 100 ms after the previous client left. A ping,
    // harmless to repeat, finds out when it listens; the request itself is
    // then sent once, unless it goes unanswered for `resend`.
    try {
      (void)exchange({{"cmd", "ping"}}, deadline, timeout, std::chrono::milliseconds(100));
    } catch (const Error &) {
      if (!open_) {
        throw; // the channel failed: the request cannot do better
      }
      // No answer to a ping: the request below fails the same way, in its words.
    }
  }
  return exchange(std::move(request), deadline, timeout, resend);
}

void AgentChannel::openBy(Clock::time_point deadline) {
  if (open_) {
    return;
  }
  const auto start = Clock::now();
  for (;;) {
    if (transport_->open()) {
      open_ = true;
      noticed_ = false;
      answered_ = false; // osr-agent reopens its port for a new client
      buffer_.clear();
      return;
    }
    if (!noticed_ && notice_) {
      notice_("waiting for the agent of router '" + router_ + "', held by another nvbox process");
      noticed_ = true;
    }
    const auto now = Clock::now();
    if (now >= deadline) {
      throw Error("the agent of router '" + router_ +
                      "' is held by another process: its channel stayed busy for " +
                      secondsText(now - start),
                  "wait for the other nvbox command on this router (a deploy, run or transfer) "
                  "to end, or close a 'virsh console' on its agent channel, and try again");
    }
    std::this_thread::sleep_for(std::min<Clock::duration>(kBusyPoll, deadline - now));
  }
}

nlohmann::json AgentChannel::exchange(nlohmann::json request, Clock::time_point deadline,
                                      std::chrono::milliseconds timeout,
                                      std::chrono::milliseconds resend) {
  const long id = nextId_++;
  request["id"] = id;
  const std::string line = request.dump() + "\n";
  auto nextSend = Clock::now();
  try {
    while (Clock::now() < deadline) {
      if (Clock::now() >= nextSend) {
        // Nothing is written while the guest end is closed: see guest_agent.hpp.
        const bool listening = transport_->peerListening();
        if (listening) {
          transport_->send(line);
        }
        nextSend = Clock::now() + (listening ? resend : std::min(resend, kPortPoll));
      }
      if (!transport_->receive(buffer_)) {
        throw Error("the agent channel of router '" + router_ + "' closed: " + transport_->why());
      }
      if (buffer_.size() > kMaxLine && buffer_.find('\n') == std::string::npos) {
        buffer_.clear(); // a runaway line: drop it, the next request resyncs
      }
      for (std::size_t eol = buffer_.find('\n'); eol != std::string::npos;
           eol = buffer_.find('\n')) {
        const std::string reply = buffer_.substr(0, eol);
        buffer_.erase(0, eol + 1);
        nlohmann::json parsed = nlohmann::json::parse(reply, nullptr, /*allow_exceptions=*/false);
        // Replies to other ids are left over from an earlier request's resend.
        if (parsed.is_object() && parsed.value("id", nlohmann::json()) == id) {
          answered_ = true;
          return parsed;
        }
      }
      transport_->poke();
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  } catch (const Error &) {
    // A failed write or stream is not coming back: the next request opens
    // the channel anew rather than failing the same way.
    closeTransport();
    throw;
  }
  throw Error("router '" + router_ + "' did not answer '" + request.value("cmd", "") + "' within " +
                  std::to_string(timeout.count()) + " ms",
              "look at its console with 'virsh console " + router_ + "'");
}

AgentChannels &AgentChannels::process() {
  static AgentChannels registry;
  return registry;
}

AgentChannels::Lease::Lease(Lease &&other) noexcept
    : registry_(other.registry_), key_(std::move(other.key_)), channel_(other.channel_) {
  other.channel_ = nullptr;
}

AgentChannels::Lease::~Lease() {
  if (channel_ != nullptr) {
    registry_->release(key_);
  }
}

AgentChannels::Lease
AgentChannels::acquire(const std::string &key, const std::string &router,
                       const std::function<std::unique_ptr<AgentTransport>()> &transport) {
  const std::lock_guard lock(mutex_);
  Entry &entry = entries_[key];
  if (!entry.channel) {
    try {
      entry.channel = std::make_unique<AgentChannel>(
          router, transport(), [this](const std::string &line) { tell(line); });
    } catch (...) {
      entries_.erase(key);
      throw;
    }
  }
  ++entry.users;
  return Lease(this, key, entry.channel.get());
}

void AgentChannels::release(const std::string &key) noexcept {
  // The channel is closed under the registry's lock, so that a user who
  // comes next finds it closed, not held by this process's old stream.
  const std::lock_guard lock(mutex_);
  const auto it = entries_.find(key);
  if (it != entries_.end() && --it->second.users == 0) {
    entries_.erase(it);
  }
}

AgentNotice AgentChannels::setNotice(AgentNotice notice) {
  const std::lock_guard lock(noticeMutex_);
  std::swap(notice, notice_);
  return notice;
}

void AgentChannels::tell(const std::string &line) const {
  const std::lock_guard lock(noticeMutex_);
  if (notice_) {
    notice_(line);
  }
}

std::size_t AgentChannels::size() const {
  const std::lock_guard lock(mutex_);
  return entries_.size();
}

} // namespace nvbox
