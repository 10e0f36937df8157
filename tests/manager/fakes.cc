#include "tests/manager/fakes.h"

#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

#include <algorithm>

#include "daemon/common/pki.h"
#include "raft/conf.h"

namespace skep::testing {

namespace asio = boost::asio;

namespace {

class ManualTimer final : public Timer {
 public:
  explicit ManualTimer(std::shared_ptr<std::atomic<bool>> live) : live_(std::move(live)) {}
  ~ManualTimer() override { Cancel(); }
  void Cancel() override { *live_ = false; }

 private:
  std::shared_ptr<std::atomic<bool>> live_;
};

}  // namespace

int64_t ManualClock::Now() const {
  std::lock_guard lock(mu_);
  return wall_;
}

Clock::Steady ManualClock::SteadyNow() const {
  std::lock_guard lock(mu_);
  return steady_;
}

std::unique_ptr<Timer> ManualClock::At(asio::any_io_executor executor, Steady when,
                                       std::function<void()> f) {
  auto live = std::make_shared<std::atomic<bool>>(true);
  std::lock_guard lock(mu_);
  timers_.push_back({when, seq_++, std::move(executor), std::move(f), live});
  return std::make_unique<ManualTimer>(live);
}

void ManualClock::Advance(std::chrono::nanoseconds d) {
  std::vector<Entry> due;
  {
    std::lock_guard lock(mu_);
    steady_ += d;
    wall_ += d.count();
    auto split = std::stable_partition(timers_.begin(), timers_.end(),
                                       [&](const Entry& e) { return e.when > steady_; });
    due.assign(std::make_move_iterator(split), std::make_move_iterator(timers_.end()));
    timers_.erase(split, timers_.end());
  }
  std::sort(due.begin(), due.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.when, a.seq) < std::tie(b.when, b.seq);
  });
  for (auto& e : due) {
    asio::post(e.executor, [live = e.live, f = std::move(e.f)] {
      if (*live) f();
    });
  }
}

size_t ManualClock::Pending() const {
  std::lock_guard lock(mu_);
  return static_cast<size_t>(
      std::count_if(timers_.begin(), timers_.end(), [](const Entry& e) { return e.live->load(); }));
}

FakeContext::FakeContext(asio::io_context& io) : io_(io), work_(io.get_executor()) {}

void FakeContext::Apply(const std::vector<api::StoreAction>& actions) {
  api::StoreBatch batch;
  batch.set_proposed_at(clock_.Now());
  for (const auto& a : actions)
    *batch.add_actions() = a;
  raftpb::Entry e;
  e.set_index(++index_);
  e.set_term(1);
  e.set_data(batch.SerializeAsString());
  store_.Apply(e);
}

void FakeContext::SetLeadership(const manager::Leadership& l) {
  {
    std::lock_guard lock(mu_);
    leadership_ = l;
  }
  leadership_watchers_.Notify(l);
}

manager::Leadership FakeContext::leadership() const {
  std::lock_guard lock(mu_);
  return leadership_;
}

Subscription FakeContext::WatchLeadership(std::function<void(const manager::Leadership&)> f) {
  return leadership_watchers_.Add(std::move(f));
}

void FakeContext::Propose(api::StoreBatch batch, manager::Done done, uint64_t term) {
  const manager::Leadership l = leadership();
  if (!l.leader || (term != 0 && term != l.term)) {
    done(Status::NotLeader("not the leader", ""));
    return;
  }
  if (refuse) {
    done(*refuse);
    return;
  }
  proposals_.push_back(batch);
  batch.set_request_id(pki::RandomId());
  batch.set_proposed_at(clock_.Now());
  Status outcome;
  store_.ExpectOutcome(batch.request_id(), [&outcome](const Status& st) { outcome = st; });
  raftpb::Entry e;
  e.set_index(++index_);
  e.set_term(l.term);
  e.set_data(batch.SerializeAsString());
  store_.Apply(e);
  done(outcome);
}

manager::Strand FakeContext::MakeStrand() {
  return asio::make_strand(asio::any_io_executor(io_.get_executor()));
}

std::string FakeContext::ManagerStatusOf(const api::Node& node) const {
  auto it = manager_status.find(node.raft_id());
  return it == manager_status.end() ? "" : it->second;
}

void FakeRaft::ChangeMembers(raftpb::ConfChangeType type, uint64_t raft_id, std::string addr,
                             manager::Done done) {
  changes.push_back({type, raft_id, addr});
  std::vector<uint64_t> voters(status.conf.voters().begin(), status.conf.voters().end());
  std::vector<uint64_t> learners(status.conf.learners().begin(), status.conf.learners().end());
  auto drop = [](std::vector<uint64_t>& v, uint64_t id) { std::erase(v, id); };
  switch (type) {
    case raftpb::CONF_ADD_LEARNER:
      learners.push_back(raft_id);
      status.peers.push_back({raft_id, false, 0, 1, raft::Progress::State::kProbe, true});
      break;
    case raftpb::CONF_PROMOTE:
      drop(learners, raft_id);
      voters.push_back(raft_id);
      for (auto& p : status.peers) {
        if (p.id == raft_id) p.voter = true;
      }
      break;
    case raftpb::CONF_REMOVE:
      drop(learners, raft_id);
      drop(voters, raft_id);
      std::erase_if(status.peers, [&](const auto& p) { return p.id == raft_id; });
      break;
    default:
      break;
  }
  status.conf.clear_voters();
  status.conf.clear_learners();
  for (auto v : voters)
    status.conf.add_voters(v);
  for (auto l : learners)
    status.conf.add_learners(l);
  status.conf_index = ++status.commit;
  done(Status::Ok());
}

}  // namespace skep::testing
