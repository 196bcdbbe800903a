// The HTTP server of `slm serve`: a listening socket, an accept thread, one thread per
// connection (bounded), routing of the OpenAI endpoints onto an Engine, /health, /metrics and
// the chat page. The engine can be attached after the socket listens (the model loads meanwhile).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/status.h"
#include "serve/engine.h"
#include "serve/http.h"
#include "serve/metrics.h"

namespace slm::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                  // 0: any free port (see Server::port())
  int max_connections = 256;        // open connections; beyond: 503 and close
  double io_timeout_s = 30;         // a stalled read or write of a request / response
  double keep_alive_s = 10;         // idle time between requests on one connection
  double request_timeout_s = 0;     // per completion, from submission; 0: none
  std::string api_key;              // empty: no authentication
  std::string cors_origin;          // empty: no CORS headers
  std::string model_id = "slm";     // /v1/models and the "model" field of responses
  int64_t n_ctx = 2048;             // context per slot (prompt checks name it)
  int retry_after_s = 1;            // Retry-After of 503 answers
  HttpLimits http;
};

class Server {
 public:
  // Binds and listens; serving starts with start(). Errors name the address.
  static Expected<std::unique_ptr<Server>> create(const ServerOptions& opts);
  ~Server();  // stop() and join

  int port() const { return port_; }
  // Starts the accept thread. Until attach_engine, /health and /v1/* answer 503 (loading).
  void start();
  // The engine must outlive the server's use of it (until stop() returned).
  void attach_engine(Engine* engine);
  // The model failed to load: /health reports it (500) and /v1/* answer 503 with the message.
  void set_load_error(const std::string& message);

  // Graceful shutdown, step 1: close the listening socket, refuse new requests on open
  // connections (503), and wait up to grace_s for in-flight completions to finish.
  // Returns the number still running.
  int64_t stop_accepting(double grace_s);
  // Step 2 (after the engine is shut down, so in-flight requests have ended): closes idle
  // connections and joins every thread.
  void stop();

  Metrics& metrics() { return metrics_; }
  int64_t in_flight() const { return in_flight_.load(); }
  int64_t open_connections() const { return open_connections_.load(); }

 private:
  explicit Server(const ServerOptions& opts) : opts_(opts) {}
  void accept_loop();
  void serve_connection(int fd);

  struct Conn;
  bool handle_request(Conn& c, const HttpRequest& req);  // false: close the connection
  bool handle_completion(Conn& c, const HttpRequest& req, bool chat);
  bool send_all(Conn& c, std::string_view data);
  bool send_response(Conn& c, const std::string& endpoint, int status, std::string_view content_type,
                     std::string_view body, bool keep_alive,
                     std::vector<std::pair<std::string, std::string>> extra = {});
  bool send_error(Conn& c, const std::string& endpoint, int status, const std::string& message,
                  const std::string& type, const std::string& code, bool keep_alive);
  bool authorized(const HttpRequest& req) const;

  ServerOptions opts_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread accept_thread_;
  std::atomic<bool> stopping_{false};     // no new requests
  std::atomic<bool> closing_{false};      // close idle connections now
  std::atomic<Engine*> engine_{nullptr};
  mutable std::mutex load_mu_;
  std::string load_error_;
  Metrics metrics_;
  std::atomic<int64_t> in_flight_{0};
  std::atomic<int64_t> open_connections_{0};
  std::atomic<uint64_t> next_id_{1};
  std::mutex conn_mu_;
  std::condition_variable conn_cv_;  // open_connections_ reached 0 / in_flight_ changed
};

}  // namespace slm::serve
