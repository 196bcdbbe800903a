// The serving engine of serve/engine.h: one thread runs continuous batching over a BatchSession
// whose sequences are the slots (a prompt chunk, then one decode step of every active slot).
#include "serve/engine.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <new>
#include <optional>
#include <thread>
#include <unordered_map>

#include "generate/generate.h"
#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "core/thread_pool.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace slm::serve {

const char* finish_name(Finish f) {
  switch (f) {
    case Finish::stop:
      return "stop";
    case Finish::length:
      return "length";
    case Finish::eos:
      return "eos";
    case Finish::cancelled:
      return "cancelled";
    case Finish::timeout:
      return "timeout";
    case Finish::error:
      return "error";
  }
  return "unknown";
}

namespace {

using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// One request from submission to on_done. The engine thread owns everything but `cancel`.
struct Job {
  uint64_t id = 0;
  Request req;
  Callbacks cb;
  std::optional<Sampler> sampler;
  std::atomic<bool> cancel{false};  // set by cancel()/shutdown() from any thread
  Clock::time_point t_submit, t_start, t_first;
  Completion out;
  // Slot state.
  int slot = -1;
  uint64_t admit_order = 0;  // prompts are evaluated oldest first
  int64_t n_fed = 0;         // prompt tokens evaluated
  int64_t cap = 0;           // most tokens it may sample
  int32_t pending = -1;      // sampled token still to run through the model, -1: none
  bool fed_this_step = false;  // a long prompt chunk ran in this iteration
  int32_t sampled = -1;        // the token just sampled, -1: sample_error says why
  std::string sample_error;
  bool finished = false;
  bool client_gone = false;  // on_text returned false
  std::optional<TokenizerTextDecoder> decoder;
  StopMatcher stops;
  std::string piece, emit;
};

class EngineImpl final : public Engine {
 public:
  EngineImpl(const Model& m, const EngineOptions& o)
      : model_(m),
        opts_(o),
        batch_(m, BatchSessionOptions{o.n_slots, o.n_ctx, o.n_threads, o.kv_type, false}),
        extra_eos_(m.extra_eos_ids()),
        slots_(static_cast<size_t>(o.n_slots)) {
    entries_.reserve(static_cast<size_t>(o.n_slots + batch_.chunk_tokens()));
    parts_.reserve(static_cast<size_t>(o.n_slots));
    to_sample_.reserve(static_cast<size_t>(o.n_slots));
    order_.reserve(static_cast<size_t>(o.n_slots));
    thread_ = std::thread([this] { loop(); });
  }

