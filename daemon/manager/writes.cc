#include "daemon/manager/writes.h"

#include <boost/asio/post.hpp>

#include <memory>

#include "daemon/common/proto_bytes.h"

namespace skep::manager {

namespace {

// Attempts after a lost race, before the conflict is reported.
constexpr int kAttempts = 4;

template <class T>
struct Attempt : std::enable_shared_from_this<Attempt<T>> {
  Context& ctx;
  boost::asio::any_io_executor executor;
  std::function<std::optional<T>()> read;
  std::function<void(api::StoreAction*, T)> set;
  std::string what;
  Modify<T> modify;
  Updated<T> done;
  uint64_t term;
  int tries = 0;

  Attempt(Context& c, boost::asio::any_io_executor ex) : ctx(c), executor(std::move(ex)) {}

  void Run() {
    std::optional<T> obj = read();
    if (!obj) return done(NotFound(what + " not found"), T());
    const std::string before = CanonicalBytes(*obj);
    if (Status st = modify(*obj); !st.ok()) return done(st, *obj);
    if (CanonicalBytes(*obj) == before) return done(Status::Ok(), *obj);
    api::StoreBatch batch;
    auto* action = batch.add_actions();
    action->set_kind(api::StoreAction::UPDATE);
    set(action, std::move(*obj));
    ctx.Propose(
        std::move(batch),
        [self = this->shared_from_this()](const Status& r) {
          // Where the store applied it: the rest on the caller's executor.
          boost::asio::post(self->executor, [self, r] {
            if (r.code() == Code::kConflict && ++self->tries < kAttempts) {
              self->Run();  // made from an outdated copy: again from the newer one
              return;
            }
            std::optional<T> now = r.ok() ? self->read() : std::nullopt;
            self->done(r, now ? *now : T());
          });
        },
        term);
  }
};

}  // namespace

void UpdateNode(Context& ctx, boost::asio::any_io_executor executor, std::string id,
                Modify<api::Node> modify, Updated<api::Node> done, uint64_t term) {
  auto a = std::make_shared<Attempt<api::Node>>(ctx, executor);
  a->read = [&ctx, id] { return ctx.store().GetNode(id); };
  a->set = [](api::StoreAction* action, api::Node n) { *action->mutable_node() = std::move(n); };
  a->what = "node " + id;
  a->modify = std::move(modify);
  a->done = done ? std::move(done) : [](const Status&, const api::Node&) {};
  a->term = term;
  boost::asio::post(executor, [a] { a->Run(); });
}

void UpdateCluster(Context& ctx, boost::asio::any_io_executor executor, Modify<api::Cluster> modify,
                   Updated<api::Cluster> done, uint64_t term) {
  auto a = std::make_shared<Attempt<api::Cluster>>(ctx, executor);
  a->read = [&ctx] { return ctx.store().GetCluster(); };
  a->set = [](api::StoreAction* action, api::Cluster c) {
    *action->mutable_cluster() = std::move(c);
  };
  a->what = "the cluster";
  a->modify = std::move(modify);
  a->done = done ? std::move(done) : [](const Status&, const api::Cluster&) {};
  a->term = term;
  boost::asio::post(executor, [a] { a->Run(); });
}

}  // namespace skep::manager
