// EventLoop — epoll over the daemon's descriptors plus periodic timers.
//
// What it does: calls a handler when its descriptor is readable, and a timer
// callback every period (timerfd). Handlers are registered at start-up; the
// loop itself allocates nothing while it runs.
//
// Parameters: none. Counters: none.
// Threading: one thread runs the loop; stop() may be called from any thread
// or from a signal handler (it writes to an eventfd).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>

namespace nvbox::osr {

class EventLoop {
public:
  using Handler = std::function<void()>;

  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop &) = delete;
  EventLoop &operator=(const EventLoop &) = delete;

  // Calls `onReadable` whenever fd has data (level-triggered).
  void watch(int fd, Handler onReadable);
  void unwatch(int fd);
  // Calls `onTick` every `period`, first after one period.
  void every(std::chrono::nanoseconds period, Handler onTick);

  // Runs until stop(); returns normally.
  void run();
  void stop() noexcept;

private:
  int epoll_ = -1;
  int wake_ = -1;
  std::map<int, Handler> handlers_;
  std::map<int, Handler> timers_;
};

} // namespace nvbox::osr
