#include "daemon/node/state.h"

#include <filesystem>
#include <stdexcept>

#include "daemon/common/files.h"
#include "daemon/common/version.h"

namespace skep::node {

namespace fs = std::filesystem;

std::string DataDir::ReadFile(const std::string& path) const {
  return files::Read(path);
}

std::optional<api::LocalState> DataDir::LoadState() const {
  const std::string path = path_ + "/state.pb";
  if (!fs::exists(path)) return std::nullopt;
  api::LocalState st;
  if (!st.ParseFromString(ReadFile(path)) || st.node_id().empty()) {
    throw std::runtime_error(path + " is damaged; move it away to start this node afresh");
  }
  if (st.format() > kLocalStateFormat) {
    throw std::runtime_error(path + " was written by a newer skep (format " +
                             std::to_string(st.format()) + "; this skepd, " +
                             std::string(Version()) + ", reads up to " +
                             std::to_string(kLocalStateFormat) + "): upgrade skepd");
  }
  return st;
}

void DataDir::SaveState(const api::LocalState& state) const {
  api::LocalState out = state;
  out.set_format(kLocalStateFormat);
  files::WriteAtomically(path_ + "/state.pb", out.SerializeAsString(), 0600);
}

void DataDir::SaveCertificates(const std::string& key_pem, const std::string& cert_pem,
                               const std::string& ca_pem) const {
  const tls::Files f = Certs();
  files::WriteAtomically(f.ca, ca_pem, 0644);
  files::WriteAtomically(f.key, key_pem, 0600);
  files::WriteAtomically(f.cert, cert_pem, 0644);
}

void DataDir::SaveCertificate(const std::string& cert_pem) const {
  files::WriteAtomically(Certs().cert, cert_pem, 0644);
}

void DataDir::Wipe() const {
  std::error_code ec;
  fs::remove(path_ + "/state.pb", ec);
  fs::remove_all(CertDir(), ec);
  fs::remove_all(RaftDir(), ec);
  // The old swarm's tasks and their logs; named volumes stay, as Docker keeps them.
  fs::remove(path_ + "/tasks.pb", ec);
  fs::remove_all(path_ + "/tasks", ec);
}

void DataDir::WipeRaft() const {
  std::error_code ec;
  fs::remove_all(RaftDir(), ec);
}

}  // namespace skep::node
