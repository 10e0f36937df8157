#include <catch2/catch.hpp>

#include "raft/conf.h"

using namespace skep::raft;
namespace raftpb = skep::raftpb;

TEST_CASE("configuration changes validate their node", "[conf]") {
  auto cs = MakeConfState({1, 2, 3});
  raftpb::ConfState out;
  CHECK(ApplyConfChange(cs, raftpb::CONF_ADD_LEARNER, 4, &out).ok());
  CHECK(Describe(out) == "voters=[1,2,3] learners=[4]");
  CHECK(ApplyConfChange(out, raftpb::CONF_PROMOTE, 4, &out).ok());
  CHECK(Describe(out) == "voters=[1,2,3,4]");
  CHECK(ApplyConfChange(out, raftpb::CONF_REMOVE, 2, &out).ok());
  CHECK(Describe(out) == "voters=[1,3,4]");

  auto st = ApplyConfChange(cs, raftpb::CONF_ADD_LEARNER, 2, &out);
  CHECK(st.code() == ErrorCode::kInvalidConfChange);
  CHECK(st.message() == "node 2 is already a voter");
  CHECK(ApplyConfChange(cs, raftpb::CONF_PROMOTE, 9, &out).message() ==
        "node 9 is not a learner; add it as one first");
  CHECK(ApplyConfChange(cs, raftpb::CONF_REMOVE, 9, &out).message() == "node 9 is not a member");
  CHECK(ApplyConfChange(MakeConfState({1}), raftpb::CONF_REMOVE, 1, &out).message() ==
        "cannot remove the last voter, node 1");
  CHECK(ApplyConfChange(cs, raftpb::CONF_ADD_LEARNER, 0, &out).message() ==
        "node id 0 is reserved");
}

TEST_CASE("the active configuration follows the log, truncation undoes it", "[conf]") {
  ConfLog log;
  log.Reset(0, MakeConfState({1, 2, 3}));
  log.Append(5, MakeConfState({1, 2, 3}, {4}));
  log.Append(9, MakeConfState({1, 2, 3, 4}));
  CHECK(log.ActiveIndex() == 9);
  CHECK(Describe(log.At(7)) == "voters=[1,2,3] learners=[4]");
  CHECK(Describe(log.At(3)) == "voters=[1,2,3]");
  log.TruncateFrom(9);
  CHECK(Describe(log.Active()) == "voters=[1,2,3] learners=[4]");
  log.Compact(6);
  CHECK(log.ActiveIndex() == 5);
  CHECK_THROWS_AS(log.TruncateFrom(5), std::logic_error);  // below the committed base
  CHECK_THROWS_AS(log.Append(5, MakeConfState({1})), std::logic_error);
}
