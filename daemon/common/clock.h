// Time, for code that must be testable without waiting: the wall clock (unix nanoseconds, what
// is stored in objects), a monotonic clock for deadlines, and timers that run a function on an
// executor (a component's strand) at a monotonic time. Components take a Clock; unit tests give
// them a manual one (tests/manager/fakes.h) and move time by hand.
#pragma once

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

namespace skep {

// A pending call of Clock::At. Destroying it (or Cancel) cancels the call: when that happens on
// the timer's executor (a strand), the function never runs afterwards.
class Timer {
 public:
  virtual ~Timer() = default;
  virtual void Cancel() = 0;
};

class Clock {
 public:
  using Steady = std::chrono::steady_clock::time_point;
  using duration = std::chrono::steady_clock::duration;
  virtual ~Clock() = default;
  // The wall clock, unix nanoseconds.
  virtual int64_t Now() const = 0;
  virtual Steady SteadyNow() const = 0;
  // Runs `f` on `executor` at `when`, or soon after.
  [[nodiscard]] virtual std::unique_ptr<Timer> At(boost::asio::any_io_executor executor,
                                                  Steady when, std::function<void()> f) = 0;
  [[nodiscard]] std::unique_ptr<Timer> After(boost::asio::any_io_executor executor,
                                             std::chrono::nanoseconds delay,
                                             std::function<void()> f) {
    return At(std::move(executor), SteadyNow() + delay, std::move(f));
  }
};

// The system's clocks and Asio's timers.
Clock& SystemClock();
// SystemClock().Now(): for code that has no clock of its own to ask (a test double of time
// reaches only what takes a Clock).
int64_t NowNanos();

}  // namespace skep
