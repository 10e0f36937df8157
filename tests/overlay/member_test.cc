#include <catch2/catch.hpp>

#include <deque>
#include <map>
#include <set>

#include "overlay/gossip/member.h"

using namespace skep::gossip;

namespace {

// Zero-latency delivery among a few members, with some addresses unreachable.
struct Net {
  std::map<std::string, Memberlist*> by_addr;
  std::set<std::string> down;
  std::vector<Message> sent;  // everything sent, for inspection

  void Add(Memberlist& m) { by_addr[m.addr()] = &m; }
  void Deliver(std::vector<Message> msgs, int64_t now) {
    std::deque<Message> q(msgs.begin(), msgs.end());
    while (!q.empty()) {
      Message m = std::move(q.front());
      q.pop_front();
      sent.push_back(m);
      if (down.contains(m.to) || down.contains(m.from) || !by_addr.contains(m.to)) continue;
      Memberlist& to = *by_addr[m.to];
      for (Message& r : to.Receive(m, now))
        q.push_back(std::move(r));
      REQUIRE(to.InvariantViolation() == std::nullopt);
    }
  }
  void Run(int64_t from, int64_t to) {
    for (int64_t t = from; t <= to; ++t) {
      for (auto& [addr, m] : by_addr) {
        if (down.contains(addr)) continue;
        Deliver(m->Tick(t), t);
        REQUIRE(m->InvariantViolation() == std::nullopt);
      }
    }
  }
};

Memberlist Make(const std::string& name, uint64_t seed = 1) {
  return Memberlist(Config{}, name, name + ":7946", seed);
}

bool HasEvent(const std::vector<MemberEvent>& events, MemberEventType type,
              const std::string& name) {
  for (const MemberEvent& e : events) {
    if (e.type == type && e.member.name == name) return true;
  }
  return false;
}

Message To(const Memberlist& m, Body body) {
  return Message{"x:1", m.addr(), body, {}};
}

}  // namespace

TEST_CASE("push-pull join makes both sides know each other", "[member]") {
  Memberlist a = Make("a"), b = Make("b", 2);
  Net net;
  net.Add(a);
  net.Add(b);
  net.Deliver(b.Join(a.addr(), 0), 0);
  REQUIRE(a.Find("b") != nullptr);
  REQUIRE(b.Find("a") != nullptr);
  CHECK(a.Find("b")->state == MemberState::kAlive);
  CHECK(a.NumActive() == 2);
  CHECK(HasEvent(a.TakeEvents(), MemberEventType::kJoin, "b"));
  CHECK(HasEvent(b.TakeEvents(), MemberEventType::kJoin, "a"));
}

TEST_CASE("incarnation rules for alive, suspect and dead", "[member]") {
  Memberlist a = Make("a");
  a.Receive(To(a, Alive{5, "c", "c:1"}), 0);
  a.TakeEvents();

  a.Receive(To(a, Suspect{4, "c", "b"}), 1);  // older than what we know
  CHECK(a.Find("c")->state == MemberState::kAlive);
  a.Receive(To(a, Suspect{5, "c", "b"}), 2);
  CHECK(a.Find("c")->state == MemberState::kSuspect);
  CHECK(a.Find("c")->state_change_ms == 2);
  a.Receive(To(a, Alive{5, "c", "c:1"}), 3);  // same incarnation does not clear a suspicion
  CHECK(a.Find("c")->state == MemberState::kSuspect);
  a.Receive(To(a, Alive{6, "c", "c:1"}), 4);  // the refutation
  CHECK(a.Find("c")->state == MemberState::kAlive);
  CHECK(a.Find("c")->incarnation == 6);

  a.Receive(To(a, Dead{5, "c", "b"}), 5);
  CHECK(a.Find("c")->state == MemberState::kAlive);
  a.Receive(To(a, Dead{6, "c", "b"}), 6);
  CHECK(a.Find("c")->state == MemberState::kDead);
  CHECK(HasEvent(a.TakeEvents(), MemberEventType::kFail, "c"));
  CHECK(a.NumActive() == 1);

  a.Receive(To(a, Alive{6, "c", "c:1"}), 7);  // a stale alive does not resurrect it
  CHECK(a.Find("c")->state == MemberState::kDead);
  a.Receive(To(a, Alive{7, "c", "c:2"}), 8);  // a restart, even at a new address
  CHECK(a.Find("c")->state == MemberState::kAlive);
  CHECK(a.Find("c")->addr == "c:2");
  CHECK(HasEvent(a.TakeEvents(), MemberEventType::kJoin, "c"));

  a.Receive(To(a, Alive{8, "c", "c:3"}), 9);  // an alive member's address is not stolen
  CHECK(a.Find("c")->addr == "c:2");

  a.Receive(To(a, Dead{7, "c", "c"}), 10);  // from == node: a leave
  CHECK(a.Find("c")->state == MemberState::kLeft);
  CHECK(HasEvent(a.TakeEvents(), MemberEventType::kLeave, "c"));
}

