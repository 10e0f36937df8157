#include <catch2/catch.hpp>

#include "tests/raft/sim/kv.h"
#include "tests/raft/sim/linearizability.h"

using namespace skep::raft::sim;

namespace {

Operation Put(uint64_t client, const std::string& v, uint64_t from, uint64_t to) {
  Operation op;
  op.client = client;
  op.kind = OpKind::kPut;
  op.key = "k";
  op.value = v;
  op.invoked = from;
  op.returned = to;
  return op;
}

Operation Get(uint64_t client, const std::string& result, uint64_t from, uint64_t to) {
  Operation op = Put(client, "", from, to);
  op.kind = OpKind::kGet;
  op.result = result;
  return op;
}

Operation Cas(uint64_t client, const std::string& expect, const std::string& v, bool ok,
              uint64_t from, uint64_t to) {
  Operation op = Put(client, v, from, to);
  op.kind = OpKind::kCas;
  op.expected = expect;
  op.ok = ok;
  return op;
}

}  // namespace

TEST_CASE("sequential histories check out", "[linearizability]") {
  CHECK(CheckLinearizable({Put(1, "a", 1, 2), Get(2, "a", 3, 4), Cas(1, "a", "b", true, 5, 6),
                           Get(2, "b", 7, 8), Cas(2, "a", "c", false, 9, 10)})
            .linearizable);
}

TEST_CASE("a stale read is caught", "[linearizability]") {
  auto r = CheckLinearizable({Put(1, "a", 1, 2), Put(1, "b", 3, 4), Get(2, "a", 5, 6)});
  CHECK_FALSE(r.linearizable);
  CHECK(r.explanation.find("key 'k' has no linearization") == 0);
}

TEST_CASE("a lost acknowledged write is caught", "[linearizability]") {
  CHECK_FALSE(CheckLinearizable({Put(1, "a", 1, 2), Get(2, "", 3, 4)}).linearizable);
}

TEST_CASE("concurrent operations may take effect in either order", "[linearizability]") {
  CHECK(CheckLinearizable(
            {Put(1, "a", 1, 6), Put(2, "b", 2, 5), Get(3, "a", 3, 4), Get(3, "a", 7, 8)})
            .linearizable);
  CHECK_FALSE(CheckLinearizable(
                  {Put(1, "a", 1, 4), Put(2, "b", 2, 3), Get(3, "b", 5, 6), Get(3, "a", 7, 8)})
                  .linearizable);
}

TEST_CASE("an unanswered write may or may not have happened", "[linearizability]") {
  CHECK(CheckLinearizable({Put(1, "x", 1, kNeverReturned), Get(2, "", 2, 3), Get(2, "x", 4, 5)})
            .linearizable);
  CHECK(CheckLinearizable({Put(1, "x", 1, kNeverReturned), Get(2, "", 2, 3)}).linearizable);
  // It can explain why a later compare-and-set failed.
  CHECK(CheckLinearizable(
            {Put(1, "u", 1, 2), Put(2, "v", 3, kNeverReturned), Cas(3, "u", "w", false, 4, 5)})
            .linearizable);
  // But it cannot take effect before it was invoked.
  CHECK_FALSE(CheckLinearizable({Get(2, "x", 1, 2), Put(1, "x", 3, kNeverReturned)}).linearizable);
}

TEST_CASE("two successful swaps from the same value are caught", "[linearizability]") {
  CHECK_FALSE(CheckLinearizable(
                  {Put(1, "u", 1, 2), Cas(1, "u", "v", true, 3, 4), Cas(2, "u", "w", true, 5, 6)})
                  .linearizable);
}

TEST_CASE("keys are checked independently", "[linearizability]") {
  Operation other = Put(1, "z", 1, 2);
  other.key = "other";
  CHECK(CheckLinearizable({other, Put(2, "a", 3, 4), Get(2, "a", 5, 6)}).linearizable);
}

TEST_CASE("the store applies a retried command once", "[kv]") {
  KvState kv;
  Command put{1, 1, OpKind::kPut, "k", "a", ""};
  kv.Apply(put);
  Command cas{1, 2, OpKind::kCas, "k", "b", "a"};
  CHECK(kv.Apply(cas).ok);
  CHECK(kv.Apply(cas).ok);  // the retry sees the first outcome
  CHECK(kv.Get("k") == "b");
  kv.Apply(put);  // an old duplicate changes nothing
  CHECK(kv.Get("k") == "b");
  KvState copy;
  REQUIRE(copy.Restore(kv.Serialize()));
  CHECK(copy == kv);
  auto decoded = Decode(Encode(cas));
  REQUIRE(decoded);
  CHECK(decoded->expected == "a");
  CHECK_FALSE(Decode("garbage"));
}
