#include "overlay/gossip/member.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace skep::gossip {
namespace {

// A rough upper bound of an encoded message without its broadcasts: version, addresses, tag,
// the body's fixed fields and the broadcast count.
constexpr size_t kMessageOverhead = 64;

bool DeadOrLeft(MemberState s) {
  return s == MemberState::kDead || s == MemberState::kLeft;
}

int64_t Uniform(std::mt19937_64& rng, int64_t bound) {
  if (bound <= 0) return 0;
  return std::uniform_int_distribution<int64_t>(0, bound - 1)(rng);
}

}  // namespace

int64_t PushPullScaleMs(int64_t interval_ms, size_t n) {
  constexpr size_t kThreshold = 32;
  if (n <= kThreshold) return interval_ms;
  double mult = std::ceil(std::log2(static_cast<double>(n)) - std::log2(double{kThreshold})) + 1;
  return static_cast<int64_t>(mult) * interval_ms;
}

Memberlist::Memberlist(Config config, std::string self_name, std::string self_addr, uint64_t seed)
    : config_(config),
      self_name_(std::move(self_name)),
      self_addr_(std::move(self_addr)),
      rng_(seed),
      awareness_(config.awareness_max_multiplier) {
  Member self{self_name_, self_addr_, 1, MemberState::kAlive, 0};
  auto [it, inserted] = members_.emplace(self_name_, MemberInfo{self, std::nullopt});
  probe_order_.push_back(&it->second);
  Enqueue(self_name_, Alive{1, self_name_, self_addr_});
}

const Member* Memberlist::Find(const std::string& name) const {
  auto it = members_.find(name);
  return it == members_.end() ? nullptr : &it->second.member;
}

std::vector<Member> Memberlist::Members() const {
  std::vector<Member> out;
  out.reserve(members_.size());
  for (const MemberInfo* info : probe_order_)
    out.push_back(info->member);
  return out;
}

uint64_t Memberlist::incarnation() const {
  return members_.at(self_name_).member.incarnation;
}

std::optional<std::string> Memberlist::InvariantViolation() const {
  auto self = members_.find(self_name_);
  if (self == members_.end()) return "we are missing from our own member list";
  if (self->second.member.state != (left_ ? MemberState::kLeft : MemberState::kAlive)) {
    return "our own state is " + std::string(ToString(self->second.member.state));
  }
  if (probe_order_.size() != members_.size()) return "probe order and member list differ";
  size_t active = 0, suspects = 0;
  for (const auto& [name, info] : members_) {
    if (name != info.member.name) return "member " + name + " is filed under another name";
    active += DeadOrLeft(info.member.state) ? 0 : 1;
    bool suspect = info.member.state == MemberState::kSuspect;
    if (suspect != info.suspicion.has_value()) return "suspicion timer mismatch for " + name;
    if (suspect) {
      ++suspects;
      if (std::find(suspects_.begin(), suspects_.end(), &info) == suspects_.end()) {
        return "suspect " + name + " has no running timer";
      }
    }
  }
  if (active != active_) return "active count is stale";
  if (suspects != suspects_.size()) return "timer list holds non-suspects";
  return std::nullopt;
}

std::vector<MemberEvent> Memberlist::TakeEvents() {
  return std::exchange(events_, {});
}
std::vector<UserBroadcast> Memberlist::TakeUserBroadcasts() {
  return std::exchange(user_broadcasts_, {});
}
std::vector<std::string> Memberlist::TakeUserData() {
  return std::exchange(user_data_, {});
}

void Memberlist::QueueUserBroadcast(std::string key, std::string bytes) {
  // User keys live in their own namespace so they never invalidate membership news.
  std::string queue_key = "u:" + key;
  queue_.Push(queue_key, UserBroadcast{std::move(key), std::move(bytes)});
}

void Memberlist::Enqueue(const std::string& name, Broadcast b) {
  queue_.Push("m:" + name, std::move(b));
}