  ~EngineImpl() override {
    shutdown(true);
    {
      std::lock_guard<std::mutex> lk(mu_);
      quit_ = true;
    }
    cv_work_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  SubmitResult submit(Request req, Callbacks cb) override;
  void cancel(uint64_t id) override {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = live_.find(id);
    if (it == live_.end()) return;
    it->second->cancel.store(true);
    cv_work_.notify_all();
  }
  EngineStats stats() const override {
    std::lock_guard<std::mutex> lk(mu_);
    EngineStats s;
    s.n_slots = opts_.n_slots;
    s.busy_slots = busy_;
    s.queued = static_cast<int>(queue_.size());
    s.prompt_tokens = prompt_tokens_.load();
    s.generated_tokens = generated_tokens_.load();
    return s;
  }
  void shutdown(bool cancel_running) override {
    std::unique_lock<std::mutex> lk(mu_);
    accepting_ = false;
    if (cancel_running) {
      for (auto& kv : live_) kv.second->cancel.store(true);
    }
    cv_work_.notify_all();
    // From a callback (the engine thread) waiting would deadlock: the loop finishes the rest.
    if (std::this_thread::get_id() == thread_.get_id()) return;
    cv_idle_.wait(lk, [&] { return live_.empty(); });
  }
  const Model& model() const override { return model_; }

 private:
  void loop();
  void start(Job& j);
  int64_t next_chunk(const Job& j) const;
  bool in_prompt(const Job* j) const;
  void run_long_chunk();
  void run_batch();
  void sample_and_emit();
  void take_token(Job& j);
  void output(Job& j, const std::string& s);
  void finish(Job& j, Finish f, std::string error = {});
  void retire_finished();
  void report(std::unique_ptr<Job> j);

  const Model& model_;
  EngineOptions opts_;
  BatchSession batch_;
  std::vector<int32_t> extra_eos_;

  mutable std::mutex mu_;
  std::condition_variable cv_work_;  // wakes the engine thread
  std::condition_variable cv_idle_;  // live_ became empty
  std::deque<std::unique_ptr<Job>> queue_;
  std::unordered_map<uint64_t, Job*> live_;  // submitted, on_done not yet returned
  int busy_ = 0;
  bool accepting_ = true;
  bool quit_ = false;
  uint64_t next_id_ = 1;
  std::atomic<uint64_t> prompt_tokens_{0}, generated_tokens_{0};

  // Engine thread only.
  std::vector<std::unique_ptr<Job>> slots_;  // null: free
  uint64_t admit_counter_ = 0;
  // One pass's parts: a decode step (n_prompt 0) or a prompt chunk of n_prompt tokens; logits:
  // the part has a row of logits in the pass's output.
  struct Part {
    Job* job;
    int64_t n_prompt;
    bool logits;
  };
  std::vector<BatchEntry> entries_;
  std::vector<Part> parts_;
  std::vector<Job*> order_;
  // Logits rows to sample from; first: the prompt's last row (the first sample).
  struct ToSample {
    Job* job;
    std::span<const float> logits;
    bool first;
  };
  std::vector<ToSample> to_sample_;
  std::thread thread_;
};

SubmitResult EngineImpl::submit(Request req, Callbacks cb) {
  SubmitResult r;
  auto fail = [&](SubmitError e, std::string msg) {
    r.error = e;
    r.message = std::move(msg);
    return r;
  };
  const int64_t V = model_.config().n_vocab;
  const auto n_prompt = static_cast<int64_t>(req.prompt.size());
  if (n_prompt == 0) return fail(SubmitError::invalid, "the prompt is empty (at least one token)");
  if (n_prompt > opts_.n_ctx) {
    return fail(SubmitError::prompt_too_long,
                "prompt has " + std::to_string(n_prompt) + " tokens; the context is " +
                    std::to_string(opts_.n_ctx));
  }
  for (int64_t i = 0; i < n_prompt; ++i) {
    const int32_t t = req.prompt[static_cast<size_t>(i)];
    if (t < 0 || t >= V) {
      return fail(SubmitError::invalid, "prompt token " + std::to_string(t) + " at index " +
                                            std::to_string(i) + " is out of range [0, " +
                                            std::to_string(V) + ")");
    }
  }
  // The sampler validates the parameters and picks the seed now, so errors are synchronous.
  auto sampler = Sampler::create(req.sampling, V);
  if (!sampler.ok()) return fail(SubmitError::invalid, sampler.message());

  auto job = std::make_unique<Job>();
  job->t_submit = Clock::now();
  job->sampler.emplace(std::move(*sampler));
  job->req = std::move(req);
  job->cb = std::move(cb);
  std::lock_guard<std::mutex> lk(mu_);
  if (!accepting_) return fail(SubmitError::shutting_down, "the server is shutting down");
  const int64_t waiting = busy_ + static_cast<int64_t>(queue_.size()) + 1 - opts_.n_slots;
  if (waiting > opts_.max_queue) {
    return fail(SubmitError::queue_full,
                "all " + std::to_string(opts_.n_slots) + " slots are busy and " +
                    std::to_string(queue_.size()) + " requests are queued (max_queue " +
                    std::to_string(opts_.max_queue) + ")");
  }
  job->id = next_id_++;
  r.id = job->id;
  live_[job->id] = job.get();
  queue_.push_back(std::move(job));
  cv_work_.notify_all();
  return r;
}

void EngineImpl::loop() {
  std::vector<std::unique_ptr<Job>> dropped;  // left the queue without a slot
  for (;;) {
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_work_.wait(lk, [&] { return quit_ || !queue_.empty() || busy_ > 0; });
      if (quit_ && queue_.empty() && busy_ == 0) return;
      const auto now = Clock::now();
      for (auto it = queue_.begin(); it != queue_.end();) {
        Job& j = **it;
        if (j.cancel.load() || now >= j.req.deadline) {
          j.out.finish = j.cancel.load() ? Finish::cancelled : Finish::timeout;
          dropped.push_back(std::move(*it));
          it = queue_.erase(it);
        } else {
          ++it;
        }
      }
      for (size_t s = 0; s < slots_.size() && !queue_.empty(); ++s) {
        if (slots_[s]) continue;
        slots_[s] = std::move(queue_.front());
        queue_.pop_front();
        slots_[s]->slot = static_cast<int>(s);
        ++busy_;
      }
    }
    for (auto& j : dropped) {
      j->out.queue_ms = ms_between(j->t_submit, Clock::now());
      j->out.n_prompt = static_cast<int64_t>(j->req.prompt.size());
      j->out.seed = j->sampler->seed();
      report(std::move(j));
    }
    dropped.clear();

    const auto now = Clock::now();
    for (auto& j : slots_) {
      if (!j || j->finished) continue;
      if (j->slot >= 0 && j->admit_order == 0) start(*j);
      if (j->finished) continue;
      if (j->cancel.load()) {
        finish(*j, Finish::cancelled);
      } else if (now >= j->req.deadline) {
        finish(*j, Finish::timeout);
      }
    }
    retire_finished();
    run_long_chunk();
    run_batch();
    retire_finished();
  }
}

// A request just got a slot: its sequence starts empty; limits and text state are set up.
void EngineImpl::start(Job& j) {
  j.admit_order = ++admit_counter_;
  j.t_start = Clock::now();
  j.out.queue_ms = ms_between(j.t_submit, j.t_start);
  j.out.n_prompt = static_cast<int64_t>(j.req.prompt.size());
  j.out.seed = j.sampler->seed();
  batch_.truncate(j.slot, 0);
  // As `slm run`: the last sampled token is never run, so n_ctx - prompt + 1 samples fit.
  j.cap = opts_.n_ctx - j.out.n_prompt + 1;
  if (j.req.max_tokens >= 0) j.cap = std::min(j.cap, j.req.max_tokens);
  j.decoder.emplace(model_.tokenizer(), !j.req.strip_leading_space);
  j.stops = StopMatcher(j.req.stop);
  if (j.cap <= 0) finish(j, Finish::length);
}

// Prompts are cut into chunks exactly as Session::forward cuts them (chunk_tokens() from the
// start), whatever else runs, and each chunk always gets the same arithmetic: a long chunk (one
// the matmul would give to the GEMM) runs alone as a one-sequence pass, the Session path; short
// chunks ride in the batch-invariant pass with the decode steps.
int64_t EngineImpl::next_chunk(const Job& j) const {
  return std::min(batch_.chunk_tokens(), j.out.n_prompt - j.n_fed);
}

bool EngineImpl::in_prompt(const Job* j) const {
  return j && !j->finished && j->n_fed < j->out.n_prompt;
}

// The oldest slot whose next prompt chunk is long gets it evaluated.
void EngineImpl::run_long_chunk() {
  Job* best = nullptr;
  for (auto& j : slots_) {
    if (!in_prompt(j.get()) || next_chunk(*j) < k_gemm_min_tokens) continue;
    if (!best || j->admit_order < best->admit_order) best = j.get();
  }
  if (!best) return;
  Job& j = *best;
  const int64_t n = next_chunk(j);
  const bool last = j.n_fed + n == j.out.n_prompt;
  entries_.clear();
  for (int64_t i = 0; i < n; ++i) {
    entries_.push_back({j.slot, j.req.prompt[static_cast<size_t>(j.n_fed + i)], last && i == n - 1});
  }
  auto logits = batch_.forward(entries_);
  if (!logits.ok()) {
    finish(j, Finish::error, logits.message());
    return;
  }
  j.n_fed += n;
  j.fed_this_step = true;
  prompt_tokens_.fetch_add(static_cast<uint64_t>(n));
  if (last) {
    to_sample_.clear();
    to_sample_.push_back({&j, *logits, true});
    sample_and_emit();
  }
}

// One pass over the pending token of every decoding slot plus short prompt chunks (oldest first,
// up to chunk_tokens() prompt tokens), then each finished prompt and decode step samples.
void EngineImpl::run_batch() {
  entries_.clear();
  parts_.clear();
  for (auto& j : slots_) {
    if (!j || j->finished || j->pending < 0) continue;
    entries_.push_back({j->slot, j->pending, true});
    parts_.push_back({j.get(), 0, true});
  }
  order_.clear();
  for (auto& j : slots_) {
    if (in_prompt(j.get()) && !j->fed_this_step && next_chunk(*j) < k_gemm_min_tokens)
      order_.push_back(j.get());
  }
  std::sort(order_.begin(), order_.end(),
            [](const Job* a, const Job* b) { return a->admit_order < b->admit_order; });
  int64_t budget = batch_.chunk_tokens();
  for (Job* j : order_) {
    const int64_t n = next_chunk(*j);
    if (n > budget) break;
    budget -= n;
    const bool last = j->n_fed + n == j->out.n_prompt;
    for (int64_t i = 0; i < n; ++i) {
      entries_.push_back(
          {j->slot, j->req.prompt[static_cast<size_t>(j->n_fed + i)], last && i == n - 1});
    }
    parts_.push_back({j, n, last});
  }
  for (auto& j : slots_) {
    if (j) j->fed_this_step = false;
  }
  if (entries_.empty()) return;
  auto logits = batch_.forward(entries_, /*invariant=*/true);
  if (!logits.ok()) {
    for (const Part& p : parts_) finish(*p.job, Finish::error, logits.message());
    return;
  }
  const size_t V = static_cast<size_t>(model_.config().n_vocab);
  size_t row = 0;
  to_sample_.clear();
  for (const Part& p : parts_) {
    Job& j = *p.job;
    if (p.n_prompt > 0) {
      j.n_fed += p.n_prompt;
      prompt_tokens_.fetch_add(static_cast<uint64_t>(p.n_prompt));
    } else {
      j.pending = -1;
    }
    if (p.logits) to_sample_.push_back({&j, logits->subspan(row++ * V, V), p.n_prompt > 0});
  }
  sample_and_emit();
}

// Samplers are independent, so the requests sample in parallel on the forward pass's threads
// (a vocabulary-wide pass each); text and callbacks follow on the engine thread.
void EngineImpl::sample_and_emit() {
  batch_.thread_pool().parallel_for(
      static_cast<int64_t>(to_sample_.size()), [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          const ToSample& t = to_sample_[static_cast<size_t>(i)];
          Job& j = *t.job;
          // As generate(): prompt tokens join the penalty history before the first sample.
          if (t.first) {
            for (int32_t tok : j.req.prompt) j.sampler->accept(tok);
          }
          auto id = j.sampler->sample(t.logits);
          if (id.ok()) {
            j.sampler->accept(*id);
            j.sampled = *id;
          } else {
            j.sampled = -1;
            j.sample_error = id.message();
          }
        }
      });
  for (const ToSample& t : to_sample_) take_token(*t.job);
}

