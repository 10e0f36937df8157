// Node liveness: the dispatcher marks a node down once it has not been heard from for three
// heartbeat periods (a new leader gives every node longer to find it), with a timer at the next
// deadline on its strand; only a change is a write.
#include <catch2/catch.hpp>

#include "daemon/manager/dispatcher.h"
#include "tests/manager/fakes.h"

using namespace skep;
using namespace skep::manager;
using namespace std::chrono_literals;
using skep::testing::FakeContext;

namespace {

api::StoreAction Ready(const std::string& id, api::NodeState state = api::NODE_STATE_READY) {
  api::StoreAction a;
  a.set_kind(api::StoreAction::CREATE);
  a.mutable_node()->set_id(id);
  a.mutable_node()->mutable_description()->set_hostname(id);
  a.mutable_node()->mutable_status()->set_state(state);
  return a;
}

api::NodeState StateOf(const FakeContext& ctx, const std::string& id) {
  return ctx.store().GetNode(id)->status().state();
}

}  // namespace

TEST_CASE("liveness plan: down after the grace, never before the quiet period, never twice",
          "[liveness]") {
  const Clock::Steady t0{std::chrono::hours(1)};
  const std::vector<NodeHeard> nodes{{"a", false, t0}, {"b", false, t0 + 2s}, {"c", true, t0}};
  auto plan = PlanLiveness(nodes, t0 + 2s, 3s, t0);
  CHECK(plan.down.empty());
  REQUIRE(plan.next);
  CHECK(*plan.next == t0 + 3s);
  plan = PlanLiveness(nodes, t0 + 3s, 3s, t0);
  CHECK(plan.down == std::vector<std::string>{"a"});  // c is down already: no write
  CHECK(*plan.next == t0 + 5s);
  plan = PlanLiveness(nodes, t0 + 4s, 3s, t0 + 10s);  // a new leader's quiet period
  CHECK(plan.down.empty());
  CHECK(*plan.next == t0 + 10s);
}

TEST_CASE("dispatcher: nodes that never heartbeat a new leader go down after its grace, once",
          "[liveness]") {
  boost::asio::io_context io;
  FakeContext ctx(io);
  ctx.Apply({Ready("w1"), Ready("w2"), Ready("gone", api::NODE_STATE_DOWN)});
  auto d = std::make_shared<Dispatcher>(ctx);
  d->Start();
  io.poll();
  ctx.SetLeadership({true, true, 3, {}});
  io.poll();
  CHECK(ctx.proposals().empty());

  // Twice the grace (3 periods of 1 s) and 10 ms a node: nodes find the new leader first.
  ctx.manual_clock().Advance(6s);
  io.poll();
  CHECK(ctx.proposals().empty());
  CHECK(StateOf(ctx, "w1") == api::NODE_STATE_READY);
  ctx.manual_clock().Advance(40ms);
  io.poll();
  CHECK(StateOf(ctx, "w1") == api::NODE_STATE_DOWN);
  CHECK(StateOf(ctx, "w2") == api::NODE_STATE_DOWN);
  CHECK(ctx.store().GetNode("w1")->status().message() == "heartbeat failure");
  CHECK(ctx.proposals().size() == 2);  // the node already down was not written

  // Down already: time passing writes nothing more.
  ctx.manual_clock().Advance(30s);
  io.poll();
  CHECK(ctx.proposals().size() == 2);

  // A node that joins now gets a grace of its own, from when it was first seen.
  ctx.Apply({Ready("w3", api::NODE_STATE_UNKNOWN)});
  io.poll();
  ctx.manual_clock().Advance(2s);
  io.poll();
  CHECK(StateOf(ctx, "w3") == api::NODE_STATE_UNKNOWN);
  ctx.manual_clock().Advance(1s + 10ms);
  io.poll();
  CHECK(StateOf(ctx, "w3") == api::NODE_STATE_DOWN);
  CHECK(ctx.proposals().size() == 3);

  // A follower marks nobody down.
  ctx.SetLeadership({false, false, 4, {}});
  io.poll();
  ctx.Apply({Ready("w4")});
  ctx.manual_clock().Advance(60s);
  io.poll();
  CHECK(StateOf(ctx, "w4") == api::NODE_STATE_READY);
  CHECK(ctx.proposals().size() == 3);
  d->Stop();
  io.poll();
}

TEST_CASE("heard table: a heartbeat counts only for the node's open session; a closed one keeps "
          "its last time",
          "[liveness]") {
  const Clock::Steady t0{std::chrono::hours(1)};
  HeardTable heard;
  constexpr auto kNoSession = HeardTable::BeatResult::kNoSession;
  constexpr auto kReady = HeardTable::BeatResult::kReady;
  CHECK_FALSE(heard.Heard("w1"));
  CHECK(kNoSession == heard.Beat("w1", "s1", t0));  // no session opened
  CHECK_FALSE(heard.Heard("w1"));

  heard.Open("w1", "s1", t0);
  CHECK(kReady == heard.Beat("w1", "s1", t0 + 1s));
  CHECK(*heard.Heard("w1") == t0 + 1s);
  CHECK(kNoSession == heard.Beat("w1", "s0", t0 + 2s));  // an older session's heartbeat
  CHECK(kNoSession == heard.Beat("w1", "", t0 + 2s));
  CHECK(*heard.Heard("w1") == t0 + 1s);

  // A newer session replaces it; the older one's end does not close the newer.
  heard.Open("w1", "s2", t0 + 3s);
  heard.Close("w1", "s1");
  CHECK(kReady == heard.Beat("w1", "s2", t0 + 4s));
  heard.Close("w1", "s2");
  CHECK(kNoSession == heard.Beat("w1", "s2", t0 + 5s));
  CHECK(*heard.Heard("w1") == t0 + 4s);

  // First sighting: now, kept; a node heard from keeps its own time.
  CHECK(heard.HeardOrNow("w2", t0 + 6s) == t0 + 6s);
  CHECK(heard.HeardOrNow("w2", t0 + 9s) == t0 + 6s);
  CHECK(heard.HeardOrNow("w1", t0 + 9s) == t0 + 4s);
  heard.Forget("w2");
  CHECK_FALSE(heard.Heard("w2"));
  heard.Clear();
  CHECK_FALSE(heard.Heard("w1"));
}

TEST_CASE("heard table: a heartbeat tells whether the store has the node READY, as last set",
          "[liveness]") {
  const Clock::Steady t0{std::chrono::hours(1)};
  HeardTable heard;
  heard.SetReady("w1", false);  // not in the table: nothing kept
  heard.Open("w1", "s1", t0);
  CHECK(heard.Beat("w1", "s1", t0 + 1s) == HeardTable::BeatResult::kReady);
  heard.SetReady("w1", false);  // marked down while its session lives
  CHECK(heard.Beat("w1", "s1", t0 + 2s) == HeardTable::BeatResult::kNotReady);
  CHECK(*heard.Heard("w1") == t0 + 2s);  // still heard
  heard.SetReady("w1", true);
  CHECK(heard.Beat("w1", "s1", t0 + 3s) == HeardTable::BeatResult::kReady);
  // A new session starts from READY until told otherwise.
  heard.SetReady("w1", false);
  heard.Open("w1", "s2", t0 + 4s);
  CHECK(heard.Beat("w1", "s2", t0 + 5s) == HeardTable::BeatResult::kReady);
  CHECK(heard.Beat("w1", "s1", t0 + 5s) == HeardTable::BeatResult::kNoSession);
}
