// kvload: closed-loop writers against etcd's KV.Put API (etcd itself, or skep's raftkv).
// Each client keeps one Put outstanding and sends the next as soon as it is answered.
//
//   kvload --endpoints ip:port,ip:port,... --clients N [--seconds S] [--value-size B]
//
// It finds the leader with Maintenance.Status and sends every write there, then prints one
// line: clients, writes, seconds, writes/s, p50 and p99 latency in milliseconds, errors.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "daemon/common/runtime.h"
#include "etcdkv.grpc.pb.h"

using Clock = std::chrono::steady_clock;

namespace {

struct Shared {
  std::vector<std::unique_ptr<etcdserverpb::KV::Stub>> stubs;
  std::string value;
  std::atomic<bool> measuring{false};
  std::atomic<bool> stop{false};
  std::atomic<int> running{0};
  std::mutex mu;
  std::condition_variable done_cv;
  std::vector<double> latencies;
  std::atomic<uint64_t> errors{0};
};

class Writer {
 public:
  Writer(Shared* s, int id) : s_(s), id_(id), rng_(static_cast<unsigned>(id)) {}
  void Next() {
    if (s_->stop) {
      std::lock_guard lock(s_->mu);
      if (--s_->running == 0) s_->done_cv.notify_all();
      return;
    }
    ctx_ = std::make_unique<grpc::ClientContext>();
    ctx_->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    req_.set_key("key-" + std::to_string(rng_() % 100000));
    req_.set_value(s_->value);
    start_ = Clock::now();
    auto& stub = s_->stubs[static_cast<size_t>(id_) % s_->stubs.size()];
    stub->async()->Put(ctx_.get(), &req_, &resp_, [this](grpc::Status st) {
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start_).count();
      if (s_->measuring) {
        if (st.ok()) {
          std::lock_guard lock(s_->mu);
          s_->latencies.push_back(ms);
        } else {
          s_->errors++;
        }
      }
      Next();
    });
  }

 private:
  Shared* s_;
  int id_;
  std::mt19937 rng_;
  std::unique_ptr<grpc::ClientContext> ctx_;
  etcdserverpb::PutRequest req_;
  etcdserverpb::PutResponse resp_;
  Clock::time_point start_;
};

std::string FindLeader(const std::vector<std::string>& endpoints) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    for (const auto& ep : endpoints) {
      auto stub = etcdserverpb::Maintenance::NewStub(
          grpc::CreateChannel(ep, grpc::InsecureChannelCredentials()));
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
      etcdserverpb::StatusResponse resp;
      if (stub->Status(&ctx, {}, &resp).ok() && resp.leader() != 0 &&
          resp.leader() == resp.header().member_id()) {
        return ep;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  skep::ConfigureProcess();  // the same client settings whichever server it drives
  std::map<std::string, std::string> flags = {
      {"--seconds", "10"}, {"--value-size", "256"}, {"--warmup", "2"}, {"--channels", "8"}};
  for (int i = 1; i + 1 < argc; i += 2)
    flags[argv[i]] = argv[i + 1];
  if (!flags.count("--endpoints") || !flags.count("--clients")) {
    std::fprintf(stderr,
                 "usage: kvload --endpoints ip:port,... --clients N [--seconds S] "
                 "[--value-size B]\n");
    return 2;
  }
  std::vector<std::string> endpoints;
  std::stringstream ss(flags["--endpoints"]);
  for (std::string ep; std::getline(ss, ep, ',');)
    endpoints.push_back(ep);
  const std::string leader = FindLeader(endpoints);
  if (leader.empty()) {
    std::fprintf(stderr, "kvload: no leader among %s\n", flags["--endpoints"].c_str());
    return 1;
  }
  const int clients = std::stoi(flags["--clients"]);
  Shared s;
  s.value.assign(std::stoul(flags["--value-size"]), 'v');
  for (int i = 0; i < std::stoi(flags["--channels"]); ++i) {
    grpc::ChannelArguments args;
    args.SetInt("grpc.channel_id", i);  // distinct connections
    s.stubs.push_back(etcdserverpb::KV::NewStub(
        grpc::CreateCustomChannel(leader, grpc::InsecureChannelCredentials(), args)));
  }
  std::vector<std::unique_ptr<Writer>> writers;
  s.running = clients;
  for (int i = 0; i < clients; ++i)
    writers.push_back(std::make_unique<Writer>(&s, i));
  for (auto& w : writers)
    w->Next();
  std::this_thread::sleep_for(std::chrono::duration<double>(std::stod(flags["--warmup"])));
  s.measuring = true;
  const auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(std::stod(flags["--seconds"])));
  s.measuring = false;
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  s.stop = true;
  {
    std::unique_lock lock(s.mu);
    s.done_cv.wait_for(lock, std::chrono::seconds(15), [&] { return s.running == 0; });
  }
  std::vector<double> lat;
  {
    std::lock_guard lock(s.mu);
    lat = s.latencies;
  }
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double p) {
    return lat.empty() ? 0.0 : lat[std::min(lat.size() - 1, static_cast<size_t>(p * lat.size()))];
  };
  std::printf(
      "clients=%d writes=%zu seconds=%.2f writes_per_sec=%.0f p50_ms=%.3f p99_ms=%.3f "
      "errors=%llu leader=%s\n",
      clients, lat.size(), secs, static_cast<double>(lat.size()) / secs, pct(0.50), pct(0.99),
      static_cast<unsigned long long>(s.errors.load()), leader.c_str());
  return 0;
}
