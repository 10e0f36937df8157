// Writes the binary seeds of the fuzz targets: serialized raft and dispatcher messages, DNS
// queries and replies, gossip packets. The text seeds (tokens, constraints, flag values,
// registry documents) are written by hand. Run it from the fuzz build when a wire format
// changes, and check in what it writes:
//   ninja -C build-fuzz fuzz_seeds && build-fuzz/fuzz/fuzz_seeds fuzz/corpus
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

#include "dispatcher.pb.h"
#include "overlay/dns/message.h"
#include "overlay/gossip/keyring.h"
#include "overlay/gossip/message.h"
#include "overlay/gossip/table.h"
#include "skep/proto/raft.pb.h"

namespace {

namespace fs = std::filesystem;
namespace api = skep::api;
namespace dns = skep::dns;
namespace gossip = skep::gossip;
namespace raftpb = skep::raftpb;

fs::path root;

void Write(const std::string& target, const std::string& name, const std::string& bytes) {
  const fs::path dir = root / target;
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << bytes;
}

// The cluster of fuzz/raft_message.cc: voters 1-3, 1 leading at term 2 with entries up to 5
// committed, 3 a pre-candidate at term 2, 4 an empty node.
raftpb::Message Raft(raftpb::MessageType type, uint64_t from, uint64_t to, uint64_t term) {
  raftpb::Message m;
  m.set_type(type);
  m.set_from(from);
  m.set_to(to);
  m.set_term(term);
  return m;
}

raftpb::Entry Entry(uint64_t index, uint64_t term, const std::string& data) {
  raftpb::Entry e;
  e.set_index(index);
  e.set_term(term);
  e.set_data(data);
  return e;
}

void RaftSeeds() {
  auto put = [](const std::string& name, const raftpb::Message& m) {
    Write("raft_message", name, m.SerializeAsString());
  };
  auto heartbeat = Raft(raftpb::MSG_HEARTBEAT, 1, 2, 2);
  heartbeat.set_commit(5);
  put("heartbeat_to_follower", heartbeat);

  auto append = Raft(raftpb::MSG_APPEND, 1, 2, 2);
  append.set_index(5);
  append.set_log_term(2);
  *append.add_entries() = Entry(6, 2, "d");
  *append.add_entries() = Entry(7, 2, "e");
  append.set_commit(6);
  put("append_to_follower", append);

  auto conflicting = Raft(raftpb::MSG_APPEND, 3, 2, 3);
  conflicting.set_index(4);
  conflicting.set_log_term(2);
  *conflicting.add_entries() = Entry(5, 3, "x");
  conflicting.set_commit(5);
  put("append_from_new_leader", conflicting);

  raftpb::ConfChange cc;
  cc.set_type(raftpb::CONF_ADD_LEARNER);
  cc.set_node_id(4);
  cc.set_context("10.0.0.4:2377");
  for (uint64_t id : {1, 2, 3})
    cc.mutable_result()->add_voters(id);
  cc.mutable_result()->add_learners(4);
  auto conf = Raft(raftpb::MSG_APPEND, 1, 2, 2);
  conf.set_index(5);
  conf.set_log_term(2);
  raftpb::Entry ce = Entry(6, 2, cc.SerializeAsString());
  ce.set_type(raftpb::ENTRY_CONF_CHANGE);
  *conf.add_entries() = ce;
  conf.set_commit(6);
  put("append_conf_change", conf);

  auto ack = Raft(raftpb::MSG_APPEND_RESP, 2, 1, 2);
  ack.set_index(5);
  put("append_ack_to_leader", ack);

  auto reject = Raft(raftpb::MSG_APPEND_RESP, 3, 1, 2);
  reject.set_index(5);
  reject.set_reject(true);
  reject.set_reject_hint(2);
  reject.set_log_term(1);
  put("append_reject_to_leader", reject);

  auto vote = Raft(raftpb::MSG_VOTE, 3, 1, 3);
  vote.set_index(5);
  vote.set_log_term(2);
  put("vote_request_to_leader", vote);

  auto transfer_vote = Raft(raftpb::MSG_VOTE, 3, 2, 3);
  transfer_vote.set_index(5);
  transfer_vote.set_log_term(2);
  transfer_vote.set_transfer(true);
  put("transfer_vote_to_follower", transfer_vote);

  auto prevote = Raft(raftpb::MSG_PRE_VOTE, 3, 2, 3);
  prevote.set_index(5);
  prevote.set_log_term(2);
  put("prevote_to_follower", prevote);

  put("prevote_granted_to_candidate", Raft(raftpb::MSG_PRE_VOTE_RESP, 2, 3, 3));
  put("vote_granted_to_candidate", Raft(raftpb::MSG_VOTE_RESP, 2, 3, 3));

  auto hb_resp = Raft(raftpb::MSG_HEARTBEAT_RESP, 2, 1, 2);
  hb_resp.set_read_seq(1);
  put("heartbeat_ack_to_leader", hb_resp);

  auto snapshot = Raft(raftpb::MSG_SNAPSHOT, 1, 4, 2);
  snapshot.mutable_snapshot()->set_index(5);
  snapshot.mutable_snapshot()->set_term(2);
  for (uint64_t id : {1, 2, 3})
    snapshot.mutable_snapshot()->mutable_conf_state()->add_voters(id);
  snapshot.mutable_snapshot()->mutable_conf_state()->add_learners(4);
  snapshot.set_index(5);
  snapshot.set_snapshot_size(10);
  snapshot.set_snapshot_chunk("0123456789");
  put("snapshot_to_new_node", snapshot);

  auto first_chunk = snapshot;
  first_chunk.set_snapshot_chunk("01234");
  put("snapshot_first_chunk", first_chunk);

  auto snap_resp = Raft(raftpb::MSG_SNAPSHOT_RESP, 4, 1, 2);
  snap_resp.set_index(5);
  snap_resp.set_snapshot_offset(5);
  put("snapshot_ack_to_leader", snap_resp);

  put("timeout_now_to_follower", Raft(raftpb::MSG_TIMEOUT_NOW, 1, 2, 2));

  auto read = Raft(raftpb::MSG_READ_INDEX, 2, 1, 2);
  read.set_context("read-1");
  put("read_index_to_leader", read);

  auto read_resp = Raft(raftpb::MSG_READ_INDEX_RESP, 1, 2, 2);
  read_resp.set_index(5);
  read_resp.set_context("read-1");
  put("read_index_answer_to_follower", read_resp);
}

void DispatcherSeeds() {
  api::UpdateTaskStatusRequest update;
  update.set_session_id("session-1");
  auto* failed = update.add_updates();
  failed->set_task_id("t2");
  failed->mutable_status()->set_state(api::TASK_FAILED);
  failed->mutable_status()->set_timestamp(1'700'000'000'000'000'000);
  failed->mutable_status()->set_err("task: non-zero exit (1)");
  failed->mutable_status()->set_exit_code(1);
  auto* running = update.add_updates();
  running->set_task_id("t1");
  running->mutable_status()->set_state(api::TASK_RUNNING);
  running->mutable_status()->set_timestamp(1'699'999'990'000'000'000);
  running->mutable_status()->set_health(api::HEALTH_HEALTHY);
  running->mutable_status()->set_container_id("c0ffee");
  running->mutable_status()->set_pid(4242);
  running->mutable_status()->set_addr("172.18.0.5");
  auto* complete = update.add_updates();
  complete->set_task_id("g1");
  complete->mutable_status()->set_state(api::TASK_COMPLETE);
  complete->mutable_status()->set_timestamp(1'699'999'999'000'000'000);
  Write("dispatcher", "update_task_status", update.SerializeAsString());

  api::UpdateTaskStatusRequest starting;
  auto* s = starting.add_updates();
  s->set_task_id("t5");
  s->mutable_status()->set_state(api::TASK_STARTING);
  s->mutable_status()->set_health(api::HEALTH_STARTING);
  Write("dispatcher", "update_task_starting", starting.SerializeAsString());

  api::SessionRequest session;
  auto* d = session.mutable_description();
  d->set_hostname("worker-1");
  d->set_engine_version("0.1.0");
  d->set_os("linux");
  d->set_arch("aarch64");
  (*d->mutable_engine_labels())["rack"] = "r1";
  d->set_nano_cpus(4'000'000'000);
  d->set_memory_bytes(int64_t{4} << 30);
  Write("dispatcher", "session", session.SerializeAsString());

  api::HeartbeatRequest heartbeat;
  heartbeat.set_session_id("session-1");
  Write("dispatcher", "heartbeat", heartbeat.SerializeAsString());
}

void DnsSeeds() {
  Write("dns", "web_a", dns::EncodeQuery(1, "web", dns::kTypeA));
  Write("dns", "tasks_web_a_edns", dns::EncodeQuery(2, "Tasks.Web.", dns::kTypeA, dns::Edns{1232}));
  Write("dns", "tasks_big_any", dns::EncodeQuery(3, "tasks.big", dns::kTypeAny));
  Write("dns", "web_aaaa", dns::EncodeQuery(4, "web", dns::kTypeAaaa));
  Write("dns", "web_chaos",
        dns::EncodeQuery(5, "web", dns::kTypeA, std::nullopt, dns::kClassChaos));
  Write("dns", "edns_version_1", dns::EncodeQuery(6, "web", dns::kTypeA, dns::Edns{4096, 1, true}));
  Write("dns", "forwarded_example_com", dns::EncodeQuery(7, "example.com", dns::kTypeA));
  // An upstream's answer to the fuzz target's query for "web" A (id 0x1234).
  const auto q =
      std::get<dns::Query>(dns::ParseQuery(dns::EncodeQuery(0x1234, "web", dns::kTypeA)));
  dns::Response r;
  r.a = {{10, 0, 1, 2}, {10, 0, 1, 3}};
  Write("dns", "upstream_reply", dns::EncodeResponse(q, r, dns::kClassicUdpSize));
}

void GossipSeeds() {
  auto put = [](const std::string& name, const gossip::Message& m) {
    Write("gossip", name, gossip::Encode(m));
  };
  const std::string self = "10.0.0.1:7946", n2 = "10.0.0.2:7946";
  put("ping", {n2, self, gossip::Ping{7, "self"}, {}});
  put("indirect_ping", {n2, self, gossip::IndirectPing{8, "n3", "10.0.0.3:7946"}, {}});
  put("ack", {n2, self, gossip::Ack{7}, {}});
  put("nack", {n2, self, gossip::Nack{8}, {}});
  put("suspect_self", {n2, self, gossip::Suspect{0, "self", "n2"}, {}});
  put("dead_n3", {n2, self, gossip::Dead{1, "n3", "n2"}, {}});

  const std::vector<gossip::TableMessage> tables{
      gossip::NetworkEvent{"net1", "n2", 4, false},
      gossip::TableEntry{"net1", "task-1", "10.0.1.2", "n2", 5, false, 0},
      gossip::TableEntry{"net1", "task-2", "", "n2", 6, true, 0},
  };
  const std::string state = gossip::EncodeTableMessages(tables);
  Write("gossip", "table_messages", state);
  put("push_pull_join",
      {n2,
       self,
       gossip::PushPull{{{"n2", n2, 3, gossip::MemberState::kAlive},
                         {"n3", "10.0.0.3:7946", 1, gossip::MemberState::kSuspect},
                         {"n4", "10.0.0.4:7946", 2, gossip::MemberState::kLeft}},
                        true,
                        false,
                        state},
       {}});
  put("gossip_broadcasts", {n2,
                            self,
                            gossip::Gossip{},
                            {gossip::Alive{4, "n2", n2}, gossip::Suspect{1, "n3", "n2"},
                             gossip::UserBroadcast{"net1", state}}});
  put("user_data", {n2, self, gossip::UserData{"hello"}, {gossip::Dead{2, "n4", "n4"}}});

  // A packet sealed with the fuzz target's primary key: the one input that authenticates.
  const gossip::Keyring keyring({std::string(gossip::kKeyBytes, 'k')});
  Write("gossip", "sealed_ping",
        keyring.Seal(gossip::Encode({n2, self, gossip::Ping{9, "self"}, {}})));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: fuzz_seeds CORPUS_DIR (fuzz/corpus)\n";
    return 2;
  }
  root = argv[1];
  RaftSeeds();
  DispatcherSeeds();
  DnsSeeds();
  GossipSeeds();
  return 0;
}
