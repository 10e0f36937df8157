#include <catch2/catch.hpp>

#include "raft/conf.h"
#include "raft/log.h"
#include "raft/memory_storage.h"

using namespace skep::raft;
namespace raftpb = skep::raftpb;

namespace {

std::vector<raftpb::Entry> Ents(Index first, std::vector<Term> terms) {
  std::vector<raftpb::Entry> out;
  for (Term t : terms) {
    raftpb::Entry e;
    e.set_index(first++);
    e.set_term(t);
    e.set_data(std::string(10, 'x'));
    out.push_back(e);
  }
  return out;
}

google::protobuf::RepeatedPtrField<raftpb::Entry> Field(const std::vector<raftpb::Entry>& v) {
  return {v.begin(), v.end()};
}

}  // namespace

TEST_CASE("the log spans stable storage and the unstable tail", "[log]") {
  MemoryStorage st;
  st.Save(nullptr, Ents(1, {1, 1, 2}), nullptr);
  RaftLog log(&st, 0);
  CHECK(log.FirstIndex() == 1);
  CHECK(log.LastIndex() == 3);
  log.Append(Ents(4, {3, 3}));
  CHECK(log.LastIndex() == 5);
  CHECK(log.LastTerm() == 3);
  CHECK(*log.TermAt(2) == 1);
  CHECK(*log.TermAt(5) == 3);
  CHECK_FALSE(log.TermAt(6));
  CHECK(log.StableLastIndex() == 3);

  std::vector<raftpb::Entry> out;
  REQUIRE(log.Entries(2, 6, 1000, &out));
  CHECK(out.size() == 4);
  out.clear();
  REQUIRE(log.Entries(2, 6, 40, &out));  // each entry counts 34 bytes: one fits, then stop
  CHECK(out.size() == 1);

  log.StableTo(5, 3);
  CHECK(log.UnstableEntries().empty());
  CHECK(log.StableLastIndex() == 5);
}

TEST_CASE("appending after a conflict truncates the unstable and stable suffix", "[log]") {
  MemoryStorage st;
  st.Save(nullptr, Ents(1, {1, 1, 1}), nullptr);
  RaftLog log(&st, 0);
  log.Append(Ents(4, {2, 2}));
  CHECK(log.FindConflict(Field(Ents(3, {1, 2, 2}))) == 0);
  CHECK(log.FindConflict(Field(Ents(3, {1, 3}))) == 4);
  CHECK(log.FindConflict(Field(Ents(5, {2, 2}))) == 6);  // new entry beyond the end
  log.Append(Ents(3, {4}));  // replaces stable entry 3 and everything after
  CHECK(log.LastIndex() == 3);
  CHECK(*log.TermAt(3) == 4);
  // A Ready taken before the truncation must not mark the new entry stable.
  log.StableTo(5, 2);
  CHECK(log.UnstableEntries().size() == 1);
}

TEST_CASE("entries at or below the commit index are never truncated", "[log]") {
  MemoryStorage st;
  st.Save(nullptr, Ents(1, {1, 1, 1}), nullptr);
  RaftLog log(&st, 0);
  log.CommitTo(2);
  CHECK_THROWS_AS(log.Append(Ents(2, {5})), std::logic_error);
  CHECK_THROWS_AS(log.CommitTo(9), std::logic_error);
}

TEST_CASE("find conflict by term skips whole terms", "[log]") {
  MemoryStorage st;
  st.Save(nullptr, Ents(1, {1, 1, 2, 2, 2, 5, 5}), nullptr);
  RaftLog log(&st, 0);
  CHECK(log.FindConflictByTerm(7, 5) == 7);
  CHECK(log.FindConflictByTerm(7, 4) == 5);  // the last index with term <= 4
  CHECK(log.FindConflictByTerm(7, 1) == 2);
  CHECK(log.FindConflictByTerm(7, 0) == 0);
}

TEST_CASE("up-to-date compares last term, then length", "[log]") {
  MemoryStorage st;
  st.Save(nullptr, Ents(1, {1, 2, 2}), nullptr);
  RaftLog log(&st, 0);
  CHECK(log.IsUpToDate(3, 2));
  CHECK(log.IsUpToDate(1, 3));
  CHECK_FALSE(log.IsUpToDate(2, 2));
  CHECK_FALSE(log.IsUpToDate(9, 1));
}

TEST_CASE("committed entries are handed out once, in bounded batches", "[log]") {
  MemoryStorage st;
  st.Save(nullptr, Ents(1, {1, 1, 1, 1}), nullptr);
  RaftLog log(&st, 0);
  CHECK_FALSE(log.HasNextCommittedEntries());
  log.CommitTo(3);
  auto batch = log.NextCommittedEntries(1 << 20);
  REQUIRE(batch.size() == 3);
  log.AppliedTo(3);
  CHECK_FALSE(log.HasNextCommittedEntries());
  log.CommitTo(4);
  CHECK(log.NextCommittedEntries(1).size() == 1);
}

TEST_CASE("restoring a snapshot replaces the log", "[log]") {
  MemoryStorage st;
  st.Save(nullptr, Ents(1, {1, 1}), nullptr);
  RaftLog log(&st, 0);
  auto snap = std::make_shared<raftpb::Snapshot>();
  snap->mutable_metadata()->set_index(10);
  snap->mutable_metadata()->set_term(3);
  log.Restore(snap);
  CHECK(log.FirstIndex() == 11);
  CHECK(log.LastIndex() == 10);
  CHECK(*log.TermAt(10) == 3);
  CHECK_FALSE(log.TermAt(5));
  CHECK(log.committed() == 10);
  CHECK(log.applied() == 10);
  log.Append(Ents(11, {3}));
  CHECK(log.LastIndex() == 11);
  st.Save(nullptr, {}, snap.get());
  log.StableSnapTo(10);
  CHECK(*log.TermAt(10) == 3);
  CHECK(log.FirstIndex() == 11);
}

TEST_CASE("memory storage compacts behind its snapshot", "[storage]") {
  MemoryStorage st(MakeConfState({1}));
  st.Save(nullptr, Ents(1, {1, 1, 2, 2, 3}), nullptr);
  st.CreateSnapshot(4, MakeConfState({1}), "state", 2);
  CHECK(st.SnapshotMeta().index() == 4);
  CHECK(st.SnapshotMeta().term() == 2);
  CHECK(st.FirstIndex() == 3);
  CHECK(*st.TermAt(2) == 1);
  CHECK_FALSE(st.TermAt(1));
  std::vector<raftpb::Entry> out;
  CHECK_FALSE(st.Entries(2, 4, 100, &out));
  CHECK(st.Entries(3, 6, 1000, &out));
  CHECK(out.size() == 3);
  // An older snapshot is ignored.
  st.CreateSnapshot(3, MakeConfState({1}), "old", 3);
  CHECK(st.SnapshotMeta().index() == 4);
  // Installing a snapshot that disagrees with the log drops the whole log.
  raftpb::Snapshot snap;
  snap.mutable_metadata()->set_index(5);
  snap.mutable_metadata()->set_term(9);
  st.Save(nullptr, {}, &snap);
  CHECK(st.FirstIndex() == 6);
  CHECK(st.LastIndex() == 5);
}
