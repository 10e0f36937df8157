#include <iostream>

#include "daemon/cli/command.h"
#include "daemon/cli/completion.h"
#include "daemon/common/version.h"

namespace skep::cli {

std::vector<Command> SwarmCommands();
std::vector<Command> NodeCommands();
std::vector<Command> ServiceCommands();
std::vector<Command> LogsCommands();
std::vector<Command> NetworkCommands();
std::vector<Command> LoginCommands();

void Deadline(grpc::ClientContext& ctx) {
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
}

int ForEachRef(const Invocation& inv, const std::function<grpc::Status(const std::string&)>& call) {
  int rc = 0;
  for (const auto& ref : inv.args) {
    try {
      Check(call(ref), inv.host);
      std::cout << ref << "\n";
    } catch (const DaemonError& e) {
      std::cerr << "skep: " << e.what() << "\n";
      rc = 1;
    }
  }
  return rc;
}

namespace {

int Info(const Invocation& inv) {
  api::InfoResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  Check(inv.Local()->Info(&ctx, {}, &resp), inv.host);
  std::cout << "Server Version: " << resp.engine_version() << "\n";
  std::cout << "Swarm: " << resp.local_state() << "\n";
  if (resp.local_state() == "inactive") return 0;
  std::cout << " NodeID: " << resp.node_id() << "\n";
  if (!resp.error().empty()) std::cout << " Error: " << resp.error() << "\n";
  std::cout << " Is Manager: " << (resp.role() == api::ROLE_MANAGER ? "true" : "false") << "\n";
  if (resp.role() == api::ROLE_MANAGER) {
    std::cout << " Is Leader: " << (resp.is_leader() ? "true" : "false") << "\n";
  }
  std::cout << " ClusterID: " << resp.cluster_id() << "\n";
  std::cout << " Node Address: " << resp.node_addr() << "\n";
  std::cout << " Manager Addresses:\n";
  for (const auto& m : resp.managers())
    std::cout << "  " << m.addr() << "\n";
  return 0;
}

int Completion(const Invocation& inv) {
  if (inv.args[0] != "bash") {
    throw UsageError("no completion for \"" + inv.args[0] +
                     "\": skep completes in bash only.\nSee 'skep completion --help'.");
  }
  std::cout << BashCompletion(AllCommands());
  return 0;
}

int Version(const Invocation&) {
  std::cout << skep::VersionLine("skep") << "\n";
  return 0;
}

}  // namespace

std::vector<Command> AllCommands() {
  std::vector<Command> all = SwarmCommands();
  for (auto& c : NodeCommands())
    all.push_back(std::move(c));
  for (auto& c : ServiceCommands())
    all.push_back(std::move(c));
  for (auto& c : LogsCommands())
    all.push_back(std::move(c));
  for (auto& c : NetworkCommands())
    all.push_back(std::move(c));
  for (auto& c : LoginCommands())
    all.push_back(std::move(c));
  all.push_back({"info", "", "Display this node's view of the swarm", {}, 0, 0, Info});
  all.push_back({"version", "", "Show the skep version", {}, 0, 0, Version});
  all.push_back({"completion",
                 "SHELL",
                 "Print the completion script for a shell (bash)",
                 {},
                 1,
                 1,
                 Completion});
  return all;
}

}  // namespace skep::cli
