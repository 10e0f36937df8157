#include "daemon/node/task_dns.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "daemon/common/files.h"
#include "daemon/common/log.h"

namespace skep::node {

TaskDns::TaskDns(boost::asio::io_context& io)
    : server_(io, dns::DnsServer::UpstreamsFromResolvConf("/etc/resolv.conf")) {}

void TaskDns::OnNames(const std::string& id, const std::string& netns,
                      const dataplane::ServiceMesh::Names& names, bool gone) {
  if (gone) {
    if (listening_.erase(id)) server_.RemoveListener(id);
    return;
  }
  server_.SetNames(id, std::make_shared<const dns::Names>(dns::Names{names}));
  if (listening_.count(id)) return;
  try {
    server_.AddListener(id, netns);
    listening_.insert(id);
  } catch (const std::exception& e) {
    SKEP_LOG(warn, "worker", "task {}: no DNS: {}", id, e.what());
  }
}

std::string TaskDns::WriteResolvConf(const std::string& dir) {
  std::ostringstream out;
  out << "nameserver 127.0.0.11\n";
  std::ifstream host("/etc/resolv.conf");
  for (std::string line; std::getline(host, line);) {
    if (line.rfind("search", 0) == 0 || line.rfind("domain", 0) == 0) out << line << "\n";
  }
  out << "options ndots:0\n";
  const std::string path = dir + "/resolv.conf";
  std::filesystem::create_directories(dir);
  files::WriteAtomically(path, out.str(), 0644);
  return path;
}

}  // namespace skep::node
