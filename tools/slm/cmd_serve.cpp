// `slm serve`: an OpenAI-compatible HTTP server over the batching engine. The socket listens
// first and the model loads in the background (/health says 503 until then); SIGTERM drains.
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <thread>

#include "commands.h"
#include "core/mmap.h"
#include "model/model.h"
#include "serve/engine.h"
#include "serve/server.h"

namespace slm::cli {

namespace {

struct ServeOptions {
  std::string model;
  std::string tokenizer;
  std::string host = "127.0.0.1";
  int port = 8080;
  int parallel = 4;
  int64_t n_ctx = 2048;
  int threads = 0;
  std::string api_key;
  std::string api_key_file;
  int max_queue = 64;
  double timeout_s = 600;
  std::string cors;
  std::string kv_type = "f16";
  std::string model_id;
  int64_t max_body = 1 << 20;
  int max_connections = 256;
  double grace_s = 10;
};

std::string trim_line_end(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '\t')) s.pop_back();
  return s;
}

int run_serve(const ServeOptions& o) {
  if (o.parallel < 1 || o.parallel > 256) return fail(error("--parallel must be in [1, 256], got %d", o.parallel));
  if (o.n_ctx < 16) return fail(error("--ctx must be at least 16, got %lld", (long long)o.n_ctx));
  if (o.max_queue < 0) return fail(error("--max-queue must be >= 0"));
  if (o.timeout_s < 0) return fail(error("--timeout must be >= 0 seconds"));
  serve::ServerOptions so;
  so.host = o.host;
  so.port = o.port;
  so.n_ctx = o.n_ctx;
  so.api_key = o.api_key;
  if (!o.api_key_file.empty()) {
    auto k = read_file(o.api_key_file, 4096);
    if (!k.ok()) return fail(k.status());
    so.api_key = trim_line_end(*k);
    if (so.api_key.empty()) return fail(error("%s: the API key file is empty", o.api_key_file.c_str()));
  }
  so.cors_origin = o.cors;
  so.request_timeout_s = o.timeout_s;
  so.http.max_body = o.max_body;
  so.max_connections = o.max_connections;
  so.model_id = o.model_id.empty() ? std::filesystem::path(o.model).filename().string() : o.model_id;
  if (so.model_id.empty()) so.model_id = "slm";
  if (!std::filesystem::exists(o.model)) return fail(error("%s: no such file or directory", o.model.c_str()));

  // Signals go to one waiting thread: block them before any thread starts so all inherit it.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGUSR1);  // the loader's "failed"
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  auto server = serve::Server::create(so);
  if (!server.ok()) return fail(server.status());
  (*server)->start();
  std::fprintf(stderr, "slm serve: listening on http://%s:%d (model loading: %s)\n", o.host.c_str(),
               (*server)->port(), o.model.c_str());

  std::unique_ptr<Model> model;
  std::unique_ptr<serve::Engine> engine;
  std::string load_error;
  pthread_t main_thread = pthread_self();
  std::thread loader([&] {
    LoadOptions lo;
    lo.tokenizer_path = o.tokenizer;
    auto m = Model::load(o.model, lo);
    Status st;
    if (!m.ok()) {
      st = m.status();
    } else {
      model = std::move(*m);
      serve::EngineOptions eo;
      eo.n_slots = o.parallel;
      eo.n_ctx = o.n_ctx;
      eo.n_threads = o.threads;
      eo.max_queue = o.max_queue;
      st = parse_kv_type(o.kv_type, model->config().head_dim, &eo.kv_type);
      if (st.ok()) {
        auto e = serve::Engine::create(*model, eo);
        if (e.ok()) engine = std::move(*e);
        else st = e.status();
      }
    }
    if (!st.ok()) {
      load_error = st.message();
      (*server)->set_load_error(load_error);
      pthread_kill(main_thread, SIGUSR1);
      return;
    }
    (*server)->attach_engine(engine.get());
    std::fprintf(stderr, "slm serve: ready (%d slots x %lld-token context, model id '%s')\n", o.parallel,
                 (long long)o.n_ctx, so.model_id.c_str());
  });

  int sig = 0;
  sigwait(&sigs, &sig);
  loader.join();
  if (sig == SIGUSR1) {
    (*server)->stop();
    return fail(error("%s", load_error.c_str()));
  }
  std::fprintf(stderr, "slm serve: %s, draining (up to %.0f s)\n", sig == SIGTERM ? "SIGTERM" : "SIGINT", o.grace_s);
  int64_t left = (*server)->stop_accepting(o.grace_s);
  if (left > 0) std::fprintf(stderr, "slm serve: cancelling %lld requests still running\n", (long long)left);
  if (engine) engine->shutdown(/*cancel_running=*/true);
  (*server)->stop();
  engine.reset();
  std::fprintf(stderr, "slm serve: stopped\n");
  return 0;
}

}  // namespace

void add_serve(CLI::App& app) {
  auto o = std::make_shared<ServeOptions>();
  CLI::App* sub = app.add_subcommand(
      "serve", "OpenAI-compatible HTTP server with continuous batching (see docs/SERVER.md)");
  sub->add_option("MODEL", o->model, "GGUF file, HF directory, or llama2.c checkpoint")->required();
  sub->add_option("--tokenizer", o->tokenizer, "llama2.c tokenizer.bin");
  sub->add_option("--host", o->host, "address to listen on (default 127.0.0.1: loopback only)");
  sub->add_option("--port", o->port, "TCP port (default 8080; 0 picks a free one)");
  sub->add_option("--parallel", o->parallel, "requests decoded concurrently (slots, default 4)");
  sub->add_option("--ctx", o->n_ctx, "context per slot in tokens, prompt + reply (default 2048)");
  sub->add_option("-t,--threads", o->threads, "threads (default: all cores)");
  auto* key = sub->add_option("--api-key", o->api_key, "require 'Authorization: Bearer KEY' on /v1/*");
  sub->add_option("--api-key-file", o->api_key_file, "read the API key from this file")->excludes(key);
  sub->add_option("--max-queue", o->max_queue, "waiting requests beyond the slots; more get 503 (default 64)");
  sub->add_option("--timeout", o->timeout_s, "per-request time limit in seconds, 0 for none (default 600)");
  sub->add_option("--cors", o->cors, "send Access-Control-Allow-Origin: ORIGIN (default: no CORS)");
  sub->add_option("--kv-type", o->kv_type, "KV cache type: f16 (default), q8_0, f32");
  sub->add_option("--model-id", o->model_id, "name in /v1/models and responses (default: file name)");
  sub->add_option("--max-body", o->max_body, "largest request body in bytes (default 1 MiB)");
  sub->add_option("--max-connections", o->max_connections, "open connections; more get 503 (default 256)");
  sub->add_option("--shutdown-grace", o->grace_s, "seconds SIGTERM waits for running requests (default 10)");
  sub->callback([o] { exit_code() = run_serve(*o); });
}
SLM_REGISTER_COMMAND(add_serve, 110);

}  // namespace slm::cli
