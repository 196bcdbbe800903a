// The HTTP server: POSIX sockets, an accept thread and a bounded set of connection threads.
// A completion's connection thread waits for the engine's callbacks and, between tokens, polls
// its socket so that a client that hangs up cancels its request at once.
#include "serve/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <system_error>

#include <nlohmann/json.hpp>

#include "serve/openai.h"
#include "serve/web_page.h"

namespace slm::serve {

using Clock = std::chrono::steady_clock;
using Headers = std::vector<std::pair<std::string, std::string>>;

struct Server::Conn {
  int fd = -1;
  std::string buf;  // bytes read but not yet parsed
};

namespace {

constexpr int k_poll_ms = 50;  // how often waiting threads look at shutdown flags and peers

timeval to_timeval(double s) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(s);
  tv.tv_usec = static_cast<suseconds_t>((s - static_cast<double>(tv.tv_sec)) * 1e6);
  return tv;
}

// True when the peer closed or reset the connection. Only hang-ups count: unread bytes (a
// pipelined request) are not a reason to stop.
bool peer_gone(short revents) { return (revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0; }

// The route label of a path for metrics (a fixed set, so hostile paths cannot grow it).
std::string endpoint_label(const std::string& path) {
  static const char* known[] = {"/", "/health", "/metrics", "/v1/models", "/v1/chat/completions",
                                "/v1/completions", "/v1/embeddings"};
  for (const char* k : known) {
    if (path == k) return k;
  }
  return "other";
}

std::string hex_id(uint64_t n) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(n));
  return buf;
}

// What the engine's callbacks hand to the connection thread. The eventfd wakes the thread's
// poll(), which also watches the socket, so new text and a hang-up are both seen at once.
struct Pending {
  Pending() : wake_fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}
  ~Pending() {
    if (wake_fd >= 0) ::close(wake_fd);
  }
  Pending(const Pending&) = delete;
  Pending& operator=(const Pending&) = delete;
  void wake() {
    uint64_t one = 1;
    if (wake_fd >= 0) (void)!::write(wake_fd, &one, sizeof(one));
  }
  void drain() {
    uint64_t v;
    if (wake_fd >= 0) (void)!::read(wake_fd, &v, sizeof(v));
  }
  std::mutex mu;
  std::string text;
  bool done = false;
  Completion result;
  int wake_fd;
};

}  // namespace

Expected<std::unique_ptr<Server>> Server::create(const ServerOptions& opts) {
  // A peer that closes mid-write must not kill the process (sends also use MSG_NOSIGNAL).
  ::signal(SIGPIPE, SIG_IGN);
  std::unique_ptr<Server> s(new Server(opts));
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port = std::to_string(opts.port);
  int rc = ::getaddrinfo(opts.host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) return error("serve: cannot resolve host '%s': %s", opts.host.c_str(), gai_strerror(rc));
  std::string last_err = "no address";
  for (addrinfo* a = res; a; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      last_err = std::strerror(errno);
      continue;
    }
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 1024) == 0) {
      s->listen_fd_ = fd;
      break;
    }
    last_err = std::strerror(errno);
    ::close(fd);
  }
  ::freeaddrinfo(res);
  if (s->listen_fd_ < 0) {
    return error("serve: cannot listen on %s:%d: %s", opts.host.c_str(), opts.port, last_err.c_str());
  }
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  ::getsockname(s->listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  s->port_ = addr.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port)
                                        : ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  return s;
}

Server::~Server() { stop(); }

void Server::start() { accept_thread_ = std::thread([this] { accept_loop(); }); }

void Server::attach_engine(Engine* engine) { engine_.store(engine); }

void Server::set_load_error(const std::string& message) {
  std::lock_guard<std::mutex> lock(load_mu_);
  load_error_ = message;
}

void Server::accept_loop() {
  while (!stopping_.load()) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, k_poll_ms) <= 0) continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      // Out of descriptors: the pending connection stays readable, so back off instead of
      // spinning until some close.
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        std::this_thread::sleep_for(std::chrono::milliseconds(k_poll_ms));
      }
      continue;
    }
    if (open_connections_.load() >= opts_.max_connections) {
      // Over the connection bound: answer at once rather than queue unboundedly.
      Conn c;
      c.fd = fd;
      timeval tv = to_timeval(1.0);
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
      send_error(c, "other", 503, "too many open connections", "server_error", "too_many_connections", false);
      ::close(fd);
      continue;
    }
    open_connections_.fetch_add(1);
    try {
      std::thread([this, fd] { serve_connection(fd); }).detach();
    } catch (const std::system_error&) {
      // No thread to be had (resource limits): drop this connection, keep serving the others.
      ::close(fd);
      std::lock_guard<std::mutex> lock(conn_mu_);
      open_connections_.fetch_sub(1);
      conn_cv_.notify_all();
    }
  }
}

