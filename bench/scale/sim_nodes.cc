#include "bench/scale/sim_nodes.h"

#include <grpcpp/grpcpp.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <cstdio>
#include <cstdlib>
#include <latch>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include "ca.grpc.pb.h"
#include "daemon/common/clock.h"
#include "daemon/common/grpc_status.h"
#include "daemon/common/pki.h"
#include "daemon/common/tls.h"
#include "dispatcher.grpc.pb.h"

namespace skep::bench {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

bool Terminal(api::TaskState s) {
  return s > api::TASK_RUNNING;
}

}  // namespace

struct SimNodes::Io {
  asio::io_context context;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard{
      asio::make_work_guard(context)};
  std::vector<std::thread> threads;
  // gRPC calls started and not yet completed back on their node's strand.
  std::atomic<int64_t> in_flight{0};
};

// One simulated node. Everything below `strand` belongs to it.
struct SimNodes::Node {
  Node(SimNodes* owner, int index, asio::io_context& io)
      : owner(owner),
        index(index),
        strand(asio::make_strand(io)),
        heartbeat_timer(strand),
        flush_timer(strand),
        connect_timer(strand) {}

  template <class F>
  void Post(F&& f) {
    asio::post(strand, std::forward<F>(f));
  }

  void Connect();
  void OnMessage(uint64_t generation, const api::SessionMessage& msg);
  void OnEnded(uint64_t generation, const grpc::Status& status);
  void Heartbeat(uint64_t generation);
  void Upsert(const api::Task& task);
  void Forget(const std::string& id);
  void SetStatus(SimTask& task, api::TaskState state, const char* message);
  void Flush();
  void Stop();
  std::string NextManager();

  SimNodes* owner;
  const int index;
  std::string hostname;
  bool traced = false;  // SKEP_SCALE_TRACE names it: its sessions' ends go to stderr
  std::string node_id;
  std::string key_pem, cert_pem;
  std::shared_ptr<grpc::ChannelCredentials> credentials;

  asio::strand<asio::io_context::executor_type> strand;
  asio::steady_timer heartbeat_timer;
  asio::steady_timer flush_timer;
  asio::steady_timer connect_timer;

  bool stopping = false;
  std::vector<std::string> managers;
  size_t next_manager = 0;
  std::string leader_hint;
  std::string stub_addr;
  std::shared_ptr<api::Dispatcher::Stub> stub;
  // Invariant: generation changes whenever a session starts or ends, so that completions of
  // an earlier session's calls are recognised and ignored.
  uint64_t generation = 0;
  std::shared_ptr<SessionCall> session;
  std::string session_manager;  // set once the session's first message arrived
  std::string session_id;
  Clock::time_point session_opened;
  std::chrono::milliseconds interval = 500ms;
  std::chrono::milliseconds backoff = 100ms;
  std::minstd_rand jitter{static_cast<std::minstd_rand::result_type>(index + 1)};

  std::unordered_map<std::string, SimTask> tasks;
  std::map<std::string, api::TaskStatus> unreported;  // task ID -> the latest status not taken
  bool flushing = false;
  // The unary calls in flight, to cancel them when stopping.
  std::weak_ptr<grpc::ClientContext> heartbeat_call;
  std::weak_ptr<grpc::ClientContext> flush_call;
};

// A session stream on gRPC's callback API; its messages and its end go to the node's strand.
class SimNodes::SessionCall final : public grpc::ClientReadReactor<api::SessionMessage> {
 public:
  SessionCall(Node* node, uint64_t generation) : node_(node), generation_(generation) {}

  static std::shared_ptr<SessionCall> Start(Node* node, uint64_t generation,
                                            api::Dispatcher::Stub* stub,
                                            const api::NodeDescription& description) {
    auto call = std::make_shared<SessionCall>(node, generation);
    call->self_ = call;  // until OnDone
    *call->request_.mutable_description() = description;
    ++node->owner->io_->in_flight;
    stub->async()->Session(&call->context_, &call->request_, call.get());
    call->StartRead(&call->message_);
    call->StartCall();
    return call;
  }

