// The serving engine (serve/engine.h): its output against generate() over a Session (the
// `slm run` path), batch invariance under concurrent load, cancellation, queue limits, timeouts,
// shutdown and throughput. Models: stories260K (real text) and a Q8_0 fixture with a 32000-token
// vocabulary for throughput.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "generate/generate.h"
#include "model/fixture.h"
#include "model/model.h"
#include "serve/engine.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace slm::serve {
namespace {

using Clock = std::chrono::steady_clock;

const Model& stories() {
  static std::unique_ptr<Model> m = [] {
    LoadOptions opts;
    opts.tokenizer_path = test::shared_dir() + "/models/tok512.bin";
    auto r = Model::load(test::shared_dir() + "/models/stories260K.bin", opts);
    if (!r.ok()) {
      ADD_FAILURE() << r.message();
      return std::unique_ptr<Model>();
    }
    return std::move(*r);
  }();
  if (!m) throw std::runtime_error("stories260K did not load");
  return *m;
}

std::vector<int32_t> encode(const Model& m, const std::string& text) {
  return m.tokenizer().encode(text, true, false);
}

// Collects one request's callbacks; test threads wait on it.
struct Collector {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  Completion result;
  std::string streamed;
  int n_text = 0;
  std::function<bool(Collector&)> on_text_hook;  // runs on the engine thread after each piece
  std::function<void(const Completion&)> on_done_hook;

  Callbacks callbacks() {
    Callbacks cb;
    cb.on_text = [this](std::string_view t) {
      {
        std::lock_guard<std::mutex> lk(mu);
        streamed.append(t);
        ++n_text;
      }
      cv.notify_all();
      return on_text_hook ? on_text_hook(*this) : true;
    };
    cb.on_done = [this](const Completion& c) {
      if (on_done_hook) on_done_hook(c);
      std::lock_guard<std::mutex> lk(mu);
      EXPECT_FALSE(done) << "on_done called twice";
      result = c;
      done = true;
      cv.notify_all();
    };
    return cb;
  }
  Completion wait() {
    std::unique_lock<std::mutex> lk(mu);
    EXPECT_TRUE(cv.wait_for(lk, std::chrono::seconds(60), [&] { return done; }))
        << "request did not finish";
    return result;
  }
  void wait_text(int n) {
    std::unique_lock<std::mutex> lk(mu);
    EXPECT_TRUE(cv.wait_for(lk, std::chrono::seconds(60), [&] { return n_text >= n || done; }));
  }
};

// A one-shot gate a callback can block on (to hold the engine thread still).
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  void wait() {
    std::unique_lock<std::mutex> lk(mu);
    cv.wait(lk, [&] { return open; });
  }
  void release() {
    {
      std::lock_guard<std::mutex> lk(mu);
      open = true;
    }
    cv.notify_all();
  }
};

// One thread by default: stories260K is too small for a second one to help, and the tests stay
// fast on a busy machine (thread counts are covered by test_batch_forward).
std::unique_ptr<Engine> make_engine(const Model& m, int n_slots, int64_t n_ctx, int max_queue = 64,
                                    int n_threads = 1) {
  EngineOptions o;
  o.n_slots = n_slots;
  o.n_ctx = n_ctx;
  o.n_threads = n_threads;
  o.max_queue = max_queue;
  auto e = Engine::create(m, o);
  EXPECT_TRUE(e.ok()) << e.message();
  return e.ok() ? std::move(*e) : nullptr;
}

Request make_request(std::vector<int32_t> prompt, uint64_t seed, int64_t max_tokens) {
  Request r;
  r.prompt = std::move(prompt);
  r.sampling.seed = seed;
  r.sampling.temperature = 1.0f;  // wide distributions: any arithmetic difference shows
  r.sampling.top_k = 0;
  r.sampling.top_p = 1.0f;
  r.sampling.min_p = 0.0f;
  r.max_tokens = max_tokens;
  return r;
}

std::string long_text() {
  return "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
         "park with her friends. One day, she saw a big red ball under a tree. She ran to the "
         "ball and picked it up. Her mom said, \"Lily, be careful!\" Lily smiled and threw the "
         "ball to her friend Tom. Tom was happy and they played all day in the sun until it was "
         "time to go home and eat dinner with their family.";
}