// Sample, then the generate() order: EOG -> text and stop strings -> max tokens; otherwise the
// token runs in the next decode step.
void EngineImpl::take_token(Job& j) {
  if (j.sampled < 0) {
    finish(j, Finish::error, j.sample_error);
    return;
  }
  const int32_t id = j.sampled;
  if (j.cancel.load()) {
    finish(j, Finish::cancelled);
    return;
  }
  ++j.out.n_generated;
  generated_tokens_.fetch_add(1);
  if (j.out.n_generated == 1) j.t_first = Clock::now();
  const bool eog = j.decoder->is_eog(id) ||
                   std::find(extra_eos_.begin(), extra_eos_.end(), id) != extra_eos_.end();
  if (eog && !j.req.ignore_eos) {
    finish(j, Finish::eos);
    return;
  }
  j.piece.clear();
  j.decoder->push(id, j.piece);
  const bool stopped = j.stops.push(j.piece, j.emit);
  output(j, j.emit);
  if (stopped) {
    finish(j, Finish::stop);
  } else if (j.client_gone) {
    finish(j, Finish::cancelled);
  } else if (j.out.n_generated >= j.cap) {
    finish(j, Finish::length);
  } else {
    j.pending = id;
  }
}

void EngineImpl::output(Job& j, const std::string& s) {
  if (s.empty() || j.client_gone) return;
  j.out.text.append(s);
  if (j.cb.on_text && !j.cb.on_text(s)) j.client_gone = true;
}

