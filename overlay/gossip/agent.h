// The network driver of the gossip layer: one Memberlist and one EndpointTable behind a UDP
// socket, a TCP listener and a timer, on one Asio strand. skepd runs one per node.
//
// Transport. Every message is encoded (message.h) and sealed with the keyring (keyring.h).
// A message goes in one UDP datagram, unless it is a push-pull or its encoding is longer than
// Config::max_packet_bytes: then it goes over TCP, in a connection of its own that carries
// frames of
//   u32 big-endian length | sealed message
// and is closed after the last one. A receiver reads frames until EOF; it drops the
// connection on a frame longer than kMaxFrameBytes or one that does not arrive within
// AgentConfig::stream_timeout_ms. With no key set, nothing is sent and everything received is
// dropped. What does not authenticate, or authenticates but does not decode, is dropped and
// counted (Stats).
//
// Time. The clock is milliseconds of steady_clock since the agent was constructed. One timer,
// re-armed after every step at the earliest of Memberlist::NextTickMs, the next join retry and
// the next table reap, drives the state machine; nothing polls.
//
// Wiring of the table (as in tests/overlay/gossip_sim.cc): every table write goes out as a
// user broadcast holding one encoded TableMessage; received ones are merged and queued again
// when they were news; the push-pull carries EndpointTable::FullState; a member that fails
// or leaves has its entries removed. A node that joins a network (or joins the cluster while
// in some) also push-pulls with one member of each such network, so it gets the table's
// current contents at once rather than at the next random push-pull (NetworkDB's bulk sync).
//
// Restarts. A restarted node's table clock starts afresh, so its writes could lose against
// entries (or tombstones) of its previous life. Two things make them win:
//  - the table clock starts at the wall clock in microseconds (a hybrid logical clock's
//    floor; AgentConfig::wall_clock_floor), above any Lamport time the previous life
//    reached unless clocks are skewed;
//  - whatever merge brings an entry or participation event under our name that is not what
//    this process holds is answered, like SWIM's refutation: our current value is written
//    again, or the stale entry deleted, or our participation announced again (or withdrawn),
//    each with a Lamport time above the stale one. That includes an entry of a previous life
//    at the very Lamport time of ours with another value, which the merge order alone cannot
//    tell apart. The bulk sync on joining brings such stale state promptly. A rise of our
//    own incarnation (we were suspected, maybe declared dead and removed from others'
//    tables) is answered the same way: our entries and participations are written again.
// Two live processes under one name would overwrite each other for ever, as they would
// refute each other in Memberlist: names must be unique.
//
// Threads. Every public method is thread-safe and, but for Start (which binds on the calling
// thread so that it can throw), returns at once: the work is posted to the strand, in call
// order. Callbacks run on the strand. An Agent is started once and stopped once; after Stop
// (or destruction) the callbacks are dropped and every call but Inspect does nothing.
#pragma once

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "overlay/gossip/member.h"
#include "overlay/gossip/table.h"

namespace skep::gossip {

// The largest TCP frame a receiver accepts.
inline constexpr size_t kMaxFrameBytes = 16 << 20;

struct AgentConfig {
  std::string name;  // unique in the cluster
  std::string bind_ip = "0.0.0.0";
  // The address others reach us at; defaults to bind_ip, required when that is 0.0.0.0 or ::.
  std::string advertise_ip;
  uint16_t port = 7946;  // UDP and TCP
  Config memberlist;
  TableConfig table;                 // node_name is taken from `name`
  int64_t join_retry_min_ms = 500;   // until a seed answers, retries back off from this...
  int64_t join_retry_max_ms = 5000;  // ...to this
  int64_t reap_period_ms = 5000;     // how often table tombstones past their deadline are dropped
  // Connect-and-write of an outgoing stream; reading one frame of an incoming one.
  int64_t stream_timeout_ms = 10'000;
  size_t max_streams = 128;      // concurrent TCP connections; more incoming ones are refused
  bool wall_clock_floor = true;  // see "Restarts" above
  uint64_t seed = 0;             // Memberlist's random generator; 0 draws one
};

class Agent {
 public:
  struct Stats {
    size_t members_alive = 0;  // including ourselves
    size_t members_suspect = 0;
    size_t members_failed = 0;
    size_t members_left = 0;
    uint64_t dropped_unauthenticated = 0;  // no key opens it (or no key is set)
    uint64_t dropped_malformed = 0;        // opens, but is not a valid message or frame
    uint64_t sent = 0;                     // datagrams and streams handed to the kernel
    uint64_t unsent = 0;                   // no key, bad address, send or connect failure
    uint64_t received = 0;                 // valid messages handed to Memberlist
  };
  using TableFn = std::function<void(const std::string& network, const std::vector<TableEntry>&)>;
  using MemberFn = std::function<void(const MemberEvent&)>;
  using InspectFn = std::function<void(const Memberlist&, const EndpointTable&, const Stats&)>;

  // Throws std::invalid_argument for an empty name or an address that is not an IP.
  Agent(boost::asio::io_context& io, AgentConfig config);
  ~Agent();  // Stop()
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Binds UDP and TCP on bind_ip:port, now; throws std::runtime_error naming the address and
  // the system's reason if it cannot (std::logic_error on a second call). Then starts
  // gossiping (on the strand).
  void Start();
  // Closes the sockets and cancels the timer, without leaving (call Leave first and give it
  // time for a graceful exit). `done`, if given, runs on the strand once the port is free.
  void Stop(std::function<void()> done = nullptr);

  // The first key is primary. Throws std::invalid_argument unless every key is 32 bytes.
  void SetKeys(std::vector<std::string> keys);
  // Seeds are "ip:port" (throws std::invalid_argument otherwise); our own address is
  // skipped. Push-pulls with every seed, again with backoff until one answers (so a node
  // that started before its key arrived still joins).
  void Join(std::vector<std::string> seeds);
  // Announces that we leave; keep the agent running a little for the news to spread.
  void Leave();

  // JoinNetwork throws std::invalid_argument for an empty name. Put and Delete in a network
  // we have not joined are ignored. LeaveNetwork turns our entries there into tombstones for
  // the others.
  void JoinNetwork(std::string network);
  void LeaveNetwork(std::string network);
  void Put(std::string network, std::string key, std::string value);
  void Delete(std::string network, std::string key);

  // The live entries of a network we are in, after every change of it; also once on joining
  // it, and once, empty, on leaving it.
  void OnTable(TableFn f);
  void OnMember(MemberFn f);
  // Runs `f` on the strand with the current state.
  void Inspect(InspectFn f);

  // "ip:port" others reach us at.
  const std::string& address() const;

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace skep::gossip
