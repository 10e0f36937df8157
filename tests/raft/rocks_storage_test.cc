#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/write_batch.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <boost/crc.hpp>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "raft/conf.h"
#include "raft/memory_storage.h"
#include "raft/rocks_storage.h"
#include "tests/raft/discard_unsynced_fs.h"

using namespace skep::raft;
using namespace skep::raft::testing;
namespace raftpb = skep::raftpb;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "skep-raft-XXXXXX").string();
    path = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string path;
};

raftpb::Entry E(Index i, Term t, const std::string& data = "") {
  raftpb::Entry e;
  e.set_index(i);
  e.set_term(t);
  e.set_data(data.empty() ? "entry-" + std::to_string(i) + "-" + std::to_string(t) : data);
  return e;
}

std::vector<raftpb::Entry> Range(Index from, Index to, Term t) {
  std::vector<raftpb::Entry> out;
  for (Index i = from; i <= to; ++i)
    out.push_back(E(i, t));
  return out;
}

raftpb::HardState HS(Term term, NodeId vote, Index commit) {
  raftpb::HardState hs;
  hs.set_term(term);
  hs.set_vote(vote);
  hs.set_commit(commit);
  return hs;
}

// Everything a storage holds, for comparing two of them.
std::string Dump(const Storage& s) {
  std::string out = s.HardState().ShortDebugString() + "|" + s.Snapshot()->ShortDebugString() +
                    "|" + std::to_string(s.FirstIndex()) + ".." + std::to_string(s.LastIndex()) +
                    "|t" + std::to_string(s.TermAt(s.FirstIndex() - 1).value_or(999)) + "|";
  std::vector<raftpb::Entry> entries;
  if (s.LastIndex() >= s.FirstIndex()) {
    REQUIRE(s.Entries(s.FirstIndex(), s.LastIndex() + 1, UINT64_MAX, &entries));
  }
  for (const auto& e : entries)
    out += e.ShortDebugString() + ";";
  return out;
}

std::string LogFile(const std::string& dir) {
  for (const auto& f : fs::directory_iterator(dir)) {
    if (f.path().extension() == ".log") return f.path().string();
  }
  return "";
}

void FlipByte(const std::string& file, uint64_t offset) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x5a);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(&c, 1);
}

}  // namespace

TEST_CASE("the RocksDB log survives a reopen", "[storage][rocksdb]") {
  TempDir dir;
  std::string before;
  {
    auto st = RocksStorage::Open(dir.path);
    CHECK(st->Empty());
    st->Bootstrap(MakeConfState({1, 2, 3}));
    CHECK_FALSE(st->Empty());
    auto hs = HS(2, 3, 6);
    st->Save(&hs, Range(2, 10, 2), nullptr);
    st->CreateSnapshot(6, MakeConfState({1, 2, 3}), "state-at-6", 4);
    // A new leader's entries replace a conflicting suffix.
    hs = HS(3, 1, 6);
    st->Save(&hs, Range(8, 9, 3), nullptr);
    CHECK(st->LastIndex() == 9);
    CHECK(st->FirstIndex() == 5);
    CHECK(*st->TermAt(4) == 2);
    CHECK(*st->TermAt(9) == 3);
    before = Dump(*st);
  }
  auto st = RocksStorage::Open(dir.path);
  CHECK(Dump(*st) == before);
  CHECK(st->HardState().vote() == 1);
  CHECK(st->Snapshot()->data() == "state-at-6");
  CHECK(st->SnapshotMeta().index() == 6);
  CHECK(Describe(st->SnapshotMeta().conf_state()) == "voters=[1,2,3]");
  std::vector<raftpb::Entry> out;
  CHECK_FALSE(st->Entries(4, 6, 1000, &out));  // compacted
  REQUIRE(st->Entries(5, 10, 1 << 20, &out));
  CHECK(out.size() == 5);
  CHECK(out.back().term() == 3);
  CHECK_THROWS_AS(st->Bootstrap(MakeConfState({1})), StorageError);
}

TEST_CASE("an installed snapshot replaces the RocksDB log", "[storage][rocksdb]") {
  TempDir dir;
  {
    auto st = RocksStorage::Open(dir.path);
    st->Save(nullptr, Range(1, 5, 1), nullptr);
    raftpb::Snapshot snap;
    snap.mutable_metadata()->set_index(20);
    snap.mutable_metadata()->set_term(4);
    *snap.mutable_metadata()->mutable_conf_state() = MakeConfState({1, 2});
    snap.set_data("leader-state");
    auto hs = HS(4, 0, 20);
    st->Save(&hs, Range(21, 22, 4), &snap);
    CHECK(st->FirstIndex() == 21);
    CHECK(st->LastIndex() == 22);
  }
  auto st = RocksStorage::Open(dir.path);
  CHECK(st->FirstIndex() == 21);
  CHECK(st->LastIndex() == 22);
  CHECK(*st->TermAt(20) == 4);
  CHECK_FALSE(st->TermAt(5));
  CHECK(st->Snapshot()->data() == "leader-state");
}