Message Memberlist::Make(const std::string& to, Body body, bool piggyback) {
  Message m{self_addr_, to, std::move(body), {}};
  if (piggyback && !queue_.empty()) {
    size_t budget =
        config_.max_packet_bytes > kMessageOverhead + self_addr_.size() + to.size()
            ? config_.max_packet_bytes - kMessageOverhead - self_addr_.size() - to.size()
            : 0;
    m.broadcasts = queue_.Take(budget, RetransmitLimit(config_.retransmit_mult, NumActive()));
  }
  return m;
}

std::vector<const Memberlist::MemberInfo*> Memberlist::RandomMembers(size_t k, int64_t now_ms,
                                                                     bool include_dead,
                                                                     const std::string& exclude) {
  // Random draws with a bounded number of attempts (like memberlist's kRandomNodes): cheap for
  // large clusters, and a small cluster simply yields fewer members.
  std::vector<const MemberInfo*> out;
  size_t n = probe_order_.size();
  for (size_t attempt = 0; attempt < 3 * n && out.size() < k; ++attempt) {
    const MemberInfo& info = *probe_order_[Uniform(rng_, n)];
    const Member& m = info.member;
    if (m.name == self_name_ || m.name == exclude) continue;
    if (m.state == MemberState::kLeft) continue;
    if (m.state == MemberState::kDead &&
        (!include_dead || now_ms - m.state_change_ms > config_.gossip_to_the_dead_ms)) {
      continue;
    }
    if (std::find(out.begin(), out.end(), &info) != out.end()) continue;
    out.push_back(&info);
  }
  return out;
}

void Memberlist::Start(int64_t now_ms) {
  // Random stagger, so that members started together do not probe and gossip in lockstep.
  started_ = true;
  next_probe_ms_ = now_ms + Uniform(rng_, config_.probe_interval_ms);
  next_gossip_ms_ = now_ms + Uniform(rng_, config_.gossip_interval_ms);
  next_push_pull_ms_ = now_ms + Uniform(rng_, config_.push_pull_interval_ms);
  next_reconnect_ms_ = now_ms + Uniform(rng_, config_.reconnect_interval_ms);
}

std::vector<Message> Memberlist::Tick(int64_t now_ms) {
  std::vector<Message> out;
  if (!started_) Start(now_ms);

  // Suspicion timeouts. OnDead edits suspects_, so the due ones are collected first.
  std::vector<Dead> due;
  for (const MemberInfo* info : suspects_) {
    if (info->suspicion->Fired(now_ms)) {
      due.push_back(Dead{info->member.incarnation, info->member.name, self_name_});
    }
  }
  for (const Dead& d : due)
    OnDead(d, now_ms);

  // Relayed pings that got no ack in time: tell the origin we are fine but the target is not
  // answering (Lifeguard's nack), so it does not blame its own health.
  for (auto it = relays_.begin(); it != relays_.end();) {
    if (now_ms < it->second.nack_at_ms) {
      ++it;
      continue;
    }
    out.push_back(Make(it->second.origin_addr, Nack{it->second.origin_seq}, false));
    it = relays_.erase(it);
  }

  if (!left_) ProbeTick(now_ms, out);

  if (now_ms >= next_gossip_ms_) {
    next_gossip_ms_ = now_ms + config_.gossip_interval_ms;
    GossipTick(now_ms, out);
  }

  if (!left_ && config_.push_pull_interval_ms > 0 && now_ms >= next_push_pull_ms_) {
    next_push_pull_ms_ = now_ms + PushPullScaleMs(config_.push_pull_interval_ms, NumActive());
    auto peers = RandomMembers(1, now_ms, false, "");
    if (!peers.empty()) PushPullTo(peers[0]->member.addr, false, out);
  }

  if (!left_ && config_.reconnect_interval_ms > 0 && now_ms >= next_reconnect_ms_) {
    next_reconnect_ms_ = now_ms + config_.reconnect_interval_ms;
    std::vector<const Member*> failed;
    for (const MemberInfo* info : probe_order_) {
      if (info->member.state == MemberState::kDead) failed.push_back(&info->member);
    }
    if (!failed.empty()) PushPullTo(failed[Uniform(rng_, failed.size())]->addr, false, out);
  }
  return out;
}

