// The task statuses the worker has not had accepted yet, sent to the leader in batches: one
// batch in flight at a time; what changed meanwhile goes in the next. A batch that was not
// taken (no session, or a leader that could not write) goes again at the next Flush, which
// each session message brings, or after a second.
//
// On the worker's strand: every call but Stop, and the completions it posts there.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dispatcher.pb.h"

namespace skep::node {

class StatusReporter : public std::enable_shared_from_this<StatusReporter> {
 public:
  using Strand = boost::asio::strand<boost::asio::io_context::executor_type>;
  // `report(updates, done)` sends a batch and calls `done(taken)` from any thread.
  using Report = std::function<void(std::vector<api::TaskStatusUpdate>, std::function<void(bool)>)>;

  StatusReporter(Strand strand, Report report);

  // Task `id` is now at `status` (replacing what was not sent yet).
  void Set(const std::string& id, const api::TaskStatus& status);
  // Sends what is pending unless a batch is in flight.
  void Flush();
  // Nothing is sent from now on (any thread).
  void Stop() { stopped_ = true; }

 private:
  void OnSent(const std::vector<api::TaskStatusUpdate>& batch, bool taken);

  Strand strand_;
  Report report_;
  std::map<std::string, api::TaskStatus> pending_;
  bool in_flight_ = false;
  std::atomic<bool> stopped_{false};
  std::unique_ptr<boost::asio::steady_timer> retry_;
};

}  // namespace skep::node
