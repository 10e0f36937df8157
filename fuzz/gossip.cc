// What a gossip packet brings a node (overlay/gossip/agent.cc): the keyring's Open on the
// sealed bytes, then the message codec (Decode) on the plaintext, the message handed to the
// SWIM member list (Memberlist::Receive), and the endpoint-table messages it carries (user
// broadcasts, a push-pull's state) decoded and merged as the agent does. Random bytes never
// authenticate, so the input goes to Open and, as if it had, to Decode directly.
//
// Findings besides crashes and sanitizer reports: a decoded message that does not come back
// the same through Encode and Decode, and a member list that breaks its own invariants.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "overlay/gossip/keyring.h"
#include "overlay/gossip/member.h"
#include "overlay/gossip/message.h"
#include "overlay/gossip/table.h"

namespace {

namespace gossip = skep::gossip;

constexpr int64_t kNow = 100'000;  // ms

void MergeTableMessages(gossip::EndpointTable& table, std::string_view bytes) {
  const auto msgs = gossip::DecodeTableMessages(bytes);
  if (!msgs) return;
  if (gossip::DecodeTableMessages(gossip::EncodeTableMessages(*msgs)) != msgs) std::abort();
  for (const gossip::TableMessage& m : *msgs)
    (void)table.Merge(m, kNow);
}

// The agent's share of a push-pull: the endpoint tables.
class Tables final : public gossip::StateDelegate {
 public:
  Tables() : table({"self"}) { (void)table.Joined("net1"); }
  std::string LocalState(bool) override { return gossip::EncodeTableMessages(table.FullState()); }
  void MergeRemoteState(std::string_view state, bool) override { MergeTableMessages(table, state); }
  gossip::EndpointTable table;
};

void Check(const gossip::Memberlist& members) {
  if (members.InvariantViolation()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  static const gossip::Keyring keyring(
      {std::string(gossip::kKeyBytes, 'k'), std::string(gossip::kKeyBytes, 'o')});
  (void)keyring.Open(bytes);

  Tables tables;
  MergeTableMessages(tables.table, bytes);

  const std::optional<gossip::Message> m = gossip::Decode(bytes);
  if (!m) return 0;
  if (gossip::Decode(gossip::Encode(*m)) != m) std::abort();
  for (const gossip::Broadcast& b : m->broadcasts)
    (void)gossip::EncodedSize(b);

  // A member of a cluster of three, one of them suspected.
  gossip::Memberlist members(gossip::Config{}, "self", "10.0.0.1:7946", 1);
  members.SetStateDelegate(&tables);
  (void)members.Receive({"10.0.0.2:7946",
                         "10.0.0.1:7946",
                         gossip::Alive{3, "n2", "10.0.0.2:7946"},
                         {gossip::Alive{1, "n3", "10.0.0.3:7946"}}},
                        kNow - 1000);
  (void)members.Receive(
      {"10.0.0.2:7946", "10.0.0.1:7946", gossip::Gossip{}, {gossip::Suspect{1, "n3", "n2"}}},
      kNow - 500);
  Check(members);

  (void)members.Receive(*m, kNow);
  Check(members);
  for (const gossip::UserBroadcast& u : members.TakeUserBroadcasts())
    MergeTableMessages(tables.table, u.bytes);
  (void)members.TakeUserData();
  (void)members.TakeEvents();
  for (int64_t t = kNow; t <= kNow + 3000; t += 500) {
    (void)members.Tick(t);
    Check(members);
  }
  (void)tables.table.Reap(kNow + 3000);
  return 0;
}
