// The manager's asynchronous operations as C++20 coroutines (Asio's awaitable), for the API
// handlers: a handler reads as a sequence (validate, pin the image, propose, answer) while no
// thread waits, since each co_await suspends it until the operation's completion resumes it on
// the handler's own strand. Only for .cc files: Asio's coroutine headers are heavy.
//
// GCC 12 destroys temporaries of a co_await expression at the wrong time (GCC bug 95599; a
// lambda with captures in it is freed twice). So, in this code, an awaitable is made in one
// statement and awaited by name in the next, and nothing else is in the co_await expression:
//   auto op = Write(std::move(batch), call);
//   const Status st = co_await std::move(op);
// The functions below that take callbacks are plain functions returning an awaitable, never
// coroutines with a co_await of their own.
#pragma once

#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <exception>
#include <functional>
#include <memory>
#include <type_traits>
#include <utility>

#include "daemon/manager/context.h"

namespace skep::manager {

namespace asio = boost::asio;

// Resumes the coroutine that awaits an operation, on its own executor: call it once, from
// any thread. Copyable (it shares the coroutine's handler).
template <class T>
class Completion {
 public:
  template <class Handler>
  explicit Completion(Handler handler)
      : executor_(asio::get_associated_executor(handler)),
        resume_(std::make_shared<std::function<void(T)>>(
            [h = std::make_shared<Handler>(std::move(handler))](T value) {
              (*h)(std::move(value));
            })) {}
  void operator()(T value) const {
    asio::post(executor_, [resume = resume_, value = std::move(value)]() mutable {
      (*resume)(std::move(value));
    });
  }
  // The awaiting coroutine's executor (its strand), for timers of the operation.
  const asio::any_io_executor& executor() const { return executor_; }

 private:
  asio::any_io_executor executor_;
  std::shared_ptr<std::function<void(T)>> resume_;
};

namespace detail {

template <class T, class Start>
struct Initiation {
  Start start;
  template <class Handler>
  void operator()(Handler handler) {
    start(Completion<T>(std::move(handler)));
  }
};

template <class F>
struct OnPoolStart {
  asio::any_io_executor pool;
  F f;
  template <class Complete>
  void operator()(Complete complete) {
    asio::post(pool, [f = std::move(f), complete]() mutable { complete(f()); });
  }
};

}  // namespace detail

// An awaitable of `start(complete)`, which calls `complete(value)` (a Completion<T>) once, on
// any thread; the awaiting coroutine resumes on its own executor.
template <class T, class Start>
asio::awaitable<T> Await(Start start) {
  return asio::async_initiate<const asio::use_awaitable_t<>&, void(T)>(
      detail::Initiation<T, Start>{std::move(start)}, asio::use_awaitable);
}

// Runs `f` on `pool` (threads that may block: registry I/O, disk); resumes with its result.
template <class F>
asio::awaitable<std::invoke_result_t<F>> OnPool(asio::any_io_executor pool, F f) {
  return Await<std::invoke_result_t<F>>(detail::OnPoolStart<F>{std::move(pool), std::move(f)});
}

// Proposes `batch` in `term`; resumes with its outcome, or with kOutcomeUnknown as soon as this
// manager stops leading in that term or `deadline` passes (a leader cut off from the others
// never hears whether its entry commits).
asio::awaitable<Status> ProposeUntil(Context& ctx, api::StoreBatch batch, uint64_t term,
                                     Clock::Steady deadline);

// Resumes once `want(leadership)` holds (at once if it does now) or at `deadline`, with the
// leadership as it then is.
asio::awaitable<Leadership> AwaitLeadership(Context& ctx,
                                            std::function<bool(const Leadership&)> want,
                                            Clock::Steady deadline);

// Starts coroutine `c` on `executor` and passes its result to `done`, or kInternal with the
// message of an exception that escaped it.
template <class Executor>
void Spawn(Executor executor, asio::awaitable<Status> c, Done done) {
  asio::co_spawn(executor, std::move(c),
                 [done = std::move(done)](std::exception_ptr e, Status st) {
                   if (e) {
                     try {
                       std::rethrow_exception(e);
                     } catch (const std::exception& ex) {
                       st = Internal(ex.what());
                     } catch (...) {
                       st = Internal("unknown error");
                     }
                   }
                   done(st);
                 });
}

}  // namespace skep::manager
