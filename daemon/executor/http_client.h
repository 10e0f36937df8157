// A small blocking HTTP/1.1 client for the registry code (Boost.Beast): one request per
// connection, TLS verified against the system CAs (and a given bundle) with the host name
// checked, a timeout on every connect, write and read. Thread-safe: each Send runs on its own
// io_context on the calling thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace skep::executor {

struct Url {
  std::string scheme;  // "http" or "https"
  std::string host;    // IPv6 without brackets
  std::string port;    // always set ("80"/"443" by default)
  std::string target;  // path and query, at least "/"

  // Throws ExecutorError(kInvalidArgument) for anything but http(s)://host[:port][/path].
  static Url Parse(std::string_view text);
  // host, or host:port when the port is not the scheme's default (as in a Host header).
  std::string HostPort() const;
  std::string String() const { return scheme + "://" + HostPort() + target; }
  // A redirect's Location, absolute or relative to this URL.
  Url Resolve(std::string_view location) const;
};

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method = "GET";
  Url url;
  HttpHeaders headers;
  std::string body;
};

struct HttpResponse {
  int status = 0;
  std::string reason;
  HttpHeaders headers;  // names in lower case
  std::string body;

  std::string Header(std::string_view name) const;  // first value, or empty
  std::vector<std::string> Headers(std::string_view name) const;
};

// Receives a successful response's body in chunks, in order, with the response's status and
// headers (set before the first chunk).
using BodySink = std::function<void(const HttpResponse& head, std::string_view chunk)>;

class HttpClient {
 public:
  struct Options {
    std::string ca_file;  // PEM bundle trusted besides the system's CAs; empty: none
    std::chrono::seconds timeout{30};
  };
  explicit HttpClient(Options options);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends `request` on a new connection and reads the answer. With a sink, a 2xx body is
  // streamed to it (response.body stays empty); any other body is kept in response.body, at
  // most max_body bytes. Transport failures throw ExecutorError(kUnavailable): "cannot reach
  // registry HOST: connection refused", or which step failed once connected. Exceptions from
  // the sink propagate unchanged.
  HttpResponse Send(const HttpRequest& request, const BodySink* sink = nullptr,
                    size_t max_body = 4u << 20);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace skep::executor