  void Cancel() { context_.TryCancel(); }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows
    auto msg = std::make_shared<api::SessionMessage>();
    msg->Swap(&message_);
    node_->Post([node = node_, g = generation_, msg] { node->OnMessage(g, *msg); });
    StartRead(&message_);
  }

  void OnDone(const grpc::Status& status) override {
    node_->Post([node = node_, g = generation_, status, self = std::move(self_)] {
      node->OnEnded(g, status);
      --node->owner->io_->in_flight;
    });
  }

 private:
  Node* node_;
  uint64_t generation_;
  grpc::ClientContext context_;
  api::SessionRequest request_;
  api::SessionMessage message_;
  std::shared_ptr<SessionCall> self_;
};

// ---- the agent ---------------------------------------------------------------------------------

std::string SimNodes::Node::NextManager() {
  if (!leader_hint.empty()) {
    std::string addr = std::move(leader_hint);
    leader_hint.clear();
    return addr;
  }
  return managers[next_manager++ % managers.size()];
}

void SimNodes::Node::Connect() {
  if (stopping) return;
  const std::string addr = NextManager();
  if (addr != stub_addr) {
    grpc::ChannelArguments args = tls::ChannelArgs();
    if (owner->options_.connect_timeout_ms > 0) {
      args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, owner->options_.connect_timeout_ms);
    }
    stub = api::Dispatcher::NewStub(grpc::CreateCustomChannel(addr, credentials, args));
    stub_addr = addr;
  }
  ++generation;
  session_manager.clear();
  session_id.clear();
  api::NodeDescription d;
  d.set_hostname(hostname);
  d.set_engine_version("sim");
  d.set_os("linux");
  d.set_arch("x86_64");
  d.set_nano_cpus(owner->options_.nano_cpus);
  d.set_memory_bytes(owner->options_.memory_bytes);
  session = SessionCall::Start(this, generation, stub.get(), d);
}

void SimNodes::Node::OnMessage(uint64_t g, const api::SessionMessage& msg) {
  if (g != generation || stopping) return;
  auto& c = owner->counters_;
  const bool first = session_manager.empty();
  if (first) {
    if (traced) {
      std::fprintf(stderr, "scale: trace %s: session with %s\n", hostname.c_str(),
                   stub_addr.c_str());
    }
    session_manager = stub_addr;
    session_opened = Clock::now();
    backoff = 100ms;
    ++c.sessions;
    ++c.sessions_opened;
    if (msg.heartbeat_period_ms() > 0) {
      interval = std::chrono::milliseconds(msg.heartbeat_period_ms()) / 2;
      c.heartbeat_period_ms = msg.heartbeat_period_ms();
    }
  }
  session_id = msg.session_id();
  if (msg.managers_size() > 0) {
    managers.clear();
    for (const auto& m : msg.managers())
      managers.push_back(m.addr());
  }
  if (msg.tasks_known()) {
    if (!msg.incremental()) {
      // The full list: a task missing from it is not this node's any more.
      std::vector<std::string> gone;
      std::unordered_map<std::string, bool> listed;
      for (const auto& t : msg.tasks())
        listed.emplace(t.id(), true);
      for (const auto& [id, t] : tasks) {
        if (!listed.count(id)) gone.push_back(id);
      }
      for (const auto& id : gone) {
        ++c.dropped;
        Forget(id);
      }
    }
    for (const auto& t : msg.tasks()) {
      ++c.tasks_received;
      c.task_bytes_received += static_cast<int64_t>(t.ByteSizeLong());
      Upsert(t);
    }
    for (const auto& id : msg.removed_task_ids())
      Forget(id);
  }
  if (first) {
    // The agent's heartbeats start with the session.
    Heartbeat(generation);
  }
  Flush();  // a new session: what was not taken yet goes again
}

