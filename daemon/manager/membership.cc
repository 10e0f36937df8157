#include "daemon/manager/membership.h"

#include <boost/asio/post.hpp>

#include <filesystem>

#include "daemon/common/log.h"
#include "raft/conf.h"

namespace skep::manager {

namespace asio = boost::asio;

namespace {

// Between two leadership transfers of a demoted leader: a transfer pauses the leader's writes,
// so it is started only now and then.
constexpr std::chrono::seconds kTransferPause(2);

}  // namespace

MembershipStep PlanMembership(const MembershipView& v) {
  using Kind = MembershipStep::Kind;
  const raft::NodeStatus& st = v.status;
  // One change at a time: the last one must be committed first.
  if (st.conf_index > st.commit) return {Kind::kWait, 0, ""};
  for (const auto& p : st.peers) {
    if (!p.voter && p.match >= st.commit) return {Kind::kPromote, p.id, ""};
  }
  bool waiting = false;
  for (const auto& n : v.nodes) {
    if (n->raft_id() == 0) continue;
    const bool member = raft::IsMember(st.conf, n->raft_id());
    if (n->spec().desired_role() == api::ROLE_WORKER && member) {
      if (n->raft_id() == v.self) {
        // Demoting the leader: leadership goes to a reachable voter that holds the whole log,
        // which then removes this manager.
        if (!v.may_transfer) return {Kind::kWait, 0, ""};
        for (const auto& p : st.peers) {
          if (p.id != v.self && p.voter && p.match >= st.last_index && v.reachable(p.id)) {
            return {Kind::kTransfer, p.id, ""};
          }
        }
        waiting = true;
        continue;
      }
      if (v.quorum_risk(n->raft_id())) {  // the others must be reachable first
        waiting = true;
        continue;
      }
      return {Kind::kRemove, n->raft_id(), ""};
    }
    if (n->spec().desired_role() == api::ROLE_MANAGER && n->role() == api::ROLE_MANAGER &&
        !member && !n->advertise_addr().empty()) {
      return {Kind::kAddLearner, n->raft_id(), n->advertise_addr()};
    }
  }
  return {waiting ? Kind::kWait : Kind::kNone, 0, ""};
}

api::StoreBatch DemoteLeftOut(const raft::NodeStatus& status, uint64_t self,
                              const std::vector<Shared<api::Node>>& nodes) {
  api::StoreBatch batch;
  for (const auto& node : nodes) {
    if (node->raft_id() == self || raft::IsMember(status.conf, node->raft_id())) continue;
    if (node->role() != api::ROLE_MANAGER && node->spec().desired_role() != api::ROLE_MANAGER) {
      continue;
    }
    api::Node n = *node;
    n.set_role(api::ROLE_WORKER);
    n.mutable_spec()->set_desired_role(api::ROLE_WORKER);
    n.mutable_status()->set_state(api::NODE_STATE_DOWN);
    n.mutable_status()->set_message("removed from the managers by --force-new-cluster");
    auto* a = batch.add_actions();
    a->set_kind(api::StoreAction::UPDATE);
    *a->mutable_node() = std::move(n);
  }
  return batch;
}

namespace {

class Membership final : public std::enable_shared_from_this<Membership> {
 public:
  Membership(Context& ctx, RaftMembership& raft, MembershipOptions options)
      : ctx_(ctx), raft_(raft), options_(std::move(options)), strand_(ctx.MakeStrand()) {}

  void Start(uint64_t term) {
    asio::post(strand_, [self = shared_from_this(), term] {
      self->running_ = true;
      self->term_ = term;
      ++self->epoch_;
      self->cleanup_pending_ = !self->options_.cleanup_marker.empty() &&
                               std::filesystem::exists(self->options_.cleanup_marker);
      std::weak_ptr<Membership> weak = self;
      self->status_ = self->raft_.WatchStatus([weak](const raft::NodeStatus&) {
        if (auto me = weak.lock()) me->Wake();
      });
      self->nodes_ = self->ctx_.store().Watch([weak](const StoreEvent& ev) {
        if (ev.node() == nullptr) return;
        if (auto me = weak.lock()) me->Wake();
      });
      self->Run();
    });
  }

  void Stop() {
    asio::post(strand_, [self = shared_from_this()] {
      self->running_ = false;
      ++self->epoch_;
      self->status_.Cancel();
      self->nodes_.Cancel();
      self->timer_.reset();
      self->in_flight_ = false;
    });
  }

 private:
  // From the raft driver's serializer or the store's apply: only posts, once until it runs.
  void Wake() {
    if (woken_.exchange(true)) return;
    asio::post(strand_, [self = shared_from_this()] {
      self->woken_ = false;
      self->Run();
    });
  }

  // Runs again at `when` unless something wakes it first (or later).
  void RunAt(Clock::Steady when) {
    timer_ = ctx_.clock().At(strand_, when, [weak = weak_from_this(), epoch = epoch_] {
      if (auto me = weak.lock(); me && epoch == me->epoch_) me->Run();
    });
  }

