#include <catch2/catch.hpp>

#include <algorithm>
#include <random>

#include "overlay/gossip/table.h"

using namespace skep::gossip;

namespace {

EndpointTable Node(const std::string& name, bool join = true) {
  EndpointTable t(TableConfig{name, 1000});
  if (join) t.Joined("net1");
  return t;
}

// Tables compared without the local reap deadlines, which depend on arrival time.
std::vector<TableEntry> Normalized(const EndpointTable& t, const std::string& network) {
  auto entries = t.FullState(network);
  for (TableEntry& e : entries)
    e.reap_at_ms = 0;
  return entries;
}

}  // namespace

TEST_CASE("local writes tick the Lamport clock", "[table]") {
  EndpointTable a = Node("a");
  uint64_t c = a.clock();
  auto e = a.Put("net1", "ep1", "10.0.0.2", 0);
  REQUIRE(e.has_value());
  CHECK(e->lamport == c + 1);
  CHECK(e->owner == "a");
  REQUIRE(a.Get("net1", "ep1") != nullptr);
  CHECK(a.Get("net1", "ep1")->value == "10.0.0.2");
  auto d = a.Delete("net1", "ep1", 5);
  REQUIRE(d.has_value());
  CHECK(d->deleted);
  CHECK(d->lamport == c + 2);
  CHECK(a.Get("net1", "ep1") == nullptr);
  CHECK_FALSE(a.Delete("net1", "ep1", 6).has_value());   // nothing live to delete
  CHECK_FALSE(a.Put("other", "k", "v", 0).has_value());  // not a participant
}

TEST_CASE("merge keeps the newer entry and advances the clock", "[table]") {
  EndpointTable a = Node("a"), b = Node("b");
  auto e1 = *a.Put("net1", "k", "v1", 0);
  CHECK(b.Merge(e1, 0));
  CHECK_FALSE(b.Merge(e1, 0));  // duplicate
  CHECK(b.clock() > e1.lamport);
  auto e2 = *b.Put("net1", "k", "v2", 0);  // b's clock is past e1, so this wins
  CHECK(e2.lamport > e1.lamport);
  CHECK(a.Merge(e2, 0));
  CHECK(a.Get("net1", "k")->value == "v2");
  CHECK_FALSE(a.Merge(e1, 0));  // stale
  CHECK(a.Get("net1", "k")->value == "v2");
}

TEST_CASE("ties in Lamport time are broken by owner name", "[table]") {
  TableEntry x{"net1", "k", "from-a", "a", 5, false, 0};
  TableEntry y{"net1", "k", "from-b", "b", 5, false, 0};
  EndpointTable t1 = Node("t1"), t2 = Node("t2");
  t1.Merge(x, 0);
  t1.Merge(y, 0);
  t2.Merge(y, 0);
  t2.Merge(x, 0);
  CHECK(t1.Get("net1", "k")->value == "from-b");
  CHECK(t2.Get("net1", "k")->value == "from-b");
}

TEST_CASE("tombstones are reaped after the reap interval", "[table]") {
  EndpointTable a = Node("a"), b = Node("b");
  auto e = *a.Put("net1", "k", "v", 0);
  b.Merge(e, 0);
  auto d = *a.Delete("net1", "k", 100);
  CHECK(b.Merge(d, 200));
  CHECK_FALSE(b.Merge(e, 300));  // a late copy of the old write does not resurrect it
  CHECK(b.Reap(1199) == 0);
  CHECK(b.FullState("net1").size() == 1);
  CHECK(b.Reap(1200) == 1);
  CHECK(b.FullState("net1").empty());
}

TEST_CASE("a removed node's entries become tombstones", "[table]") {
  EndpointTable a = Node("a"), b = Node("b");
  b.Merge(*a.Put("net1", "k", "v", 0), 0);
  b.Merge(*b.Put("net1", "mine", "m", 0), 0);
  b.RemoveNode("a", 50);
  CHECK(b.Get("net1", "k") == nullptr);
  CHECK(b.Get("net1", "mine") != nullptr);
  CHECK(b.Reap(1050) == 1);
}