void SimNodes::Node::OnEnded(uint64_t g, const grpc::Status& status) {
  if (g != generation) return;
  auto& c = owner->counters_;
  session.reset();
  heartbeat_timer.cancel();
  if (traced) {
    std::fprintf(stderr, "scale: trace %s: session with %s ended: %d %s\n", hostname.c_str(),
                 stub_addr.c_str(), static_cast<int>(status.error_code()),
                 status.error_message().c_str());
  }
  if (!session_manager.empty()) {
    --c.sessions;
    ++c.sessions_ended;
  } else {
    ++c.session_refusals;
  }
  ++generation;
  session_manager.clear();
  session_id.clear();
  if (stopping) return;
  {
    std::lock_guard lock(owner->reasons_mu_);
    auto& r = owner->reasons_[status.error_code()];
    ++r.first;
    r.second = status.error_message();
  }
  std::chrono::milliseconds wait = backoff;
  if (const Status why = FromGrpc(status); !why.leader_addr().empty()) {
    // That manager is not the leader; this one is. Not in a tight loop if the hints go round.
    leader_hint = why.leader_addr();
    wait = 20ms;
  } else if (status.error_code() == grpc::StatusCode::NOT_FOUND) {
    std::fprintf(stderr, "scale: %s: the swarm does not know this node: %s\n", hostname.c_str(),
                 status.error_message().c_str());
    wait = 5s;
  } else {
    // As the agent: half to one and a half times the backoff.
    wait = std::chrono::duration_cast<std::chrono::milliseconds>(
        backoff * std::uniform_real_distribution<double>(0.5, 1.5)(jitter));
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, 2s);
  }
  connect_timer.expires_after(wait);
  connect_timer.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) Connect();
  });
}

void SimNodes::Node::Heartbeat(uint64_t g) {
  if (g != generation || stopping || session_id.empty()) return;
  struct Call {
    grpc::ClientContext context;
    api::HeartbeatRequest request;
    api::HeartbeatResponse response;
    std::shared_ptr<api::Dispatcher::Stub> stub;
  };
  auto call = std::make_shared<Call>();
  call->context.set_deadline(std::chrono::system_clock::now() + interval * 4);  // 2 periods
  call->request.set_session_id(session_id);
  call->stub = stub;
  heartbeat_call = std::shared_ptr<grpc::ClientContext>(call, &call->context);
  ++owner->io_->in_flight;
  call->stub->async()->Heartbeat(
      &call->context, &call->request, &call->response, [this, g, call](grpc::Status st) {
        Post([this, g, call, st] {
          --owner->io_->in_flight;
          auto& c = owner->counters_;
          ++c.heartbeats;
          if (g != generation || stopping) return;
          if (!st.ok()) {
            // As the agent: a missed heartbeat ends the session, and a new one is opened.
            ++c.heartbeat_failures;
            if (session) session->Cancel();
            return;
          }
          if (call->response.period_ms() > 0) {
            interval = std::chrono::milliseconds(call->response.period_ms()) / 2;
            c.heartbeat_period_ms = call->response.period_ms();
          }
          heartbeat_timer.expires_after(interval);
          heartbeat_timer.async_wait([this, g](const boost::system::error_code& ec) {
            if (!ec) Heartbeat(g);
          });
        });
      });
}

// ---- the executor double -----------------------------------------------------------------------

void SimNodes::Node::SetStatus(SimTask& t, api::TaskState state, const char* message) {
  if (state <= t.state) return;  // never backwards
  t.state = state;
  api::TaskStatus s;
  s.set_state(state);
  s.set_timestamp(NowNanos());
  s.set_message(message);
  if (state == api::TASK_RUNNING) s.set_container_id(t.id);
  auto [it, added] = unreported.insert_or_assign(t.id, std::move(s));
  if (added) ++owner->counters_.unreported;
}

