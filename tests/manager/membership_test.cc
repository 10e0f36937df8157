// Membership: which raft configuration change comes next (PlanMembership), and the component
// that makes them, woken by raft status changes, node events and its own timers.
#include <catch2/catch.hpp>

#include "daemon/manager/membership.h"
#include "tests/manager/fakes.h"

using namespace skep;
using namespace skep::manager;
using skep::testing::FakeContext;
using skep::testing::FakeRaft;
using Kind = MembershipStep::Kind;

namespace {

Shared<api::Node> Node(const std::string& id, uint64_t raft_id, api::NodeRole role,
                       api::NodeRole desired) {
  auto n = std::make_shared<api::Node>();
  n->set_id(id);
  n->set_raft_id(raft_id);
  n->set_role(role);
  n->mutable_spec()->set_desired_role(desired);
  n->set_advertise_addr("10.0.0." + std::to_string(raft_id) + ":2377");
  return n;
}

// A leader (raft id 1) with voters 1..n, all caught up at `commit`.
raft::NodeStatus Group(int voters, raft::Index commit = 10) {
  raft::NodeStatus st;
  st.id = 1;
  st.lead = 1;
  st.role = raft::Role::kLeader;
  st.commit = commit;
  st.last_index = commit;
  st.conf_index = 1;
  for (int i = 1; i <= voters; ++i) {
    st.conf.add_voters(i);
    st.peers.push_back({static_cast<uint64_t>(i), true, commit, commit + 1,
                        raft::Progress::State::kReplicate, true});
  }
  return st;
}

MembershipView View(raft::NodeStatus st, std::vector<Shared<api::Node>> nodes) {
  MembershipView v;
  v.status = std::move(st);
  v.self = 1;
  v.nodes = std::move(nodes);
  v.reachable = [](uint64_t) { return true; };
  v.quorum_risk = [](uint64_t) { return std::optional<std::string>(); };
  return v;
}

api::StoreAction Create(const Shared<api::Node>& n) {
  api::StoreAction a;
  a.set_kind(api::StoreAction::CREATE);
  *a.mutable_node() = *n;
  return a;
}

}  // namespace

TEST_CASE("membership: a manager that joined becomes a learner, then a voter once caught up",
          "[membership]") {
  auto m1 = Node("m1", 1, api::ROLE_MANAGER, api::ROLE_MANAGER);
  auto m2 = Node("m2", 2, api::ROLE_MANAGER, api::ROLE_MANAGER);
  auto step = PlanMembership(View(Group(1), {m1, m2}));
  CHECK(step.kind == Kind::kAddLearner);
  CHECK(step.raft_id == 2);
  CHECK(step.addr == "10.0.0.2:2377");

  raft::NodeStatus st = Group(1);
  st.conf.add_learners(2);
  st.peers.push_back({2, false, 4, 5, raft::Progress::State::kProbe, true});
  CHECK(PlanMembership(View(st, {m1, m2})).kind == Kind::kNone);  // still behind
  st.peers.back().match = st.commit;
  step = PlanMembership(View(st, {m1, m2}));
  CHECK(step.kind == Kind::kPromote);
  CHECK(step.raft_id == 2);

  // One change at a time: nothing while the last one is not committed.
  st.conf_index = st.commit + 1;
  CHECK(PlanMembership(View(st, {m1, m2})).kind == Kind::kWait);
}

TEST_CASE("membership: a demoted manager leaves only while the others keep a quorum",
          "[membership]") {
  auto m1 = Node("m1", 1, api::ROLE_MANAGER, api::ROLE_MANAGER);
  auto m2 = Node("m2", 2, api::ROLE_MANAGER, api::ROLE_MANAGER);
  auto m3 = Node("m3", 3, api::ROLE_MANAGER, api::ROLE_WORKER);
  auto view = View(Group(3), {m1, m2, m3});
  auto step = PlanMembership(view);
  CHECK(step.kind == Kind::kRemove);
  CHECK(step.raft_id == 3);
  view.quorum_risk = [](uint64_t) { return std::optional<std::string>("m2 is unreachable"); };
  CHECK(PlanMembership(view).kind == Kind::kWait);
}

