#include "daemon/cli/registry_login.h"

#include <openssl/evp.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "daemon/executor/image_ref.h"
#include "daemon/cli/command.h"

namespace skep::cli {

namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

constexpr const char* kDockerHubKey = "https://index.docker.io/v1/";

std::string Base64(const std::string& in) {
  std::string out(4 * ((in.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::optional<std::string> Unbase64(const std::string& in) {
  if (in.size() % 4 != 0) return std::nullopt;
  std::string out(in.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  if (n < 0) return std::nullopt;
  size_t len = static_cast<size_t>(n);
  for (size_t i = in.size(); i > 0 && in[i - 1] == '='; --i)
    --len;  // EVP_DecodeBlock counts the padding as bytes
  out.resize(len);
  return out;
}

// The config file's object (empty when there is none).
json::object ReadConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return {};
  std::stringstream text;
  text << in.rdbuf();
  boost::system::error_code ec;
  json::value v = json::parse(text.str(), ec);
  if (ec || !v.is_object())
    throw UsageError(path + " is not a Docker config file (" +
                     (ec ? ec.message() : std::string("not a JSON object")) + ")");
  return v.as_object();
}

void WriteConfig(const std::string& path, const json::object& config) {
  const fs::path dir = fs::path(path).parent_path();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw DaemonError("cannot create " + dir.string() + ": " + ec.message());
  const std::string tmp = path + ".tmp";
  {
    const mode_t old = umask(077);  // the file holds passwords
    std::ofstream out(tmp, std::ios::trunc);
    umask(old);
    out << json::serialize(config) << "\n";
    out.close();
    if (!out) throw DaemonError("cannot write " + tmp);
  }
  fs::rename(tmp, path, ec);
  if (ec) throw DaemonError("cannot replace " + path + ": " + ec.message());
}

bool SameRegistry(const std::string& key, const std::string& domain) {
  return executor::RegistryDomain(key) == domain;
}

std::string Prompt(const std::string& what, bool hidden) {
  std::cerr << what << std::flush;
  termios saved{};
  const bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
  if (tty && hidden) {
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
  }
  std::string line;
  std::getline(std::cin, line);
  if (tty && hidden) {
    tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    std::cerr << "\n";
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

int Login(const Invocation& inv) {
  const std::string server = inv.args.empty() ? "" : inv.args[0];
  std::string user = inv.Get("username");
  std::string password = inv.Get("password");
  if (inv.Has("password") && inv.Has("password-stdin"))
    throw UsageError("--password and --password-stdin are mutually exclusive");
  if (inv.Has("password-stdin")) {
    if (user.empty()) throw UsageError("must provide --username with --password-stdin");
    std::getline(std::cin, password);
    while (!password.empty() && (password.back() == '\n' || password.back() == '\r'))
      password.pop_back();
  } else if (inv.Has("password")) {
    std::cerr << "WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n";
  }
  if (user.empty()) user = Prompt("Username: ", false);
  if (user.empty()) throw UsageError("a user name is required");
  if (!inv.Has("password") && !inv.Has("password-stdin")) password = Prompt("Password: ", true);
  if (password.empty()) throw UsageError("a password is required");

  api::LoginRequest req;
  req.set_server(server);
  req.set_username(user);
  req.set_password(password);
  api::LoginResponse resp;
  grpc::ClientContext ctx;
  Deadline(ctx);
  Check(inv.Local()->Login(&ctx, req, &resp), inv.host);

  const std::string path = DockerConfigPath();
  json::object config = ReadConfig(path);
  json::object& auths = config["auths"].is_object() ? config["auths"].as_object()
                                                     : config["auths"].emplace_object();
  auths[LoginKey(server)] = json::object{{"auth", Base64(user + ":" + password)}};
  WriteConfig(path, config);
  std::cout << "Login Succeeded\n";
  return 0;
}

int Logout(const Invocation& inv) {
  const std::string server = inv.args.empty() ? "" : inv.args[0];
  const std::string key = LoginKey(server);
  const std::string domain = executor::RegistryDomain(key);
  const std::string path = DockerConfigPath();
  json::object config = ReadConfig(path);
  bool removed = false;
  if (json::value* auths = config.if_contains("auths"); auths && auths->is_object()) {
    json::object& a = auths->as_object();
    for (auto it = a.begin(); it != a.end();) {
      if (SameRegistry(std::string(it->key()), domain)) {
        it = a.erase(it);
        removed = true;
      } else {
        ++it;
      }
    }
  }
  if (!removed) {
    std::cout << "Not logged in to " << key << "\n";
    return 0;
  }
  WriteConfig(path, config);
  std::cout << "Removing login credentials for " << key << "\n";
  return 0;
}

}  // namespace

std::string DockerConfigPath() {
  if (const char* dir = std::getenv("DOCKER_CONFIG"); dir && *dir)
    return std::string(dir) + "/config.json";
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : "/root") + "/.docker/config.json";
}

std::string LoginKey(const std::string& server) {
  const std::string domain = executor::RegistryDomain(server.empty() ? "docker.io" : server);
  return domain == "docker.io" ? kDockerHubKey : domain;
}

std::optional<api::RegistryAuth> StoredLoginForImage(const std::string& image) {
  std::string domain;
  try {
    domain = executor::ParseImageRef(image).domain;
  } catch (const std::exception&) {
    return std::nullopt;  // the managers say what is wrong with the reference
  }
  const std::string path = DockerConfigPath();
  const json::object config = ReadConfig(path);
  const json::value* auths = config.if_contains("auths");
  if (auths == nullptr || !auths->is_object()) return std::nullopt;
  for (const auto& [key, entry] : auths->as_object()) {
    if (!SameRegistry(std::string(key), domain) || !entry.is_object()) continue;
    api::RegistryAuth out;
    out.set_server(std::string(key));
    const json::object& e = entry.as_object();
    if (const json::value* a = e.if_contains("auth"); a && a->is_string()) {
      auto plain = Unbase64(std::string(a->as_string()));
      const size_t colon = plain ? plain->find(':') : std::string::npos;
      if (colon == std::string::npos)
        throw UsageError("the login for " + std::string(key) + " in " + path + " is damaged");
      out.set_username(plain->substr(0, colon));
      out.set_password(plain->substr(colon + 1));
    } else {
      if (const json::value* u = e.if_contains("username"); u && u->is_string())
        out.set_username(std::string(u->as_string()));
      if (const json::value* p = e.if_contains("password"); p && p->is_string())
        out.set_password(std::string(p->as_string()));
    }
    if (out.username().empty()) continue;  // an entry a credential helper fills
    return out;
  }
  return std::nullopt;
}

std::vector<Command> LoginCommands() {
  return {
      {"login",
       "[OPTIONS] [SERVER]",
       "Log in to a registry (Docker Hub when no server is given)",
       {{"username", 'u', "string", "Username"},
        {"password", 'p', "string", "Password"},
        {"password-stdin", 0, "", "Take the password from stdin"}},
       0,
       1,
       Login},
      {"logout", "[SERVER]", "Log out from a registry", {}, 0, 1, Logout},
  };
}

}  // namespace skep::cli
