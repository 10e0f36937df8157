#include "daemon/manager/store_driven.h"

#include <boost/asio/post.hpp>

#include "daemon/common/log.h"

namespace skep::manager {

namespace asio = boost::asio;

namespace {

class Driver final : public std::enable_shared_from_this<Driver> {
 public:
  Driver(Context& ctx, std::string name, std::function<PassResult(int64_t)> pass)
      : ctx_(ctx),
        name_(std::move(name)),
        pass_(std::move(pass)),
        strand_(ctx.MakeStrand()),
        pacer_(strand_, ctx.clock()) {}

  void Start(uint64_t term) {
    asio::post(strand_, [self = shared_from_this(), term] {
      self->running_ = true;
      self->term_ = term;
      ++self->epoch_;
      self->live_ = std::make_shared<std::atomic<bool>>(true);
      self->sub_ = self->ctx_.store().Watch([weak = self->weak_from_this()](const StoreEvent& ev) {
        if (auto me = weak.lock()) me->OnEvent(ev);
      });
      self->dirty_ = true;
      self->Run();
    });
  }

  void Stop() {
    asio::post(strand_, [self = shared_from_this()] {
      self->running_ = false;
      ++self->epoch_;
      *self->live_ = false;
      self->sub_.Cancel();
      self->timer_.reset();
      self->pacer_.Reset();
      self->in_flight_ = false;
    });
  }

 private:
  // Where the store applies entries: only enqueue, once per batch.
  void OnEvent(const StoreEvent& ev) {
    if (!ev.last_in_batch) return;
    asio::post(strand_, [self = shared_from_this()] {
      if (!self->running_) return;
      self->dirty_ = true;
      self->Run();
    });
  }

  void Run() {
    if (!running_ || in_flight_ || !dirty_) return;
    if (!pacer_.Clear([weak = weak_from_this(), epoch = epoch_] {
          if (auto me = weak.lock(); me && epoch == me->epoch_) me->Run();
        }))
      return;
    const auto start = ctx_.clock().SteadyNow();
    dirty_ = false;
    PassResult r = pass_(ctx_.clock().Now());
    pacer_.Ran(start);
    if (r.wake_at != 0) Wake(r.wake_at);
    if (r.batch.actions_size() == 0) return;
    in_flight_ = true;
    ProposeInParts(ctx_, std::move(r.batch), term_, live_,
                   [self = shared_from_this(), epoch = epoch_](const Status& w) {
      asio::post(self->strand_, [self, epoch, w] {
        if (epoch != self->epoch_) return;
        self->in_flight_ = false;
        if (!w.ok()) {
          SKEP_LOG(debug, self->name_, "changes not written ({}); trying again", w.message());
          if (w.code() == Code::kNotLeader || w.code() == Code::kNoLeader ||
              w.code() == Code::kNoQuorum) {
            return;
          }
          self->dirty_ = true;
        }
        self->Run();
      });
    });
  }

  void Wake(int64_t at) {
    if (timer_ && timer_at_ <= at) return;
    timer_at_ = at;
    const auto delay = std::chrono::nanoseconds(std::max<int64_t>(0, at - ctx_.clock().Now()));
    timer_ = ctx_.clock().After(strand_, delay, [weak = weak_from_this(), epoch = epoch_] {
      auto me = weak.lock();
      if (!me || epoch != me->epoch_) return;
      me->timer_.reset();
      me->dirty_ = true;
      me->Run();
    });
  }

  Context& ctx_;
  const std::string name_;
  const std::function<PassResult(int64_t)> pass_;
  Strand strand_;
  // All below: on the strand.
  bool running_ = false;
  uint64_t term_ = 0;
  uint64_t epoch_ = 0;
  std::shared_ptr<std::atomic<bool>> live_ = std::make_shared<std::atomic<bool>>(false);
  Subscription sub_;
  bool dirty_ = false;
  bool in_flight_ = false;
  std::unique_ptr<Timer> timer_;
  int64_t timer_at_ = 0;
  Pacer pacer_;
};

class Holder final : public LeaderComponent {
 public:
  explicit Holder(std::shared_ptr<Driver> d) : d_(std::move(d)) {}
  void Start(uint64_t term) override { d_->Start(term); }
  void Stop() override { d_->Stop(); }

 private:
  std::shared_ptr<Driver> d_;
};

void ProposeFrom(Context& ctx, std::shared_ptr<api::StoreBatch> batch, int from, uint64_t term,
                 std::shared_ptr<const std::atomic<bool>> live, std::shared_ptr<Done> done) {
  if (!*live) {
    (*done)({Code::kNotLeader, "the component stopped"});
    return;
  }
  const int to = std::min(batch->actions_size(), from + kMaxActionsPerProposal);
  api::StoreBatch part;
  part.mutable_actions()->Reserve(to - from);
  for (int i = from; i < to; ++i)
    *part.add_actions() = std::move(*batch->mutable_actions(i));
  auto next = ctx.MakeStrand();
  ctx.Propose(
      std::move(part),
      [&ctx, batch, to, term, live, done, next](const Status& r) {
        if (!r.ok() || to >= batch->actions_size()) {
          (*done)(r);
          return;
        }
        // The next part from the manager's threads: this runs where the store applied the
        // last one.
        asio::post(next, [&ctx, batch, to, term, live, done] {
          ProposeFrom(ctx, batch, to, term, live, done);
        });
      },
      term);
}

}  // namespace

Pacer::Pacer(Strand strand, Clock& clock) : strand_(std::move(strand)), clock_(clock) {}
Pacer::~Pacer() = default;

bool Pacer::Clear(std::function<void()> then) {
  if (clock_.SteadyNow() >= until_) return true;
  if (timer_) return false;
  // `then` holds what it needs of the component until the wait ends (or is cancelled).
  timer_ = clock_.At(strand_, until_, [this, then = std::move(then)] {
    timer_.reset();
    then();
  });
  return false;
}

void Pacer::Ran(Clock::Steady start) {
  const auto end = clock_.SteadyNow();
  until_ = end + 2 * (end - start);
}

void Pacer::Reset() {
  timer_.reset();
  until_ = {};
}

void ProposeInParts(Context& ctx, api::StoreBatch batch, uint64_t term,
                    std::shared_ptr<const std::atomic<bool>> live, Done done) {
  ProposeFrom(ctx, std::make_shared<api::StoreBatch>(std::move(batch)), 0, term, std::move(live),
              std::make_shared<Done>(std::move(done)));
}

std::unique_ptr<LeaderComponent> MakeStoreDriven(Context& ctx, std::string name,
                                                 std::function<PassResult(int64_t now)> pass) {
  return std::make_unique<Holder>(std::make_shared<Driver>(ctx, std::move(name), std::move(pass)));
}

}  // namespace skep::manager