  void Run() {
    if (!running_ || in_flight_) return;
    if (cleanup_pending_) {
      Cleanup();
      return;
    }
    MembershipView view;
    view.status = raft_.RaftStatus();
    if (view.status.role != raft::Role::kLeader) return;  // a leader change stops us next
    view.self = options_.self;
    view.nodes = ctx_.store().View([](const ReadTx& tx) { return tx.share_nodes(); });
    view.reachable = [this](uint64_t id) { return raft_.Reachable(id); };
    view.quorum_risk = [this](uint64_t id) { return raft_.QuorumRiskOfRemoving(id, "demote"); };
    const Clock::Steady now = ctx_.clock().SteadyNow();
    view.may_transfer = now - last_transfer_ >= kTransferPause;
    const MembershipStep step = PlanMembership(view);
    using Kind = MembershipStep::Kind;

    switch (step.kind) {
      case Kind::kNone:
        return;
      case Kind::kWait:
        // Reachability and the transfer pause change with time alone.
        RunAt(view.may_transfer ? now + raft_.ElectionTimeout() : last_transfer_ + kTransferPause);
        return;
      case Kind::kTransfer:
        last_transfer_ = now;
        raft_.TransferLeadership(step.raft_id, [](const Status&) {});
        RunAt(now + kTransferPause);
        return;
      case Kind::kPromote:
        Change(raftpb::CONF_PROMOTE, step.raft_id, "", "promoted");
        return;
      case Kind::kRemove:
        Change(raftpb::CONF_REMOVE, step.raft_id, "", "removed");
        return;
      case Kind::kAddLearner:
        if (options_.set_peer) options_.set_peer(step.raft_id, step.addr);
        Change(raftpb::CONF_ADD_LEARNER, step.raft_id, step.addr, "added as a learner");
        return;
    }
  }

  void Change(raftpb::ConfChangeType type, uint64_t id, const std::string& addr, const char* what) {
    in_flight_ = true;
    raft_.ChangeMembers(type, id, addr,
                        [self = shared_from_this(), epoch = epoch_, id, what](const Status& st) {
      asio::post(self->strand_, [self, epoch, id, what, st] {
        if (epoch != self->epoch_) return;
        self->in_flight_ = false;
        if (st.ok()) {
          SKEP_LOG(info, "manager", "{} raft member {}", what, id);
          self->Run();
          return;
        }
        SKEP_LOG(debug, "manager", "could not {} raft member {}: {}", what, id, st.message());
        // Tried again after a pause rather than in a loop.
        self->RunAt(self->ctx_.clock().SteadyNow() + self->raft_.ElectionTimeout());
      });
    });
  }

  void Cleanup() {
    const raft::NodeStatus st = raft_.RaftStatus();
    api::StoreBatch batch = DemoteLeftOut(
        st, options_.self, ctx_.store().View([](const ReadTx& tx) { return tx.share_nodes(); }));
    if (batch.actions_size() == 0) {
      CleanedUp();
      return;
    }
    in_flight_ = true;
    ctx_.Propose(
        std::move(batch),
        [self = shared_from_this(), epoch = epoch_](const Status& r) {
          asio::post(self->strand_, [self, epoch, r] {
            if (epoch != self->epoch_) return;
            self->in_flight_ = false;
            if (r.ok()) {
              self->CleanedUp();
              return;
            }
            // A race with another change to those nodes (the dispatcher marking them down):
            // made again from their newer versions.
            SKEP_LOG(warn, "manager", "cannot demote the old managers yet: {}", r.message());
            if (r.code() == Code::kConflict) {
              self->Run();
            } else {
              self->RunAt(self->ctx_.clock().SteadyNow() + self->raft_.ElectionTimeout());
            }
          });
        },
        term_);
  }

  void CleanedUp() {
    std::error_code ec;
    std::filesystem::remove(options_.cleanup_marker, ec);
    cleanup_pending_ = false;
    if (options_.on_cleanup_done) options_.on_cleanup_done();
    Run();
  }

  Context& ctx_;
  RaftMembership& raft_;
  const MembershipOptions options_;
  Strand strand_;
  std::atomic<bool> woken_{false};
  // On strand_.
  bool running_ = false;
  uint64_t term_ = 0;
  uint64_t epoch_ = 0;  // bumped at every start and stop: late callbacks of an old term drop out
  bool cleanup_pending_ = false;
  bool in_flight_ = false;
  Clock::Steady last_transfer_{};
  Subscription status_;
  Subscription nodes_;
  std::unique_ptr<Timer> timer_;
};

class Holder final : public LeaderComponent {
 public:
  explicit Holder(std::shared_ptr<Membership> m) : m_(std::move(m)) {}
  void Start(uint64_t term) override { m_->Start(term); }
  void Stop() override { m_->Stop(); }

 private:
  std::shared_ptr<Membership> m_;
};

}  // namespace

std::unique_ptr<LeaderComponent> MakeMembership(Context& ctx, RaftMembership& raft,
                                                MembershipOptions options) {
  return std::make_unique<Holder>(std::make_shared<Membership>(ctx, raft, std::move(options)));
}

}  // namespace skep::manager
