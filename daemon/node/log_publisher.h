// A node's answers to the managers' log subscriptions (`service logs`): for each subscription
// its session lists, one publisher reads the logs of the tasks it names from the node's task
// directories (daemon/executor/logfile.h) and streams them to the leader with PublishLogs. Without
// --follow it sends what there is, then closes; with --follow it goes on sending what the tasks
// write, woken by inotify, until the subscription is withdrawn, and takes in the tasks the
// subscription gains meanwhile (from their first line).
//
// Where it runs: each publisher on a strand of the node's io_context; its stream is on gRPC's
// callback API (one message written at a time), inotify is an Asio descriptor waited on, and
// the log files (local, read in batches) are read on the strand. No thread of its own.
#pragma once

#include <boost/asio/any_io_executor.hpp>

#include <chrono>

#include <map>
#include <memory>
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
  LogPublishers(boost::asio::any_io_executor io, std::string tasks_dir);
  ~LogPublishers();
  LogPublishers(const LogPublishers&) = delete;
  LogPublishers& operator=(const LogPublishers&) = delete;

  // The subscriptions of a session message: new ones start, answering on `channel` (to the
  // session's manager), withdrawn ones stop. From the session's strand, as StopAll.
  void Update(const std::vector<api::LogSubscription>& subs,
              const std::shared_ptr<grpc::Channel>& channel);
  void StopAll();
  // After StopAll, from the thread that stops the node: waits (each at most `timeout`) until
  // every stream is done, so that nothing of them runs afterwards.
  void Drain(std::chrono::milliseconds timeout);

  class Publisher;

 private:
  boost::asio::any_io_executor io_;
  std::string tasks_dir_;
  std::map<std::string, std::shared_ptr<Publisher>> running_;
  std::vector<std::shared_ptr<Publisher>> retired_;  // cancelled, their streams maybe not done
  std::set<std::string> finished_;  // answered (or failed): not started again while listed
};

}  // namespace skep::node
