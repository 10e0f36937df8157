#include "daemon/node/join.h"

#include <grpcpp/grpcpp.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <memory>
#include <optional>
#include <random>

#include "ca.grpc.pb.h"
#include "daemon/common/grpc_status.h"
#include "daemon/common/log.h"
#include "daemon/common/netutil.h"
#include "daemon/common/tls.h"

namespace skep::node {

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

// A join is asked again, after an answer was lost, until this long after it started.
constexpr auto kJoinPatience = 30s;
constexpr auto kJoinPause = 500ms;

// What went wrong reaching a manager, in an operator's words, from gRPC's own account of a call
// that did not reach it (gRPC gives these no code of their own).
std::string WhyUnreachable(const grpc::Status& st) {
  const std::string& m = st.error_message();
  auto has = [&](const char* s) { return m.find(s) != std::string::npos; };
  if (st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return "no answer (timed out): is the address right, and is port 2377 open?";
  }
  if (has("Connection refused")) return "connection refused: no manager listens there";
  if (has("No route to host") || has("Network is unreachable")) {
    return "no route to that address";
  }
  if (has("Ssl") || has("SSL") || has("TLS") || has("handshake") || has("certificate")) {
    return "the TLS handshake failed (" + m + ")";
  }
  if (has("Name or service not known") || has("DNS resolution failed")) {
    return "the host name does not resolve";
  }
  if (st.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
    return "the service there is not a skep manager";
  }
  return m;
}

// One join, on its executor.
struct Join : std::enable_shared_from_this<Join> {
  asio::any_io_executor executor;
  std::string manager_addr;
  api::JoinRequest req;
  api::NodeDescription description;
  std::string ca_digest;  // from the token
  std::function<void(const Status&, Joined)> done;
  Joined joined;
  std::unique_ptr<api::CA::Stub> ca;
  std::chrono::steady_clock::time_point give_up;
  std::unique_ptr<asio::steady_timer> pause;

  void Finish(const Status& st) {
    asio::post(executor,
               [self = shared_from_this(), st] { self->done(st, std::move(self->joined)); });
  }

  void FetchRootCA() {
    auto stub = std::shared_ptr<api::CA::Stub>(api::CA::NewStub(
        grpc::CreateCustomChannel(manager_addr, tls::UnverifiedCredentials(), tls::ChannelArgs())));
    auto ctx = std::make_shared<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + 10s);
    auto req = std::make_shared<api::GetRootCARequest>();
    auto resp = std::make_shared<api::GetRootCAResponse>();
    stub->async()->GetRootCACertificate(
        ctx.get(), req.get(), resp.get(),
        [self = shared_from_this(), stub, ctx, req, resp](grpc::Status st) {
          asio::post(self->executor, [self, st, resp] { self->GotRootCA(st, *resp); });
        });
  }

  void GotRootCA(const grpc::Status& st, const api::GetRootCAResponse& resp) {
    if (!st.ok()) {
      return Finish(Unavailable("cannot join through " + manager_addr + ": " +
                                (FromSkep(st) ? st.error_message() : WhyUnreachable(st))));
    }
    joined.ca_pem = resp.cert_pem();
    std::string digest;
    try {
      digest = pki::CertificateDigest(joined.ca_pem);
    } catch (const pki::PkiError&) {
      return Finish({Code::kPermissionDenied, "the manager at " + manager_addr +
                                                  " sent a root CA that is not a certificate"});
    }
    if (digest != ca_digest) {
      return Finish({Code::kPermissionDenied,
                     "the join token is for another swarm: the manager at " + manager_addr +
                         " holds a root CA whose digest does not match the token"});
    }
    try {
      joined.key = pki::CreateKeyAndRequest();
    } catch (const pki::PkiError& e) {
      return Finish(Internal(e.what()));
    }
    joined.raft_id = NewRaftId();
    ca = api::CA::NewStub(grpc::CreateCustomChannel(
        manager_addr, tls::JoinCredentials(joined.ca_pem), tls::ChannelArgs()));
    give_up = std::chrono::steady_clock::now() + kJoinPatience;
    AskToJoin();
  }

