#include "daemon/executor/registry.h"

#include <fmt/format.h>
#include <openssl/evp.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <charconv>
#include <mutex>
#include <thread>

#include "daemon/common/mutex.h"
#include "daemon/executor/errors.h"
#include "daemon/executor/http_client.h"
#include "daemon/executor/manifest.h"

namespace skep::executor {
namespace json = boost::json;
namespace {

constexpr int kMaxRedirects = 10;
constexpr size_t kMaxManifestBytes = 4u << 20;
const char* const kManifestAccept =
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, */*";

std::string Lower(std::string s) {
  for (char& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string PercentEncode(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')
      out += static_cast<char>(c);
    else
      out += fmt::format("%{:02X}", c);
  }
  return out;
}

std::string Base64(std::string_view s) {
  std::string out(4 * ((s.size() + 2) / 3) + 1, '\0');
  int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                      reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

// The registry's answer as text: its JSON errors as "code in words: message", else the status.
std::string Answer(const HttpResponse& r) {
  boost::system::error_code ec;
  json::value v = json::parse(r.body, ec);
  std::string out;
  if (!ec && v.is_object()) {
    const json::object& o = v.as_object();
    if (const json::value* errors = o.if_contains("errors"); errors && errors->is_array()) {
      for (const json::value& e : errors->as_array()) {
        if (!e.is_object()) continue;
        std::string code, message;
        if (const json::value* c = e.as_object().if_contains("code"); c && c->is_string())
          code = Lower(std::string(c->as_string()));
        std::replace(code.begin(), code.end(), '_', ' ');
        if (const json::value* m = e.as_object().if_contains("message"); m && m->is_string())
          message = m->as_string();
        if (!out.empty()) out += "; ";
        out += code.empty() ? message : message.empty() ? code : code + ": " + message;
      }
    }
    for (const char* key : {"details", "error_description", "error"})
      if (out.empty())
        if (const json::value* d = o.if_contains(key); d && d->is_string()) out = d->as_string();
  }
  if (out.empty()) {
    out = fmt::format("HTTP {} {}", r.status, r.reason);
    std::string body = r.body.substr(0, 200);
    if (!body.empty() && body.find_first_of("<{") != 0) out += ": " + body;
  }
  return out;
}

ErrorKind KindOf(int status) {
  if (status == 404) return ErrorKind::kNotFound;
  if (status == 401 || status == 403) return ErrorKind::kUnauthorized;
  if (status == 408 || status == 429 || status >= 500) return ErrorKind::kUnavailable;
  return ErrorKind::kFailed;
}

[[noreturn]] void Fail(const HttpRequest& req, const HttpResponse& r) {
  throw ExecutorError(KindOf(r.status),
                      fmt::format("{} ({} {})", Answer(r), req.method, req.url.String()));
}

struct Endpoint {
  Url base;          // scheme://host[:port][/prefix], target without a trailing '/'
  std::string auth;  // the host[:port] whose credentials apply
  bool mirror = false;
};

struct Token {
  std::string header;  // the Authorization value
  std::chrono::steady_clock::time_point expires;
};

}  // namespace

std::vector<AuthChallenge> ParseWwwAuthenticate(std::string_view h) {
  std::vector<AuthChallenge> out;
  size_t p = 0;
  auto skip_ws = [&] {
    while (p < h.size() && (h[p] == ' ' || h[p] == '\t'))
      ++p;
  };
  auto token = [&] {
    size_t start = p;
    while (p < h.size() && h[p] != ' ' && h[p] != '\t' && h[p] != ',' && h[p] != '=')
      ++p;
    return std::string(h.substr(start, p - start));
  };
  while (p < h.size()) {
    while (p < h.size() && (h[p] == ' ' || h[p] == '\t' || h[p] == ','))
      ++p;
    if (p >= h.size()) break;
    AuthChallenge c;
    c.scheme = Lower(token());
    if (c.scheme.empty()) {  // a stray '='
      ++p;
      continue;
    }
    // Parameters until the next token that is not followed by '=' (the next challenge).
    while (true) {
      skip_ws();
      while (p < h.size() && h[p] == ',') {
        ++p;
        skip_ws();
      }
      if (p >= h.size()) break;
      size_t save = p;
      std::string name = token();
      skip_ws();
      if (name.empty() || p >= h.size() || h[p] != '=') {
        p = save;
        break;
      }
      ++p;  // '='
      skip_ws();
      std::string value;
      if (p < h.size() && h[p] == '"') {
        ++p;
        while (p < h.size() && h[p] != '"') {
          if (h[p] == '\\' && p + 1 < h.size()) ++p;
          value += h[p++];
        }
        if (p < h.size()) ++p;  // closing quote
      } else {
        size_t start = p;
        while (p < h.size() && h[p] != ',' && h[p] != ' ' && h[p] != '\t')
          ++p;
        value = std::string(h.substr(start, p - start));
      }
      c.params[Lower(name)] = value;
    }
    out.push_back(std::move(c));
  }
  return out;
}

struct Registry::Impl {
  RegistryConfig config;
  HttpClient http;
  Mutex mu;
  std::map<std::string, Token> tokens SKEP_GUARDED_BY(mu);  // by "host scope"

  explicit Impl(RegistryConfig c)
      : config(std::move(c)), http(HttpClient::Options{config.ca_file, config.timeout}) {}

  std::vector<Endpoint> Endpoints(const std::string& domain) {
    std::vector<Endpoint> out;
    auto trim = [](Url u) {
      while (u.target.size() > 1 && u.target.back() == '/')
        u.target.pop_back();
      if (u.target == "/") u.target.clear();
      return u;
    };
    if (domain == "docker.io") {
      for (const std::string& m : config.mirrors) {
        Url u = trim(Url::Parse(m));
        out.push_back({u, u.HostPort(), true});
      }
      out.push_back({Url::Parse("https://registry-1.docker.io"), "docker.io", false});
      return out;
    }
    bool insecure = false;
    std::string host = domain.substr(0, domain.rfind(':'));
    for (const std::string& i : config.insecure)
      insecure |= (i == domain || i == host);
    Url u = Url::Parse((insecure ? "http://" : "https://") + domain);
    u.target.clear();
    out.push_back({u, domain, false});
    return out;
  }

  const RegistryCredentials* CredentialsFor(const std::string& host) const {
    auto it = config.credentials.find(host);
    return it == config.credentials.end() ? nullptr : &it->second;
  }

  // Sends `req`, following redirects; the Authorization header only goes to the first host.
  HttpResponse SendFollowing(HttpRequest req, const BodySink* sink, size_t max_body) {
    std::string origin = req.url.HostPort();
    for (int hop = 0;; ++hop) {
      HttpResponse r = http.Send(req, sink, max_body);
      bool redirect = r.status == 301 || r.status == 302 || r.status == 303 || r.status == 307 ||
                      r.status == 308;
      if (!redirect) return r;
      std::string location = r.Header("location");
      if (location.empty() || hop >= kMaxRedirects) return r;
      req.url = req.url.Resolve(location);
      if (r.status == 303) req.method = req.method == "HEAD" ? "HEAD" : "GET";
      if (req.url.HostPort() != origin)
        req.headers.erase(
            std::remove_if(req.headers.begin(), req.headers.end(),
                           [](const auto& h) { return Lower(h.first) == "authorization"; }),
            req.headers.end());
    }
  }

  // A token from the challenge's realm: with credentials a form POST (falling back to GET with
  // Basic auth when the server refuses the form), anonymously a GET.
  Token FetchToken(const Endpoint& ep, const AuthChallenge& c,
                   const std::vector<std::string>& scopes) {
    auto realm_it = c.params.find("realm");
    if (realm_it == c.params.end())
      throw ExecutorError(ErrorKind::kUnauthorized,
                          fmt::format("registry {} asks for a bearer token but names no realm",
                                      ep.base.HostPort()));
    Url realm = Url::Parse(realm_it->second);
    std::string service = c.params.count("service") ? c.params.at("service") : "";
    const RegistryCredentials* creds = CredentialsFor(ep.auth);
    HttpResponse r;
    HttpRequest req;
    if (creds != nullptr && !creds->username.empty()) {
      req.method = "POST";
      req.url = realm;
      req.headers = {{"Content-Type", "application/x-www-form-urlencoded"}};
      req.body = "grant_type=password&client_id=containerd-client&username=" +
                 PercentEncode(creds->username) + "&password=" + PercentEncode(creds->password);
      if (!service.empty()) req.body += "&service=" + PercentEncode(service);
      for (const std::string& s : scopes)
        req.body += "&scope=" + PercentEncode(s);
      r = SendFollowing(req, nullptr, 1u << 20);
      if (r.status == 400 || r.status == 401 || r.status == 404 || r.status == 405) r.status = 0;
    }
    if (r.status == 0) {
      req = {};
      req.url = realm;
      std::string query;
      if (!service.empty()) query += "service=" + PercentEncode(service);
      for (const std::string& s : scopes)
        query += (query.empty() ? "" : "&") + ("scope=" + PercentEncode(s));
      if (!query.empty())
        req.url.target += (req.url.target.find('?') == std::string::npos ? "?" : "&") + query;
      if (creds != nullptr && !creds->username.empty())
        req.headers.emplace_back("Authorization",
                                 "Basic " + Base64(creds->username + ":" + creds->password));
      r = SendFollowing(req, nullptr, 1u << 20);
    }
    if (r.status / 100 != 2)
      throw ExecutorError(
          r.status == 401 || r.status == 403 ? ErrorKind::kUnauthorized : KindOf(r.status),
          fmt::format("token from {}: {}", realm.HostPort(), Answer(r)));
    boost::system::error_code ec;
    json::value v = json::parse(r.body, ec);
    std::string token;
    int64_t expires_in = 60;
    if (!ec && v.is_object()) {
      for (const char* key : {"token", "access_token"})
        if (const json::value* t = v.as_object().if_contains(key);
            t && t->is_string() && token.empty())
          token = t->as_string();
      if (const json::value* e = v.as_object().if_contains("expires_in"); e && e->is_int64())
        // At least 10 s; at most a day, which also keeps the arithmetic below from
        // overflowing on a registry's absurd value.
        expires_in = std::clamp<int64_t>(e->as_int64(), 10, 86400);
    }
    if (token.empty())
      throw ExecutorError(
          ErrorKind::kUnauthorized,
          fmt::format("token from {}: the answer holds no token", realm.HostPort()));
    // Refresh a little early so that a token never expires between use and answer.
    return {"Bearer " + token,
            std::chrono::steady_clock::now() + std::chrono::seconds(expires_in * 9 / 10)};
  }

  // One registry request with auth: a cached token first; on 401 the challenge is answered
  // once. 408/429/503 are retried a few times with a short backoff.
  HttpResponse Send(const Endpoint& ep, const ImageRef& ref, HttpRequest req, const BodySink* sink,
                    size_t max_body) {
    std::string scope = "repository:" + ref.path + ":pull";
    std::string key = ep.base.HostPort() + " " + scope;
    bool answered = false;
    for (int attempt = 0;; ++attempt) {
      HttpRequest r = req;
      {
        MutexLock lock(mu);
        auto it = tokens.find(key);
        if (it != tokens.end() && it->second.expires < std::chrono::steady_clock::now()) {
          tokens.erase(it);
          it = tokens.end();
        }
        if (it != tokens.end()) r.headers.emplace_back("Authorization", it->second.header);
      }
      HttpResponse resp = SendFollowing(r, sink, max_body);
      if (resp.status == 401 && !answered) {
        answered = true;
        std::optional<Token> token;
        for (const std::string& h : resp.Headers("www-authenticate")) {
          for (const AuthChallenge& c : ParseWwwAuthenticate(h)) {
            if (token) break;
            if (c.scheme == "bearer") {
              std::vector<std::string> scopes{scope};
              if (auto s = c.params.find("scope"); s != c.params.end() && s->second != scope)
                scopes.push_back(s->second);
              token = FetchToken(ep, c, scopes);
            } else if (c.scheme == "basic") {
              if (const RegistryCredentials* creds = CredentialsFor(ep.auth))
                token = Token{"Basic " + Base64(creds->username + ":" + creds->password),
                              std::chrono::steady_clock::time_point::max()};
            }
          }
        }
        if (token) {
          MutexLock lock(mu);
          tokens[key] = *token;
          continue;
        }
        return resp;  // no challenge we can answer: the caller reports the 401
      }
      bool transient = resp.status == 408 || resp.status == 429 || resp.status == 503;
      if (transient && attempt < 4) {
        // Bounded backoff (0.25 s .. 2 s): the registry asked us to slow down.
        std::this_thread::sleep_for(std::chrono::milliseconds(250 << attempt));
        continue;
      }
      return resp;
    }
  }

  // Runs `op` against each endpoint in turn: the first that answers wins; a mirror that fails
  // or lacks the content passes to the next one. The last error is thrown, with the mirrors'.
  template <class T, class Op>
  T OnEndpoints(const ImageRef& ref, Op op) {
    std::vector<Endpoint> eps = Endpoints(ref.domain);
    std::string mirror_errors;
    for (size_t i = 0; i < eps.size(); ++i) {
      try {
        return op(eps[i]);
      } catch (const ExecutorError& e) {
        if (i + 1 == eps.size()) {
          if (mirror_errors.empty()) throw;
          throw ExecutorError(e.kind(),
                              std::string(e.what()) + " (mirrors: " + mirror_errors + ")");
        }
        if (!mirror_errors.empty()) mirror_errors += "; ";
        mirror_errors += eps[i].base.String() + ": " + e.what();
      }
    }
    throw ExecutorError(ErrorKind::kFailed, "no registry endpoint for " + ref.domain);
  }

  HttpRequest Request(const Endpoint& ep, const ImageRef& ref, std::string_view kind,
                      const std::string& reference, std::string method = "GET") {
    HttpRequest r;
    r.method = std::move(method);
    r.url = ep.base;
    r.url.target += fmt::format("/v2/{}/{}/{}", ref.path, kind, reference);
    return r;
  }
};

Registry::Registry(RegistryConfig config) : impl_(std::make_unique<Impl>(std::move(config))) {}
Registry::~Registry() = default;

Descriptor Registry::Resolve(const ImageRef& ref) {
  return impl_->OnEndpoints<Descriptor>(ref, [&](const Endpoint& ep) {
    HttpRequest head = impl_->Request(ep, ref, "manifests", ref.Reference(), "HEAD");
    head.headers.emplace_back("Accept", kManifestAccept);
    HttpResponse r = impl_->Send(ep, ref, head, nullptr, 0);
    Descriptor d;
    if (r.status / 100 == 2) {
      d.digest = r.Header("docker-content-digest");
      d.media_type = r.Header("content-type");
      d.media_type = d.media_type.substr(0, d.media_type.find(';'));
      std::string length = r.Header("content-length");
      std::from_chars(length.data(), length.data() + length.size(), d.size);
      if (d.digest.empty() && !ref.digest.empty()) d.digest = ref.digest;
      if (!d.digest.empty() && d.size > 0 &&
          (IsIndexType(d.media_type) || IsManifestType(d.media_type)))
        return d;
    }
    // HEAD answers lack a body (the registry's error message) and sometimes headers: GET.
    HttpRequest get = head;
    get.method = "GET";
    r = impl_->Send(ep, ref, get, nullptr, kMaxManifestBytes);
    if (r.status / 100 != 2) Fail(get, r);
    std::string content_type = r.Header("content-type");
    d.media_type = ManifestMediaType(r.body, content_type.substr(0, content_type.find(';')));
    d.digest = Sha256Digest(r.body);
    d.size = static_cast<int64_t>(r.body.size());
    if (!ref.digest.empty() && d.digest != ref.digest)
      throw ExecutorError(ErrorKind::kFailed,
                          fmt::format("manifest {} from {} has digest {}", ref.digest,
                                      ep.base.HostPort(), d.digest));
    return d;
  });
}

std::string Registry::FetchManifest(const ImageRef& ref, const Descriptor& desc) {
  return impl_->OnEndpoints<std::string>(ref, [&](const Endpoint& ep) {
    HttpRequest get = impl_->Request(ep, ref, "manifests", desc.digest);
    get.headers.emplace_back("Accept", desc.media_type.empty()
                                           ? std::string(kManifestAccept)
                                           : desc.media_type + ", " + kManifestAccept);
    HttpResponse r = impl_->Send(ep, ref, get, nullptr, kMaxManifestBytes);
    if (r.status / 100 != 2) Fail(get, r);
    std::string got = Sha256Digest(r.body);
    if (got != desc.digest)
      throw ExecutorError(ErrorKind::kFailed, fmt::format("manifest {} from {} has digest {}",
                                                          desc.digest, ep.base.HostPort(), got));
    return std::move(r.body);
  });
}

std::vector<Platform> Registry::Platforms(const ImageRef& ref, const Descriptor& desc) {
  const std::string document = FetchManifest(ref, desc);
  if (IsIndexType(desc.media_type)) return IndexPlatforms(ParseIndex(document));
  const Manifest manifest = ParseManifest(document);
  std::string config;
  FetchBlob(ref, manifest.config, 0, [&config](int64_t at, std::string_view chunk) {
    config.resize(static_cast<size_t>(at));
    config.append(chunk);
  });
  if (Sha256Digest(config) != manifest.config.digest) {
    throw ExecutorError(ErrorKind::kFailed, "image config " + manifest.config.digest +
                                                " does not match its digest");
  }
  return {ParseConfigPlatform(config)};
}

void Registry::FetchBlob(const ImageRef& ref, const Descriptor& desc, int64_t offset,
                         const std::function<void(int64_t, std::string_view)>& on_chunk) {
  // Where the next byte goes; a mirror failing halfway passes on from there.
  int64_t next = offset;
  impl_->OnEndpoints<bool>(ref, [&](const Endpoint& ep) {
    HttpRequest get = impl_->Request(ep, ref, "blobs", desc.digest);
    get.headers.emplace_back("Accept", desc.media_type.empty() ? "*/*" : desc.media_type + ", */*");
    int64_t asked = next;
    if (asked > 0) get.headers.emplace_back("Range", fmt::format("bytes={}-", asked));
    bool first = true;
    BodySink sink = [&](const HttpResponse& head, std::string_view chunk) {
      if (first) {
        first = false;
        next = 0;
        if (head.status == 206) {
          std::string range = head.Header("content-range");  // "bytes <first>-<last>/<total>"
          if (range.rfind(fmt::format("bytes {}-", asked), 0) != 0)
            throw ExecutorError(ErrorKind::kFailed,
                                fmt::format("blob {} from {}: asked for bytes from {}, got \"{}\"",
                                            desc.digest, ep.base.HostPort(), asked, range));
          next = asked;
        }
      }
      on_chunk(next, chunk);
      next += static_cast<int64_t>(chunk.size());
    };
    HttpResponse r = impl_->Send(ep, ref, get, &sink, 64 * 1024);
    if (r.status / 100 != 2) Fail(get, r);
    return true;
  });
}

void Registry::Login(const std::string& domain) {
  const Endpoint ep = impl_->Endpoints(domain).back();  // docker.io's mirrors come first
  const RegistryCredentials* creds = impl_->CredentialsFor(ep.auth);
  if (creds == nullptr || creds->username.empty())
    throw ExecutorError(ErrorKind::kInvalidArgument, "no user name to log in to " + domain + " with");
  HttpRequest req;
  req.url = ep.base;
  req.url.target += "/v2/";
  HttpResponse r = impl_->SendFollowing(req, nullptr, 1u << 20);
  if (r.status / 100 == 2) return;
  if (r.status != 401) Fail(req, r);
  std::optional<Token> token;
  for (const std::string& h : r.Headers("www-authenticate")) {
    for (const AuthChallenge& c : ParseWwwAuthenticate(h)) {
      if (token) break;
      if (c.scheme == "bearer") token = impl_->FetchToken(ep, c, {});
      if (c.scheme == "basic")
        token = Token{"Basic " + Base64(creds->username + ":" + creds->password), {}};
    }
  }
  if (!token)
    throw ExecutorError(ErrorKind::kUnauthorized,
                        fmt::format("registry {} asks for an authentication skep does not know "
                                    "({})",
                                    domain, r.Header("www-authenticate")));
  req.headers.emplace_back("Authorization", token->header);
  r = impl_->SendFollowing(req, nullptr, 1u << 20);
  if (r.status / 100 != 2) Fail(req, r);
}

}  // namespace skep::executor
