// `slm run` (stream a continuation of a prompt) and `slm chat` (interactive, with the model's
// chat template; Ctrl-C stops the current reply, not the program).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "core/mmap.h"
#include "generate/generate.h"
#include "model/model.h"
#include "template/chat.h"
#include "tokenizer/tokenizer.h"

namespace slm::cli {

namespace {

std::atomic<bool> g_cancel{false};

void on_sigint(int) { g_cancel.store(true); }

// SIGINT sets g_cancel; no SA_RESTART so a blocking read returns EINTR.
void install_sigint() {
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;
  sigaction(SIGINT, &sa, nullptr);
}

struct CommonOptions {
  std::string model;
  std::string tokenizer;
  int64_t n_ctx = 0;  // 0: min(training context, 4096)
  int threads = 0;
  std::string kv_type = "f16";
  int64_t max_tokens = 256;
  SamplerParams sampling;
  int64_t seed = -1;
  std::vector<std::string> stop;
  bool ignore_eos = false;
  bool stats = false;
};

void add_common(CLI::App* sub, CommonOptions& o) {
  sub->add_option("MODEL", o.model, "GGUF file, HF directory, or llama2.c checkpoint")->required();
  sub->add_option("--tokenizer", o.tokenizer, "llama2.c tokenizer.bin");
  sub->add_option("-n,--max-tokens", o.max_tokens, "tokens to generate (-1: until EOS or context full)")
      ->capture_default_str();
  sub->add_option("-c,--ctx", o.n_ctx, "context length (default: the model's, at most 4096)");
  sub->add_option("-t,--threads", o.threads, "threads (default: all cores)")->check(CLI::Range(0, 1024));
  sub->add_option("--kv-type", o.kv_type, "KV cache type: f16, q8_0 or f32")->capture_default_str();
  sub->add_option("--temp", o.sampling.temperature, "temperature (0: greedy)")
      ->capture_default_str()->check(CLI::Range(0.0, 100.0));
  sub->add_option("--top-k", o.sampling.top_k, "top-k (0: off)")->capture_default_str();
  sub->add_option("--top-p", o.sampling.top_p, "top-p (1: off)")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  sub->add_option("--min-p", o.sampling.min_p, "min-p (0: off)")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  sub->add_option("--repeat-penalty", o.sampling.repeat_penalty, "repetition penalty (1: off)")
      ->capture_default_str();
  sub->add_option("--repeat-last-n", o.sampling.repeat_last_n, "penalty window in tokens")->capture_default_str();
  sub->add_option("--frequency-penalty", o.sampling.frequency_penalty, "OpenAI frequency penalty");
  sub->add_option("--presence-penalty", o.sampling.presence_penalty, "OpenAI presence penalty");
  sub->add_option("-s,--seed", o.seed, "random seed (default: random)");
  sub->add_option("--stop", o.stop, "stop string (repeatable); it is not printed");
  sub->add_flag("--ignore-eos", o.ignore_eos, "keep generating through end-of-sequence tokens");
  sub->add_flag("--stats", o.stats, "print timings and speed to stderr");
}

struct Loaded {
  std::unique_ptr<Model> model;
  std::unique_ptr<Session> session;
};

Expected<Loaded> load(const CommonOptions& o) {
  LoadOptions lo;
  lo.tokenizer_path = o.tokenizer;
  SLM_ASSIGN_OR_RETURN(std::unique_ptr<Model> model, Model::load(o.model, lo));
  if (!model->has_tokenizer()) {
    if (model->config().source_format == "llama2c") {
      return error("%s: llama2.c checkpoints keep their tokenizer in a separate file: pass "
                   "--tokenizer tokenizer.bin", o.model.c_str());
    }
    return error("%s: the model has no tokenizer", o.model.c_str());
  }
  int64_t train = model->config().n_ctx_train;
  int64_t n_ctx = o.n_ctx > 0 ? o.n_ctx : (train > 0 ? std::min<int64_t>(train, 4096) : 2048);
  if (o.n_ctx < 0) return error("--ctx must be positive");
  Loaded l;
  DType kv = DType::F16;
  SLM_TRY(parse_kv_type(o.kv_type, model->config().head_dim, &kv));
  l.session = std::make_unique<Session>(*model, n_ctx, o.threads, kv);
  l.model = std::move(model);
  return l;
}

GenerateOptions gen_options(const CommonOptions& o) {
  GenerateOptions g;
  g.sampling = o.sampling;
  if (o.seed >= 0) g.sampling.seed = static_cast<uint64_t>(o.seed);
  g.max_tokens = o.max_tokens;
  g.stop = o.stop;
  g.ignore_eos = o.ignore_eos;
  g.cancel = &g_cancel;
  return g;
}

void print_text(std::string_view s) {
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fflush(stdout);
}

void print_stats(const GenerateResult& r) {
  std::fprintf(stderr,
               "\n[prompt: %lld tokens, %.1f ms, %.1f tok/s | generated: %lld tokens, %.1f ms, "
               "%.1f tok/s | finish: %s%s%s | seed %llu]\n",
               (long long)r.n_prompt, r.prompt_ms, r.prompt_tokens_per_s, (long long)r.n_generated,
               r.gen_ms, r.gen_tokens_per_s, finish_reason_name(r.finish_reason),
               r.note.empty() ? "" : ", ", r.note.c_str(), (unsigned long long)r.seed);
}

// ---- run --------------------------------------------------------------------------------

struct RunOptions : CommonOptions {
  std::string prompt;
  std::string prompt_file;
  bool parse_special = true;
  bool echo = false;
};

int run_run(const RunOptions& o) {
  std::string prompt = o.prompt;
  if (!o.prompt_file.empty()) {
    auto t = read_file(o.prompt_file, 64ull << 20);
    if (!t.ok()) return fail(t.status());
    prompt = *t;
  }
  auto loaded = load(o);
  if (!loaded.ok()) return fail(loaded.status());
  const Model& model = *loaded->model;
  std::vector<int32_t> tokens = model.tokenizer().encode(prompt, true, o.parse_special);
  if (tokens.empty()) return fail(error("the prompt is empty (give -p TEXT)"));
  install_sigint();
  if (o.echo) print_text(prompt);
  auto r = generate(*loaded->session, model, tokens, gen_options(o), print_text);
  if (!r.ok()) return fail(r.status());
  print_text("\n");
  if (o.stats) print_stats(*r);
  return r->finish_reason == FinishReason::cancelled ? 130 : 0;
}

// ---- chat -------------------------------------------------------------------------------

struct ChatCliOptions : CommonOptions {
  std::string system;
  std::string template_file;
};

// Reads one line from stdin. Returns false on EOF or Ctrl-C (sets *interrupted).
bool read_line(std::string* line, bool* interrupted) {
  line->clear();
  *interrupted = false;
  char c;
  while (true) {
    ssize_t n = ::read(STDIN_FILENO, &c, 1);
    if (n < 0 && errno == EINTR) {
      if (g_cancel.exchange(false)) {
        *interrupted = true;
        return false;
      }
      continue;
    }
    if (n <= 0) return !line->empty();
    if (c == '\n') return true;
    line->push_back(c);
  }
}

int run_chat(const ChatCliOptions& o) {
  auto loaded = load(o);
  if (!loaded.ok()) return fail(loaded.status());
  const Model& model = *loaded->model;
  const Tokenizer& tok = model.tokenizer();
  Session& session = *loaded->session;
  std::string tmpl = model.chat_template();
  if (!o.template_file.empty()) {
    auto t = read_file(o.template_file, 1ull << 20);
    if (!t.ok()) return fail(t.status());
    tmpl = *t;
  }
  if (tmpl.empty()) {
    return fail(error("%s has no chat template; give one with --template FILE, or use `slm run`",
                      o.model.c_str()));
  }
  ChatOptions co;
  co.add_generation_prompt = true;
  if (tok.bos_id() >= 0) co.bos_token = tok.token_text(tok.bos_id());
  if (tok.eos_id() >= 0) co.eos_token = tok.token_text(tok.eos_id());

  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  if (!o.system.empty()) messages.push_back({{"role", "system"}, {"content", o.system}});
  std::vector<int32_t> cached;  // tokens currently in the session's KV cache
  install_sigint();
  bool tty = ::isatty(STDIN_FILENO);
  if (tty) {
    std::fprintf(stderr, "slm chat: %s (%lld-token context). Ctrl-C stops a reply; Ctrl-D or /exit quits; "
                         "/reset clears the conversation.\n",
                 o.model.c_str(), (long long)session.n_ctx());
  }
  std::string line;
  bool interrupted = false;
  while (true) {
    if (tty) std::fprintf(stderr, "\n> ");
    if (!read_line(&line, &interrupted)) {
      if (interrupted) std::fprintf(stderr, "\n");
      break;
    }
    if (line == "/exit" || line == "/quit") break;
    if (line == "/reset") {
      messages = nlohmann::ordered_json::array();
      if (!o.system.empty()) messages.push_back({{"role", "system"}, {"content", o.system}});
      continue;
    }
    if (line.empty()) continue;
    messages.push_back({{"role", "user"}, {"content", line}});
    auto prompt_text = render_chat(tmpl, messages, co);
    if (!prompt_text.ok()) {
      messages.erase(messages.end() - 1);
      fail(prompt_text.status());
      continue;
    }
    std::vector<int32_t> ids = tok.encode(*prompt_text, false, true);
    if (tok.add_bos() && tok.bos_id() >= 0 && (ids.empty() || ids[0] != tok.bos_id())) {
      ids.insert(ids.begin(), tok.bos_id());
    }
    // Reuse the cached prefix; keep at least one token to feed.
    size_t common = 0;
    while (common < cached.size() && common + 1 < ids.size() && cached[common] == ids[common]) ++common;
    session.truncate(static_cast<int64_t>(common));
    cached.resize(common);
    std::span<const int32_t> fresh(ids.data() + common, ids.size() - common);
    g_cancel.store(false);
    std::string reply;
    auto r = generate(session, model, fresh, gen_options(o), [&](std::string_view s) {
      reply.append(s);
      print_text(s);
    });
    if (!r.ok()) {
      messages.erase(messages.end() - 1);
      fail(r.status());
      session.truncate(0);
      cached.clear();
      continue;
    }
    print_text("\n");
    if (o.stats) print_stats(*r);
    if (r->finish_reason == FinishReason::cancelled) std::fprintf(stderr, "[stopped]\n");
    cached.assign(ids.begin(), ids.end());
    // The last sampled token was never run through the model: the cache holds all but it.
    cached.insert(cached.end(), r->tokens.begin(), r->tokens.end() - (r->tokens.empty() ? 0 : 1));
    if (static_cast<int64_t>(cached.size()) != session.n_past()) {
      session.truncate(0);  // keep cache and bookkeeping in step whatever happened
      cached.clear();
    }
    messages.push_back({{"role", "assistant"}, {"content", reply}});
  }
  return 0;
}

}  // namespace

void add_run(CLI::App& app) {
  auto o = std::make_shared<RunOptions>();
  CLI::App* sub = app.add_subcommand("run", "Stream the model's continuation of a prompt");
  add_common(sub, *o);
  sub->add_option("-p,--prompt", o->prompt, "prompt text");
  sub->add_option("-f,--file", o->prompt_file, "read the prompt from a file");
  sub->add_flag("--parse-special,!--no-parse-special", o->parse_special,
                "recognise special-token text in the prompt (default: yes)");
  sub->add_flag("--echo", o->echo, "print the prompt before the continuation");
  sub->callback([o] { exit_code() = run_run(*o); });
}
SLM_REGISTER_COMMAND(add_run, 10);

void add_chat(CLI::App& app) {
  auto o = std::make_shared<ChatCliOptions>();
  CLI::App* sub = app.add_subcommand(
      "chat", "Chat interactively using the model's chat template (Ctrl-C stops a reply)");
  add_common(sub, *o);
  o->max_tokens = -1;
  sub->add_option("--system", o->system, "system message");
  sub->add_option("--template", o->template_file, "use this Jinja chat template instead of the model's");
  sub->callback([o] { exit_code() = run_chat(*o); });
}
SLM_REGISTER_COMMAND(add_chat, 20);

}  // namespace slm::cli