int64_t Memberlist::NextTickMs() const {
  if (!started_) return 0;
  int64_t t = next_gossip_ms_;
  if (!left_) {
    if (probe_) {
      t = std::min(t, probe_->indirect_sent ? probe_->deadline_ms : probe_->timeout_ms);
    } else {
      t = std::min(t, next_probe_ms_);
    }
    if (config_.push_pull_interval_ms > 0) t = std::min(t, next_push_pull_ms_);
    if (config_.reconnect_interval_ms > 0) t = std::min(t, next_reconnect_ms_);
  }
  for (const auto& [seq, relay] : relays_)
    t = std::min(t, relay.nack_at_ms);
  for (const MemberInfo* info : suspects_)
    t = std::min(t, info->suspicion->DeadlineMs());
  return t;
}

void Memberlist::ProbeTick(int64_t now_ms, std::vector<Message>& out) {
  if (probe_ && !probe_->indirect_sent && now_ms >= probe_->timeout_ms) {
    probe_->indirect_sent = true;
    const MemberInfo* target = nullptr;
    if (auto it = members_.find(probe_->target); it != members_.end()) target = &it->second;
    if (target == nullptr || DeadOrLeft(target->member.state)) {
      probe_.reset();  // the target left or failed meanwhile; nothing to decide
    } else {
      std::string target_addr = target->member.addr;
      for (const MemberInfo* relay :
           RandomMembers(config_.indirect_checks, now_ms, false, probe_->target)) {
        if (relay->member.state != MemberState::kAlive) continue;
        out.push_back(
            Make(relay->member.addr, IndirectPing{probe_->seq, probe_->target, target_addr}, true));
        ++probe_->expected_nacks;
      }
    }
  }
  if (probe_ && now_ms >= probe_->deadline_ms) FinishProbe(false, now_ms);
  // A probe that runs long (its deadline is stretched by poor health) delays the next one, as
  // memberlist's ticker drops the ticks that fall inside a running probe.
  if (!probe_ && now_ms >= next_probe_ms_) {
    next_probe_ms_ = now_ms + config_.probe_interval_ms;
    StartProbe(now_ms, out);
  }
}

void Memberlist::ResetProbeOrder(int64_t now_ms) {
  std::erase_if(probe_order_, [&](const MemberInfo* info) {
    const Member& m = info->member;
    if (!DeadOrLeft(m.state) || now_ms - m.state_change_ms < config_.dead_reclaim_ms) return false;
    std::string name = m.name;  // m dies with the element
    members_.erase(name);
    return true;
  });
  std::shuffle(probe_order_.begin(), probe_order_.end(), rng_);
  probe_index_ = 0;
}

void Memberlist::StartProbe(int64_t now_ms, std::vector<Message>& out) {
  const MemberInfo* target = nullptr;
  for (size_t checked = 0; checked <= probe_order_.size() && target == nullptr; ++checked) {
    if (probe_index_ >= probe_order_.size()) ResetProbeOrder(now_ms);
    const MemberInfo& info = *probe_order_[probe_index_++];
    if (info.member.name != self_name_ && !DeadOrLeft(info.member.state)) target = &info;
  }
  if (target == nullptr) return;

  Probe p;
  p.target = target->member.name;
  p.seq = next_seq_++;
  p.timeout_ms = now_ms + config_.probe_timeout_ms;
  p.deadline_ms = now_ms + awareness_.ScaleTimeout(config_.probe_interval_ms);
  Message ping = Make(target->member.addr, Ping{p.seq, p.target}, true);
  // Lifeguard's buddy system: a suspect hears about its suspicion from whoever probes it, so
  // it can refute even if the gossip missed it.
  if (target->member.state == MemberState::kSuspect) {
    ping.broadcasts.insert(ping.broadcasts.begin(),
                           Suspect{target->member.incarnation, p.target, self_name_});
  }
  out.push_back(std::move(ping));
  probe_ = std::move(p);
}