// ---- against the `slm run` path ----

TEST(Engine, MatchesGenerateOverSession) {
  const Model& m = stories();
  auto engine = make_engine(m, 3, 300);
  ASSERT_TRUE(engine);
  struct Cfg {
    std::string prompt;
    SamplerParams s;
    int64_t max_tokens;
    std::vector<std::string> stop;
  };
  std::vector<Cfg> cfgs;
  {
    Cfg c{"Once upon a time", {}, 60, {}};
    c.s.temperature = 0;
    c.s.seed = 3;
    cfgs.push_back(c);
  }
  {
    Cfg c{long_text(), {}, 80, {}};  // a prompt of two chunks
    c.s.seed = 7;
    cfgs.push_back(c);
  }
  {
    Cfg c{"Tom had a dog", {}, 200, {" the", "."}};  // stop strings across tokens
    c.s.seed = 11;
    c.s.repeat_penalty = 1.2f;
    cfgs.push_back(c);
  }
  for (size_t i = 0; i < cfgs.size(); ++i) {
    const Cfg& c = cfgs[i];
    auto prompt = encode(m, c.prompt);
    GenerateOptions go;
    go.sampling = c.s;
    go.max_tokens = c.max_tokens;
    go.stop = c.stop;
    Session session(m, SessionOptions{300, 1, DType::F16, false});
    auto want = generate(session, m, prompt, go, nullptr);
    ASSERT_TRUE(want.ok()) << want.message();

    Request r;
    r.prompt = prompt;
    r.sampling = c.s;
    r.max_tokens = c.max_tokens;
    r.stop = c.stop;
    Collector col;
    auto sub = engine->submit(r, col.callbacks());
    ASSERT_EQ(sub.error, SubmitError::none) << sub.message;
    Completion got = col.wait();
    EXPECT_EQ(got.text, want->text) << "config " << i;
    EXPECT_EQ(col.streamed, got.text);
    EXPECT_EQ(got.n_generated, want->n_generated) << "config " << i;
    EXPECT_STREQ(finish_name(got.finish), finish_reason_name(want->finish_reason)) << i;
    EXPECT_EQ(got.stop_matched, want->stop_matched);
    EXPECT_EQ(got.n_prompt, static_cast<int64_t>(prompt.size()));
    EXPECT_EQ(got.seed, want->seed);
    std::printf("config %zu: %s, %lld tokens: %s\n", i, finish_name(got.finish),
                (long long)got.n_generated, got.text.c_str());
  }
  EngineStats st = engine->stats();
  EXPECT_EQ(st.busy_slots, 0);
  EXPECT_EQ(st.queued, 0);
  EXPECT_GT(st.generated_tokens, 0u);
  EXPECT_GT(st.prompt_tokens, 0u);
}

// ---- batch invariance ----