TEST_CASE("membership: a demoted leader hands over to a caught-up voter it can reach first",
          "[membership]") {
  auto m1 = Node("m1", 1, api::ROLE_MANAGER, api::ROLE_WORKER);
  auto m2 = Node("m2", 2, api::ROLE_MANAGER, api::ROLE_MANAGER);
  auto m3 = Node("m3", 3, api::ROLE_MANAGER, api::ROLE_MANAGER);
  raft::NodeStatus st = Group(3);
  st.peers[1].match = st.commit - 1;  // m2 is behind
  auto view = View(st, {m1, m2, m3});
  auto step = PlanMembership(view);
  CHECK(step.kind == Kind::kTransfer);
  CHECK(step.raft_id == 3);
  view.reachable = [](uint64_t id) { return id != 3; };
  CHECK(PlanMembership(view).kind == Kind::kWait);  // nobody fit to take over yet
  view.reachable = [](uint64_t) { return true; };
  view.may_transfer = false;  // one was started moments ago
  CHECK(PlanMembership(view).kind == Kind::kWait);
}

TEST_CASE("membership: --force-new-cluster shows the managers it left out as workers that are down",
          "[membership]") {
  raft::NodeStatus st = Group(1);
  auto batch = DemoteLeftOut(st, 1,
                             {Node("m1", 1, api::ROLE_MANAGER, api::ROLE_MANAGER),
                              Node("m2", 2, api::ROLE_MANAGER, api::ROLE_MANAGER),
                              Node("w1", 0, api::ROLE_WORKER, api::ROLE_WORKER)});
  REQUIRE(batch.actions_size() == 1);
  const api::Node& n = batch.actions(0).node();
  CHECK(n.id() == "m2");
  CHECK(n.role() == api::ROLE_WORKER);
  CHECK(n.spec().desired_role() == api::ROLE_WORKER);
  CHECK(n.status().state() == api::NODE_STATE_DOWN);
}

TEST_CASE("membership component: woken by node events and raft status changes, one change at a time",
          "[membership]") {
  boost::asio::io_context io;
  FakeContext ctx(io);
  FakeRaft raft;
  raft.status = Group(1);
  std::vector<std::pair<uint64_t, std::string>> peers;
  MembershipOptions o;
  o.self = 1;
  o.set_peer = [&](uint64_t id, const std::string& addr) { peers.emplace_back(id, addr); };
  auto component = MakeMembership(ctx, raft, o);
  ctx.Apply({Create(Node("m1", 1, api::ROLE_MANAGER, api::ROLE_MANAGER))});
  ctx.SetLeadership({true, true, 2, {}});
  component->Start(2);
  io.poll();
  CHECK(raft.changes.empty());

  // A manager joins: it is added as a learner, and the transport learns where it listens.
  ctx.Apply({Create(Node("m2", 2, api::ROLE_MANAGER, api::ROLE_MANAGER))});
  io.poll();
  REQUIRE(raft.changes.size() == 1);
  CHECK(raft.changes[0].type == raftpb::CONF_ADD_LEARNER);
  CHECK(raft.changes[0].raft_id == 2);
  CHECK(peers == std::vector<std::pair<uint64_t, std::string>>{{2, "10.0.0.2:2377"}});

  // It catches up: the raft driver says so, and it becomes a voter.
  io.poll();
  CHECK(raft.changes.size() == 1);
  for (auto& p : raft.status.peers) p.match = raft.status.commit;
  raft.Publish();
  io.poll();
  REQUIRE(raft.changes.size() == 2);
  CHECK(raft.changes[1].type == raftpb::CONF_PROMOTE);

  // A demotion that would cost the quorum waits, and is made by a timer once it would not.
  api::Node m2 = *ctx.store().GetNode("m2");
  m2.mutable_spec()->set_desired_role(api::ROLE_WORKER);
  raft.quorum_risk[2] = "the others are unreachable";
  api::StoreAction update;
  update.set_kind(api::StoreAction::UPDATE);
  *update.mutable_node() = m2;
  ctx.Apply({update});
  io.poll();
  CHECK(raft.changes.size() == 2);
  raft.quorum_risk.clear();
  ctx.manual_clock().Advance(raft.ElectionTimeout());
  io.poll();
  REQUIRE(raft.changes.size() == 3);
  CHECK(raft.changes[2].type == raftpb::CONF_REMOVE);
  CHECK(raft.changes[2].raft_id == 2);

  // Stopped: nothing more, whatever happens.
  component->Stop();
  io.poll();
  ctx.Apply({Create(Node("m3", 3, api::ROLE_MANAGER, api::ROLE_MANAGER))});
  raft.Publish();
  ctx.manual_clock().Advance(std::chrono::seconds(10));
  io.poll();
  CHECK(raft.changes.size() == 3);
}
