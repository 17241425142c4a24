// AgentChannel — one connection to one router's osr-agent, shared by every
// user in the process; AgentChannels, the registry that hands it out.
//
// libvirt lets one client at a time hold a domain's channel: opening it
// again fails ("Active channel stream exists for this domain",
// VIR_ERR_OPERATION_FAILED) unless VIR_DOMAIN_CHANNEL_FORCE, which aborts
// the holder's stream. nvbox used FORCE, so two users of one router's agent
// in one process (`nvbox run` polling the ingress's osrd while an event
// shapes one of its links) stole the channel from each other and one died
// with a stream I/O failure; another process (an `nvbox inspect`) stole it
// from a deploy waiting for that router. So: within a process every user of
// a router's agent shares one channel (keyed by host URI and domain UUID),
// whole request/reply exchanges are serialised under its lock (osr-agent
// serves one request at a time and echoes ids, so that is enough), and the
// channel is closed when the last user lets go. Across processes nobody
// steals: a channel another client holds is waited for, within the
// request's deadline, with one notice, then one clear error.
//
// AgentTransport is how the bytes move: a libvirt stream in product code
// (guest_agent.cpp), a fake in the unit tests.
//
// Threading: AgentChannels and AgentChannel are thread-safe; a transport is
// used by one thread at a time (under its channel's lock).
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace nvbox {

class AgentTransport {
public:
  virtual ~AgentTransport() = default;
  // Opens the channel; false when another client holds it. Throws
  // nvbox::Error for anything else (no such channel, router not running).
  virtual bool open() = 0;
  virtual void close() noexcept = 0;
  // Writes the whole line; throws nvbox::Error when it cannot.
  virtual void send(const std::string &line) = 0;
  // Appends what has arrived to `into`; false when the channel ended or
  // failed (`why()` says how).
  virtual bool receive(std::string &into) = 0;
  [[nodiscard]] virtual std::string why() const = 0;
  // Whether the guest end listens; what it is sent before is dropped.
  virtual bool peerListening() = 0;
  // Gives replies a chance to arrive (see guest_agent.cpp).
  virtual void poke() = 0;
};

using AgentNotice = std::function<void(const std::string &line)>;

class AgentChannel {
public:
  // `router` names it in messages; `notice` is told about waits.
  AgentChannel(std::string router, std::unique_ptr<AgentTransport> transport, AgentNotice notice);
  ~AgentChannel();
  AgentChannel(const AgentChannel &) = delete;
  AgentChannel &operator=(const AgentChannel &) = delete;

  // Sends `request` (an object; "id" is set) and returns the reply object,
  // all within `timeout`: waiting for another thread's exchange, for
  // another process to let go of the channel, and the exchange itself.
  // Throws nvbox::Error when that does not happen in time or the channel
  // fails (the next request then opens it anew).
  nlohmann::json request(nlohmann::json request, std::chrono::milliseconds timeout,
                         std::chrono::milliseconds resend);

private:
  using Clock = std::chrono::steady_clock;
  void openBy(Clock::time_point deadline);
  nlohmann::json exchange(nlohmann::json request, Clock::time_point deadline,
                          std::chrono::milliseconds timeout, std::chrono::milliseconds resend);
  void closeTransport() noexcept;

  std::string router_;
  std::unique_ptr<AgentTransport> transport_;
  AgentNotice notice_;
  std::timed_mutex mutex_; // one exchange at a time; a waiter gives up at its deadline
  bool open_ = false;
  bool noticed_ = false;  // the wait for another client was told
  bool answered_ = false; // osr-agent has replied since the channel opened
  std::string buffer_;
  long nextId_ = 1;
};

class AgentChannels {
public:
  AgentChannels() = default;
  AgentChannels(const AgentChannels &) = delete;
  AgentChannels &operator=(const AgentChannels &) = delete;

  // The registry GuestAgent uses.
  static AgentChannels &process();

  // One user's hold on a shared channel; the channel is closed when the
  // last lease of its key ends.
  class Lease {
  public:
    Lease(const Lease &) = delete;
    Lease &operator=(const Lease &) = delete;
    Lease(Lease &&other) noexcept;
    Lease &operator=(Lease &&) = delete;
    ~Lease();
    AgentChannel &operator*() const { return *channel_; }
    AgentChannel *operator->() const { return channel_; }

  private:
    friend class AgentChannels;
    Lease(AgentChannels *registry, std::string key, AgentChannel *channel)
        : registry_(registry), key_(std::move(key)), channel_(channel) {}
    AgentChannels *registry_;
    std::string key_;
    AgentChannel *channel_;
  };

  // The channel of `key`, made by `transport()` for router `router` when
  // the process has none (it opens at its first request).
  [[nodiscard]] Lease acquire(const std::string &key, const std::string &router,
                              const std::function<std::unique_ptr<AgentTransport>()> &transport);

  // Where waits for a channel another client holds are told (any thread);
  // returns the previous receiver. Nothing is told without one.
  AgentNotice setNotice(AgentNotice notice);

  // Channels in use (for tests).
  [[nodiscard]] std::size_t size() const;

private:
  struct Entry {
    std::unique_ptr<AgentChannel> channel;
    std::size_t users = 0;
  };
  void release(const std::string &key) noexcept;
  void tell(const std::string &line) const;

  mutable std::mutex mutex_;
  std::map<std::string, Entry> entries_;
  mutable std::mutex noticeMutex_;
  AgentNotice notice_;
};

} // namespace nvbox
