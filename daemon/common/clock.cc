#include "daemon/common/clock.h"

#include <boost/asio/steady_timer.hpp>

#include <atomic>

namespace skep {

namespace {

class AsioTimer final : public Timer {
 public:
  AsioTimer(boost::asio::any_io_executor executor, Clock::Steady when, std::function<void()> f)
      : state_(std::make_shared<State>(std::move(executor), std::move(f))) {
    state_->timer.expires_at(when);
    state_->timer.async_wait([state = state_](const boost::system::error_code& ec) {
      // A cancel that came after the wait completed (the handler already queued) still wins.
      if (ec || state->cancelled) return;
      state->f();
    });
  }
  ~AsioTimer() override { Cancel(); }
  void Cancel() override {
    state_->cancelled = true;
    state_->timer.cancel();
  }

 private:
  struct State {
    State(boost::asio::any_io_executor executor, std::function<void()> fn)
        : timer(std::move(executor)), f(std::move(fn)) {}
    boost::asio::steady_timer timer;
    std::function<void()> f;
    std::atomic<bool> cancelled{false};
  };
  std::shared_ptr<State> state_;
};

class System final : public Clock {
 public:
  int64_t Now() const override {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  Steady SteadyNow() const override { return std::chrono::steady_clock::now(); }
  std::unique_ptr<Timer> At(boost::asio::any_io_executor executor, Steady when,
                            std::function<void()> f) override {
    return std::make_unique<AsioTimer>(std::move(executor), when, std::move(f));
  }
};

}  // namespace

Clock& SystemClock() {
  static System clock;
  return clock;
}

int64_t NowNanos() {
  return SystemClock().Now();
}

}  // namespace skep
