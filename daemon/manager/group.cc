#include "daemon/manager/group.h"

#include <boost/asio/post.hpp>

#include <algorithm>

#include "daemon/common/log.h"
#include "daemon/common/proto_bytes.h"
#include "daemon/manager/defaults.h"
#include "daemon/manager/raft_node.h"
#include "daemon/manager/raft_transport.h"
#include "raft/conf.h"
#include "raft/quorum.h"

namespace skep::manager {

namespace asio = boost::asio;

Group::Group(Strand strand, Options options, const Store& store, skep::RaftNode& raft,
             GrpcRaftTransport& transport, Clock& clock)
    : strand_(std::move(strand)),
      options_(std::move(options)),
      store_(store),
      raft_(raft),
      transport_(transport),
      clock_(clock),
      heartbeat_ms_(options_.heartbeat_ms),
      election_ms_(options_.election_ms) {}

Group::~Group() = default;

void Group::Add(std::unique_ptr<LeaderComponent> component) {
  components_.push_back(std::move(component));
}

void Group::Start() {
  // Nodes (their addresses, who is a manager) and the cluster (the raft timeouts) matter here;
  // tasks, the bulk of the events, do not.
  store_events_ = store_.Watch([this](const StoreEvent& ev) {
    if (ev.node() != nullptr || ev.cluster() != nullptr) QueueRefresh();
  });
  asio::post(strand_, [this] {
    running_ = true;
    Refresh();
  });
}

void Group::Stop() {
  store_events_.Cancel();
  asio::post(strand_, [this] {
    running_ = false;
    StopComponents();
  });
}

void Group::QueueRefresh() {
  if (refresh_queued_.exchange(true)) return;
  asio::post(strand_, [this] {
    refresh_queued_ = false;
    Refresh();
  });
}

void Group::OnLeaderChange(uint64_t lead, uint64_t term, bool self) {
  asio::post(strand_, [this, lead, term, self] {
    if (!running_) return;
    // A new term, or another leader: what the components planned belongs to the old one.
    if (!self || term != term_) StopComponents();
    lead_ = lead;
    term_ = term;
    self_leads_ = self;
    if (self && serving_term_ != term) ReadUpToDate(term);
    Refresh();
  });
}

void Group::ReadUpToDate(uint64_t term) {
  // A read index returns once this manager has applied everything committed before the call,
  // which for a new leader includes an entry of its own term: the state it serves and the
  // components start from is then complete.
  raft_.ReadIndex([this, term](const raft::Status& st) {
    asio::post(strand_, [this, term, ok = st.ok()] {
      if (!running_ || !self_leads_ || term_ != term) return;
      if (ok) {
        Serve(term);
        return;
      }
      // Not confirmed while still leading (the followers answered late): ask again after an
      // election timeout, unless leadership changes first.
      retry_read_ = clock_.After(strand_, ElectionTimeout(), [this, term] {
        if (running_ && self_leads_ && term_ == term && serving_term_ != term) ReadUpToDate(term);
      });
    });
  });
}

void Group::Serve(uint64_t term) {
  serving_term_ = term;
  if (!components_running_) {
    components_running_ = true;
    for (auto& c : components_)
      c->Start(term);
    SKEP_LOG(info, "manager", "leader components started (term {})", term);
  }
  Refresh();
}

void Group::StopComponents() {
  if (!components_running_) return;
  components_running_ = false;
  for (auto& c : components_)
    c->Stop();
  SKEP_LOG(info, "manager", "leader components stopped");
}

void Group::OnStatusChange(const raft::NodeStatus& status) {
  status_watchers_.Notify(status);
  QueueRefresh();
}

void Group::OnPeerAnnounced() {
  QueueRefresh();
}

std::string Group::AddrOf(uint64_t raft_id, const ReadTx* tx) const {
  if (raft_id == options_.self.raft_id) return options_.self.advertise_addr;
  if (tx != nullptr) {
    if (const api::Node* n = tx->node_by_raft_id(raft_id); n && !n->advertise_addr().empty()) {
      return n->advertise_addr();
    }
  }
  auto it = options_.known_peers.find(raft_id);
  if (it != options_.known_peers.end()) return it->second;
  return "";
}

void Group::Refresh() {
  if (!running_) return;
  const raft::NodeStatus st = raft_.GetStatus();
  std::vector<api::ManagerPeer> managers;
  std::optional<LeaderInfo> leader;
  std::optional<api::Cluster> cluster;
  store_.View([&](const ReadTx& tx) {
    for (uint64_t id : raft::Members(st.conf)) {
      std::string addr = AddrOf(id, &tx);
      // Where the store does not say yet, the transport knows what the peer announced.
      if (addr.empty()) addr = transport_.PeerAddr(id);
      if (id != options_.self.raft_id && !addr.empty()) transport_.SetPeer(id, addr);
      api::ManagerPeer p;
      p.set_raft_id(id);
      p.set_addr(addr);
      if (id == options_.self.raft_id) {
        p.set_node_id(options_.self.node_id);
      } else if (const api::Node* n = tx.node_by_raft_id(id)) {
        p.set_node_id(n->id());
      }
      if (!p.addr().empty()) managers.push_back(std::move(p));
    }
    if (lead_ != raft::kNoNode) {
      LeaderInfo info;
      info.raft_id = lead_;
      if (lead_ == options_.self.raft_id) {
        info.node_id = options_.self.node_id;
      } else if (const api::Node* n = tx.node_by_raft_id(lead_)) {
        info.node_id = n->id();
      }
      info.addr = AddrOf(lead_, &tx);
      if (info.addr.empty()) info.addr = transport_.PeerAddr(lead_);
      leader = std::move(info);
    }
    if (const api::Cluster* c = tx.cluster()) cluster = *c;
  });
  if (cluster) ApplySettings(*cluster);

  Leadership now;
  now.leader = self_leads_;
  now.serving = self_leads_ && serving_term_ == term_ && term_ != 0;
  now.term = term_;
  now.leader_info = std::move(leader);
  bool leadership_changed, managers_changed;
  {
    MutexLock lock(mu_);
    auto same_leader = [](const std::optional<LeaderInfo>& a, const std::optional<LeaderInfo>& b) {
      if (a.has_value() != b.has_value()) return false;
      return !a || (a->raft_id == b->raft_id && a->addr == b->addr && a->node_id == b->node_id);
    };
    leadership_changed = now.leader != leadership_.leader || now.serving != leadership_.serving ||
                         now.term != leadership_.term ||
                         !same_leader(now.leader_info, leadership_.leader_info);
    if (leadership_changed) leadership_ = now;
    managers_changed = managers.size() != managers_.size() ||
                       !std::equal(managers.begin(), managers.end(), managers_.begin(),
                                   [](const auto& a, const auto& b) { return SameMessage(a, b); });
    if (managers_changed) managers_ = std::move(managers);
  }
  if (leadership_changed) leadership_watchers_.Notify(now);
  if (managers_changed) managers_watchers_.Notify();
}

void Group::ApplySettings(const api::Cluster& cluster) {
  int64_t hb = cluster.spec().raft().heartbeat_period_ms();
  int64_t el = cluster.spec().raft().election_timeout_ms();
  if (hb <= 0) hb = kRaftHeartbeatMs;
  if (el <= 0) el = kElectionTimeoutMs;
  if (hb == heartbeat_ms_ && el == election_ms_) return;
  heartbeat_ms_ = hb;
  election_ms_ = el;
  raft_.SetTimeouts(options_.ticks(el), options_.ticks(hb));
  SKEP_LOG(info, "raft", "heartbeat period {} ms, election timeout {} ms", hb, el);
}

Leadership Group::leadership() const {
  MutexLock lock(mu_);
  return leadership_;
}

Subscription Group::WatchLeadership(std::function<void(const Leadership&)> f) {
  return leadership_watchers_.Add(std::move(f));
}

std::vector<api::ManagerPeer> Group::Managers() const {
  MutexLock lock(mu_);
  return managers_;
}

Subscription Group::WatchManagers(std::function<void()> f) {
  return managers_watchers_.Add(std::move(f));
}

raft::NodeStatus Group::RaftStatus() const {
  return raft_.GetStatus();
}

Subscription Group::WatchStatus(std::function<void(const raft::NodeStatus&)> f) {
  return status_watchers_.Add(std::move(f));
}

std::chrono::milliseconds Group::ElectionTimeout() const {
  return std::chrono::milliseconds(election_ms_.load());
}

bool Group::Reachable(uint64_t raft_id) const {
  if (raft_id == options_.self.raft_id) return true;
  return transport_.Silent({raft_id}, 2 * ElectionTimeout() + std::chrono::milliseconds(500))
      .empty();
}

std::string Group::ManagerStatusOf(const api::Node& node) const {
  const raft::NodeStatus st = raft_.GetStatus();
  if (node.raft_id() == 0 || !raft::IsMember(st.conf, node.raft_id())) return "";
  if (node.raft_id() == st.lead) return "Leader";
  return Reachable(node.raft_id()) ? "Reachable" : "Unreachable";
}

std::optional<std::string> Group::QuorumRiskOfRemoving(uint64_t raft_id,
                                                       const std::string& what) const {
  const raft::NodeStatus st = raft_.GetStatus();
  if (!raft::IsVoter(st.conf, raft_id)) return std::nullopt;
  const size_t remaining = static_cast<size_t>(st.conf.voters_size()) - 1;
  if (remaining == 0) return "can't " + what + ": it is the last manager of the swarm";
  size_t reachable = 0;
  for (uint64_t v : st.conf.voters()) {
    if (v != raft_id && Reachable(v)) ++reachable;
  }
  const size_t need = raft::QuorumSize(remaining);
  if (reachable >= need) return std::nullopt;
  return "can't " + what + ": the " + std::to_string(remaining) +
         " managers left would include only " + std::to_string(reachable) +
         " reachable, fewer than the " + std::to_string(need) +
         " a quorum needs; bring the unreachable managers back first";
}

Status Group::NoLeaderStatus() const {
  const raft::NodeStatus st = raft_.GetStatus();
  std::vector<uint64_t> others;
  for (uint64_t v : st.conf.voters()) {
    if (v != options_.self.raft_id) others.push_back(v);
  }
  const auto silent =
      transport_.Silent(others, 2 * ElectionTimeout() + std::chrono::milliseconds(500));
  const size_t total = static_cast<size_t>(st.conf.voters_size());
  const size_t need = raft::QuorumSize(total);
  const size_t reachable = total - silent.size();
  if (reachable >= need) {
    return {Code::kNoLeader, "the swarm is electing a leader (" + std::to_string(reachable) +
                                 " of " + std::to_string(total) +
                                 " managers reachable); try again in a moment"};
  }
  return {Code::kNoQuorum,
          "the swarm does not have a leader: " + std::to_string(silent.size()) + " of " +
              std::to_string(total) + " managers " + (silent.size() == 1 ? "is" : "are") +
              " unreachable, and electing one needs " + std::to_string(need) +
              " of them online. If the unreachable managers are gone for good, run 'skep swarm "
              "init --force-new-cluster' on a surviving manager to recover"};
}

}  // namespace skep::manager
