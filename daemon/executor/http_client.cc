#include "daemon/executor/http_client.h"

#include <fmt/format.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>

#include "daemon/executor/errors.h"

namespace skep::executor {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

namespace {

std::string Lower(std::string s) {
  for (char& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// System messages start with a capital ("Connection refused"); ours continue a sentence.
std::string Why(const boost::system::error_code& ec) {
  if (ec == beast::error::timeout) return "timed out";
  std::string m = ec.message();
  if (!m.empty()) m[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(m[0])));
  return m;
}

// Which step a transport error happened in, for the message.
struct Step {
  std::string name = "connect";
};

template <class Stream>
asio::awaitable<void> Exchange(Stream& stream, beast::tcp_stream& tcp, const HttpRequest& req,
                               const BodySink* sink, size_t max_body, std::chrono::seconds timeout,
                               HttpResponse& out, Step& step) {
  http::request<http::string_body> r{http::string_to_verb(req.method), req.url.target, 11};
  r.set(http::field::host, req.url.HostPort());
  r.set(http::field::user_agent, "skep");
  for (const auto& [k, v] : req.headers)
    r.insert(k, v);
  if (!req.body.empty() || req.method == "POST") {
    r.body() = req.body;
    r.prepare_payload();
  }
  step.name = "send request";
  tcp.expires_after(timeout);
  co_await http::async_write(stream, r, asio::use_awaitable);

  step.name = "read response";
  beast::flat_buffer buffer;
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(boost::none);  // the limits are ours, below
  if (req.method == "HEAD") parser.skip(true);
  tcp.expires_after(timeout);
  co_await http::async_read_header(stream, buffer, parser, asio::use_awaitable);
  const auto& head = parser.get();
  out.status = static_cast<int>(head.result_int());
  out.reason = std::string(head.reason());
  for (const auto& field : head)
    out.headers.emplace_back(Lower(std::string(field.name_string())), std::string(field.value()));
  bool to_sink = sink != nullptr && out.status >= 200 && out.status < 300;

  std::vector<char> chunk(256 * 1024);
  while (!parser.is_done()) {
    parser.get().body().data = chunk.data();
    parser.get().body().size = chunk.size();
    tcp.expires_after(timeout);
    auto [ec, n] =
        co_await http::async_read(stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
    (void)n;
    if (ec == http::error::need_buffer) ec = {};
    if (ec) throw boost::system::system_error(ec);
    size_t got = chunk.size() - parser.get().body().size;
    if (got == 0) continue;
    if (to_sink) {
      step.name = "deliver body";
      (*sink)(out, std::string_view(chunk.data(), got));
      step.name = "read response";
    } else {
      if (out.body.size() + got > max_body)
        throw ExecutorError(ErrorKind::kFailed,
                            fmt::format("{} {}: response larger than {} bytes", req.method,
                                        req.url.String(), max_body));
      out.body.append(chunk.data(), got);
    }
  }
  beast::error_code ignored;
  tcp.socket().shutdown(tcp::socket::shutdown_both, ignored);
}

}  // namespace

struct HttpClient::Impl {
  Options options;
  ssl::context tls{ssl::context::tls_client};

  asio::awaitable<void> Run(const HttpRequest& req, const BodySink* sink, size_t max_body,
                            HttpResponse& out, Step& step) {
    auto executor = co_await asio::this_coro::executor;
    tcp::resolver resolver(executor);
    step.name = "connect";
    auto endpoints =
        co_await resolver.async_resolve(req.url.host, req.url.port, asio::use_awaitable);
    if (req.url.scheme == "https") {
      beast::ssl_stream<beast::tcp_stream> stream(executor, tls);
      // SNI carries host names only, never an IP address (RFC 6066).
      boost::system::error_code not_ip;
      asio::ip::make_address(req.url.host, not_ip);
      if (not_ip && !SSL_set_tlsext_host_name(stream.native_handle(), req.url.host.c_str()))
        throw ExecutorError(ErrorKind::kFailed, "cannot set TLS server name " + req.url.host);
      stream.set_verify_mode(ssl::verify_peer);
      stream.set_verify_callback(ssl::host_name_verification(req.url.host));
      beast::tcp_stream& tcp = beast::get_lowest_layer(stream);
      tcp.expires_after(options.timeout);
      co_await tcp.async_connect(endpoints, asio::use_awaitable);
      step.name = "TLS handshake";
      tcp.expires_after(options.timeout);
      co_await stream.async_handshake(ssl::stream_base::client, asio::use_awaitable);
      co_await Exchange(stream, tcp, req, sink, max_body, options.timeout, out, step);
    } else {
      beast::tcp_stream tcp(executor);
      tcp.expires_after(options.timeout);
      co_await tcp.async_connect(endpoints, asio::use_awaitable);
      co_await Exchange(tcp, tcp, req, sink, max_body, options.timeout, out, step);
    }
  }
};

HttpClient::HttpClient(Options options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  boost::system::error_code ec;
  impl_->tls.set_default_verify_paths(ec);
  if (ec && impl_->options.ca_file.empty())
    throw ExecutorError(ErrorKind::kFailed, "cannot load the system's CA certificates: " + Why(ec));
  if (!impl_->options.ca_file.empty()) {
    impl_->tls.load_verify_file(impl_->options.ca_file, ec);
    if (ec)
      throw ExecutorError(
          ErrorKind::kInvalidArgument,
          fmt::format("cannot load CA file {}: {}", impl_->options.ca_file, Why(ec)));
  }
}

HttpClient::~HttpClient() = default;

HttpResponse HttpClient::Send(const HttpRequest& request, const BodySink* sink, size_t max_body) {
  asio::io_context ioc;
  HttpResponse out;
  Step step;
  std::exception_ptr failure;
  asio::co_spawn(ioc, impl_->Run(request, sink, max_body, out, step),
                 [&](std::exception_ptr e) { failure = e; });
  ioc.run();
  if (!failure) return out;
  try {
    std::rethrow_exception(failure);
  } catch (const boost::system::system_error& e) {
    std::string host = request.url.HostPort();
    if (step.name == "connect")
      throw ExecutorError(ErrorKind::kUnavailable,
                          fmt::format("cannot reach registry {}: {}", host, Why(e.code())));
    throw ExecutorError(ErrorKind::kUnavailable,
                        fmt::format("registry {}: {} failed: {}", host, step.name, Why(e.code())));
  }
}

Url Url::Parse(std::string_view text) {
  Url u;
  size_t sep = text.find("://");
  if (sep == std::string_view::npos)
    throw ExecutorError(ErrorKind::kInvalidArgument,
                        fmt::format("invalid URL \"{}\": want http(s)://host[:port][/path]", text));
  u.scheme = Lower(std::string(text.substr(0, sep)));
  if (u.scheme != "http" && u.scheme != "https")
    throw ExecutorError(ErrorKind::kInvalidArgument,
                        fmt::format("invalid URL \"{}\": scheme must be http or https", text));
  std::string_view rest = text.substr(sep + 3);
  size_t path = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, path);
  u.target = path == std::string_view::npos ? "/" : std::string(rest.substr(path));
  if (!u.target.empty() && u.target[0] == '?') u.target = "/" + u.target;
  if (size_t at = authority.rfind('@'); at != std::string_view::npos)
    authority = authority.substr(at + 1);  // user info is never used for registries
  if (!authority.empty() && authority[0] == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos)
      throw ExecutorError(ErrorKind::kInvalidArgument, fmt::format("invalid URL \"{}\"", text));
    u.host = std::string(authority.substr(1, close - 1));
    if (close + 1 < authority.size() && authority[close + 1] == ':')
      u.port = std::string(authority.substr(close + 2));
  } else if (size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    u.host = std::string(authority.substr(0, colon));
    u.port = std::string(authority.substr(colon + 1));
  } else {
    u.host = std::string(authority);
  }
  if (u.host.empty())
    throw ExecutorError(ErrorKind::kInvalidArgument,
                        fmt::format("invalid URL \"{}\": no host", text));
  if (u.port.empty()) u.port = u.scheme == "https" ? "443" : "80";
  return u;
}

std::string Url::HostPort() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  bool default_port = (scheme == "https" && port == "443") || (scheme == "http" && port == "80");
  return default_port ? h : h + ":" + port;
}

Url Url::Resolve(std::string_view location) const {
  if (location.find("://") != std::string_view::npos) return Parse(location);
  if (location.rfind("//", 0) == 0) return Parse(scheme + ":" + std::string(location));
  Url u = *this;
  if (!location.empty() && location[0] == '/') {
    u.target = std::string(location);
  } else {
    std::string base = target.substr(0, target.find('?'));
    u.target = base.substr(0, base.rfind('/') + 1) + std::string(location);
  }
  return u;
}

std::string HttpResponse::Header(std::string_view name) const {
  std::string n = Lower(std::string(name));
  for (const auto& [k, v] : headers)
    if (k == n) return v;
  return {};
}

std::vector<std::string> HttpResponse::Headers(std::string_view name) const {
  std::string n = Lower(std::string(name));
  std::vector<std::string> out;
  for (const auto& [k, v] : headers)
    if (k == n) out.push_back(v);
  return out;
}

}  // namespace skep::executor