// The target request alone, then beside 1, 3 and 7 others of different prompt and output
// lengths, some submitted before it (3 and 7), some joining while it generates (from its
// callback).
TEST(Engine, SameOutputWhateverRunsBeside) {
  const Model& m = stories();
  const auto long_prompt = encode(m, long_text());
  const auto short_prompt = encode(m, "Lily and Tom");
  ASSERT_GT(long_prompt.size(), 64u);
  std::printf("prompt lengths: %zu and %zu tokens\n", long_prompt.size(), short_prompt.size());
  auto target = [&] {
    Request r = make_request(long_prompt, 1234, 90);
    r.ignore_eos = true;
    return r;
  };

  std::string alone;
  {
    auto engine = make_engine(m, 8, 400);
    ASSERT_TRUE(engine);
    Collector col;
    ASSERT_EQ(engine->submit(target(), col.callbacks()).error, SubmitError::none);
    Completion c = col.wait();
    alone = c.text;
    EXPECT_EQ(c.n_generated, 90);
  }
  for (int n_others : {1, 3, 7}) {
    auto engine = make_engine(m, 8, 400);
    ASSERT_TRUE(engine);
    std::vector<std::unique_ptr<Collector>> others;
    auto other_request = [&](int k) {
      // Different lengths: short prompts (one short chunk), long ones (a GEMM-sized chunk and
      // a short one, as the target) and 60-70 tokens (one GEMM-sized chunk).
      std::vector<int32_t> p = k % 3 == 0 ? short_prompt : long_prompt;
      if (k % 3 == 2) {
        p.resize(static_cast<size_t>(70 - k));
      } else {
        p.resize(p.size() - static_cast<size_t>(k % 5));
      }
      // 40 or more tokens, never cut short by an end-of-text token: one submitted before the
      // target then normally still runs when the target's text starts (one that stopped at an
      // early end-of-text token, or after 10 tokens, could be done during the target's prompt).
      Request r = make_request(p, 100 + static_cast<uint64_t>(k), 40 + 23 * k);
      r.ignore_eos = true;
      return r;
    };
    // Half (rounded down) start before the target, the rest join at its 5th, 10th, ... piece
    // of text. A joiner is sure to run beside it (the target has 85 or more tokens to go); one
    // submitted before may be done before the target starts if this thread is descheduled
    // (a loaded machine), so every case has a joiner and max_busy >= 2 does not hang on timing.
    const int before = n_others / 2;
    for (int k = 0; k < before; ++k) {
      others.push_back(std::make_unique<Collector>());
      ASSERT_EQ(engine->submit(other_request(k), others.back()->callbacks()).error,
                SubmitError::none);
    }
    for (int k = before; k < n_others; ++k) others.push_back(std::make_unique<Collector>());
    Collector col;
    int joined = before, max_busy = 0;
    Engine* e = engine.get();
    col.on_text_hook = [&](Collector& self) {
      max_busy = std::max(max_busy, e->stats().busy_slots);
      if (joined < n_others && self.n_text % 5 == 0) {
        EXPECT_EQ(e->submit(other_request(joined), others[static_cast<size_t>(joined)]->callbacks())
                      .error,
                  SubmitError::none);
        ++joined;
      }
      return true;
    };
    ASSERT_EQ(engine->submit(target(), col.callbacks()).error, SubmitError::none);
    Completion c = col.wait();
    EXPECT_EQ(c.text, alone) << "with " << n_others << " others";
    EXPECT_EQ(joined, n_others);
    EXPECT_GE(max_busy, 2) << "nothing ran beside the target";
    for (int k = 0; k < joined; ++k) {
      Completion oc = others[static_cast<size_t>(k)]->wait();
      EXPECT_NE(oc.finish, Finish::error) << oc.error;
    }
    std::printf("%d others: identical, up to %d busy slots\n", n_others, max_busy);
  }
}

TEST(Engine, RandomSeedIsReportedAndReproduces) {
  const Model& m = stories();
  auto engine = make_engine(m, 2, 200);
  ASSERT_TRUE(engine);
  Request r = make_request(encode(m, "The cat"), SamplerParams::k_random_seed, 40);
  Collector a;
  ASSERT_EQ(engine->submit(r, a.callbacks()).error, SubmitError::none);
  Completion ca = a.wait();
  EXPECT_NE(ca.seed, SamplerParams::k_random_seed);
  r.sampling.seed = ca.seed;
  Collector b;
  ASSERT_EQ(engine->submit(r, b.callbacks()).error, SubmitError::none);
  EXPECT_EQ(b.wait().text, ca.text);
}

// ---- cancellation, queue, timeout ----