int64_t Server::stop_accepting(double grace_s) {
  stopping_.store(true);
  if (accept_thread_.joinable()) accept_thread_.join();
  if (listen_fd_ >= 0) {
    ::close(listen_fd_);
    listen_fd_ = -1;
  }
  std::unique_lock<std::mutex> lock(conn_mu_);
  conn_cv_.wait_for(lock, std::chrono::duration<double>(grace_s), [this] { return in_flight_.load() == 0; });
  return in_flight_.load();
}

void Server::stop() {
  stop_accepting(0);
  closing_.store(true);
  std::unique_lock<std::mutex> lock(conn_mu_);
  conn_cv_.wait(lock, [this] { return open_connections_.load() == 0; });
}

bool Server::send_all(Conn& c, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(c.fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;  // EPIPE, ECONNRESET, or the send timeout (EAGAIN)
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool Server::send_response(Conn& c, const std::string& endpoint, int status,
                           std::string_view content_type, std::string_view body, bool keep_alive,
                           Headers extra) {
  Headers h;
  h.emplace_back("Content-Type", std::string(content_type));
  if (!opts_.cors_origin.empty()) {
    h.emplace_back("Access-Control-Allow-Origin", opts_.cors_origin);
    h.emplace_back("Vary", "Origin");
  }
  for (auto& e : extra) h.push_back(std::move(e));
  h.emplace_back("Connection", keep_alive ? "keep-alive" : "close");
  std::string out = http_response_head(status, h, static_cast<int64_t>(body.size()));
  out.append(body);
  metrics_.count_request(endpoint, status);
  return send_all(c, out) && keep_alive;
}

bool Server::send_error(Conn& c, const std::string& endpoint, int status, const std::string& message,
                        const std::string& type, const std::string& code, bool keep_alive) {
  ApiError e;
  e.status = status;
  e.message = message;
  e.type = type;
  e.code = code;
  Headers extra;
  if (status == 503) extra.emplace_back("Retry-After", std::to_string(opts_.retry_after_s));
  if (status == 401) extra.emplace_back("WWW-Authenticate", "Bearer");
  return send_response(c, endpoint, status, "application/json", error_body(e), keep_alive, std::move(extra));
}

bool Server::authorized(const HttpRequest& req) const {
  if (opts_.api_key.empty()) return true;
  const std::string* auth = req.header("authorization");
  if (!auth) return false;
  std::string_view v = *auth;
  if (v.size() < 7 || !(v.substr(0, 7) == "Bearer " || v.substr(0, 7) == "bearer ")) return false;
  return constant_time_equal(v.substr(7), opts_.api_key);
}

void Server::serve_connection(int fd) {
  Conn c;
  c.fd = fd;
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  timeval tv = to_timeval(opts_.io_timeout_s);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  const int64_t max_buffer = opts_.http.max_header_bytes + opts_.http.max_body + 16;
  bool open = true;
  while (open && !closing_.load()) {
    // Read until one request is complete: idle connections wait keep_alive_s, a request
    // that has started must arrive within io_timeout_s.
    HttpRequest req;
    ParseResult pr = parse_http_request(c.buf, opts_.http, &req);
    Clock::time_point started = Clock::now();
    while (pr.state == ParseState::incomplete) {
      double limit = c.buf.empty() ? opts_.keep_alive_s : opts_.io_timeout_s;
      if (std::chrono::duration<double>(Clock::now() - started).count() > limit) {
        if (!c.buf.empty()) send_error(c, "other", 408, "request timed out", "invalid_request_error", "", false);
        open = false;
        break;
      }
      if (closing_.load() && c.buf.empty()) {
        open = false;
        break;
      }
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, k_poll_ms) <= 0) continue;
      char chunk[16384];
      ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
      if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
        open = false;
        break;
      }
      if (n < 0) continue;
      c.buf.append(chunk, static_cast<size_t>(n));
      if (static_cast<int64_t>(c.buf.size()) > max_buffer) {
        pr = parse_http_request(c.buf, opts_.http, &req);
        if (pr.state == ParseState::incomplete) {
          pr.state = ParseState::error;
          pr.status = 413;
          pr.message = "request too large";
        }
        break;
      }
      pr = parse_http_request(c.buf, opts_.http, &req);
    }
    if (!open) break;
    if (pr.state == ParseState::error) {
      send_error(c, "other", pr.status, pr.message, "invalid_request_error", "", false);
      break;
    }
    c.buf.erase(0, static_cast<size_t>(pr.consumed));
    open = handle_request(c, req);
  }
  // Half-close first so the client reads everything we wrote before it sees the end.
  ::shutdown(fd, SHUT_WR);
  ::close(fd);
  // Notify under the lock: once the count reaches 0, stop() may return and the Server die, so
  // this thread must not touch it after releasing the mutex.
  std::lock_guard<std::mutex> lock(conn_mu_);
  open_connections_.fetch_sub(1);
  conn_cv_.notify_all();
}

