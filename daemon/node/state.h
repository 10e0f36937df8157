// What skepd keeps in its data directory:
//   state.pb        the swarm this node belongs to (LocalState), absent when it belongs to none
//   certificates/   node.key, node.crt, ca.crt
//   raft/           the raft log (managers only)
// Files are replaced atomically (write to a temporary file, fsync, rename, fsync the directory).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "control.pb.h"
#include "daemon/common/tls.h"

namespace skep::node {

// The format of state.pb this build reads and writes (api::LocalState.format).
inline constexpr uint32_t kLocalStateFormat = 1;

class DataDir {
 public:
  explicit DataDir(std::string path) : path_(std::move(path)) {}
  const std::string& path() const { return path_; }
  std::string CertDir() const { return path_ + "/certificates"; }
  std::string RaftDir() const { return path_ + "/raft"; }
  tls::Files Certs() const { return tls::Files::In(CertDir()); }

  // Throws std::runtime_error naming the file when it exists but cannot be read or parsed, or
  // when a newer skep wrote it in a format this one does not read.
  std::optional<api::LocalState> LoadState() const;
  void SaveState(const api::LocalState& state) const;
  void SaveCertificates(const std::string& key_pem, const std::string& cert_pem,
                        const std::string& ca_pem) const;
  void SaveCertificate(const std::string& cert_pem) const;  // a renewal keeps the key
  std::string ReadFile(const std::string& path) const;
  // Removes everything the swarm left: state, certificates, raft log, tasks and their logs.
  void Wipe() const;
  void WipeRaft() const;

 private:
  std::string path_;
};

}  // namespace skep::node