TEST(Engine, CancelFreesTheSlot) {
  const Model& m = stories();
  auto engine = make_engine(m, 2, 400);
  ASSERT_TRUE(engine);
  Engine* e = engine.get();
  Request r = make_request(encode(m, "Once"), 5, -1);
  r.ignore_eos = true;

  // Cancelled from another thread mid-generation.
  Collector a;
  int busy_in_done = -1;
  a.on_done_hook = [&](const Completion&) { busy_in_done = e->stats().busy_slots; };
  a.on_text_hook = [](Collector&) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // keep it running meanwhile
    return true;
  };
  auto sa = engine->submit(r, a.callbacks());
  ASSERT_EQ(sa.error, SubmitError::none);
  a.wait_text(3);
  EXPECT_EQ(engine->stats().busy_slots, 1);
  engine->cancel(sa.id);
  Completion ca = a.wait();
  EXPECT_EQ(ca.finish, Finish::cancelled);
  EXPECT_LT(ca.n_generated, 300);
  EXPECT_EQ(busy_in_done, 0) << "the slot must be free before on_done";
  EXPECT_EQ(engine->stats().busy_slots, 0);
  engine->cancel(sa.id);  // already done: no-op
  engine->cancel(987654);  // unknown: no-op

  // The callback declining more text cancels too.
  Collector b;
  b.on_text_hook = [](Collector& self) { return self.n_text < 4; };
  ASSERT_EQ(engine->submit(r, b.callbacks()).error, SubmitError::none);
  Completion cb = b.wait();
  EXPECT_EQ(cb.finish, Finish::cancelled);
  EXPECT_EQ(b.n_text, 4);
  EXPECT_EQ(engine->stats().busy_slots, 0);

  // The slots are usable again.
  Collector c;
  ASSERT_EQ(engine->submit(make_request(encode(m, "Once"), 5, 12), c.callbacks()).error,
            SubmitError::none);
  EXPECT_EQ(c.wait().n_generated, 12);
}

TEST(Engine, QueueFullAndQueuedCancelAndTimeout) {
  const Model& m = stories();
  auto engine = make_engine(m, 1, 200, /*max_queue=*/2);
  ASSERT_TRUE(engine);
  Gate gate;
  Collector a;  // holds the only slot (and the engine thread) until the gate opens
  a.on_text_hook = [&](Collector&) {
    gate.wait();
    return true;
  };
  ASSERT_EQ(engine->submit(make_request(encode(m, "One"), 1, 20), a.callbacks()).error,
            SubmitError::none);
  a.wait_text(1);
  Collector b, c;
  auto sb = engine->submit(make_request(encode(m, "Two"), 2, 20), b.callbacks());
  ASSERT_EQ(sb.error, SubmitError::none);
  Request rc = make_request(encode(m, "Three"), 3, 20);
  rc.deadline = Clock::now() + std::chrono::milliseconds(20);
  ASSERT_EQ(engine->submit(rc, c.callbacks()).error, SubmitError::none);
  EngineStats st = engine->stats();
  EXPECT_EQ(st.busy_slots, 1);
  EXPECT_EQ(st.queued, 2);

  Collector d;
  const auto t0 = Clock::now();
  SubmitResult sd = engine->submit(make_request(encode(m, "Four"), 4, 20), d.callbacks());
  EXPECT_EQ(sd.error, SubmitError::queue_full);
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 0.5);
  EXPECT_NE(sd.message.find("max_queue 2"), std::string::npos) << sd.message;

  engine->cancel(sb.id);  // queued: leaves without ever getting a slot
  std::this_thread::sleep_for(std::chrono::milliseconds(40));  // c's deadline passes queued
  gate.release();
  Completion ca = a.wait(), cb = b.wait(), cc = c.wait();
  EXPECT_EQ(ca.finish, Finish::length);
  EXPECT_EQ(ca.n_generated, 20);
  EXPECT_EQ(cb.finish, Finish::cancelled);
  EXPECT_EQ(cb.n_generated, 0);
  EXPECT_EQ(cc.finish, Finish::timeout);
  EXPECT_EQ(cc.n_generated, 0);
  EXPECT_GE(cc.queue_ms, 20.0);

  // A deadline passing while generating: finish "timeout" with the text so far.
  Collector t;
  t.on_text_hook = [](Collector&) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    return true;
  };
  Request rt = make_request(encode(m, "Once"), 9, -1);
  rt.ignore_eos = true;
  rt.deadline = Clock::now() + std::chrono::milliseconds(60);
  ASSERT_EQ(engine->submit(rt, t.callbacks()).error, SubmitError::none);
  Completion ct = t.wait();
  EXPECT_EQ(ct.finish, Finish::timeout);
  EXPECT_GT(ct.n_generated, 0);
  EXPECT_LT(ct.n_generated, 150);
  EXPECT_EQ(ct.text, t.streamed);
  EXPECT_EQ(engine->stats().busy_slots, 0);
  EXPECT_EQ(engine->stats().queued, 0);
}