// Marks the request done: what the decoder and stop matcher hold back is released unless the
// request was cancelled or failed (as generate() ends), and the times are taken.
void EngineImpl::finish(Job& j, Finish f, std::string error) {
  if (j.finished) return;
  j.finished = true;
  j.pending = -1;
  j.out.finish = f;
  j.out.error = std::move(error);
  if (f == Finish::eos || f == Finish::length || f == Finish::timeout) {
    j.piece.clear();
    j.decoder->flush(j.piece);
    if (j.stops.push(j.piece, j.emit)) {
      j.out.finish = Finish::stop;
      output(j, j.emit);
    } else {
      output(j, j.emit);
      j.stops.flush(j.emit);
      output(j, j.emit);
    }
  }
  if (j.decoder) j.out.stop_matched = std::string(j.stops.matched());
  const auto now = Clock::now();
  if (j.out.n_generated > 0) {
    j.out.ttft_ms = ms_between(j.t_submit, j.t_first);
    j.out.gen_ms = ms_between(j.t_first, now);
  }
}

// Frees the slots of finished requests (visible in stats() before on_done runs), then reports.
void EngineImpl::retire_finished() {
  std::vector<std::unique_ptr<Job>> done;
  {
    std::lock_guard<std::mutex> lk(mu_);
    for (auto& j : slots_) {
      if (!j || !j->finished) continue;
      batch_.truncate(j->slot, 0);
      done.push_back(std::move(j));
      --busy_;
    }
  }
  for (auto& j : done) report(std::move(j));
}

