#include "daemon/node/state.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace skep::node {

namespace fs = std::filesystem;

void WriteFileAtomically(const std::string& path, const std::string& data, int mode) {
  fs::create_directories(fs::path(path).parent_path());
  // A name of its own, so that two writers of one file never write into the same temporary.
  static std::atomic<uint64_t> counter{0};
  const std::string tmp =
      path + ".tmp." + std::to_string(getpid()) + "." + std::to_string(counter++);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) throw std::runtime_error("cannot write " + tmp + ": " + std::strerror(errno));
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      ::close(fd);
      throw std::runtime_error("cannot write " + tmp + ": " + std::strerror(errno));
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    throw std::runtime_error("cannot sync " + tmp + ": " + std::strerror(errno));
  }
  fs::rename(tmp, path);
  const int dir = ::open(fs::path(path).parent_path().c_str(), O_RDONLY | O_DIRECTORY);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

std::string DataDir::ReadFile(const std::string& path) const {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::optional<api::LocalState> DataDir::LoadState() const {
  const std::string path = path_ + "/state.pb";
  if (!fs::exists(path)) return std::nullopt;
  api::LocalState st;
  if (!st.ParseFromString(ReadFile(path)) || st.node_id().empty()) {
    throw std::runtime_error(path + " is damaged; move it away to start this node afresh");
  }
  return st;
}

void DataDir::SaveState(const api::LocalState& state) const {
  WriteFileAtomically(path_ + "/state.pb", state.SerializeAsString(), 0600);
}

void DataDir::SaveCertificates(const std::string& key_pem, const std::string& cert_pem,
                               const std::string& ca_pem) const {
  const tls::Files f = Certs();
  WriteFileAtomically(f.ca, ca_pem, 0644);
  WriteFileAtomically(f.key, key_pem, 0600);
  WriteFileAtomically(f.cert, cert_pem, 0644);
}

void DataDir::SaveCertificate(const std::string& cert_pem) const {
  WriteFileAtomically(Certs().cert, cert_pem, 0644);
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