TEST(Engine, SubmitErrors) {
  const Model& m = stories();
  auto engine = make_engine(m, 1, 16);
  ASSERT_TRUE(engine);
  Collector c;
  SubmitResult r = engine->submit(make_request(std::vector<int32_t>(17, 5), 1, 4), c.callbacks());
  EXPECT_EQ(r.error, SubmitError::prompt_too_long);
  EXPECT_NE(r.message.find("17"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("16"), std::string::npos) << r.message;
  EXPECT_EQ(engine->submit(make_request({}, 1, 4), c.callbacks()).error, SubmitError::invalid);
  r = engine->submit(make_request({1, 512}, 1, 4), c.callbacks());
  EXPECT_EQ(r.error, SubmitError::invalid);
  EXPECT_NE(r.message.find("512"), std::string::npos) << r.message;
  Request bad = make_request({1, 2}, 1, 4);
  bad.sampling.temperature = -1;
  EXPECT_EQ(engine->submit(bad, c.callbacks()).error, SubmitError::invalid);

  // A prompt that fills the context exactly still samples one token (as `slm run`).
  Collector full;
  ASSERT_EQ(engine->submit(make_request(std::vector<int32_t>(16, 5), 1, 100), full.callbacks()).error,
            SubmitError::none);
  Completion cf = full.wait();
  EXPECT_EQ(cf.n_generated, 1);

  EngineOptions o;
  o.n_slots = 0;
  EXPECT_FALSE(Engine::create(m, o).ok());
  o.n_slots = 1;
  o.kv_type = DType::Q4_K;
  EXPECT_FALSE(Engine::create(m, o).ok());
}

// ---- shutdown ----

TEST(Engine, ShutdownWaitsOrCancels) {
  const Model& m = stories();
  {
    auto engine = make_engine(m, 2, 200);
    ASSERT_TRUE(engine);
    std::vector<std::unique_ptr<Collector>> cols;
    for (int k = 0; k < 3; ++k) {  // the third waits in the queue
      cols.push_back(std::make_unique<Collector>());
      Request r = make_request(encode(m, "Hi"), static_cast<uint64_t>(k), 25);
      r.ignore_eos = true;
      ASSERT_EQ(engine->submit(r, cols.back()->callbacks()).error, SubmitError::none);
    }
    engine->shutdown(false);
    for (auto& c : cols) {
      std::lock_guard<std::mutex> lk(c->mu);
      EXPECT_TRUE(c->done) << "shutdown(false) returned before a request finished";
      EXPECT_EQ(c->result.finish, Finish::length);
      EXPECT_EQ(c->result.n_generated, 25);
    }
    Collector late;
    EXPECT_EQ(engine->submit(make_request(encode(m, "Hi"), 1, 5), late.callbacks()).error,
              SubmitError::shutting_down);
  }
  {
    auto engine = make_engine(m, 2, 400);
    ASSERT_TRUE(engine);
    std::vector<std::unique_ptr<Collector>> cols;
    for (int k = 0; k < 3; ++k) {
      cols.push_back(std::make_unique<Collector>());
      cols.back()->on_text_hook = [](Collector&) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        return true;
      };
      Request r = make_request(encode(m, "Hi"), static_cast<uint64_t>(k), -1);
      r.ignore_eos = true;
      ASSERT_EQ(engine->submit(r, cols.back()->callbacks()).error, SubmitError::none);
    }
    cols[0]->wait_text(2);
    engine->shutdown(true);
    for (auto& c : cols) {
      std::lock_guard<std::mutex> lk(c->mu);
      EXPECT_TRUE(c->done);
      EXPECT_EQ(c->result.finish, Finish::cancelled);
    }
    EXPECT_EQ(engine->stats().busy_slots, 0);
    engine->shutdown(true);  // again: nothing left, returns at once
  }
  {
    // Destroyed with work in flight: every request still gets on_done.
    std::vector<std::unique_ptr<Collector>> cols;
    {
      auto engine = make_engine(m, 1, 200);
      ASSERT_TRUE(engine);
      for (int k = 0; k < 3; ++k) {
        cols.push_back(std::make_unique<Collector>());
        Request r = make_request(encode(m, "Hi"), static_cast<uint64_t>(k), 100);
        r.ignore_eos = true;
        ASSERT_EQ(engine->submit(r, cols.back()->callbacks()).error, SubmitError::none);
      }
    }
    for (auto& c : cols) {
      std::lock_guard<std::mutex> lk(c->mu);
      EXPECT_TRUE(c->done);
    }
  }
}