void Memberlist::FinishProbe(bool acked, int64_t now_ms) {
  Probe p = std::move(*probe_);
  probe_.reset();
  if (acked) {
    // Only a timely direct ack is evidence of our own good health.
    if (!p.indirect_sent) awareness_.ApplyDelta(-1);
    return;
  }
  // Lifeguard: every relay that did not even send a nack hints that the fault is ours.
  awareness_.ApplyDelta(p.expected_nacks > 0 ? std::max(0, p.expected_nacks - p.nacks) : 1);
  auto it = members_.find(p.target);
  if (it == members_.end() || DeadOrLeft(it->second.member.state)) return;
  OnSuspect(Suspect{it->second.member.incarnation, p.target, self_name_}, now_ms);
}

void Memberlist::GossipTick(int64_t now_ms, std::vector<Message>& out) {
  if (queue_.empty()) return;
  // Recently failed members still get gossip, so a falsely accused one hears it and refutes.
  for (const MemberInfo* peer : RandomMembers(config_.gossip_nodes, now_ms, true, "")) {
    Message m = Make(peer->member.addr, Gossip{}, true);
    if (m.broadcasts.empty()) break;
    out.push_back(std::move(m));
  }
}

PushPull Memberlist::LocalState(bool join, bool reply) {
  PushPull p;
  p.join = join;
  p.reply = reply;
  p.members.reserve(probe_order_.size());
  for (const MemberInfo* info : probe_order_) {
    const Member& m = info->member;
    p.members.push_back(MemberRecord{m.name, m.addr, m.incarnation, m.state});
  }
  if (delegate_ != nullptr) p.user_state = delegate_->LocalState(join);
  return p;
}

void Memberlist::PushPullTo(const std::string& addr, bool join, std::vector<Message>& out) {
  out.push_back(Make(addr, LocalState(join, false), false));
}

std::vector<Message> Memberlist::Join(const std::string& seed_addr, int64_t now_ms) {
  if (!started_) Start(now_ms);
  std::vector<Message> out;
  PushPullTo(seed_addr, true, out);
  return out;
}

std::vector<Message> Memberlist::Leave(int64_t now_ms) {
  if (!left_) {
    left_ = true;
    Member& self = members_.at(self_name_).member;
    self.state = MemberState::kLeft;
    self.state_change_ms = now_ms;
    --active_;
    Enqueue(self_name_, Dead{self.incarnation, self_name_, self_name_});
    probe_.reset();
  }
  std::vector<Message> out;
  GossipTick(now_ms, out);
  return out;
}

std::vector<Message> Memberlist::Receive(const Message& m, int64_t now_ms) {
  if (!started_) Start(now_ms);
  std::vector<Message> out;
  correcting_ = true;
  for (const Broadcast& b : m.broadcasts)
    HandleBroadcast(b, now_ms);

  struct Visitor {
    Memberlist& self;
    const Message& m;
    int64_t now_ms;
    std::vector<Message>& out;

    void operator()(const Ping& p) {
      if (!p.target.empty() && p.target != self.self_name_) return;  // meant for someone else
      out.push_back(self.Make(m.from, Ack{p.seq}, true));
    }
    void operator()(const IndirectPing& p) {
      uint32_t seq = self.next_seq_++;
      self.relays_[seq] = Relay{m.from, p.seq, now_ms + self.config_.probe_timeout_ms};
      out.push_back(self.Make(p.target_addr, Ping{seq, p.target}, true));
    }
    void operator()(const Ack& a) {
      if (self.probe_ && self.probe_->seq == a.seq) {
        self.FinishProbe(true, now_ms);
      } else if (auto it = self.relays_.find(a.seq); it != self.relays_.end()) {
        out.push_back(self.Make(it->second.origin_addr, Ack{it->second.origin_seq}, true));
        self.relays_.erase(it);
      }
    }
    void operator()(const Nack& n) {
      if (self.probe_ && self.probe_->seq == n.seq) ++self.probe_->nacks;
    }
    void operator()(const Alive& a) { self.OnAlive(a, now_ms); }
    void operator()(const Suspect& s) { self.OnSuspect(s, now_ms); }
    void operator()(const Dead& d) { self.OnDead(d, now_ms); }
    void operator()(const PushPull& p) {
      // The reply carries our state from before the merge, as memberlist sends it first.
      if (!p.reply) out.push_back(self.Make(m.from, self.LocalState(false, true), false));
      self.MergeRemote(p, now_ms);
    }
    void operator()(const UserData& u) { self.user_data_.push_back(u.bytes); }
    void operator()(const Gossip&) {}
  };
  std::visit(Visitor{*this, m, now_ms, out}, m.body);
  correcting_ = false;
  if (!corrections_.empty()) {
    out.push_back(Message{self_addr_, m.from, Gossip{}, {}});
    for (Alive& a : corrections_)
      out.back().broadcasts.push_back(std::move(a));
    corrections_.clear();
  }
  return out;
}