TEST_CASE("reads of entries are served across the cache and the disk", "[storage][rocksdb]") {
  TempDir dir;
  RocksStorageOptions opts;
  opts.entry_cache_bytes = 200;  // a handful of entries
  auto st = RocksStorage::Open(dir.path, opts);
  for (Index i = 1; i <= 100; i += 10)
    st->Save(nullptr, Range(i, i + 9, 1), nullptr);
  std::vector<raftpb::Entry> out;
  REQUIRE(st->Entries(1, 101, UINT64_MAX, &out));
  REQUIRE(out.size() == 100);
  for (Index i = 1; i <= 100; ++i)
    CHECK(out[i - 1].index() == i);
  out.clear();
  REQUIRE(st->Entries(50, 101, 100, &out));
  CHECK(out.size() == 2);  // 45 bytes each counted: the second fits, the third does not
}

// Crash at a random write while a random sequence of saves, snapshots and compactions runs,
// keeping a random torn part of what was not synced. The log that comes back holds exactly
// what the completed writes left, plus possibly all (never part) of the interrupted one.
TEST_CASE("a crash loses nothing that was synced and never tears a write", "[storage][rocksdb]") {
  const int runs = 60;
  int interrupted = 0, with_pending = 0;
  for (int run = 1; run <= runs; ++run) {
    std::mt19937_64 rng(run);
    auto pick = [&](int64_t lo, int64_t hi) {
      return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
    };
    TempDir dir;
    auto faulty = std::make_shared<DiscardUnsyncedFs>();
    std::shared_ptr<rocksdb::Env> env(rocksdb::NewCompositeEnv(faulty));
    RocksStorageOptions opts;
    opts.env = env;
    MemoryStorage model;      // what completed writes left
    MemoryStorage with_next;  // the same plus the interrupted write
    auto st = RocksStorage::Open(dir.path, opts);
    faulty->CrashAfter(pick(5, 120));
    Term term = 1;
    for (int op = 0; op < 200; ++op) {
      const Index last = model.LastIndex();
      std::function<void(Storage&)> write;
      const int64_t kind = pick(0, 9);
      if (kind < 6 || last < model.FirstIndex() + 2) {
        // Append, sometimes replacing a suffix with entries of a newer term.
        Index from = last + 1;
        if (kind == 0 && last > model.FirstIndex()) {
          from = static_cast<Index>(pick(static_cast<int64_t>(model.FirstIndex()), last));
          ++term;
        }
        auto entries = Range(from, from + pick(0, 5), term);
        auto hs = HS(term, pick(0, 3), std::min<Index>(from - 1, model.HardState().commit() + 1));
        write = [=](Storage& s) { s.Save(&hs, entries, nullptr); };
      } else if (kind < 8) {
        const Index at = static_cast<Index>(
            pick(static_cast<int64_t>(model.FirstIndex()), static_cast<int64_t>(last)));
        const Index compact = at - static_cast<Index>(pick(0, 3));
        const std::string data = "snap-" + std::to_string(op);
        write = [=](Storage& s) { s.CreateSnapshot(at, MakeConfState({1}), data, compact); };
      } else {
        raftpb::Snapshot snap;
        snap.mutable_metadata()->set_index(last + static_cast<Index>(pick(1, 20)));
        snap.mutable_metadata()->set_term(++term);
        *snap.mutable_metadata()->mutable_conf_state() = MakeConfState({1, 2});
        snap.set_data("installed-" + std::to_string(op));
        auto hs = HS(term, 0, snap.metadata().index());
        write = [=](Storage& s) { s.Save(&hs, {}, &snap); };
      }
      try {
        write(*st);
      } catch (const StorageError&) {
        write(with_next);
        break;
      }
      write(model);
      write(with_next);
    }
    if (faulty->crashed()) ++interrupted;
    st.reset();  // the process is gone; nothing more reaches the disk
    faulty->DropUnsynced(rng);
    auto back = RocksStorage::Open(dir.path);
    const std::string got = Dump(*back);
    const bool matches_model = got == Dump(model);
    const bool matches_next = got == Dump(with_next);
    if (!matches_model && matches_next) ++with_pending;
    INFO("run " << run << "\n got:   " << got << "\n model: " << Dump(model));
    CHECK((matches_model || matches_next));
  }
  CHECK(interrupted > runs / 2);  // the crashes did land in the middle of writes
}