void SimNodes::Node::Upsert(const api::Task& task) {
  auto& c = owner->counters_;
  auto [it, added] = tasks.try_emplace(task.id());
  SimTask& t = it->second;
  const bool was_live = !added && t.desired <= api::TASK_RUNNING;
  if (added) {
    t.id = task.id();
    t.service_id = task.service_id();
    t.slot = task.slot();
    t.node = index;
    t.state = api::TASK_ASSIGNED;
  }
  t.desired = task.desired_state();
  const bool live = t.desired <= api::TASK_RUNNING;
  if (live && !was_live) ++c.live_tasks;
  if (!live && was_live) {
    --c.live_tasks;
    ++c.told_to_stop;
    if (t.running_acked) --c.running_acked;
  }
  if (live) {
    SetStatus(t, api::TASK_RUNNING, "started");
  } else if (!Terminal(t.state)) {
    SetStatus(t, api::TASK_SHUTDOWN, "shutdown");
  }
}

void SimNodes::Node::Forget(const std::string& id) {
  auto it = tasks.find(id);
  if (it == tasks.end()) return;
  auto& c = owner->counters_;
  if (it->second.desired <= api::TASK_RUNNING) {
    --c.live_tasks;
    if (it->second.running_acked) --c.running_acked;
  }
  if (unreported.erase(id)) --c.unreported;  // not this node's to report any more
  tasks.erase(it);
}

void SimNodes::Node::Flush() {
  if (flushing || stopping || unreported.empty() || session_id.empty()) return;
  flushing = true;
  struct Call {
    grpc::ClientContext context;
    api::UpdateTaskStatusRequest request;
    api::UpdateTaskStatusResponse response;
    std::shared_ptr<api::Dispatcher::Stub> stub;
  };
  auto call = std::make_shared<Call>();
  call->context.set_deadline(std::chrono::system_clock::now() + 10s);
  call->request.set_session_id(session_id);
  for (const auto& [id, status] : unreported) {
    auto* u = call->request.add_updates();
    u->set_task_id(id);
    *u->mutable_status() = status;
  }
  call->stub = stub;
  flush_call = std::shared_ptr<grpc::ClientContext>(call, &call->context);
  ++owner->counters_.status_calls;
  ++owner->io_->in_flight;
  call->stub->async()->UpdateTaskStatus(
      &call->context, &call->request, &call->response, [this, call](grpc::Status st) {
        Post([this, call, st] {
          --owner->io_->in_flight;
          auto& c = owner->counters_;
          flushing = false;
          if (stopping) return;
          if (!st.ok()) {
            // No session, or the leader is changing: the next session flushes again; a timer
            // covers a session that stays up while the leader was briefly unable to write.
            ++c.status_failures;
            flush_timer.expires_after(1s);
            flush_timer.async_wait([this](const boost::system::error_code& ec) {
              if (!ec) Flush();
            });
            return;
          }
          for (const auto& u : call->request.updates()) {
            auto it = unreported.find(u.task_id());
            // Only what was sent as it is now: a newer status goes in the next batch.
            if (it == unreported.end() || it->second.state() != u.status().state() ||
                it->second.timestamp() != u.status().timestamp()) {
              continue;
            }
            unreported.erase(it);
            --c.unreported;
            auto t = tasks.find(u.task_id());
            if (t != tasks.end() && u.status().state() == api::TASK_RUNNING &&
                !t->second.running_acked && t->second.desired <= api::TASK_RUNNING) {
              t->second.running_acked = true;
              ++c.running_acked;
            }
          }
          Flush();
        });
      });
}

void SimNodes::Node::Stop() {
  stopping = true;
  heartbeat_timer.cancel();
  flush_timer.cancel();
  connect_timer.cancel();
  if (session) session->Cancel();
  for (auto* call : {&heartbeat_call, &flush_call}) {
    if (auto ctx = call->lock()) ctx->TryCancel();
  }
}

// ---- the cluster of them -----------------------------------------------------------------------

