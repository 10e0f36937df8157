// A manager cluster as a user drives it: real skepd processes in network namespaces
// (deploy/lab.sh), the skep CLI, kill -9, restarts and nftables cuts.
#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <sstream>

#include "ca.grpc.pb.h"
#include "control.grpc.pb.h"
#include "daemon/common/pki.h"
#include "daemon/common/tls.h"
#include "raft.grpc.pb.h"
#include "tests/integration/lab.h"

using namespace skep::testing;
using namespace std::chrono_literals;

namespace {

int Count(const std::map<std::string, Lab::Row>& rows, const std::string& manager_status) {
  int n = 0;
  for (const auto& [h, r] : rows)
    n += r.manager_status == manager_status;
  return n;
}

// The first line of a command's output, without its newline.
std::string Line(const std::string& out) {
  return out.substr(0, out.find('\n'));
}

bool AllReady(const std::map<std::string, Lab::Row>& rows, size_t n) {
  if (rows.size() != n) return false;
  for (const auto& [h, r] : rows) {
    if (r.status != "Ready") return false;
  }
  return true;
}

}  // namespace

TEST_CASE("managers and workers join a swarm and node ls shows their roles", "[integration]") {
  Lab lab("itform", 1, 3, 2);
  const auto rows = lab.Nodes("m1");
  REQUIRE(rows.size() == 5);
  CHECK(AllReady(rows, 5));
  CHECK(Count(rows, "Leader") == 1);
  CHECK(Count(rows, "Reachable") == 2);
  CHECK(rows.at("w1").manager_status.empty());
  CHECK(rows.at("w2").manager_status.empty());
  CHECK(rows.at("m1").self);
  CHECK_FALSE(rows.at("m2").self);
  // The engine version is skepd's own, the one `skep version` prints ("skep version V (...)").
  const std::string version = lab.Skep("m1", {"version"}).out;
  CHECK(rows.at("m1").version == version.substr(13, version.find(' ', 13) - 13));
  CHECK(rows.at("m1").version.rfind("0.1.0", 0) == 0);
  // The same table from another manager, marking that manager.
  const auto from_m3 = lab.Nodes("m3");
  REQUIRE(from_m3.size() == 5);
  CHECK(from_m3.at("m3").self);
  CHECK(from_m3.at("m1").id == rows.at("m1").id);
  // -q and filters.
  const Output q = lab.Skep("m1", {"node", "ls", "-q", "--filter", "role=worker"});
  CHECK(q.code == 0);
  CHECK(q.out == rows.at("w1").id + "\n" + rows.at("w2").id + "\n");
  CHECK(lab.Skep("m1", {"node", "ls", "--filter", "role=boss"}).err ==
        "skep: invalid filter 'role=boss': the role is manager or worker\n");
  // Workers cannot read cluster state.
  const Output w = lab.Skep("w1", {"node", "ls"});
  CHECK(w.code == 1);
  CHECK(w.err.find("This node is not a swarm manager") != std::string::npos);
  // Inspect by hostname, ID prefix and ID.
  const Output js = lab.Skep("m1", {"node", "inspect", "m2"});
  REQUIRE(js.code == 0);
  CHECK(js.out.find("\"Role\": \"manager\"") != std::string::npos);
  CHECK(js.out.find("\"Reachability\": \"reachable\"") != std::string::npos);
  CHECK(lab.Skep("m1", {"node", "inspect", rows.at("w2").id.substr(0, 6)}).code == 0);
  const Output pretty = lab.Skep("m1", {"node", "inspect", "--pretty", rows.at("m1").id});
  CHECK(pretty.out.find(" Leader:                 Yes") != std::string::npos);
  CHECK(lab.Skep("m1", {"node", "inspect", "nosuch"}).err == "skep: node nosuch not found\n");
  // "self" is the node the CLI talks to, as in Docker, on the leader and on a follower.
  for (const char* n : {"m1", "m2"}) {
    const Output self = lab.Skep(n, {"node", "inspect", "self"});
    INFO(self.text());
    CHECK(self.code == 0);
    CHECK(self.out.find("\"ID\": \"" + rows.at(n).id + "\"") != std::string::npos);
  }
}

