#include "event_loop.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

namespace nvbox::osr {
namespace {

[[noreturn]] void fail(const std::string &what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

} // namespace

EventLoop::EventLoop() {
  epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
  wake_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_ < 0 || wake_ < 0) {
    fail("cannot create the event loop");
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = wake_;
  ::epoll_ctl(epoll_, EPOLL_CTL_ADD, wake_, &ev);
}

EventLoop::~EventLoop() {
  for (const auto &[fd, handler] : timers_) {
    ::close(fd);
  }
  ::close(wake_);
  ::close(epoll_);
}

void EventLoop::watch(int fd, Handler onReadable) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    fail("cannot watch descriptor " + std::to_string(fd));
  }
  handlers_[fd] = std::move(onReadable);
}

void EventLoop::unwatch(int fd) {
  ::epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
  handlers_.erase(fd);
}

void EventLoop::setReadable(int fd, bool readable) noexcept {
  epoll_event ev{};
  ev.events = readable ? static_cast<std::uint32_t>(EPOLLIN) : 0U;
  ev.data.fd = fd;
  ::epoll_ctl(epoll_, EPOLL_CTL_MOD, fd, &ev);
}

void EventLoop::every(std::chrono::nanoseconds period, Handler onTick) {
  const int fd = alarm(std::move(onTick));
  itimerspec spec{};
  spec.it_interval.tv_sec = static_cast<time_t>(period.count() / 1'000'000'000);
  spec.it_interval.tv_nsec = static_cast<long>(period.count() % 1'000'000'000);
  spec.it_value = spec.it_interval;
  ::timerfd_settime(fd, 0, &spec, nullptr);
}

int EventLoop::alarm(Handler onAlarm) {
  const int fd = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (fd < 0) {
    fail("cannot create a timer");
  }
  timers_[fd] = std::move(onAlarm);
  watch(fd, [this, fd] {
    std::uint64_t expirations = 0;
    if (::read(fd, &expirations, sizeof expirations) == sizeof expirations) {
      timers_[fd]();
    }
  });
  return fd;
}

void EventLoop::armAt(int alarm, std::chrono::nanoseconds at) noexcept {
  itimerspec spec{};
  // it_value 0 would disarm: the earliest representable time fires at once.
  const std::int64_t ns = std::max<std::int64_t>(at.count(), 1);
  spec.it_value.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
  spec.it_value.tv_nsec = static_cast<long>(ns % 1'000'000'000);
  ::timerfd_settime(alarm, TFD_TIMER_ABSTIME, &spec, nullptr);
}

void EventLoop::run() {
  std::array<epoll_event, 32> events{};
  for (;;) {
    const int n = ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), -1);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      fail("event loop failed");
    }
    for (int i = 0; i < n; ++i) {
      const int fd = events[static_cast<std::size_t>(i)].data.fd;
      if (fd == wake_) {
        std::uint64_t v = 0;
        (void)::read(wake_, &v, sizeof v);
        return;
      }
      const auto it = handlers_.find(fd);
      if (it != handlers_.end()) {
        it->second();
      }
    }
  }
}

void EventLoop::stop() noexcept {
  const std::uint64_t one = 1;
  (void)::write(wake_, &one, sizeof one);
}

} // namespace nvbox::osr