bool Server::handle_request(Conn& c, const HttpRequest& req) {
  const std::string ep = endpoint_label(req.path);
  bool ka = req.keep_alive && !stopping_.load();
  const std::string& m = req.method;
  auto method_not_allowed = [&](const char* allow) {
    ApiError e;
    e.status = 405;
    e.message = "method " + m + " not allowed on " + req.path + " (allowed: " + allow + ")";
    return send_response(c, ep, 405, "application/json", error_body(e), ka, {{"Allow", allow}});
  };
  if (m == "OPTIONS" && !opts_.cors_origin.empty()) {
    return send_response(c, ep, 204, "text/plain", "", ka,
                         {{"Access-Control-Allow-Methods", "GET, POST, OPTIONS"},
                          {"Access-Control-Allow-Headers", "Authorization, Content-Type"},
                          {"Access-Control-Max-Age", "600"}});
  }
  Engine* engine = engine_.load();
  std::string load_error;
  {
    std::lock_guard<std::mutex> lock(load_mu_);
    load_error = load_error_;
  }
  if (ep == "/") {
    if (m != "GET") return method_not_allowed("GET");
    return send_response(c, ep, 200, "text/html; charset=utf-8", chat_page_html(), ka,
                         {{"Cache-Control", "no-cache"}});
  }
  if (ep == "/health") {
    if (m != "GET") return method_not_allowed("GET");
    if (!load_error.empty()) {
      nlohmann::json j = {{"status", "error"}, {"message", load_error}};
      return send_response(c, ep, 500, "application/json",
                           j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), ka);
    }
    if (!engine) {
      return send_response(c, ep, 503, "application/json", R"({"status":"loading"})", ka,
                           {{"Retry-After", std::to_string(opts_.retry_after_s)}});
    }
    return send_response(c, ep, 200, "application/json", R"({"status":"ok"})", ka);
  }
  if (ep == "/metrics") {
    if (m != "GET") return method_not_allowed("GET");
    EngineStats st;
    if (engine) st = engine->stats();
    return send_response(c, ep, 200, "text/plain; version=0.0.4; charset=utf-8",
                         metrics_.render(engine ? &st : nullptr, engine != nullptr), ka);
  }
  bool is_v1 = ep == "/v1/models" || ep == "/v1/chat/completions" || ep == "/v1/completions" ||
               ep == "/v1/embeddings";
  if (!is_v1) {
    return send_error(c, ep, 404, "no route for " + m + " " + req.path.substr(0, 200), "invalid_request_error",
                      "not_found", ka);
  }
  const char* allow = ep == "/v1/models" ? "GET" : "POST";
  if (m != allow) return method_not_allowed(allow);
  if (!authorized(req)) {
    return send_error(c, ep, 401, "invalid or missing API key (send Authorization: Bearer KEY)",
                      "invalid_request_error", "invalid_api_key", ka);
  }
  if (ep == "/v1/embeddings") {
    return send_error(c, ep, 501, "embeddings are not available yet (they need an embedding model)",
                      "invalid_request_error", "not_implemented", ka);
  }
  if (!engine) {
    std::string msg = load_error.empty() ? "the model is loading" : "the model failed to load: " + load_error;
    return send_error(c, ep, 503, msg, "server_error", "model_not_ready", ka);
  }
  if (ep == "/v1/models") {
    return send_response(c, ep, 200, "application/json",
                         models_body(opts_.model_id, static_cast<int64_t>(std::time(nullptr))), ka);
  }
  if (stopping_.load()) {
    return send_error(c, ep, 503, "the server is shutting down", "server_error", "shutting_down", false);
  }
  return handle_completion(c, req, ep == "/v1/chat/completions");
}