TEST_CASE("nodes are promoted and demoted, never at the cost of quorum", "[integration]") {
  Lab lab("itrole", 2, 3, 2);
  Output o = lab.Skep("m1", {"node", "promote", "w1"});
  CHECK(o.out == "Node w1 promoted to a manager in the swarm.\n");
  CHECK(Eventually([&] { return lab.Nodes("m1").at("w1").manager_status == "Reachable"; }));
  // w1 now runs a manager: it can read the cluster state itself.
  CHECK(Eventually([&] { return lab.Skep("w1", {"node", "ls"}).code == 0; }));
  CHECK(lab.Skep("m1", {"node", "promote", "w1"}).out == "Node w1 is already a manager.\n");
  auto cert_role = [&](const std::string& node) {
    std::ifstream f(lab.CertDir(node) + "/node.crt");
    std::stringstream pem;
    pem << f.rdbuf();
    return skep::pki::ParseCertificate(pem.str()).role;
  };
  CHECK(cert_role("w1") == "swarm-manager");  // the certificate was renewed with the new role

  // Keep m3's manager certificate: after the demotion it must no longer open the control API.
  const std::string kept = lab.Root() + "/m3-manager-certs";
  REQUIRE(Run({"cp", "-r", lab.CertDir("m3"), kept}).code == 0);
  o = lab.Skep("m1", {"node", "demote", "m3"});
  CHECK(o.out == "Manager m3 demoted in the swarm.\n");
  CHECK(Eventually([&] {
    auto rows = lab.Nodes("m1");
    return rows.at("m3").manager_status.empty() && rows.at("m3").status == "Ready";
  }));
  CHECK(Eventually([&] {
    return lab.Skep("m3", {"node", "ls"}).err.find("not a swarm manager") != std::string::npos;
  }));
  CHECK(cert_role("m3") == "swarm-worker");
  {
    auto stub = skep::api::Control::NewStub(grpc::CreateCustomChannel(
        lab.Ip("m1") + ":2377", skep::tls::NodeCredentials(skep::tls::Files::In(kept)),
        skep::tls::ChannelArgs()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    skep::api::ListNodesResponse resp;
    const grpc::Status st = stub->ListNodes(&ctx, {}, &resp);
    CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  }
  // Nor may it speak raft, and a worker's certificate never could.
  auto raft_stream = [&](const std::string& certs) {
    auto stub = skep::raftpb::Raft::NewStub(
        grpc::CreateCustomChannel(lab.Ip("m1") + ":2377",
                                  skep::tls::NodeCredentials(skep::tls::Files::In(certs)),
                                  skep::tls::ChannelArgs()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    skep::raftpb::StreamAck ack;
    auto writer = stub->Stream(&ctx, &ack);
    writer->WritesDone();
    return writer->Finish();
  };
  grpc::Status st = raft_stream(kept);
  CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(st.error_message().find("is not a manager of this swarm any more") != std::string::npos);
  st = raft_stream(lab.CertDir("w2"));
  CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(st.error_message() == "raft traffic needs a manager certificate");

  // Managers are now m1, m2, w1. With w1 cut off, demoting m2 would leave m1 alone with an
  // unreachable w1: no quorum. It is refused, with the reason.
  lab.Cut("w1");
  CHECK(Eventually([&] {
    const std::string via = lab.Leader("m1") == "m2" ? "m2" : "m1";
    return lab.Nodes(via).at("w1").manager_status == "Unreachable";
  }));
  o = lab.Skep("m1", {"node", "demote", "m2"});
  CHECK(o.code == 1);
  CHECK(o.err.find("can't demote m2") != std::string::npos);
  CHECK(o.err.find("quorum") != std::string::npos);
  lab.Heal("w1");
  CHECK(Eventually([&] { return Count(lab.Nodes("m1"), "Reachable") == 2; }));

  // Demoting the leader itself hands leadership over first.
  const std::string leader = lab.Leader("m1");
  REQUIRE_FALSE(leader.empty());
  const std::string other = leader == "m1" ? "m2" : "m1";
  CHECK(lab.Skep(other, {"node", "demote", leader}).code == 0);
  CHECK(Eventually([&] {
    auto rows = lab.Nodes(other);
    return rows.size() == 5 && rows.at(leader).manager_status.empty() && Count(rows, "Leader") == 1;
  }));
}

TEST_CASE("availability and labels are updated, and bad input is refused", "[integration]") {
  Lab lab("itnode", 3, 1, 1);
  CHECK(lab.Skep("m1", {"node", "update", "--availability", "drain", "w1"}).out == "w1\n");
  CHECK(lab.Nodes("m1").at("w1").availability == "Drain");
  CHECK(lab.Skep("m1", {"node", "update", "--availability", "pause", "w1"}).code == 0);
  CHECK(lab.Nodes("m1").at("w1").availability == "Pause");
  CHECK(lab.Skep("m1", {"node", "update", "--label-add", "zone=a", "--label-add", "disk=ssd", "w1"})
            .code == 0);
  Output js = lab.Skep("m1", {"node", "inspect", "w1"});
  CHECK(js.out.find("\"zone\": \"a\"") != std::string::npos);
  CHECK(js.out.find("\"disk\": \"ssd\"") != std::string::npos);
  CHECK(lab.Skep("m1", {"node", "update", "--label-rm", "zone", "w1"}).code == 0);
  js = lab.Skep("m1", {"node", "inspect", "w1"});
  CHECK(js.out.find("\"zone\"") == std::string::npos);
  CHECK(lab.Skep("m1", {"node", "ls", "--filter", "node.label=disk=ssd", "-q"}).out ==
        lab.Nodes("m1").at("w1").id + "\n");

  Output bad = lab.Skep("m1", {"node", "update", "--label-rm", "nope", "w1"});
  CHECK(bad.code == 1);
  CHECK(bad.err == "skep: node w1 has no label 'nope'\n");
  bad = lab.Skep("m1", {"node", "update", "--availability", "sideways", "w1"});
  CHECK(bad.code == 2);
  CHECK(bad.err.find("invalid argument \"sideways\" for --availability") != std::string::npos);
  bad = lab.Skep("m1", {"node", "update", "--bogus", "w1"});
  CHECK(bad.code == 2);
  CHECK(bad.err == "skep: unknown flag: --bogus\nSee 'skep node update --help'.\n");
  bad = lab.Skep("m1", {"node", "update", "--availability", "active", "nosuch"});
  CHECK(bad.err == "skep: node nosuch not found\n");
  // The refused changes changed nothing.
  CHECK(lab.Nodes("m1").at("w1").availability == "Pause");
  // A worker that is up cannot be removed without --force; a manager not at all.
  bad = lab.Skep("m1", {"node", "rm", "w1"});
  CHECK(bad.err.find("is not down and can't be removed") != std::string::npos);
  bad = lab.Skep("m1", {"node", "rm", "--force", "m1"});
  CHECK(bad.err.find("demote it first") != std::string::npos);
  CHECK(lab.Skep("m1", {"swarm", "update", "--election-timeout", "50ms"}).err ==
        "skep: invalid election timeout 50ms: it must be between 150ms and 60s\n");
  CHECK(lab.Skep("m1", {"swarm", "update", "--heartbeat-period", "fast"}).code == 2);
  CHECK(lab.Skep("m1",
                 {"swarm", "update", "--heartbeat-period", "100ms", "--election-timeout", "800ms"})
            .out == "Swarm updated.\n");
  CHECK(lab.Skep("m1", {"swarm", "inspect"}).out.find("\"ElectionTimeout\": \"800ms\"") !=
        std::string::npos);
}

TEST_CASE("bad, rotated and foreign join tokens are refused with their own messages",
          "[integration]") {
  Lab lab("ittok", 4, 1, 2);
  const std::string m1 = lab.Ip("m1") + ":2377";
  REQUIRE(lab.Skep("w1", {"swarm", "leave"}).code == 0);
  REQUIRE(lab.Skep("w2", {"swarm", "leave"}).code == 0);

  Output o = lab.Skep("w1", {"swarm", "join", "--token", "SWMTKN-1-abc", m1});
  CHECK(o.code == 1);
  CHECK(o.err == "skep: invalid join token: it should look like SWMTKN-1-<digest>-<secret>\n");

  // w2 starts a swarm of its own; its token does not open m1's.
  REQUIRE(lab.Skep("w2", {"swarm", "init", "--advertise-addr", lab.Ip("w2")}).code == 0);
  const std::string foreign = Line(lab.Skep("w2", {"swarm", "join-token", "-q", "worker"}).out);
  REQUIRE(foreign.rfind("SWMTKN-1-", 0) == 0);
  o = lab.Skep("w1", {"swarm", "join", "--token", foreign, m1});
  CHECK(o.code == 1);
  CHECK(o.err.find("the join token is for another swarm") != std::string::npos);

  const std::string old = Line(lab.Skep("m1", {"swarm", "join-token", "-q", "worker"}).out);
  REQUIRE(old.rfind("SWMTKN-1-", 0) == 0);

  // No manager at the address: the error names it and the cause, not the local skepd.
  const std::string nowhere = lab.Ip("m1").substr(0, lab.Ip("m1").rfind('.')) + ".77:2377";
  o = lab.Skep("w1", {"swarm", "join", "--token", old, nowhere});
  CHECK(o.code == 1);
  CHECK(o.err.find("cannot join through " + nowhere) != std::string::npos);
  CHECK(o.err.find("is skepd running") == std::string::npos);
  o = lab.Skep("w1", {"swarm", "join", "--token", old, lab.Ip("w1") + ":2377"});
  CHECK(o.err.find("connection refused") != std::string::npos);

  o = lab.Skep("m1", {"swarm", "join-token", "--rotate", "worker"});
  CHECK(o.out.rfind("Successfully rotated worker join token.\n\nTo add a worker", 0) == 0);
  o = lab.Skep("w1", {"swarm", "join", "--token", old, m1});
  CHECK(o.code == 1);
  CHECK(o.err.find("the join token was rotated") != std::string::npos);

  // The right digest with a made-up secret.
  const std::string forged = old.substr(0, old.rfind('-') + 1) + std::string(25, 'z');
  o = lab.Skep("w1", {"swarm", "join", "--token", forged, m1});
  CHECK(o.err == "skep: invalid join token: this swarm never issued it\n");

  const std::string current = Line(lab.Skep("m1", {"swarm", "join-token", "-q", "worker"}).out);
  REQUIRE(current.rfind("SWMTKN-1-", 0) == 0);
  o = lab.Skep("w1", {"swarm", "join", "--token", current, m1});
  CHECK(o.out == "This node joined a swarm as a worker.\n");
  CHECK(Eventually([&] { return lab.Nodes("m1").count("w1") && lab.Nodes("m1").size() == 3; }));
  // Joining twice is refused.
  o = lab.Skep("w1", {"swarm", "join", "--token", current, m1});
  CHECK(o.err.find("already part of a swarm") != std::string::npos);

  // A join whose answer was lost is asked again with the same raft id: the swarm hands out the
  // identity it recorded the first time instead of creating a second node. Another node that
  // happens to pick a taken raft id is refused.
  std::ifstream ca(lab.CertDir("w1") + "/ca.crt");
  std::stringstream ca_pem;
  ca_pem << ca.rdbuf();
  auto stub = skep::api::CA::NewStub(grpc::CreateCustomChannel(
      m1, skep::tls::JoinCredentials(ca_pem.str()), skep::tls::ChannelArgs()));
  skep::api::JoinNodeRequest req;
  req.set_token(current);
  req.set_csr_pem(skep::pki::CreateKeyAndRequest().csr_pem);
  req.set_advertise_addr("10.99.0.7:2377");
  req.set_raft_id(777);
  req.mutable_description()->set_hostname("lost-answer");
  auto join = [&](skep::api::JoinNodeResponse* resp) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    return stub->JoinNode(&ctx, req, resp);
  };
  skep::api::JoinNodeResponse first, second, other;
  REQUIRE(join(&first).ok());
  REQUIRE(join(&second).ok());
  CHECK(second.node_id() == first.node_id());
  CHECK_FALSE(second.cert_pem().empty());
  req.mutable_description()->set_hostname("someone-else");
  grpc::Status st = join(&other);
  CHECK(st.error_code() == grpc::StatusCode::ALREADY_EXISTS);
  CHECK(st.error_message() == "raft id 777 is taken; join again");
  auto rows = lab.Nodes("m1");
  CHECK(rows.size() == 4);
  CHECK(rows.count("lost-answer") == 1);
  CHECK(rows.count("someone-else") == 0);
  CHECK(lab.Skep("m1", {"node", "rm", "--force", "lost-answer"}).code == 0);
}

TEST_CASE("a worker's certificate cannot call the control API", "[integration]") {
  Lab lab("itcert", 5, 1, 1);
  auto call = [&](std::shared_ptr<grpc::ChannelCredentials> creds) {
    auto stub = skep::api::Control::NewStub(
        grpc::CreateCustomChannel(lab.Ip("m1") + ":2377", creds, skep::tls::ChannelArgs()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    skep::api::ListNodesResponse resp;
    return stub->ListNodes(&ctx, {}, &resp);
  };
  grpc::Status st = call(skep::tls::NodeCredentials(skep::tls::Files::In(lab.CertDir("w1"))));
  CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(st.error_message().find("for managers only") != std::string::npos);
  std::ifstream ca(lab.CertDir("w1") + "/ca.crt");
  std::stringstream pem;
  pem << ca.rdbuf();
  st = call(skep::tls::JoinCredentials(pem.str()));
  CHECK(st.error_code() == grpc::StatusCode::UNAUTHENTICATED);
  st = call(skep::tls::NodeCredentials(skep::tls::Files::In(lab.CertDir("m1"))));
  CHECK(st.ok());
}

TEST_CASE("killing the leader elects a new one and writes go on", "[integration]") {
  Lab lab("itfail", 6, 3, 1);
  const std::string old = lab.Leader("m1");
  REQUIRE_FALSE(old.empty());
  const std::string via = old == "m2" ? "m3" : "m2";
  lab.Kill(old);
  std::string next;
  CHECK(Eventually([&] {
    next = lab.Leader(via);
    return !next.empty() && next != old;
  }));
  const Output write = lab.Skep(via, {"node", "update", "--label-add", "after=failover", "w1"});
  INFO(write.err);
  CHECK(write.code == 0);
  lab.Start(old);
  // The first command on the restarted manager waits for it to hear from the leader rather
  // than calling the others unreachable (and advising --force-new-cluster).
  const Output first = lab.Skep(old, {"node", "ls"});
  INFO(first.text());
  CHECK(first.code == 0);
  CHECK(first.err.find("force-new-cluster") == std::string::npos);
  CHECK(Eventually([&] {
    auto rows = lab.Nodes(via);
    return rows.size() == 4 && rows.at(old).manager_status == "Reachable" &&
           rows.at(old).status == "Ready";
  }));
  // The restarted manager has the write made while it was down.
  Output seen;
  const bool caught_up = Eventually([&] {
    seen = lab.Skep(old, {"node", "inspect", "w1"});
    return seen.out.find("\"after\": \"failover\"") != std::string::npos;
  });
  INFO(seen.text() << lab.Logs(15));
  CHECK(caught_up);
}

TEST_CASE("restarting every node keeps the swarm's state", "[integration]") {
  Lab lab("itrestart", 7, 3, 2);
  REQUIRE(lab.Skep("m1", {"node", "update", "--label-add", "keep=me", "w2"}).code == 0);
  REQUIRE(lab.Skep("m1", {"node", "update", "--availability", "drain", "w1"}).code == 0);
  const auto before = lab.Nodes("m1");
  // SIGTERM is a clean shutdown: skepd says so and exits.
  lab.Stop("m2");
  std::ifstream log(lab.Root() + "/m2/skepd.log");
  std::stringstream text;
  text << log.rdbuf();
  CHECK(text.str().find("msg=\"stopped\"") != std::string::npos);
  for (const char* n : {"m1", "m3", "w1", "w2"})
    lab.Kill(n);
  for (const char* n : {"m1", "m2", "m3", "w1", "w2"})
    lab.Start(n);
  CHECK(Eventually(
      [&] {
        auto rows = lab.Nodes("m2");
        return AllReady(rows, 5) && Count(rows, "Leader") == 1 && Count(rows, "Reachable") == 2;
      },
      40s));
  const auto after = lab.Nodes("m2");
  for (const auto& [host, r] : before) {
    REQUIRE(after.count(host));
    CHECK(after.at(host).id == r.id);
  }
  CHECK(after.at("w1").availability == "Drain");
  CHECK(lab.Skep("m3", {"node", "inspect", "w2"}).out.find("\"keep\": \"me\"") !=
        std::string::npos);
}

TEST_CASE("without a quorum commands fail fast, and --force-new-cluster recovers",
          "[integration]") {
  Lab lab("itquorum", 8, 3, 1);
  lab.Cut("m2");
  lab.Cut("m3");
  Output o;
  // Once the cut peers have been silent for two election timeouts, they count as unreachable.
  CHECK(Eventually([&] {
    o = lab.Skep("m1", {"node", "ls"});
    return o.code == 1 && o.err.find("2 of 3 managers are unreachable") != std::string::npos;
  }));
  CHECK(o.err.find("does not have a leader") != std::string::npos);
  CHECK(o.err.find("skep swarm init --force-new-cluster") != std::string::npos);
  for (const auto& cmd :
       std::vector<std::vector<std::string>>{{"node", "update", "--label-add", "a=b", "w1"},
                                             {"swarm", "join-token", "worker"},
                                             {"node", "promote", "w1"}}) {
    // Refused with the reason (not left to time out): the managers are known to be gone.
    o = lab.Skep("m1", cmd);
    CHECK(o.code == 1);
    CHECK(o.err.find("does not have a leader") != std::string::npos);
    CHECK(o.err.find("2 of 3 managers are unreachable") != std::string::npos);
    CHECK(o.err.find("did not answer in time") == std::string::npos);
  }

  o = lab.Skep("m1", {"swarm", "init", "--force-new-cluster"});
  INFO(o.text());
  REQUIRE(o.code == 0);
  CHECK(o.out.rfind("Swarm initialized: current node (", 0) == 0);
  CHECK(Eventually([&] {
    auto rows = lab.Nodes("m1");
    return rows.size() == 4 && rows.at("m1").manager_status == "Leader" &&
           rows.at("m2").manager_status.empty() && rows.at("m3").manager_status.empty();
  }));
  CHECK(lab.Skep("m1", {"node", "update", "--label-add", "recovered=yes", "w1"}).code == 0);

  // The old managers leave and join the recovered swarm again (as new nodes); their old
  // entries are removed.
  const auto before = lab.Nodes("m1");
  lab.Heal("m2");
  lab.Heal("m3");
  o = lab.Skep("m1", {"swarm", "join-token", "-q", "manager"});
  INFO(o.text());
  REQUIRE(o.code == 0);
  const std::string token = Line(o.out);
  REQUIRE(token.rfind("SWMTKN-1-", 0) == 0);
  for (const char* n : {"m2", "m3"}) {
    CHECK(lab.Skep(n, {"swarm", "leave", "--force"}).code == 0);
    o = lab.Skep(n, {"swarm", "join", "--token", token, "--advertise-addr", lab.Ip(n),
                     lab.Ip("m1") + ":2377"});
    CHECK(o.out == "This node joined a swarm as a manager.\n");
  }
  CHECK(lab.Skep("m1", {"node", "rm", "--force", before.at("m2").id, before.at("m3").id}).code ==
        0);
  const bool rejoined = Eventually([&] { return Count(lab.Nodes("m1"), "Reachable") == 2; });
  if (!rejoined) {
    INFO(lab.Skep("m1", {"node", "ls"}).text() << lab.Logs());
    CHECK(rejoined);
  }
}