TEST_CASE("unknown members are learned from alive only", "[member]") {
  Memberlist a = Make("a");
  a.Receive(To(a, Suspect{1, "z", "b"}), 0);
  a.Receive(To(a, Dead{1, "z", "b"}), 0);
  CHECK(a.Find("z") == nullptr);
}

TEST_CASE("a member refutes suspicion and death with a higher incarnation", "[member]") {
  Memberlist a = Make("a"), b = Make("b", 2);
  Net net;
  net.Add(a);
  net.Add(b);
  net.Deliver(b.Join(a.addr(), 0), 0);
  uint64_t inc = b.incarnation();

  net.Deliver(b.Receive(To(b, Suspect{inc, "b", "a"}), 1), 1);
  CHECK(b.incarnation() == inc + 1);
  CHECK(b.health_score() == 1);  // being accused lowers our confidence in ourselves
  net.Deliver(b.Receive(To(b, Dead{inc + 3, "b", "a"}), 2), 2);
  CHECK(b.incarnation() == inc + 4);
  net.Deliver(b.Receive(To(b, Suspect{inc, "b", "a"}), 3), 3);  // stale: nothing to refute
  CHECK(b.incarnation() == inc + 4);

  // The refutation reaches a by gossip.
  a.Receive(To(a, Suspect{inc, "b", "c"}), 3);
  CHECK(a.Find("b")->state == MemberState::kSuspect);
  net.Run(4, 400);
  CHECK(a.Find("b")->state == MemberState::kAlive);
  CHECK(a.Find("b")->incarnation == inc + 4);
}

TEST_CASE("after leaving, death is not refuted", "[member]") {
  Memberlist a = Make("a"), b = Make("b", 2);
  Net net;
  net.Add(a);
  net.Add(b);
  net.Deliver(b.Join(a.addr(), 0), 0);
  net.Deliver(b.Leave(10), 10);
  uint64_t inc = b.incarnation();
  CHECK(b.Find("b")->state == MemberState::kLeft);
  b.Receive(To(b, Dead{inc, "b", "b"}), 11);
  b.Receive(To(b, Suspect{inc, "b", "a"}), 11);
  CHECK(b.incarnation() == inc);
  net.Run(11, 500);
  CHECK(a.Find("b")->state == MemberState::kLeft);
  CHECK(HasEvent(a.TakeEvents(), MemberEventType::kLeave, "b"));
}

TEST_CASE("an unreachable member is suspected, then declared dead", "[member]") {
  Memberlist a = Make("a"), b = Make("b", 2), c = Make("c", 3);
  Net net;
  net.Add(a);
  net.Add(b);
  net.Add(c);
  net.Deliver(b.Join(a.addr(), 0), 0);
  net.Deliver(c.Join(a.addr(), 0), 0);
  net.Run(1, 2000);
  REQUIRE(b.Find("c") != nullptr);
  CHECK(a.health_score() == 0);

  net.down.insert(c.addr());
  int64_t t = 2001;
  for (; t < 60000 && a.Find("c")->state == MemberState::kAlive; ++t)
    net.Run(t, t);
  CHECK(a.Find("c")->state == MemberState::kSuspect);
  // Indirect probes went through b before the suspicion.
  bool indirect = false;
  for (const Message& m : net.sent) {
    if (auto* p = std::get_if<IndirectPing>(&m.body); p && p->target == "c") indirect = true;
  }
  CHECK(indirect);
  // b answered with a nack, so a does not blame itself.
  CHECK(a.health_score() == 0);
  int64_t suspected_at = a.Find("c")->state_change_ms;
  for (; t < 120000 && a.Find("c")->state != MemberState::kDead; ++t)
    net.Run(t, t);
  CHECK(a.Find("c")->state == MemberState::kDead);
  // Three members: nobody can confirm, so the timeout is the minimum, 4 s.
  CHECK(a.Find("c")->state_change_ms - suspected_at <= 4000 + 1);
  CHECK(HasEvent(a.TakeEvents(), MemberEventType::kFail, "c"));
}

TEST_CASE("failed probes without nacks raise the health score", "[member]") {
  Memberlist a = Make("a"), b = Make("b", 2);
  Net net;
  net.Add(a);
  net.Add(b);
  net.Deliver(b.Join(a.addr(), 0), 0);
  net.down.insert(b.addr());
  net.Run(1, 1500);
  CHECK(a.health_score() >= 1);  // no relays, no nack: it may be our own fault
}