bool Server::handle_completion(Conn& c, const HttpRequest& req, bool chat) {
  const std::string ep = chat ? "/v1/chat/completions" : "/v1/completions";
  Engine* engine = engine_.load();
  Endpoint kind = chat ? Endpoint::chat : Endpoint::completion;
  ApiLimits limits;
  limits.n_ctx = opts_.n_ctx;
  ApiRequest ar;
  ApiError err;
  if (!parse_api_request(kind, req.body, engine->model(), limits, &ar, &err)) {
    return send_response(c, ep, err.status, "application/json", error_body(err), req.keep_alive);
  }
  if (opts_.request_timeout_s > 0) {
    ar.req.deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                         std::chrono::duration<double>(opts_.request_timeout_s));
  }
  auto pending = std::make_shared<Pending>();
  Callbacks cb;
  cb.on_text = [pending](std::string_view text) {
    {
      std::lock_guard<std::mutex> lock(pending->mu);
      pending->text.append(text);
    }
    pending->wake();
    return true;
  };
  cb.on_done = [pending](const Completion& comp) {
    {
      std::lock_guard<std::mutex> lock(pending->mu);
      pending->result = comp;
      pending->done = true;
    }
    pending->wake();
  };
  in_flight_.fetch_add(1);
  SubmitResult sr = engine->submit(std::move(ar.req), std::move(cb));
  auto finish_in_flight = [this] {
    {
      std::lock_guard<std::mutex> lock(conn_mu_);
      in_flight_.fetch_sub(1);
    }
    conn_cv_.notify_all();
  };
  if (sr.error != SubmitError::none) {
    finish_in_flight();
    switch (sr.error) {
      case SubmitError::queue_full:
        return send_error(c, ep, 503, "the request queue is full; retry later", "server_error", "queue_full",
                          req.keep_alive);
      case SubmitError::shutting_down:
        return send_error(c, ep, 503, "the server is shutting down", "server_error", "shutting_down", false);
      case SubmitError::prompt_too_long:
        return send_error(c, ep, 400, sr.message, "invalid_request_error", "context_length_exceeded",
                          req.keep_alive);
      default:
        return send_error(c, ep, 400, sr.message, "invalid_request_error", "", req.keep_alive);
    }
  }

  ResponseMeta meta;
  meta.id = std::string(chat ? "chatcmpl-" : "cmpl-") + hex_id(next_id_.fetch_add(1)) + hex_id(sr.id);
  meta.created = static_cast<int64_t>(std::time(nullptr));
  meta.model = opts_.model_id;

  bool gone = false;  // client hung up or a write failed: cancel, keep waiting for on_done
  bool cancel_sent = false;
  if (ar.stream) {
    Headers h = {{"Content-Type", "text/event-stream"}, {"Cache-Control", "no-cache"}};
    if (!opts_.cors_origin.empty()) h.emplace_back("Access-Control-Allow-Origin", opts_.cors_origin);
    // The end of the stream is the end of the connection: no chunked framing to get wrong.
    h.emplace_back("Connection", "close");
    std::string head = http_response_head(200, h, -1);
    if (chat) head += sse_role_chunk(meta, ar.include_usage);
    gone = !send_all(c, head);
  }
  Completion result;
  while (true) {
    // Sleep until the engine has news or the client hangs up (the timeout only bounds a lost
    // wake-up: eventfd failure leaves wake_fd at -1, which poll ignores).
    pollfd fds[2] = {{gone ? -1 : c.fd, POLLRDHUP, 0}, {pending->wake_fd, POLLIN, 0}};
    int rc = ::poll(fds, 2, k_poll_ms);
    if (rc > 0 && (fds[1].revents & POLLIN)) pending->drain();
    if (rc > 0 && !gone && peer_gone(fds[0].revents)) gone = true;
    std::string text;
    bool done = false;
    {
      std::lock_guard<std::mutex> lock(pending->mu);
      text.swap(pending->text);
      done = pending->done;
      if (done) result = pending->result;
    }
    if (ar.stream && !gone && !text.empty()) {
      gone = !send_all(c, sse_text_chunk(kind, meta, text, ar.include_usage));
    }
    if (done) break;
    if (gone && !cancel_sent) {
      engine->cancel(sr.id);
      metrics_.count_disconnect();
      cancel_sent = true;
    }
  }
  metrics_.observe_completion(result.n_prompt, result.n_generated, result.ttft_ms, result.gen_ms);
  finish_in_flight();

  if (ar.stream) {
    metrics_.count_request(ep, 200);
    if (gone) return false;
    std::string tail;
    if (result.finish == Finish::error) {
      ApiError e;
      e.status = 500;
      e.type = "server_error";
      e.message = "generation failed: " + result.error;
      tail = sse_error(e);
    } else {
      tail = sse_finish_chunk(kind, meta, result.finish, ar.include_usage);
      if (ar.include_usage) tail += sse_usage_chunk(kind, meta, result.n_prompt, result.n_generated);
    }
    tail += sse_done();
    send_all(c, tail);
    return false;
  }
  if (gone) {
    metrics_.count_request(ep, 499);  // nginx's "client closed request"
    return false;
  }
  if (result.finish == Finish::error) {
    return send_error(c, ep, 500, "generation failed: " + result.error, "server_error", "", req.keep_alive);
  }
  return send_response(c, ep, 200, "application/json", completion_body(kind, meta, result),
                       req.keep_alive && !stopping_.load());
}

}  // namespace slm::serve