void Memberlist::CorrectStale(const Member& m) {
  // Nobody else re-gossips an accusation older than what they know, so its sender would
  // never learn of the refutation it missed, and would declare a live member dead when its
  // timer fires. We tell it directly. (An addition to memberlist, which leaves this to the
  // next push-pull.)
  if (m.state != MemberState::kAlive) return;
  for (const Alive& a : corrections_) {
    if (a.node == m.name) return;
  }
  corrections_.push_back(Alive{m.incarnation, m.name, m.addr});
}

void Memberlist::HandleBroadcast(const Broadcast& b, int64_t now_ms) {
  struct Visitor {
    Memberlist& self;
    int64_t now_ms;
    void operator()(const Alive& a) { self.OnAlive(a, now_ms); }
    void operator()(const Suspect& s) { self.OnSuspect(s, now_ms); }
    void operator()(const Dead& d) { self.OnDead(d, now_ms); }
    void operator()(const UserBroadcast& u) { self.user_broadcasts_.push_back(u); }
  };
  std::visit(Visitor{*this, now_ms}, b);
}

void Memberlist::MergeRemote(const PushPull& p, int64_t now_ms) {
  // The push-pull reply (or the peer's next one) carries our whole state anyway.
  correcting_ = false;
  for (const MemberRecord& r : p.members) {
    switch (r.state) {
      case MemberState::kAlive:
        OnAlive(Alive{r.incarnation, r.name, r.addr}, now_ms);
        break;
      case MemberState::kLeft:
        OnDead(Dead{r.incarnation, r.name, r.name}, now_ms);
        break;
      case MemberState::kDead:
      case MemberState::kSuspect:
        // Another member's verdict is only a reason to suspect: the accused gets its chance
        // to refute before we declare it dead ourselves.
        OnSuspect(Suspect{r.incarnation, r.name, self_name_}, now_ms);
        break;
    }
  }
  if (delegate_ != nullptr) delegate_->MergeRemoteState(p.user_state, p.join);
}

void Memberlist::Refute(uint64_t accused_incarnation) {
  Member& self = members_.at(self_name_).member;
  self.incarnation = std::max(self.incarnation, accused_incarnation) + 1;
  // Being accused is a sign we may be the slow one (Lifeguard).
  awareness_.ApplyDelta(1);
  Enqueue(self_name_, Alive{self.incarnation, self_name_, self_addr_});
}

