// Raft messages between managers over gRPC on 2377: two long-lived client streams per peer, on
// gRPC's callback API, one for the log (appends and snapshot chunks, up to a megabyte each) and
// one for the small messages that decide who leads (heartbeats, votes, acknowledgements). A
// heartbeat then never waits behind megabytes of log that a busy follower reads slowly (the
// stream's flow control holds writes back), the way etcd keeps its appends apart. A message is
// written by the thread that sends it when its stream is idle (no thread hand-off before it
// reaches the socket), otherwise queued in a bounded queue that each completed write drains
// (raft tolerates lost and reordered messages, so a full queue drops the oldest).
// A stream is opened by the thread that sends when its lane has none, or, after one broke, by
// a timer at the end of a short backoff (on the given executor): no thread of its own. The
// receiving side is RaftService, which steps each message on the gRPC thread that read it.
#pragma once

#include <grpcpp/grpcpp.h>

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>

#include "daemon/common/mutex.h"
#include "daemon/manager/raft_node.h"
#include "raft.grpc.pb.h"

namespace skep::manager {

class GrpcRaftTransport final : public RaftTransport {
 public:
  // `self` and `self_addr` are announced on every stream, so that a peer that lost track of
  // where this node listens (it restarted behind on the log) can answer it.
  // Retry timers run on `executor`.
  GrpcRaftTransport(boost::asio::any_io_executor executor,
                    std::shared_ptr<grpc::ChannelCredentials> credentials, uint64_t self,
                    std::string self_addr);
  ~GrpcRaftTransport() override;

  // Where peer `raft_id` listens (ip:port). Unknown peers' messages are dropped.
  void SetPeer(uint64_t raft_id, const std::string& addr);
  // `f` runs (on the caller's thread, after SetPeer) whenever a peer's address is new or
  // changed; set before the transport is used.
  void OnPeerAddress(std::function<void()> f) { on_peer_address_ = std::move(f); }
  void RemovePeer(uint64_t raft_id);
  std::string PeerAddr(uint64_t raft_id) const;

  void Send(raftpb::Message m) override;

  // The receiving side reports each message it gets, so that the node can tell which peers it
  // hears from (for "N managers unreachable" when there is no leader).
  void Heard(uint64_t raft_id);
  // Peers not heard from within `window`.
  std::vector<uint64_t> Silent(const std::vector<uint64_t>& peers,
                               std::chrono::milliseconds window) const;

  // Closes every stream; what is still in flight finishes on its own (the streams keep what
  // they use). Call before the executor's io_context goes.
  void Stop();

  struct Endpoint;  // how this node opens streams: credentials, and who it announces itself as
  struct Lane;
  struct Peer;
  class Stream;

 private:
  void Drop(std::shared_ptr<Peer> p);
  // Whether the address is new or changed.
  bool UpdatePeer(uint64_t raft_id, const std::string& addr);

  std::shared_ptr<const Endpoint> endpoint_;
  mutable Mutex mu_;
  std::map<uint64_t, std::shared_ptr<Peer>> peers_ SKEP_GUARDED_BY(mu_);
  std::map<uint64_t, std::chrono::steady_clock::time_point> heard_ SKEP_GUARDED_BY(mu_);
  const std::chrono::steady_clock::time_point started_;
  bool stopped_ SKEP_GUARDED_BY(mu_) = false;
  std::function<void()> on_peer_address_;
};

// What this manager's store says of the node a raft stream comes from.
struct RaftPeerCheck {
  enum class Verdict {
    kUnknown,     // not (yet) in this manager's store: it may be newer than our state
    kManager,     // a manager, with raft id `raft_id`
    kNotManager,  // a worker, or a demoted manager whose manager certificate has not expired
  };
  Verdict verdict = Verdict::kUnknown;
  uint64_t raft_id = 0;
};
using RaftPeerLookup = std::function<RaftPeerCheck(const std::string& node_id)>;

// Receives peers' streams and steps their messages into the local node; learns the address
// each peer announces. A stream needs a manager certificate, and its node must not be known as
// anything but a manager; a known node may only speak for its own raft id. The lookup reads the
// store, so it runs on `lookup_executor` (never on a gRPC thread, which carries every stream's
// messages); the stream is read once it has answered.
class RaftService final : public raftpb::Raft::CallbackService {
 public:
  RaftService(RaftNode* node, GrpcRaftTransport* transport, RaftPeerLookup lookup,
              boost::asio::any_io_executor lookup_executor)
      : node_(node),
        transport_(transport),
        lookup_(std::move(lookup)),
        lookup_executor_(std::move(lookup_executor)) {}
  grpc::ServerReadReactor<raftpb::Message>* Stream(grpc::CallbackServerContext* context,
                                                   raftpb::StreamAck* ack) override;

 private:
  class Reader;
  RaftNode* node_;
  GrpcRaftTransport* transport_;
  RaftPeerLookup lookup_;
  boost::asio::any_io_executor lookup_executor_;
};

}  // namespace skep::manager