TEST_CASE("a relay forwards the ack or sends a nack", "[member]") {
  Memberlist r = Make("r");
  auto out = r.Receive(Message{"o:1", r.addr(), IndirectPing{77, "t", "t:1"}, {}}, 0);
  REQUIRE(out.size() == 1);
  auto* ping = std::get_if<Ping>(&out[0].body);
  REQUIRE(ping != nullptr);
  CHECK(out[0].to == "t:1");
  CHECK(ping->target == "t");
  auto fwd = r.Receive(Message{"t:1", r.addr(), Ack{ping->seq}, {}}, 10);
  REQUIRE(fwd.size() == 1);
  CHECK(fwd[0].to == "o:1");
  CHECK(std::get<Ack>(fwd[0].body).seq == 77);

  r.Receive(Message{"o:1", r.addr(), IndirectPing{78, "t", "t:1"}, {}}, 20);
  bool nacked = false;
  for (int64_t t = 20; t < 600; ++t) {
    for (const Message& m : r.Tick(t)) {
      if (auto* n = std::get_if<Nack>(&m.body); n && n->seq == 78 && m.to == "o:1") nacked = true;
    }
  }
  CHECK(nacked);
}

TEST_CASE("a ping for another node name is not acked", "[member]") {
  Memberlist a = Make("a");
  CHECK(a.Receive(To(a, Ping{1, "someone-else"}), 0).empty());
  auto out = a.Receive(To(a, Ping{1, "a"}), 0);
  REQUIRE(out.size() == 1);
  CHECK(std::get<Ack>(out[0].body).seq == 1);
}

TEST_CASE("probing a suspect tells it about the suspicion", "[member]") {
  Memberlist a = Make("a");
  a.Receive(To(a, Alive{1, "b", "b:7946"}), 0);
  a.Receive(To(a, Suspect{1, "b", "c"}), 0);
  bool told = false;
  for (int64_t t = 0; t < 2000 && !told; ++t) {
    for (const Message& m : a.Tick(t)) {
      if (!std::holds_alternative<Ping>(m.body)) continue;
      for (const Broadcast& bc : m.broadcasts) {
        if (auto* s = std::get_if<Suspect>(&bc); s && s->node == "b") told = true;
      }
    }
  }
  CHECK(told);
}

TEST_CASE("user broadcasts are piggybacked to other members", "[member]") {
  Memberlist a = Make("a"), b = Make("b", 2);
  Net net;
  net.Add(a);
  net.Add(b);
  net.Deliver(b.Join(a.addr(), 0), 0);
  a.QueueUserBroadcast("k", "v1");
  a.QueueUserBroadcast("k", "v2");  // replaces v1 before it was sent
  net.Run(1, 1000);
  auto got = b.TakeUserBroadcasts();
  REQUIRE(!got.empty());
  for (const UserBroadcast& u : got)
    CHECK(u == UserBroadcast{"k", "v2"});
}

TEST_CASE("push-pull interval scales beyond 32 members", "[member]") {
  CHECK(PushPullScaleMs(30000, 10) == 30000);
  CHECK(PushPullScaleMs(30000, 32) == 30000);
  CHECK(PushPullScaleMs(30000, 33) == 60000);
  CHECK(PushPullScaleMs(30000, 64) == 60000);
  CHECK(PushPullScaleMs(30000, 1000) == 180000);
}

TEST_CASE("the sender of a stale accusation is told the newer incarnation", "[member]") {
  Memberlist a = Make("a");
  a.Receive(To(a, Alive{3, "c", "c:7946"}), 0);
  auto out = a.Receive(Message{"b:7946", a.addr(), Gossip{}, {Suspect{1, "c", "b"}}}, 1);
  REQUIRE(out.size() == 1);
  CHECK(out[0].to == "b:7946");
  REQUIRE(out[0].broadcasts.size() == 1);
  CHECK(out[0].broadcasts[0] == Broadcast{Alive{3, "c", "c:7946"}});
  CHECK(a.Find("c")->state == MemberState::kAlive);

  // The accused itself answers a stale suspicion riding on a ping.
  a.Receive(To(a, Suspect{1, "a", "b"}), 2);  // refuted: a is now at incarnation 2
  REQUIRE(a.incarnation() == 2);
  out = a.Receive(Message{"b:7946", a.addr(), Ping{9, "a"}, {Suspect{1, "a", "b"}}}, 3);
  bool corrected = false;
  for (const Message& m : out) {
    for (const Broadcast& b : m.broadcasts) {
      if (auto* al = std::get_if<Alive>(&b); al && al->node == "a" && al->incarnation == 2) {
        corrected = m.to == "b:7946";
      }
    }
  }
  CHECK(corrected);
  CHECK(a.incarnation() == 2);  // no new refutation for old news
}
