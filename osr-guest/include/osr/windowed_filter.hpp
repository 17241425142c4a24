// WindowedFilter<T, Better>(BUCKET) — the best value (minimum or maximum) of
// a measurement over a sliding window of about two BUCKETs.
//
// What it does: keeps the best value of the current bucket and of the one
// before; get() returns the better of the two. A bucket older than two
// BUCKETs says nothing about the present and is forgotten. So a value is
// remembered for at least one and at most two BUCKETs: a path's base delay
// (WindowedMin) follows a path that got slower, a rate (WindowedMax) one that
// lost capacity, within 2 × BUCKET — unless reset() forgets at once.
//
// Parameters: BUCKET. Counters: none.
// Threading: a plain value; not thread-safe. Every member is noexcept.
#pragma once

#include "osr/types.hpp"

#include <functional>
#include <optional>

namespace nvbox::osr {

template <typename T, typename Better> class WindowedFilter {
public:
  explicit WindowedFilter(Nanos bucket) noexcept : bucket_(bucket) {}

  void update(T value, Nanos now) noexcept {
    if (!started_ || now - start_ >= bucket_) {
      previous_ = started_ && now - start_ < 2 * bucket_ ? current_ : std::nullopt;
      current_.reset();
      start_ = now;
      started_ = true;
    }
    if (!current_ || Better{}(value, *current_)) {
      current_ = value;
    }
  }

  // Forgets everything but `value`.
  void reset(T value, Nanos now) noexcept {
    previous_.reset();
    current_ = value;
    start_ = now;
    started_ = true;
  }

  [[nodiscard]] std::optional<T> get(Nanos now) const noexcept {
    if (!started_ || now - start_ >= 2 * bucket_) {
      return std::nullopt;
    }
    const std::optional<T> &older = now - start_ >= bucket_ ? current_ : previous_;
    const std::optional<T> &newer = now - start_ >= bucket_ ? std::optional<T>{} : current_;
    if (!older) {
      return newer;
    }
    if (!newer) {
      return older;
    }
    return Better{}(*newer, *older) ? newer : older;
  }

private:
  Nanos bucket_;
  Nanos start_{};
  bool started_ = false;
  std::optional<T> current_;
  std::optional<T> previous_;
};

template <typename T> using WindowedMin = WindowedFilter<T, std::less<T>>;
template <typename T> using WindowedMax = WindowedFilter<T, std::greater<T>>;

} // namespace nvbox::osr