SimNodes::SimNodes(SimOptions options) : options_(std::move(options)), io_(std::make_unique<Io>()) {
  if (options_.managers.empty()) throw std::runtime_error("no managers to join");
  for (int i = 0; i < options_.nodes; ++i) {
    auto n = std::make_unique<Node>(this, i, io_->context);
    char name[32];
    std::snprintf(name, sizeof(name), "sim-%04d", i + 1);
    n->hostname = name;
    if (const char* t = std::getenv("SKEP_SCALE_TRACE")) n->traced = n->hostname == t;
    n->managers = options_.managers;
    nodes_.push_back(std::move(n));
  }
  for (int i = 0; i < options_.io_threads; ++i)
    io_->threads.emplace_back([this] { io_->context.run(); });
}

SimNodes::~SimNodes() {
  const bool drained = Stop();
  io_->guard.reset();
  io_->context.stop();
  for (auto& t : io_->threads)
    t.join();
  if (!drained) {
    // gRPC still holds calls that will complete into these nodes: leave them be (the process
    // is ending) rather than free what a completion would touch.
    std::fprintf(stderr, "scale: %lld calls still in flight; the nodes are not freed\n",
                 static_cast<long long>(io_->in_flight.load()));
    for (auto& n : nodes_)
      (void)n.release();
    (void)io_.release();
  }
}

