// Where callbacks from outside (gRPC reactors, containerd's streams) post into a component's
// strand, until the component closes it. A call in flight that posts through the gate enters
// it when it starts and leaves it when it is done; Drain waits for those, so that a component
// that drained its gate may go (and the io_context under its strand with it) while no callback
// of such a call is left to come.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/post.hpp>

#include <chrono>
#include <utility>

#include "daemon/common/mutex.h"

namespace skep {

class Gate {
 public:
  explicit Gate(boost::asio::any_io_executor executor) : executor_(std::move(executor)) {}

  // Posts `f` to the executor while open; false (and `f` dropped) once closed.
  template <class F>
  bool Post(F&& f) {
    MutexLock lock(mu_);
    if (!open_) return false;
    boost::asio::post(executor_, std::forward<F>(f));
    return true;
  }
  bool open() const {
    MutexLock lock(mu_);
    return open_;
  }
  void Close() {
    MutexLock lock(mu_);
    open_ = false;
  }

  // A call that will post through the gate has started, or is done.
  void Enter() {
    MutexLock lock(mu_);
    ++calls_;
  }
  void Leave() {
    MutexLock lock(mu_);
    if (--calls_ == 0) drained_.NotifyAll();
  }
  // Closes the gate and waits, at most `timeout`, for the calls in flight to be done (they were
  // cancelled by the caller). Only when stopping: it blocks.
  bool Drain(std::chrono::milliseconds timeout) {
    MutexLock lock(mu_);
    open_ = false;
    return drained_.WaitFor(lock, timeout, [&] {
      mu_.AssertHeld();
      return calls_ == 0;
    });
  }

 private:
  mutable Mutex mu_;
  CondVar drained_;
  bool open_ SKEP_GUARDED_BY(mu_) = true;
  int calls_ SKEP_GUARDED_BY(mu_) = 0;
  boost::asio::any_io_executor executor_;
};

}  // namespace skep
