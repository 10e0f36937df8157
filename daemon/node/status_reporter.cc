#include "daemon/node/status_reporter.h"

#include <boost/asio/post.hpp>

#include "daemon/common/proto_bytes.h"

namespace skep::node {

namespace asio = boost::asio;

StatusReporter::StatusReporter(Strand strand, Report report)
    : strand_(std::move(strand)), report_(std::move(report)) {}

void StatusReporter::Set(const std::string& id, const api::TaskStatus& status) {
  pending_[id] = status;
}

void StatusReporter::Flush() {
  if (in_flight_ || pending_.empty() || stopped_) return;
  in_flight_ = true;
  std::vector<api::TaskStatusUpdate> batch;
  for (const auto& [id, status] : pending_) {
    api::TaskStatusUpdate u;
    u.set_task_id(id);
    *u.mutable_status() = status;
    batch.push_back(std::move(u));
  }
  report_(batch, [self = shared_from_this(), batch](bool taken) {
    asio::post(self->strand_, [self, batch, taken] { self->OnSent(batch, taken); });
  });
}

void StatusReporter::OnSent(const std::vector<api::TaskStatusUpdate>& batch, bool taken) {
  in_flight_ = false;
  if (taken) {
    for (const auto& u : batch) {
      auto it = pending_.find(u.task_id());
      // Only what was sent as it is now: a newer status goes in the next batch.
      if (it != pending_.end() && SameMessage(it->second, u.status())) pending_.erase(it);
    }
    Flush();
    return;
  }
  if (stopped_) return;
  // No session, or the leader is changing: the next session message flushes again; the timer
  // covers a session that stays up while the leader was briefly unable to write.
  retry_ = std::make_unique<asio::steady_timer>(strand_, std::chrono::seconds(1));
  retry_->async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec) self->Flush();
  });
}

}  // namespace skep::node
