// What the gossip state of one node costs in memory: a Memberlist that knows 1,000 members
// (learnt from one push-pull, as a node joining a large cluster learns them) and an
// EndpointTable holding 10,000 endpoints of one network, each value about the size of a real
// endpoint record. Resident memory comes from /proc/self/statm before and after each is
// built; the figure includes allocator overhead, which is what the node actually pays.
//
//   gossip_memory [members] [endpoints]
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>

#include "overlay/gossip/member.h"
#include "overlay/gossip/table.h"

using namespace skep::gossip;

namespace {

size_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  size_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

std::string NodeName(size_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "node-%05zu", i);
  return buf;
}

std::string NodeAddr(size_t i) {
  return "10." + std::to_string(i / 65536 % 256) + "." + std::to_string(i / 256 % 256) + "." +
         std::to_string(i % 256) + ":7946";
}

// A 64-hex-digit endpoint ID, as Docker's.
std::string EndpointId(size_t i) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx",
                static_cast<unsigned long long>(i) * 0x9e3779b97f4a7c15ULL);
  return std::string(buf) + buf + buf + buf;
}

// About 150 bytes: what an endpoint record carries (task and service names and IDs, IP, MAC,
// VTEP address).
std::string EndpointValue(size_t i) {
  std::string v = "task=web." + std::to_string(i % 100) + "." + EndpointId(i).substr(0, 25) +
                  " svc=web/" + EndpointId(i % 97).substr(0, 25) + " ip=10.0." +
                  std::to_string(i / 256 % 256) + "." + std::to_string(i % 256) +
                  "/24 mac=02:42:0a:00:00:01 vtep=" + NodeAddr(i % 1000).substr(0, 11);
  v.resize(150, ' ');
  return v;
}

struct Row {
  const char* what;
  size_t items;
  size_t before;
  size_t after;
  size_t wire;  // encoded size of what a push-pull carries
};

void Print(const Row& r) {
  double delta = static_cast<double>(r.after) - static_cast<double>(r.before);
  std::printf("%-30s %7zu %14.1f %14.1f %10.1f %8.0f %12.1f\n", r.what, r.items,
              static_cast<double>(r.before) / 1048576, static_cast<double>(r.after) / 1048576,
              delta / 1048576, delta / static_cast<double>(r.items),
              static_cast<double>(r.wire) / 1024);
}

}  // namespace

int main(int argc, char** argv) {
  size_t members = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1000;
  size_t endpoints = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 10000;

  std::printf("%-30s %7s %14s %14s %10s %8s %12s\n", "STATE", "ITEMS", "RSS BEFORE MB",
              "RSS AFTER MB", "DELTA MB", "B/ITEM", "PUSHPULL KB");

  // The push-pull is built first and freed before measuring, so that only the Memberlist's
  // own state remains.
  size_t before = ResidentBytes();
  auto member = std::make_unique<Memberlist>(Config{}, NodeName(0), NodeAddr(0), 1);
  size_t wire = 0;
  {
    PushPull p;
    p.join = true;
    for (size_t i = 1; i < members; ++i)
      p.members.push_back(MemberRecord{NodeName(i), NodeAddr(i), 1, MemberState::kAlive});
    Message m{NodeAddr(1), NodeAddr(0), std::move(p), {}};
    wire = Encode(m).size();
    member->Receive(m, 0);
    member->TakeEvents();
    for (int64_t t = 0; t < 2000; t += 100)
      member->Tick(t);  // the probe and gossip machinery warmed up, as on a live node
  }
  size_t after = ResidentBytes();
  if (member->NumActive() != members) {
    std::fprintf(stderr, "gossip_memory: the member list holds %zu members, not %zu\n",
                 member->NumActive(), members);
    return 1;
  }
  Print({"memberlist", members, before, after, wire});

  before = ResidentBytes();
  auto table = std::make_unique<EndpointTable>(TableConfig{NodeName(0)});
  table->Joined("net-overlay-1");
  for (size_t i = 0; i < endpoints; ++i) {
    TableEntry e{
        "net-overlay-1", EndpointId(i), EndpointValue(i), NodeName(i % members), i + 1, false, 0};
    table->Merge(e, 0);
  }
  after = ResidentBytes();
  if (table->Entries("net-overlay-1").size() != endpoints) {
    std::fprintf(stderr, "gossip_memory: the table holds the wrong number of entries\n");
    return 1;
  }
  wire = EncodeTableMessages(table->FullState()).size();
  Print({"endpoint table, one network", endpoints, before, after, wire});
  return 0;
}