TEST_CASE("only participants hold a network's table", "[table]") {
  EndpointTable a = Node("a"), c = Node("c", false);
  auto e = *a.Put("net1", "k", "v", 0);
  CHECK_FALSE(c.Merge(e, 0));
  CHECK_FALSE(c.Participates("net1"));
  auto joined = c.Joined("net1");
  CHECK(c.Participates("net1"));
  CHECK(c.Merge(e, 0));
  CHECK(a.Merge(joined, 0));
  CHECK(a.Nodes("net1") == std::vector<std::string>{"a", "c"});

  // c leaves: its own entries are tombstoned for the others, its table is dropped.
  auto mine = *c.Put("net1", "c-ep", "v", 0);
  a.Merge(mine, 0);
  auto [event, tombstones] = c.Left("net1", 10);
  CHECK_FALSE(c.Participates("net1"));
  REQUIRE(tombstones.size() == 1);
  CHECK(tombstones[0].key == "c-ep");
  CHECK(a.Merge(event, 10));
  CHECK(a.Nodes("net1") == std::vector<std::string>{"a"});
  CHECK(a.Get("net1", "c-ep") == nullptr);
  CHECK_FALSE(a.Merge(joined, 11));  // the older join does not undo the leave
}

TEST_CASE("table messages survive encoding and reject malformed input", "[table]") {
  std::vector<TableMessage> msgs = {TableEntry{"n", "k", std::string("v\0", 2), "o", 9, false, 0},
                                    TableEntry{"n", "k2", "", "o", 10, true, 0},
                                    NetworkEvent{"n", "o", 3, true}};
  std::string bytes = EncodeTableMessages(msgs);
  auto back = DecodeTableMessages(bytes);
  REQUIRE(back.has_value());
  CHECK(*back == msgs);
  for (size_t n = 0; n < bytes.size(); ++n) {
    CHECK_FALSE(DecodeTableMessages(std::string_view(bytes).substr(0, n)).has_value());
  }
  std::string bad = bytes;
  bad[5] = 7;  // the first message's tag
  CHECK_FALSE(DecodeTableMessages(bad).has_value());
}

TEST_CASE("replicas converge whatever the merge order", "[table][property]") {
  std::mt19937_64 rng(GENERATE(1, 2, 3, 4, 5, 6, 7, 8));
  // Three writers race on a few keys; every write they produce is collected.
  std::vector<EndpointTable> writers;
  for (const char* n : {"w1", "w2", "w3"})
    writers.push_back(Node(n));
  std::vector<TableEntry> writes;
  const std::vector<std::string> keys = {"k1", "k2", "k3"};
  for (int i = 0; i < 60; ++i) {
    EndpointTable& w = writers[rng() % writers.size()];
    const std::string& key = keys[rng() % keys.size()];
    // Writers sometimes see each other's writes first, so their clocks interleave.
    if (!writes.empty() && rng() % 2 == 0) w.Merge(writes[rng() % writes.size()], i);
    std::optional<TableEntry> e;
    if (rng() % 4 == 0) e = w.Delete("net1", key, i);
    if (!e) e = w.Put("net1", key, "v" + std::to_string(i), i);
    writes.push_back(*e);
  }
  std::vector<TableEntry> expected;
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<TableEntry> order = writes;
    std::shuffle(order.begin(), order.end(), rng);
    // Duplicates arrive too, as gossip delivers them.
    for (int d = 0; d < 10; ++d)
      order.push_back(writes[rng() % writes.size()]);
    EndpointTable replica = Node("r");
    for (const TableEntry& e : order)
      replica.Merge(e, 0);
    auto state = Normalized(replica, "net1");
    if (trial == 0) {
      expected = state;
      REQUIRE(expected.size() == keys.size());
    } else {
      CHECK(state == expected);
    }
  }
}
