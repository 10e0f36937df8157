// The cluster settings a new swarm starts with (`skep swarm update` changes them), and what a
// manager assumes when a setting is missing.
#pragma once

#include <cstdint>

namespace skep::manager {

// Raft between managers, tuned for a LAN so that a dead leader is replaced within a second:
// followers campaign 400-800 ms after the last heartbeat (the timeout is randomized).
inline constexpr int64_t kRaftHeartbeatMs = 100;
inline constexpr int64_t kElectionTimeoutMs = 400;
// Agents heartbeat the dispatcher this often; a node is down after three missed periods.
inline constexpr int64_t kDispatcherHeartbeatMs = 1000;
inline constexpr int64_t kNodeCertExpiryS = 90 * 24 * 3600;

// The details of an UNAVAILABLE status from a manager when quorum is lost (as opposed to an
// election under way): retrying before an operator acts is pointless.
inline constexpr char kNoQuorumDetail[] = "no-quorum";

}  // namespace skep::manager