void Memberlist::OnAlive(const Alive& a, int64_t now_ms) {
  if (a.node == self_name_) {
    // Our own news coming back is ignored; a newer incarnation than ours (an older process
    // under our name, or stale state) is outbid.
    const Member& self = members_.at(self_name_).member;
    if (!left_ && (a.incarnation > self.incarnation ||
                   (a.incarnation == self.incarnation && a.addr != self_addr_))) {
      Refute(a.incarnation);
    }
    return;
  }
  auto it = members_.find(a.node);
  if (it == members_.end()) {
    Member m{a.node, a.addr, a.incarnation, MemberState::kAlive, now_ms};
    auto [added, inserted] = members_.emplace(a.node, MemberInfo{m, std::nullopt});
    ++active_;
    // A random place in the probe order, so a newcomer is not always probed last.
    probe_order_.push_back(&added->second);
    std::swap(probe_order_.back(), probe_order_[Uniform(rng_, probe_order_.size())]);
    Emit(MemberEventType::kJoin, m);
    Enqueue(a.node, a);
    return;
  }
  Member& m = it->second.member;
  if (a.incarnation <= m.incarnation) return;
  bool addr_changed = a.addr != m.addr;
  // An address only moves to a new process once the old one is gone.
  if (addr_changed && !DeadOrLeft(m.state)) return;
  MemberState old_state = m.state;
  if (DeadOrLeft(old_state)) ++active_;
  m.incarnation = a.incarnation;
  m.addr = a.addr;
  if (m.state != MemberState::kAlive) {
    m.state = MemberState::kAlive;
    m.state_change_ms = now_ms;
    it->second.suspicion.reset();
    std::erase(suspects_, &it->second);
  }
  Enqueue(a.node, a);
  if (DeadOrLeft(old_state)) {
    Emit(MemberEventType::kJoin, m);
  } else if (addr_changed) {
    Emit(MemberEventType::kUpdate, m);
  }
}

void Memberlist::OnSuspect(const Suspect& s, int64_t now_ms) {
  if (s.node == self_name_) {
    if (left_) return;
    if (s.incarnation >= incarnation()) {
      Refute(s.incarnation);
    } else if (correcting_) {
      CorrectStale(members_.at(self_name_).member);
    }
    return;
  }
  auto it = members_.find(s.node);
  if (it == members_.end()) return;
  MemberInfo& info = it->second;
  if (s.incarnation < info.member.incarnation) {
    if (correcting_) CorrectStale(info.member);
    return;
  }
  if (info.suspicion) {
    // Re-gossip only confirmations that shortened our timer: they are news to others too.
    if (info.suspicion->Confirm(s.from)) Enqueue(s.node, s);
    return;
  }
  if (info.member.state != MemberState::kAlive) return;

  size_t n = NumActive();
  int64_t min_ms = SuspicionMinTimeoutMs(config_.suspicion_mult, n, config_.probe_interval_ms);
  int64_t max_ms = config_.suspicion_max_timeout_mult * min_ms;
  info.member.incarnation = s.incarnation;
  info.member.state = MemberState::kSuspect;
  info.member.state_change_ms = now_ms;
  info.suspicion.emplace(s.from, ExpectedConfirmations(config_.suspicion_mult, n), min_ms, max_ms,
                         now_ms);
  suspects_.push_back(&info);
  Enqueue(s.node, s);
}

void Memberlist::OnDead(const Dead& d, int64_t now_ms) {
  if (d.node == self_name_) {
    if (left_) return;
    // A leave we did not announce ourselves is stale news from a previous life: refuted too.
    if (d.incarnation >= incarnation()) {
      Refute(d.incarnation);
    } else if (correcting_) {
      CorrectStale(members_.at(self_name_).member);
    }
    return;
  }
  bool leaving = d.node == d.from;
  auto it = members_.find(d.node);
  if (it == members_.end()) return;
  MemberInfo& info = it->second;
  Member& m = info.member;
  if (d.incarnation < m.incarnation) {
    if (correcting_ && !leaving) CorrectStale(m);
    return;
  }
  // Dead is final for this incarnation, except that a failed node may still be seen leaving.
  if (m.state == MemberState::kLeft) return;
  if (m.state == MemberState::kDead && !leaving) return;
  if (!DeadOrLeft(m.state)) --active_;
  m.incarnation = d.incarnation;
  m.state = leaving ? MemberState::kLeft : MemberState::kDead;
  m.state_change_ms = now_ms;
  if (info.suspicion) {
    info.suspicion.reset();
    std::erase(suspects_, &info);
  }
  if (probe_ && probe_->target == d.node) probe_.reset();
  Enqueue(d.node, d);
  Emit(leaving ? MemberEventType::kLeave : MemberEventType::kFail, m);
}

}  // namespace skep::gossip
