// EventLoop — epoll over the daemon's descriptors plus periodic timers.
//
// What it does: calls a handler when its descriptor is readable, a timer
// callback every period, and an alarm callback once at the time it was last
// armed for (each a timerfd, CLOCK_MONOTONIC). Handlers are registered at
// start-up; the loop itself allocates nothing while it runs.
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
  // Stops (false) or resumes (true) calling a watched descriptor's handler,
  // without forgetting it: for a descriptor whose data must wait.
  void setReadable(int fd, bool readable) noexcept;
  // Calls `onTick` every `period`, first after one period.
  void every(std::chrono::nanoseconds period, Handler onTick);
  // A one-shot timer, disarmed until armAt(); returns its id.
  int alarm(Handler onAlarm);
  // Fires the alarm once at `at` (CLOCK_MONOTONIC; at once if past),
  // replacing any earlier arming.
  void armAt(int alarm, std::chrono::nanoseconds at) noexcept;

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