void EngineImpl::report(std::unique_ptr<Job> j) {
  if (j->cb.on_done) j->cb.on_done(j->out);
  std::lock_guard<std::mutex> lk(mu_);
  live_.erase(j->id);
  if (live_.empty()) cv_idle_.notify_all();
}

}  // namespace

Expected<std::unique_ptr<Engine>> Engine::create(const Model& model, const EngineOptions& opts) {
  if (opts.n_slots < 1 || opts.n_slots > 4096) {
    return error("engine: n_slots must be in [1, 4096], got %d", opts.n_slots);
  }
  if (opts.n_ctx < 1) return error("engine: n_ctx must be positive, got %lld", (long long)opts.n_ctx);
  if (opts.max_queue < 0) return error("engine: max_queue must be >= 0, got %d", opts.max_queue);
  if (opts.n_threads < 0) return error("engine: n_threads must be >= 0, got %d", opts.n_threads);
  if (!model.has_tokenizer()) return error("engine: the model has no tokenizer");
  SLM_TRY(check_kv_type(opts.kv_type, model.config().head_dim));
  try {
    return std::unique_ptr<Engine>(std::make_unique<EngineImpl>(model, opts));
  } catch (const std::bad_alloc&) {
    const ModelConfig& c = model.config();
    const double gib = 2.0 * static_cast<double>(opts.n_slots) * static_cast<double>(opts.n_ctx) *
                       static_cast<double>(c.n_layer * c.n_head_kv) *
                       static_cast<double>(kv_row_bytes(opts.kv_type, c.head_dim)) / (1 << 30);
    return error("engine: cannot allocate the KV cache of %d slots x %lld positions (%.2f GiB)",
                 opts.n_slots, (long long)opts.n_ctx, gib);
  }
}

}  // namespace slm::serve
