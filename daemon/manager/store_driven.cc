#include "daemon/manager/store_driven.h"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <future>

#include "daemon/common/log.h"

namespace skep::manager {

namespace asio = boost::asio;

namespace {

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class Driver final : public std::enable_shared_from_this<Driver> {
 public:
  Driver(Manager* m, std::string name, std::function<PassResult(int64_t)> pass)
      : m_(m),
        name_(std::move(name)),
        pass_(std::move(pass)),
        strand_(asio::make_strand(m->io())) {}

  void Start() {
    auto self = shared_from_this();
    asio::post(strand_, [self] {
      self->running_ = true;
      ++self->epoch_;
      self->live_ = std::make_shared<std::atomic<bool>>(true);
      self->sub_ = self->m_->store().Watch([weak = std::weak_ptr(self)](const StoreEvent& ev) {
        if (auto me = weak.lock()) me->OnEvent(ev);
      });
      self->dirty_ = true;
      self->Run();
    });
  }

  void Stop() {
    std::promise<void> done;
    auto self = shared_from_this();
    asio::post(strand_, [self, &done] {
      self->running_ = false;
      ++self->epoch_;
      *self->live_ = false;
      self->sub_.Cancel();
      self->timer_.reset();
      self->pacer_.Reset();
      self->in_flight_ = false;
      done.set_value();
    });
    done.get_future().wait();
  }

 private:
  // In the raft node's serializer: only enqueue, once per batch.
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
    if (!pacer_.Clear([self = shared_from_this(), epoch = epoch_] {
          if (epoch == self->epoch_) self->Run();
        }))
      return;
    const auto start = std::chrono::steady_clock::now();
    dirty_ = false;
    PassResult r = pass_(NowNanos());
    pacer_.Ran(start);
    if (r.wake_at != 0) Wake(r.wake_at);
    if (r.batch.actions_size() == 0) return;
    in_flight_ = true;
    ProposeInParts(m_, std::move(r.batch), live_,
                   [self = shared_from_this(), epoch = epoch_](const WriteResult& w) {
      asio::post(self->strand_, [self, epoch, w] {
        if (epoch != self->epoch_) return;
        self->in_flight_ = false;
        if (!w.ok()) {
          SKEP_LOG(debug, self->name_, "changes not written ({}); trying again", w.message);
          if (w.code == WriteResult::Code::kNotLeader || w.code == WriteResult::Code::kNoQuorum) {
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
    timer_ = std::make_unique<asio::steady_timer>(
        strand_, std::chrono::nanoseconds(std::max<int64_t>(0, at - NowNanos())));
    timer_->async_wait(
        [self = shared_from_this(), epoch = epoch_](const boost::system::error_code& ec) {
          if (ec || epoch != self->epoch_) return;
          self->timer_.reset();
          self->dirty_ = true;
          self->Run();
        });
  }

  Manager* m_;
  const std::string name_;
  const std::function<PassResult(int64_t)> pass_;
  asio::strand<asio::io_context::executor_type> strand_;
  // All below: on the strand.
  bool running_ = false;
  uint64_t epoch_ = 0;
  std::shared_ptr<std::atomic<bool>> live_ = std::make_shared<std::atomic<bool>>(false);
  Subscription sub_;
  bool dirty_ = false;
  bool in_flight_ = false;
  std::unique_ptr<asio::steady_timer> timer_;
  int64_t timer_at_ = 0;
  Pacer pacer_{strand_};
};

class Holder final : public LeaderComponent {
 public:
  explicit Holder(std::shared_ptr<Driver> d) : d_(std::move(d)) {}
  void Start() override { d_->Start(); }
  void Stop() override { d_->Stop(); }

 private:
  std::shared_ptr<Driver> d_;
};

}  // namespace

namespace {

void ProposeFrom(Manager* m, std::shared_ptr<api::StoreBatch> batch, int from,
                 std::shared_ptr<const std::atomic<bool>> live,
                 std::shared_ptr<std::function<void(const WriteResult&)>> done) {
  if (!*live) {
    (*done)({WriteResult::Code::kNotLeader, "the component stopped"});
    return;
  }
  const int to = std::min(batch->actions_size(), from + kMaxActionsPerProposal);
  api::StoreBatch part;
  part.mutable_actions()->Reserve(to - from);
  for (int i = from; i < to; ++i)
    *part.add_actions() = std::move(*batch->mutable_actions(i));
  m->Propose(std::move(part), [m, batch, to, live, done](const WriteResult& r) {
    if (!r.ok() || to >= batch->actions_size()) {
      (*done)(r);
      return;
    }
    // The next part from the io threads: this runs where the store applied the last one.
    asio::post(m->io(), [m, batch, to, live, done] { ProposeFrom(m, batch, to, live, done); });
  });
}

}  // namespace

Pacer::Pacer(Strand strand) : strand_(std::move(strand)) {}
Pacer::~Pacer() = default;

bool Pacer::Clear(std::function<void()> then) {
  if (std::chrono::steady_clock::now() >= until_) return true;
  if (timer_) return false;
  timer_ = std::make_unique<asio::steady_timer>(strand_, until_);
  // `then` holds the component, and so this pacer, until the wait ends (or is cancelled).
  timer_->async_wait([this, then = std::move(then)](const boost::system::error_code& ec) {
    if (ec) return;
    timer_.reset();
    then();
  });
  return false;
}

void Pacer::Ran(std::chrono::steady_clock::time_point start) {
  const auto end = std::chrono::steady_clock::now();
  until_ = end + 2 * (end - start);
}

void Pacer::Reset() {
  timer_.reset();
  until_ = {};
}

void ProposeInParts(Manager* manager, api::StoreBatch batch,
                    std::shared_ptr<const std::atomic<bool>> live,
                    std::function<void(const WriteResult&)> done) {
  ProposeFrom(manager, std::make_shared<api::StoreBatch>(std::move(batch)), 0, std::move(live),
              std::make_shared<std::function<void(const WriteResult&)>>(std::move(done)));
}

std::unique_ptr<LeaderComponent> MakeStoreDriven(Manager* manager, std::string name,
                                                 std::function<PassResult(int64_t now)> pass) {
  return std::make_unique<Holder>(
      std::make_shared<Driver>(manager, std::move(name), std::move(pass)));
}

}  // namespace skep::manager