TEST_CASE("a damaged entry is reported with the directory and its index", "[storage][rocksdb]") {
  TempDir dir;
  {
    auto st = RocksStorage::Open(dir.path);
    st->Save(nullptr, Range(1, 8, 1), nullptr);
  }
  {
    // Damage entry 5 behind the storage's back, keeping RocksDB's own checksums valid.
    rocksdb::DB* raw = nullptr;
    rocksdb::Options o;
    REQUIRE(rocksdb::DB::Open(o, dir.path, &raw).ok());
    std::string key = "e";
    for (int b = 7; b >= 0; --b)
      key += static_cast<char>((5ULL >> (8 * b)) & 0xff);
    std::string v;
    REQUIRE(raw->Get(rocksdb::ReadOptions(), key, &v).ok());
    v[v.size() - 1] ^= 0x01;
    REQUIRE(raw->Put(rocksdb::WriteOptions(), key, v).ok());
    delete raw;
  }
  try {
    RocksStorage::Open(dir.path);
    FAIL("a damaged log was opened");
  } catch (const StorageError& e) {
    CHECK(std::string(e.what()) == "raft log in " + dir.path + ": entry 5 fails its checksum");
  }
}

TEST_CASE("a damaged record inside the write-ahead log refuses the open", "[storage][rocksdb]") {
  TempDir dir;
  {
    auto st = RocksStorage::Open(dir.path);
    for (Index i = 1; i <= 20; ++i)
      st->Save(nullptr, {E(i, 1, std::string(200, 'x'))}, nullptr);
  }
  const std::string wal = LogFile(dir.path);
  REQUIRE_FALSE(wal.empty());
  FlipByte(wal, fs::file_size(wal) / 2);  // in the middle: not a torn tail
  try {
    RocksStorage::Open(dir.path);
    FAIL("a damaged log was opened");
  } catch (const StorageError& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(msg.rfind("raft log in " + dir.path +
                        ": cannot open: the write-ahead log is damaged after entry ",
                    0) == 0);
  }
}

TEST_CASE("a torn write at the end of the write-ahead log is dropped", "[storage][rocksdb]") {
  TempDir dir;
  {
    auto st = RocksStorage::Open(dir.path);
    for (Index i = 1; i <= 10; ++i)
      st->Save(nullptr, {E(i, 1, std::string(100, 'y'))}, nullptr);
  }
  const std::string wal = LogFile(dir.path);
  fs::resize_file(wal, fs::file_size(wal) - 30);  // the last record lost its end
  auto st = RocksStorage::Open(dir.path);
  CHECK(st->LastIndex() == 9);
}

TEST_CASE("a damaged table file is reported with the last good index", "[storage][rocksdb]") {
  TempDir dir;
  {
    auto st = RocksStorage::Open(dir.path);
    for (Index i = 1; i <= 300; i += 50)
      st->Save(nullptr, Range(i, i + 49, 1), nullptr);
  }
  {
    rocksdb::DB* raw = nullptr;
    rocksdb::Options o;
    REQUIRE(rocksdb::DB::Open(o, dir.path, &raw).ok());
    REQUIRE(raw->Flush(rocksdb::FlushOptions()).ok());
    delete raw;
  }
  std::string sst;
  for (const auto& f : fs::directory_iterator(dir.path)) {
    if (f.path().extension() == ".sst") sst = f.path().string();
  }
  REQUIRE_FALSE(sst.empty());
  FlipByte(sst, 2000);  // inside the first data blocks
  try {
    RocksStorage::Open(dir.path);
    FAIL("a damaged log was opened");
  } catch (const StorageError& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(msg.rfind("raft log in " + dir.path + ": ", 0) == 0);
    CHECK(msg.find("Corruption") != std::string::npos);
  }
}