void SimNodes::Join() {
  const std::string via = options_.managers.front();
  const pki::ParsedToken token = pki::ParseJoinToken(options_.join_token);
  {
    // The root CA cannot be verified before we have it: fetch it, then check its digest.
    auto stub = api::CA::NewStub(
        grpc::CreateCustomChannel(via, tls::UnverifiedCredentials(), tls::ChannelArgs()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    api::GetRootCAResponse ca;
    if (grpc::Status st = stub->GetRootCACertificate(&ctx, {}, &ca); !st.ok()) {
      throw std::runtime_error("cannot fetch the root CA from " + via + ": " + st.error_message());
    }
    if (pki::CertificateDigest(ca.cert_pem()) != token.ca_digest) {
      throw std::runtime_error("the root CA at " + via + " does not match the join token");
    }
    ca_pem_ = ca.cert_pem();
  }
  auto stub = api::CA::NewStub(
      grpc::CreateCustomChannel(via, tls::JoinCredentials(ca_pem_), tls::ChannelArgs()));
  std::atomic<int> next{0};
  std::mutex error_mu;
  std::string error;
  auto join_one = [&](Node& n, std::mt19937_64& rng) {
    const pki::KeyAndRequest kr = pki::CreateKeyAndRequest();
    api::JoinNodeRequest req;
    req.set_token(options_.join_token);
    req.set_csr_pem(kr.csr_pem);
    req.set_advertise_addr(options_.advertise_ip + ":2377");
    uint64_t raft_id = 0;
    while (raft_id == 0)
      raft_id = rng();
    req.set_raft_id(raft_id);
    auto* d = req.mutable_description();
    d->set_hostname(n.hostname);
    d->set_engine_version("sim");
    d->set_os("linux");
    d->set_arch("x86_64");
    d->set_nano_cpus(options_.nano_cpus);
    d->set_memory_bytes(options_.memory_bytes);
    // An answer lost to a timeout or a leader change is asked again with the same raft id,
    // which the CA recognises (node.cc's Join does the same).
    for (int attempt = 0;; ++attempt) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + 12s);
      api::JoinNodeResponse resp;
      const grpc::Status st = stub->JoinNode(&ctx, req, &resp);
      if (st.ok()) {
        n.node_id = resp.node_id();
        n.key_pem = kr.key_pem;
        n.cert_pem = resp.cert_pem();
        n.credentials = tls::NodeCredentialsFromPem(n.key_pem, n.cert_pem, ca_pem_);
        return std::string();
      }
      const bool transient = st.error_code() == grpc::StatusCode::UNAVAILABLE ||
                             st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
      if (!transient || attempt >= 20) {
        return n.hostname + ": JoinNode through " + via + " failed: " + st.error_message();
      }
      std::this_thread::sleep_for(500ms);
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < options_.join_threads; ++t) {
    threads.emplace_back([&] {
      std::mt19937_64 rng(std::random_device{}());
      for (int i; (i = next++) < options_.nodes;) {
        {
          std::lock_guard lock(error_mu);
          if (!error.empty()) return;
        }
        std::string why;
        try {
          why = join_one(*nodes_[i], rng);
        } catch (const std::exception& e) {
          why = nodes_[i]->hostname + ": " + e.what();
        }
        if (!why.empty()) {
          std::lock_guard lock(error_mu);
          if (error.empty()) error = why;
          return;
        }
      }
    });
  }
  for (auto& t : threads)
    t.join();
  if (!error.empty()) throw std::runtime_error(error);
}

void SimNodes::Start() {
  const auto step = options_.sessions_per_second > 0
                        ? std::chrono::microseconds(1'000'000 / options_.sessions_per_second)
                        : std::chrono::microseconds(0);
  for (auto& n : nodes_) {
    Node* node = n.get();
    const auto after = step * node->index;
    node->Post([node, after] {
      node->connect_timer.expires_after(after);
      node->connect_timer.async_wait([node](const boost::system::error_code& ec) {
        if (!ec) node->Connect();
      });
    });
  }
}

bool SimNodes::Stop() {
  std::latch stopped(static_cast<std::ptrdiff_t>(nodes_.size()));
  for (auto& n : nodes_) {
    n->Post([node = n.get(), &stopped] {
      node->Stop();
      stopped.count_down();
    });
  }
  stopped.wait();
  // Every call was cancelled; their completions still reach the strands.
  const auto until = Clock::now() + 60s;
  while (io_->in_flight > 0 && Clock::now() < until)
    std::this_thread::sleep_for(10ms);
  return io_->in_flight == 0;
}

std::vector<SimTask> SimNodes::Tasks() {
  std::vector<std::vector<SimTask>> per_node(nodes_.size());
  std::latch done(static_cast<std::ptrdiff_t>(nodes_.size()));
  for (auto& n : nodes_) {
    n->Post([node = n.get(), &per_node, &done] {
      auto& out = per_node[node->index];
      out.reserve(node->tasks.size());
      for (const auto& [id, t] : node->tasks)
        out.push_back(t);
      done.count_down();
    });
  }
  done.wait();
  std::vector<SimTask> all;
  for (auto& v : per_node)
    all.insert(all.end(), std::make_move_iterator(v.begin()), std::make_move_iterator(v.end()));
  return all;
}

std::string SimNodes::EndReasons() const {
  static const char* const kNames[] = {"OK",
                                       "CANCELLED",
                                       "UNKNOWN",
                                       "INVALID_ARGUMENT",
                                       "DEADLINE_EXCEEDED",
                                       "NOT_FOUND",
                                       "ALREADY_EXISTS",
                                       "PERMISSION_DENIED",
                                       "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION",
                                       "ABORTED",
                                       "OUT_OF_RANGE",
                                       "UNIMPLEMENTED",
                                       "INTERNAL",
                                       "UNAVAILABLE",
                                       "DATA_LOSS",
                                       "UNAUTHENTICATED"};
  std::lock_guard lock(reasons_mu_);
  std::string out;
  for (const auto& [code, r] : reasons_) {
    if (!out.empty()) out += "; ";
    out += code >= 0 && code <= 16 ? std::string(kNames[code]) : std::to_string(code);
    out += " " + std::to_string(r.first) + " (" + r.second.substr(0, 100) + ")";
  }
  return out;
}

std::vector<SimSession> SimNodes::Sessions() {
  std::vector<SimSession> out(nodes_.size());
  std::latch done(static_cast<std::ptrdiff_t>(nodes_.size()));
  for (auto& n : nodes_) {
    n->Post([node = n.get(), &out, &done] {
      out[node->index] = {node->session_manager, node->session_opened};
      done.count_down();
    });
  }
  done.wait();
  return out;
}

}  // namespace skep::bench
