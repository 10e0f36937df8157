// skep swarm ...
#include <iostream>

#include "daemon/cli/command.h"
#include "daemon/cli/format.h"

namespace skep::cli {
namespace {

void PrintJoinCommand(const std::string& role, const std::string& token, const std::string& addr) {
  std::cout << "To add a " << role << " to this swarm, run the following command:\n\n"
            << "    skep swarm join --token " << token << " " << addr << "\n\n";
}

int64_t DurationMs(const Invocation& inv, const std::string& flag) {
  if (!inv.Has(flag)) return 0;
  const auto d = ParseDuration(inv.Get(flag));
  if (!d || d->count() <= 0) {
    throw UsageError("invalid argument \"" + inv.Get(flag) + "\" for --" + flag +
                     ": expected a duration such as 100ms, 1s or 2h\nSee 'skep " + inv.command +
                     " --help'.");
  }
  return std::max<int64_t>(1, std::chrono::duration_cast<std::chrono::milliseconds>(*d).count());
}

int Init(const Invocation& inv) {
  api::InitRequest req;
  req.set_advertise_addr(inv.Get("advertise-addr"));
  req.set_listen_addr(inv.Get("listen-addr"));
  req.set_data_path_addr(inv.Get("data-path-addr"));
  req.set_force_new_cluster(inv.Has("force-new-cluster"));
  for (const auto& p : inv.All("default-addr-pool"))
    req.add_default_addr_pool(p);
  if (inv.Has("default-addr-pool-mask-length")) {
    const std::string v = inv.Get("default-addr-pool-mask-length");
    if (v.empty() || v.size() > 2 || v.find_first_not_of("0123456789") != std::string::npos) {
      throw UsageError("invalid --default-addr-pool-mask-length \"" + v + "\": expected a number");
    }
    req.set_default_addr_pool_mask_length(std::stoul(v));
  }
  if (inv.Has("data-path-port")) {
    const std::string v = inv.Get("data-path-port");
    const bool digits = !v.empty() && v.size() <= 5 && v.find_first_not_of("0123456789") == std::string::npos;
    const unsigned long port = digits ? std::stoul(v) : 0;
    if (port < 1024 || port > 49151) {
      throw UsageError("invalid --data-path-port \"" + v +
                       "\": the data path port must be within 1024 - 49151");
    }
    req.set_data_path_port(static_cast<uint32_t>(port));
  }
  api::InitResponse resp;
  grpc::ClientContext ctx;
  Deadline(ctx);
  Check(inv.Local()->Init(&ctx, req, &resp), inv.host);
  std::cout << "Swarm initialized: current node (" << resp.node_id() << ") is now a manager.\n\n";
  PrintJoinCommand("worker", resp.worker_token(), resp.manager_addr());
  std::cout << "To add a manager to this swarm, run 'skep swarm join-token manager' and follow "
               "the instructions.\n\n";
  return 0;
}

int Join(const Invocation& inv) {
  if (!inv.Has("token")) {
    throw UsageError(
        "--token is required: the join token from 'skep swarm join-token' on a "
        "manager\nSee 'skep swarm join --help'.");
  }
  api::JoinRequest req;
  req.set_token(inv.Get("token"));
  req.set_remote_addr(inv.args[0]);
  req.set_advertise_addr(inv.Get("advertise-addr"));
  req.set_listen_addr(inv.Get("listen-addr"));
  req.set_data_path_addr(inv.Get("data-path-addr"));
  api::JoinResponse resp;
  grpc::ClientContext ctx;
  Deadline(ctx);
  Check(inv.Local()->Join(&ctx, req, &resp), inv.host);
  std::cout << "This node joined a swarm as a "
            << (resp.role() == api::ROLE_MANAGER ? "manager" : "worker") << ".\n";
  return 0;
}

int JoinToken(const Invocation& inv) {
  const std::string role = inv.args[0];
  if (role != "worker" && role != "manager") {
    throw UsageError("unknown role " + role +
                     ": use worker or manager\nSee 'skep swarm "
                     "join-token --help'.");
  }
  api::JoinTokenRequest req;
  req.set_role(role == "manager" ? api::ROLE_MANAGER : api::ROLE_WORKER);
  req.set_rotate(inv.Has("rotate"));
  api::JoinTokenResponse resp;
  grpc::ClientContext ctx;
  Deadline(ctx);
  Check(inv.Control()->GetJoinToken(&ctx, req, &resp), inv.host);
  if (inv.Has("quiet")) {
    std::cout << resp.token() << "\n";
    return 0;
  }
  if (inv.Has("rotate")) std::cout << "Successfully rotated " << role << " join token.\n\n";
  PrintJoinCommand(role, resp.token(), resp.manager_addr());
  return 0;
}

int Leave(const Invocation& inv) {
  api::LeaveRequest req;
  req.set_force(inv.Has("force"));
  api::Empty resp;
  grpc::ClientContext ctx;
  Deadline(ctx);
  Check(inv.Local()->Leave(&ctx, req, &resp), inv.host);
  std::cout << "Node left the swarm.\n";
  return 0;
}

int Update(const Invocation& inv) {
  api::UpdateSwarmRequest req;
  req.set_heartbeat_period_ms(DurationMs(inv, "heartbeat-period"));
  req.set_election_timeout_ms(DurationMs(inv, "election-timeout"));
  req.set_cert_expiry_s(DurationMs(inv, "cert-expiry") / 1000);
  req.set_dispatcher_heartbeat_ms(DurationMs(inv, "dispatcher-heartbeat"));
  if (inv.Has("task-history-limit")) {
    const std::string v = inv.Get("task-history-limit");
    if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos) {
      throw UsageError(
          "invalid argument \"" + v +
          "\" for --task-history-limit: not a number\nSee 'skep swarm update --help'.");
    }
    req.set_task_history_limit(std::stoll(v));
  }
  if (inv.Has("cert-expiry") && req.cert_expiry_s() == 0) {
    throw UsageError("invalid argument \"" + inv.Get("cert-expiry") +
                     "\" for --cert-expiry: at least 1s\nSee 'skep swarm update --help'.");
  }
  if (!req.heartbeat_period_ms() && !req.election_timeout_ms() && !req.cert_expiry_s() &&
      !req.dispatcher_heartbeat_ms() && !req.has_task_history_limit()) {
    throw UsageError(
        "nothing to update: give at least one option\nSee 'skep swarm update --help'.");
  }
  api::Empty resp;
  grpc::ClientContext ctx;
  Deadline(ctx);
  Check(inv.Control()->UpdateSwarm(&ctx, req, &resp), inv.host);
  std::cout << "Swarm updated.\n";
  return 0;
}

std::string Ms(int64_t ms) {
  if (ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

int Inspect(const Invocation& inv) {
  api::ClusterView resp;
  grpc::ClientContext ctx;
  Deadline(ctx);
  Check(inv.Control()->InspectSwarm(&ctx, {}, &resp), inv.host);
  const auto& c = resp.cluster();
  boost::json::object o;
  o["ID"] = c.id();
  o["Version"] = boost::json::object{{"Index", c.meta().version()}};
  o["CreatedAt"] = Rfc3339(c.meta().created_at());
  o["UpdatedAt"] = Rfc3339(c.meta().updated_at());
  boost::json::object spec;
  spec["Name"] = c.spec().name();
  spec["Raft"] =
      boost::json::object{{"HeartbeatPeriod", Ms(c.spec().raft().heartbeat_period_ms())},
                          {"ElectionTimeout", Ms(c.spec().raft().election_timeout_ms())}};
  spec["Dispatcher"] =
      boost::json::object{{"HeartbeatPeriod", Ms(c.spec().dispatcher().heartbeat_period_ms())}};
  spec["CAConfig"] =
      boost::json::object{{"NodeCertExpiry", Ms(c.spec().ca().node_cert_expiry_s() * 1000)}};
  o["Spec"] = spec;
  o["RootCADigest"] = c.root_ca().digest();
  std::cout << PrettyJson(boost::json::array{o});
  return 0;
}

}  // namespace

std::vector<Command> SwarmCommands() {
  return {
      {"swarm init",
       "[OPTIONS]",
       "Initialize a swarm, with this node as its first manager",
       {{"advertise-addr", 0, "string",
         "Address others reach this manager at (format: <ip|interface>[:port])"},
        {"listen-addr", 0, "string",
         "Listen address (format: <ip|interface>[:port]) (default 0.0.0.0:2377)"},
        {"data-path-addr", 0, "string",
         "Address or interface to use for data path traffic (format: <ip|interface>)"},
        {"force-new-cluster", 0, "", "Make this manager the only one, keeping the state"},
        {"default-addr-pool", 0, "ipNetSlice",
         "Default address pool in CIDR format (default 10.0.0.0/8)", true},
        {"default-addr-pool-mask-length", 0, "uint32",
         "Default address pool subnet mask length (default 24)"},
        {"data-path-port", 0, "uint32",
         "Port number to use for data path traffic (1024 - 49151). If no value is set or is set "
         "to 0, the default port (4789) is used."}},
       0,
       0,
       Init},
      {"swarm join",
       "[OPTIONS] HOST:PORT",
       "Join a swarm as a worker or a manager",
       {{"token", 0, "string", "Token for entry into the swarm"},
        {"advertise-addr", 0, "string",
         "Address others reach this node at (format: <ip|interface>[:port])"},
        {"listen-addr", 0, "string",
         "Listen address if a manager (format: <ip|interface>[:port]) (default 0.0.0.0:2377)"},
        {"data-path-addr", 0, "string",
         "Address or interface to use for data path traffic (format: <ip|interface>)"}},
       1,
       1,
       Join},
      {"swarm join-token",
       "[OPTIONS] (worker|manager)",
       "Manage join tokens",
       {{"quiet", 'q', "", "Only display the token"}, {"rotate", 0, "", "Rotate the join token"}},
       1,
       1,
       JoinToken},
      {"swarm leave",
       "[OPTIONS]",
       "Leave the swarm",
       {{"force", 'f', "", "Leave even if this node is a manager"}},
       0,
       0,
       Leave},
      {"swarm update",
       "[OPTIONS]",
       "Update the swarm's settings",
       {{"heartbeat-period", 0, "duration", "Raft heartbeat period of the managers (e.g. 100ms)"},
        {"election-timeout", 0, "duration", "Raft election timeout of the managers (e.g. 1s)"},
        {"cert-expiry", 0, "duration", "Validity period of node certificates (e.g. 2160h)"},
        {"dispatcher-heartbeat", 0, "duration", "Agents' heartbeat period (e.g. 1s)"},
        {"task-history-limit", 0, "int", "Task history retention limit (default 5)"}},
       0,
       0,
       Update},
      {"swarm inspect", "", "Display the swarm's settings", {}, 0, 0, Inspect},
  };
}

}  // namespace skep::cli
