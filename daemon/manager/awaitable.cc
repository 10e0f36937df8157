#include "daemon/manager/awaitable.h"

#include "daemon/common/mutex.h"

namespace skep::manager {

namespace {

// One operation that whichever comes first completes: an event or a deadline. Its watch and
// timer are then dropped on the awaiting coroutine's executor (not from inside the watcher,
// which must not drop its own subscription).
template <class T>
struct Race : std::enable_shared_from_this<Race<T>> {
  explicit Race(Completion<T> c) : complete(std::move(c)) {}
  Completion<T> complete;
  Mutex mu;
  bool done SKEP_GUARDED_BY(mu) = false;
  Subscription watch;
  std::unique_ptr<Timer> timer;

  void Finish(T value) {
    {
      MutexLock lock(mu);
      if (done) return;
      done = true;
    }
    asio::post(complete.executor(), [self = this->shared_from_this()] {
      self->watch.Cancel();
      self->timer.reset();
    });
    complete(std::move(value));
  }
};

}  // namespace

asio::awaitable<Leadership> AwaitLeadership(Context& ctx,
                                            std::function<bool(const Leadership&)> want,
                                            Clock::Steady deadline) {
  return Await<Leadership>(
      [&ctx, want = std::move(want), deadline](Completion<Leadership> complete) {
        auto race = std::make_shared<Race<Leadership>>(complete);
        std::weak_ptr<Race<Leadership>> weak = race;
        race->watch = ctx.WatchLeadership([weak, want](const Leadership& l) {
          if (auto me = weak.lock(); me && want(l)) me->Finish(l);
        });
        race->timer = ctx.clock().At(complete.executor(), deadline,
                                     [race, &ctx] { race->Finish(ctx.leadership()); });
        // Met already (or meanwhile), or no time left.
        if (const Leadership now = ctx.leadership();
            want(now) || ctx.clock().SteadyNow() >= deadline) {
          race->Finish(now);
        }
      });
}

asio::awaitable<Status> ProposeUntil(Context& ctx, api::StoreBatch batch, uint64_t term,
                                     Clock::Steady deadline) {
  return Await<Status>([&ctx, batch = std::move(batch), term,
                        deadline](Completion<Status> complete) mutable {
    auto race = std::make_shared<Race<Status>>(complete);
    std::weak_ptr<Race<Status>> weak = race;
    race->watch = ctx.WatchLeadership([weak, term](const Leadership& l) {
      if (l.leader && l.term == term) return;
      if (auto me = weak.lock()) {
        me->Finish({Code::kOutcomeUnknown,
                    "this manager stopped leading before the change was confirmed"});
      }
    });
    race->timer = ctx.clock().At(complete.executor(), deadline, [race] {
      race->Finish({Code::kOutcomeUnknown,
                    "the change was not confirmed in time (too few managers reachable?); it may "
                    "still be applied"});
    });
    ctx.Propose(std::move(batch), [race](const Status& st) { race->Finish(st); }, term);
  });
}

}  // namespace skep::manager