// ---- throughput ----

// 8 requests one after the other, then 8 at once on a model big enough that a decode step is
// dominated by streaming the weights: each request's text must be the same both ways, and the
// aggregate rate higher when batched.
TEST(Engine, ConcurrentRequestsOverlapAndMatchAlone) {
  test::TempDir tmp;
  const std::string vocab = test::shared_dir() + "/tokenizer/ggml-vocab-llama-spm.gguf";
  FixtureSpec s;
  s.n_vocab = 32000;
  s.vocab_gguf = vocab;
  s.n_embd = 256;
  s.n_layer = 2;
  s.n_head = 4;
  s.n_head_kv = 4;
  s.n_ff = 768;
  s.tied = true;
  const std::string path = tmp.file("tput.gguf");
  ASSERT_TRUE(write_fixture_gguf(s, path, DType::Q8_0).ok());
  auto loaded = Model::load(path);
  ASSERT_TRUE(loaded.ok()) << loaded.message();
  const Model& m = **loaded;
  const int n_req = 8;
  const int64_t n_tok = 16;
  auto request = [&](int k) {
    Request r = make_request(encode(m, "Request number " + std::to_string(k)), 40 + k, n_tok);
    r.ignore_eos = true;
    return r;
  };
  auto engine = make_engine(m, n_req, 128, 64, 2);
  ASSERT_TRUE(engine);
  {
    Collector warm;  // first-touch of the weights and buffers
    ASSERT_EQ(engine->submit(request(99), warm.callbacks()).error, SubmitError::none);
    warm.wait();
  }
  std::vector<std::string> alone(n_req);
  double gen_ms_alone = 0;
  for (int k = 0; k < n_req; ++k) {
    Collector c;
    ASSERT_EQ(engine->submit(request(k), c.callbacks()).error, SubmitError::none);
    Completion r = c.wait();
    ASSERT_EQ(r.n_generated, n_tok);
    alone[static_cast<size_t>(k)] = r.text;
    gen_ms_alone += r.gen_ms;
  }
  std::vector<std::unique_ptr<Collector>> cols;
  const auto t0 = Clock::now();
  for (int k = 0; k < n_req; ++k) {
    cols.push_back(std::make_unique<Collector>());
    ASSERT_EQ(engine->submit(request(k), cols.back()->callbacks()).error, SubmitError::none);
  }
  double last_first = 0, first_done = 1e300;
  for (int k = 0; k < n_req; ++k) {
    Completion r = cols[static_cast<size_t>(k)]->wait();
    EXPECT_EQ(r.text, alone[static_cast<size_t>(k)]) << "request " << k;
    last_first = std::max(last_first, r.ttft_ms);
    first_done = std::min(first_done, r.ttft_ms + r.gen_ms);
  }
  const double wall_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  // One client: tokens over the summed generation time; 8 clients: all tokens over the wall
  // time (which also includes the prompts), so the ratio understates the gain.
  const double rate1 = 1000.0 * (n_req * (n_tok - 1)) / gen_ms_alone;
  const double rate8 = 1000.0 * (n_req * n_tok) / wall_ms;
  std::printf("throughput (noisy, shared machine): 1 client %.1f tok/s, %d concurrent %.1f tok/s "
              "aggregate (x%.2f)\n",
              rate1, n_req, rate8, rate8 / rate1);
  EXPECT_LT(last_first, first_done) << "the requests did not overlap";
  // The rates are printed, not asserted: a timed assertion fails on a loaded CI runner (it
  // did: 8 clients 799 vs 1 client 963 tok/s while other tests ran). The speed-up is measured
  // by bench/serve_load.sh on a quiet machine (docs/PERFORMANCE.md).
}

}  // namespace
}  // namespace slm::serve
