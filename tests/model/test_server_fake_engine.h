// A stand-in Engine for the server tests: it honours the Engine contract (slots, bounded queue,
// cancel, deadlines, stop strings held back, shutdown) and emits words at a fixed step rate,
// so the HTTP layer can be tested apart from the model's arithmetic.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "serve/engine.h"

namespace slm::serve::fake {

class FakeEngine : public Engine {
 public:
  FakeEngine(const Model& model, int n_slots, int max_queue, std::chrono::microseconds step)
      : model_(model), n_slots_(n_slots), max_queue_(max_queue), step_(step) {
    thread_ = std::thread([this] { loop(); });
  }
  ~FakeEngine() override {
    shutdown(true);
    {
      std::lock_guard<std::mutex> lock(mu_);
      quit_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  SubmitResult submit(Request req, Callbacks cb) override {
    std::lock_guard<std::mutex> lock(mu_);
    SubmitResult r;
    if (stopping_) {
      r.error = SubmitError::shutting_down;
      return r;
    }
    if (static_cast<int>(queue_.size()) >= max_queue_) {
      r.error = SubmitError::queue_full;
      r.message = "queue full";
      return r;
    }
    Job j;
    j.id = next_id_++;
    j.req = std::move(req);
    j.cb = std::move(cb);
    j.submitted = std::chrono::steady_clock::now();
    r.id = j.id;
    queue_.push_back(std::move(j));
    cv_.notify_all();
    return r;
  }
  void cancel(uint64_t id) override {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_.push_back(id);
  }
  EngineStats stats() const override {
    std::lock_guard<std::mutex> lock(mu_);
    EngineStats s;
    s.n_slots = n_slots_;
    s.busy_slots = static_cast<int>(active_.size());
    s.queued = static_cast<int>(queue_.size());
    s.prompt_tokens = prompt_tokens_;
    s.generated_tokens = generated_tokens_;
    return s;
  }
  void shutdown(bool cancel_running) override {
    std::unique_lock<std::mutex> lock(mu_);
    stopping_ = true;
    if (cancel_running) cancel_all_ = true;
    cv_.notify_all();
    idle_cv_.wait(lock, [&] { return queue_.empty() && active_.empty(); });
  }
  const Model& model() const override { return model_; }

 private:
  struct Job {
    uint64_t id = 0;
    Request req;
    Callbacks cb;
    std::chrono::steady_clock::time_point submitted;
    std::string text;     // generated so far
    size_t emitted = 0;   // bytes of text passed to on_text
    int64_t n = 0;
    double ttft_ms = 0;
  };

  static const char* word(uint64_t h) {
    static const char* words[] = {" once", " upon", " a", " time", " there", " was",
                                  " little", " girl", " named", " Lily", "."};
    return words[h % 11];
  }

  // Returns true when the job is finished (and reports it).
  bool step(Job& j, std::vector<std::pair<Callbacks, Completion>>* done) {
    uint64_t h = j.req.sampling.temperature == 0 ? 0 : j.req.sampling.seed;
    for (int32_t t : j.req.prompt) h = h * 1315423911u + static_cast<uint64_t>(t);
    h = h * 2654435761u + static_cast<uint64_t>(j.n) * 40503u;
    h ^= h >> 13;
    if (j.n == 0) {
      j.ttft_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - j.submitted).count();
    }
    j.text += word(h);
    ++j.n;
    Finish finish = Finish::length;
    bool finished = j.n >= j.req.max_tokens;
    // Stop strings: cut at the first match; otherwise hold back a suffix that could start one.
    size_t cut = std::string::npos, hold = 0;
    for (const std::string& s : j.req.stop) {
      size_t p = j.text.find(s, j.emitted);
      if (p != std::string::npos && p < cut) cut = p;
      for (size_t k = std::min(s.size() - 1, j.text.size()); k > 0; --k) {
        if (j.text.compare(j.text.size() - k, k, s, 0, k) == 0) {
          hold = std::max(hold, k);
          break;
        }
      }
    }
    if (cut != std::string::npos) {
      j.text.resize(cut);
      finished = true;
      finish = Finish::stop;
      hold = 0;
    }
    if (finished) hold = 0;
    size_t end = j.text.size() - std::min(hold, j.text.size() - j.emitted);
    if (end > j.emitted) {
      bool keep = j.cb.on_text(std::string_view(j.text).substr(j.emitted, end - j.emitted));
      j.emitted = end;
      if (!keep) {
        finished = true;
        finish = Finish::cancelled;
      }
    }
    if (!finished && std::chrono::steady_clock::now() > j.req.deadline) {
      finished = true;
      finish = Finish::timeout;
    }
    if (!finished) return false;
    Completion c;
    c.finish = finish;
    c.text = j.text.substr(0, j.emitted);
    c.n_prompt = static_cast<int64_t>(j.req.prompt.size());
    c.n_generated = j.n;
    c.seed = j.req.sampling.seed;
    c.ttft_ms = j.ttft_ms;
    done->emplace_back(std::move(j.cb), std::move(c));
    return true;
  }

  void loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      cv_.wait_for(lock, step_, [&] { return quit_ || !queue_.empty() || !active_.empty(); });
      if (quit_) return;
      std::vector<std::pair<Callbacks, Completion>> done;
      auto cancelled = [&](uint64_t id) {
        return cancel_all_ || std::find(cancelled_.begin(), cancelled_.end(), id) != cancelled_.end();
      };
      auto finish_cancelled = [&](Job& j) {
        Completion c;
        c.finish = Finish::cancelled;
        c.text = j.text.substr(0, j.emitted);
        c.n_prompt = static_cast<int64_t>(j.req.prompt.size());
        c.n_generated = j.n;
        done.emplace_back(std::move(j.cb), std::move(c));
      };
      for (auto it = queue_.begin(); it != queue_.end();) {
        if (cancelled(it->id)) {
          finish_cancelled(*it);
          it = queue_.erase(it);
        } else {
          ++it;
        }
      }
      while (static_cast<int>(active_.size()) < n_slots_ && !queue_.empty()) {
        active_.push_back(std::move(queue_.front()));
        queue_.pop_front();
        prompt_tokens_ += active_.back().req.prompt.size();
      }
      lock.unlock();
      // Callbacks run without the lock, as the real engine's do (they may call stats()).
      std::vector<size_t> finished;
      std::vector<uint64_t> snapshot_cancel;
      bool cancel_all = false;
      {
        std::lock_guard<std::mutex> g(mu_);
        snapshot_cancel = cancelled_;
        cancel_all = cancel_all_;
      }
      for (size_t i = 0; i < active_.size(); ++i) {
        Job& j = active_[i];
        bool c = cancel_all || std::find(snapshot_cancel.begin(), snapshot_cancel.end(), j.id) != snapshot_cancel.end();
        if (c) {
          finish_cancelled(j);
          finished.push_back(i);
        } else if (step(j, &done)) {
          finished.push_back(i);
        }
      }
      for (auto& [cb, comp] : done) cb.on_done(comp);
      lock.lock();
      for (size_t k = finished.size(); k-- > 0;) {
        generated_tokens_ += static_cast<uint64_t>(active_[finished[k]].n);
        active_.erase(active_.begin() + static_cast<long>(finished[k]));
      }
      if (queue_.empty() && active_.empty()) {
        cancelled_.clear();
        idle_cv_.notify_all();
      }
      lock.unlock();
      std::this_thread::sleep_for(step_);
      lock.lock();
    }
  }

  const Model& model_;
  int n_slots_;
  int max_queue_;
  std::chrono::microseconds step_;
  mutable std::mutex mu_;
  std::condition_variable cv_, idle_cv_;
  std::deque<Job> queue_;
  std::vector<Job> active_;  // touched by the loop thread only, except size() under mu_
  std::vector<uint64_t> cancelled_;
  bool stopping_ = false, cancel_all_ = false, quit_ = false;
  uint64_t next_id_ = 1;
  uint64_t prompt_tokens_ = 0, generated_tokens_ = 0;
  std::thread thread_;
};

}  // namespace slm::serve::fake
