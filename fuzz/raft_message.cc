// Raft messages as they arrive from a peer: the input is the bytes of one raftpb::Message,
// parsed as the transport's gRPC stream parses it. RaftService (daemon/manager/raft_transport.cc)
// steps whatever parses into the node: it checks the sender's certificate and that a known
// peer speaks for its own raft id, never the message itself, so nothing is filtered here
// either. The core's own Validate is the only guard, and it must be enough: no input may make
// a node throw (from Step, Tick, GetReady or Advance) or break its invariants
// (Node::CheckInvariants, after every Ready).
//
// The message is offered to every node of a small cluster in memory, each in another role so
// that `to` picks the state it meets (the cluster is set up with tests/raft/harness.h). Then
// the nodes run as their drivers would: every Ready persisted and advanced, every message
// delivered, a refused one dropped (RaftNode::Step ignores the status too; after a forged
// message an honest node's answer may well be refused), and a few ticks let timeouts fire.
// Safety across nodes is not checked: raft trusts its peers, so one forged message can make
// honest nodes disagree, which is no crash.
#include <google/protobuf/stubs/logging.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "tests/raft/harness.h"

namespace {

using skep::raft::testing::Cluster;

constexpr skep::raft::NodeId kNodes = 4;

// Voters 1, 2 and 3: 1 leads at term 2 with entries up to 5 committed everywhere, 2 follows it,
// 3 is cut off long enough to campaign (a pre-candidate when the message comes). 4 is an empty
// node that has not been added to the group yet.
std::unique_ptr<Cluster> MakeCluster() {
  auto c = std::make_unique<Cluster>(3);
  c->set_throw_on_violation(false);
  c->AddEmptyNode(4);
  c->Elect(1);
  c->Propose(1, "a");
  c->Propose(1, "b");
  c->Propose(1, "c");
  c->Isolate(3);
  (void)c->node(3).Campaign();
  c->Stabilize();
  c->Heal();
  return c;
}

// Processes Readies and delivers messages until the cluster is quiet (or a bound is reached:
// a quiet cluster is not a property forged input must keep). A node's invariants must hold
// after every Ready; a violation aborts.
void Run(Cluster& c) {
  std::vector<skep::raftpb::Message> queue;
  for (int round = 0; round < 1000; ++round) {
    bool moved = false;
    for (skep::raft::NodeId id = 1; id <= kNodes; ++id) {
      skep::raft::Node& node = c.node(id);
      while (node.HasReady()) {
        moved = true;
        skep::raft::Ready rd = node.GetReady();
        queue.insert(queue.end(), rd.messages.begin(), rd.messages.end());
        c.storage(id).Save(rd.hard_state ? &*rd.hard_state : nullptr, rd.entries,
                           rd.snapshot.get());
        queue.insert(queue.end(), rd.persisted_messages.begin(), rd.persisted_messages.end());
        node.Advance(rd);
        if (const auto broken = node.CheckInvariants(); !broken.empty()) {
          std::fprintf(stderr, "node %llu: %s\n", static_cast<unsigned long long>(id),
                       broken.front().c_str());
          std::abort();
        }
      }
    }
    if (queue.empty() && !moved) return;
    const std::vector<skep::raftpb::Message> batch = std::move(queue);
    queue.clear();
    for (const auto& m : batch) {
      if (m.to() >= 1 && m.to() <= kNodes) (void)c.node(m.to()).Step(m);
    }
  }
}

}  // namespace

// Strings that are not UTF-8 are refused by the parser, which logs each one: not worth the
// noise at a million inputs a minute.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  skep::raftpb::Message m;
  // A message that does not parse ends the stream; nothing is stepped.
  if (!m.ParseFromArray(data, static_cast<int>(size))) return 0;
  std::unique_ptr<Cluster> c = MakeCluster();
  for (skep::raft::NodeId id = 1; id <= kNodes; ++id) {
    // A refused message changes nothing; the driver drops it too.
    (void)c->node(id).Step(m);
    Run(*c);
  }
  for (int tick = 0; tick < 3; ++tick) {
    for (skep::raft::NodeId id = 1; id <= kNodes; ++id)
      c->node(id).Tick();
    Run(*c);
  }
  return 0;
}