namespace {

std::vector<std::string> SnapFiles(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& f : fs::directory_iterator(dir + "/snap"))
    out.push_back(f.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("a snapshot lives in a file of its own and only the latest is kept",
          "[storage][rocksdb]") {
  TempDir dir;
  {
    auto st = RocksStorage::Open(dir.path);
    st->Save(nullptr, Range(1, 40, 1), nullptr);
    st->CreateSnapshot(10, MakeConfState({1}), "state-at-10", 8);
    CHECK(SnapFiles(dir.path) == std::vector<std::string>{"000000000000000a.snap"});
    st->CreateSnapshot(30, MakeConfState({1}), std::string(1 << 20, 's'), 25);
    CHECK(SnapFiles(dir.path) == std::vector<std::string>{"000000000000001e.snap"});
    st->CreateSnapshot(20, MakeConfState({1}), "older", 15);  // not newer: nothing changes
    CHECK(st->SnapshotMeta().index() == 30);
  }
  // What a crash can leave: a temporary file and an older snapshot's file.
  std::ofstream(dir.path + "/snap/0000000000000028.snap.tmp7") << "half";
  std::ofstream(dir.path + "/snap/0000000000000005.snap") << "old";
  auto st = RocksStorage::Open(dir.path);
  CHECK(st->SnapshotMeta().index() == 30);
  CHECK(st->Snapshot()->data() == std::string(1 << 20, 's'));
  CHECK(st->FirstIndex() == 26);
  CHECK(SnapFiles(dir.path) == std::vector<std::string>{"000000000000001e.snap"});
}

TEST_CASE("a missing or damaged snapshot file is reported by name", "[storage][rocksdb]") {
  TempDir dir;
  {
    auto st = RocksStorage::Open(dir.path);
    st->Save(nullptr, Range(1, 10, 1), nullptr);
    st->CreateSnapshot(6, MakeConfState({1}), std::string(4096, 'd'), 6);
  }
  const std::string file = dir.path + "/snap/0000000000000006.snap";
  FlipByte(file, 3000);
  try {
    RocksStorage::Open(dir.path);
    FAIL("a damaged snapshot was opened");
  } catch (const StorageError& e) {
    CHECK(std::string(e.what()) ==
          "raft log in " + dir.path + ": the snapshot file " + file + " fails its checksum");
  }
  fs::remove(file);
  try {
    RocksStorage::Open(dir.path);
    FAIL("a log without its snapshot was opened");
  } catch (const StorageError& e) {
    CHECK(std::string(e.what()) ==
          "raft log in " + dir.path + ": the snapshot at index 6 is missing its file " + file);
  }
}

TEST_CASE("a version 1 log, with the snapshot inside the database, is converted",
          "[storage][rocksdb]") {
  TempDir dir;
  // Version 1's layout, written by hand: the whole snapshot under "s".
  auto record = [](const google::protobuf::MessageLite& m) {
    const std::string payload = m.SerializeAsString();
    boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc;
    crc.process_bytes(payload.data(), payload.size());
    std::string out(4, '\0');
    for (int b = 0; b < 4; ++b)
      out[b] = static_cast<char>((crc.checksum() >> (8 * b)) & 0xff);
    return out + payload;
  };
  auto entry_key = [](Index i) {
    std::string k = "e";
    for (int b = 7; b >= 0; --b)
      k += static_cast<char>((i >> (8 * b)) & 0xff);
    return k;
  };
  {
    rocksdb::DB* raw = nullptr;
    rocksdb::Options o;
    o.create_if_missing = true;
    REQUIRE(rocksdb::DB::Open(o, dir.path, &raw).ok());
    rocksdb::WriteBatch b;
    b.Put("v", std::string("\x01\x00\x00\x00", 4));
    b.Put("h", record(HS(2, 1, 7)));
    raftpb::SnapshotMetadata point;
    point.set_index(4);
    point.set_term(1);
    b.Put("c", record(point));
    raftpb::Snapshot snap;
    snap.mutable_metadata()->set_index(4);
    snap.mutable_metadata()->set_term(1);
    *snap.mutable_metadata()->mutable_conf_state() = MakeConfState({1, 2, 3});
    snap.set_data("state-at-4");
    b.Put("s", record(snap));
    for (Index i = 5; i <= 8; ++i)
      b.Put(entry_key(i), record(E(i, 2)));
    REQUIRE(raw->Write(rocksdb::WriteOptions(), &b).ok());
    delete raw;
  }
  for (int open = 0; open < 2; ++open) {  // converted once, then read as version 2
    auto st = RocksStorage::Open(dir.path);
    CHECK(st->Snapshot()->data() == "state-at-4");
    CHECK(Describe(st->SnapshotMeta().conf_state()) == "voters=[1,2,3]");
    CHECK(st->FirstIndex() == 5);
    CHECK(st->LastIndex() == 8);
    CHECK(st->HardState().commit() == 7);
    CHECK(SnapFiles(dir.path) == std::vector<std::string>{"0000000000000004.snap"});
  }
}

TEST_CASE("snapshots written on one thread while another saves lose nothing",
          "[storage][rocksdb]") {
  TempDir dir;
  std::string before;
  {
    auto st = RocksStorage::Open(dir.path);
    std::atomic<Index> saved{0};
    std::thread snapshots([&] {
      Index done = 0;
      while (done < 1900) {
        const Index at = saved.load();
        if (at >= done + 100) {
          st->CreateSnapshot(at, MakeConfState({1}), "state-at-" + std::to_string(at), at - 50);
          done = at;
        }
      }
    });
    for (Index i = 1; i <= 2000; ++i) {
      auto hs = HS(1, 1, i);
      st->Save(&hs, {E(i, 1)}, nullptr);
      saved = i;
    }
    snapshots.join();
    CHECK(st->SnapshotMeta().index() >= 1900);
    before = Dump(*st);
  }
  auto st = RocksStorage::Open(dir.path);
  CHECK(Dump(*st) == before);
  CHECK(SnapFiles(dir.path).size() == 1);
}