  // An answer can be lost after the swarm recorded the node (a timeout, a leader change): the
  // same request is asked again, and the manager recognises it by its raft id. A swarm that
  // lost quorum, or a refusal, ends the attempt at once.
  void AskToJoin() {
    auto ctx = std::make_shared<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + 12s);
    auto jr = std::make_shared<api::JoinNodeRequest>();
    jr->set_token(req.token());
    jr->set_csr_pem(joined.key.csr_pem);
    jr->set_advertise_addr(joined.addresses.advertise);
    jr->set_raft_id(joined.raft_id);
    *jr->mutable_description() = description;
    auto resp = std::make_shared<api::JoinNodeResponse>();
    ca->async()->JoinNode(ctx.get(), jr.get(), resp.get(),
                          [self = shared_from_this(), ctx, jr, resp](grpc::Status st) {
                            asio::post(self->executor,
                                       [self, st, resp] { self->Answered(st, *resp); });
                          });
  }

  void Answered(const grpc::Status& st, const api::JoinNodeResponse& resp) {
    if (st.ok()) {
      joined.answer = resp;
      return Finish(Status::Ok());
    }
    const Status why = FromGrpc(st);
    const bool transient = (st.error_code() == grpc::StatusCode::UNAVAILABLE ||
                            st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) &&
                           why.code() != Code::kNoQuorum;
    if (!transient || std::chrono::steady_clock::now() + 1s > give_up) {
      if (FromSkep(st) || st.error_message().empty() || !transient) return Finish(why);
      return Finish(
          {why.code(), "cannot join through " + manager_addr + ": " + WhyUnreachable(st)});
    }
    SKEP_LOG(info, "node", "joining through {} failed ({}); asking again", manager_addr,
             st.error_message());
    pause = std::make_unique<asio::steady_timer>(executor, kJoinPause);
    pause->async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec) self->AskToJoin();
    });
  }
};

}  // namespace

Status ChooseAddresses(const std::string& listen_text, const std::string& advertise_text,
                       const std::string& data_path_text, const std::string& toward,
                       Addresses* out) {
  std::string err;
  auto l = net::ResolveHostPort(listen_text.empty() ? "0.0.0.0" : listen_text,
                                kDefaultManagerPort, &err);
  if (!l) return InvalidArgument("--listen-addr: " + err);
  out->listen = l->ToString();
  std::optional<net::HostPort> a;
  if (!advertise_text.empty()) {
    a = net::ResolveHostPort(advertise_text, l->port, &err);
    if (!a) return InvalidArgument("--advertise-addr: " + err);
    if (a->host == "0.0.0.0" || a->host == "::") {
      return InvalidArgument("--advertise-addr: " + a->host +
                             " is not an address others can reach");
    }
  } else {
    std::optional<std::string> ip;
    if (l->host != "0.0.0.0" && l->host != "::") ip = l->host;
    if (!ip && !toward.empty()) ip = net::LocalAddressToward(toward);
    if (!ip) ip = net::DefaultRouteAddress();
    if (!ip) {
      return InvalidArgument(
          "could not choose an IP address to advertise (there is no default route); give one "
          "with --advertise-addr");
    }
    a = net::HostPort{*ip, l->port};
  }
  out->advertise = a->ToString();
  out->data_path = a->host;
  if (!data_path_text.empty()) {
    // An address or an interface, without a port: VXLAN's port is the swarm's.
    auto d = net::ResolveHostPort(data_path_text, 0, &err);
    if (!d) return InvalidArgument("--data-path-addr: " + err);
    if (d->port != 0) {
      return InvalidArgument("--data-path-addr: \"" + data_path_text +
                             "\" has a port; give an address or an interface only (the "
                             "VXLAN port is the swarm's --data-path-port)");
    }
    if (d->host == "0.0.0.0" || d->host == "::") {
      return InvalidArgument("--data-path-addr: " + d->host +
                             " is not an address others can reach");
    }
    if (d->host.find(':') != std::string::npos) {
      return InvalidArgument("--data-path-addr: " + d->host +
                             " is IPv6; overlay networks run over IPv4 only");
    }
    out->data_path = d->host;
  }
  return Status::Ok();
}

uint64_t NewRaftId() {
  std::random_device rd;
  std::uniform_int_distribution<uint64_t> dist(1, UINT64_MAX);
  return dist(rd);
}

void JoinSwarm(asio::any_io_executor executor, const api::JoinRequest& req,
               const api::NodeDescription& description,
               std::function<void(const Status&, Joined)> done) {
  auto j = std::make_shared<Join>();
  j->executor = executor;
  j->req = req;
  j->description = description;
  j->done = std::move(done);
  pki::ParsedToken token;
  try {
    token = pki::ParseJoinToken(req.token());
  } catch (const pki::PkiError& e) {
    return j->Finish(InvalidArgument(e.what()));
  }
  j->ca_digest = token.ca_digest;
  std::string err;
  auto remote = net::ParseHostPort(req.remote_addr(), kDefaultManagerPort, &err);
  if (!remote) return j->Finish(InvalidArgument(err));
  if (Status st = ChooseAddresses(req.listen_addr(), req.advertise_addr(),
                                  req.data_path_addr(), remote->host, &j->joined.addresses);
      !st.ok()) {
    return j->Finish(st);
  }
  j->manager_addr = remote->ToString();
  j->FetchRootCA();
}

}  // namespace skep::node
