// A node's answers to the managers' log subscriptions (`service logs`): for each subscription
// its session lists, one publisher reads the logs of the tasks it names from the node's task
// directories (daemon/executor/logfile.h) and streams them to the leader with PublishLogs. Without
// --follow it sends what there is, then closes; with --follow it goes on sending what the tasks
// write, woken by inotify, until the subscription is withdrawn, and takes in the tasks the
// subscription gains meanwhile (from their first line).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "dispatcher.pb.h"

namespace grpc {
class Channel;
}

namespace skep::node {

class LogPublishers {
 public:
  // `channel` gives a channel to the leader of the current session (null without one).
  LogPublishers(std::string tasks_dir, std::function<std::shared_ptr<grpc::Channel>()> channel);
  ~LogPublishers();
  LogPublishers(const LogPublishers&) = delete;
  LogPublishers& operator=(const LogPublishers&) = delete;

  // The subscriptions of a session message: new ones start, withdrawn ones stop.
  void Update(const std::vector<api::LogSubscription>& subs);
  void StopAll();

 private:
  class Publisher;
  std::string tasks_dir_;
  std::function<std::shared_ptr<grpc::Channel>()> channel_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Publisher>> running_;
  std::set<std::string> finished_;  // answered (or failed): not started again while listed
};

}  // namespace skep::node
