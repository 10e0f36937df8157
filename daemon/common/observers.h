// A list of observers and the handles that unsubscribe them. Notify calls every observer in
// turn on the notifying thread; an observer must be quick and must not block (it posts to its
// own strand). Once a Subscription is dropped (or cancelled) its observer is not running and
// never runs again: Cancel waits for a call in progress, so an observer must not drop its own.
#pragma once

#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "daemon/common/mutex.h"

namespace skep {

class Subscription {
 public:
  struct Slot {
    virtual ~Slot() = default;
    Mutex mu;  // held while the observer runs, so that Cancel waits for a call in progress
    bool live SKEP_GUARDED_BY(mu) = true;
    virtual void Clear() SKEP_REQUIRES(mu) = 0;  // drops the observer (and what it holds)
  };
  Subscription() = default;
  explicit Subscription(std::shared_ptr<Slot> slot) : slot_(std::move(slot)) {}
  Subscription(Subscription&&) = default;
  Subscription& operator=(Subscription&& other) noexcept {
    if (this != &other) {
      Cancel();
      slot_ = std::move(other.slot_);
    }
    return *this;
  }
  ~Subscription() { Cancel(); }
  void Cancel() {
    if (!slot_) return;
    {
      MutexLock lock(slot_->mu);
      slot_->live = false;
      slot_->Clear();
    }
    slot_.reset();
  }

 private:
  std::shared_ptr<Slot> slot_;
};

template <class... Args>
class Observers {
 public:
  [[nodiscard]] Subscription Add(std::function<void(Args...)> f) {
    auto slot = std::make_shared<Slot>(std::move(f));
    MutexLock lock(mu_);
    // Slots cancelled since the last subscription go now rather than on every notification.
    std::erase_if(slots_, [](const auto& s) {
      MutexLock l(s->mu);
      return !s->live;
    });
    slots_.push_back(slot);
    return Subscription(std::move(slot));
  }

  // Calls `each(fn)` for every live observer, one at a time: for notifications that hand an
  // observer several events in one call.
  template <class Each>
  void ForEach(const Each& each) {
    std::vector<std::shared_ptr<Slot>> slots;
    {
      MutexLock lock(mu_);
      slots = slots_;
    }
    for (const auto& s : slots) {
      MutexLock lock(s->mu);
      if (s->live) each(s->fn);
    }
  }

  void Notify(Args... args) {
    ForEach([&](const std::function<void(Args...)>& fn) { fn(args...); });
  }

 private:
  struct Slot final : Subscription::Slot {
    explicit Slot(std::function<void(Args...)> f) : fn(std::move(f)) {}
    std::function<void(Args...)> fn SKEP_GUARDED_BY(mu);
    void Clear() override SKEP_REQUIRES(mu) { fn = nullptr; }
  };
  Mutex mu_;
  std::vector<std::shared_ptr<Slot>> slots_ SKEP_GUARDED_BY(mu_);
};

}  // namespace skep
