// `slm train CONFIG`: trains a Llama-style model from a JSON config on a prepared dataset, with
// a live progress line, validation, JSONL log, loss plot, checkpoints and an exact --resume.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <memory>

#include "commands.h"
#include "train/trainer.h"

namespace slm::cli {

namespace {

std::atomic<bool> g_stop{false};

// First Ctrl-C: finish the step, save, exit. The handler then resets itself, so a second
// Ctrl-C ends the process at once (the last complete checkpoint stays valid).
void on_sigint(int) {
  g_stop.store(true);
  signal(SIGINT, SIG_DFL);
}

struct TrainCliOptions {
  std::string config, out, data;
  int64_t max_steps = 0;
  int threads = -1;
  bool resume = false, quiet = false;
  double print_every_s = 10;
};

std::string fmt_duration(double s) {
  if (!std::isfinite(s) || s < 0) s = 0;
  const auto t = static_cast<long long>(s + 0.5);
  char buf[48];
  if (t >= 3600) {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", t / 3600, (t / 60) % 60);
  } else if (t >= 60) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", t / 60, t % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%llds", t);
  }
  return buf;
}

std::string fmt_rate(double r) {
  char buf[32];
  if (r >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.2fM", r / 1e6);
  } else if (r >= 1e3) {
    std::snprintf(buf, sizeof buf, "%.1fk", r / 1e3);
  } else {
    std::snprintf(buf, sizeof buf, "%.0f", r);
  }
  return buf;
}

int run_train(TrainCliOptions& o) {
  auto cfg = train::load_train_config(o.config);
  if (!cfg.ok()) return fail(cfg.status());
  train::TrainConfig c = std::move(cfg).value();
  if (!o.out.empty()) c.out_dir = o.out;
  if (!o.data.empty()) c.data_dir = o.data;
  if (o.threads >= 0) c.train.threads = o.threads;
  if (o.max_steps > 0) {
    c.train.max_steps = o.max_steps;
    if (c.train.warmup_steps > o.max_steps) {
      std::fprintf(stderr, "note: warmup_steps %lld capped at --max-steps %lld\n",
                   (long long)c.train.warmup_steps, (long long)o.max_steps);
      c.train.warmup_steps = o.max_steps;
    }
  }
  if (Status s = train::validate_train_config(c); !s.ok()) return fail(s);

  const bool tty = ::isatty(STDERR_FILENO) != 0;
  bool line_open = false;  // a \r progress line is on screen
  auto end_line = [&] {
    if (line_open) std::fputs("\r\x1b[K", stderr);
    line_open = false;
  };
  double last_print = -1e9;
  const auto t0 = std::chrono::steady_clock::now();

  train::TrainRunOptions ro;
  ro.config = c;
  ro.resume = o.resume;
  ro.stop = &g_stop;
  ro.on_event = [&](const train::TrainEvent& e) {
    using K = train::TrainEventKind;
    if (o.quiet) return;
    const double now = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    switch (e.kind) {
      case K::started:
        if (!e.text.empty()) {
          std::fprintf(stderr, "resuming from %s (step %lld of %lld)\n", e.text.c_str(),
                       (long long)e.step, (long long)e.max_steps);
        }
        break;
      case K::step: {
        char line[256];
        std::snprintf(line, sizeof line,
                      "step %lld/%lld (%.1f%%) | loss %.4f | lr %.2e | gnorm %.3f | %s tok/s | ETA %s",
                      (long long)e.step, (long long)e.max_steps,
                      100.0 * static_cast<double>(e.step) / static_cast<double>(e.max_steps), e.loss,
                      e.lr, e.grad_norm, fmt_rate(e.tokens_per_s).c_str(), fmt_duration(e.eta_s).c_str());
        if (tty) {
          std::fprintf(stderr, "\r%s\x1b[K", line);
          line_open = true;
        } else if (now - last_print >= o.print_every_s || e.step == e.max_steps) {
          std::fprintf(stderr, "%s\n", line);
          last_print = now;
        }
        break;
      }
      case K::eval:
        end_line();
        std::fprintf(stderr, "step %lld: val loss %.4f\n", (long long)e.step, e.val_loss);
        break;
      case K::checkpoint:
        end_line();
        std::fprintf(stderr, "step %lld: saved %s\n", (long long)e.step, e.text.c_str());
        break;
      case K::message:
        end_line();
        std::fprintf(stderr, "%s\n", e.text.c_str());
        break;
    }
    std::fflush(stderr);
  };

  // SA_RESTART: a Ctrl-C during a log or checkpoint write must not fail it with EINTR.
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  auto r = train::run_training(ro);
  signal(SIGINT, SIG_DFL);
  end_line();
  if (!r.ok()) return fail(r.status());
  const auto& res = *r;
  std::printf("%s at step %lld/%lld: %lld parameters, train loss %.4f", res.interrupted ? "stopped" : "done",
              (long long)res.last_step, (long long)c.train.max_steps, (long long)res.n_params,
              res.final_loss);
  if (std::isfinite(res.final_val_loss)) std::printf(", val loss %.4f", res.final_val_loss);
  std::printf("\n");
  if (!res.last_checkpoint.empty()) {
    std::printf("checkpoint: %s  (try: slm run %s -p \"...\")\n", res.last_checkpoint.c_str(),
                res.last_checkpoint.c_str());
  }
  std::printf("log: %s/train_log.jsonl  plot: %s/loss.png\n", c.out_dir.c_str(), c.out_dir.c_str());
  return 0;
}

}  // namespace

void add_train(CLI::App& app) {
  auto o = std::make_shared<TrainCliOptions>();
  CLI::App* sub = app.add_subcommand(
      "train", "Train a Llama-style model from a JSON config on a dataset from `slm data prepare`");
  sub->add_option("CONFIG", o->config, "training config (JSON; see docs/TRAINING.md)")->required();
  sub->add_option("-o,--out", o->out, "output directory for checkpoints, log and plot (overrides \"out\")");
  sub->add_option("--data", o->data, "dataset directory (overrides \"data\")");
  sub->add_option("--max-steps", o->max_steps, "optimizer steps (overrides train.max_steps)")
      ->check(CLI::PositiveNumber);
  sub->add_option("-t,--threads", o->threads,
                  "threads (overrides train.threads; 0: all cores; a resume needs the same count)")
      ->check(CLI::Range(0, 1024));
  sub->add_flag("--resume", o->resume, "continue from the newest complete checkpoint in the output directory");
  sub->add_option("--print-every", o->print_every_s,
                  "seconds between progress lines when stderr is not a terminal")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  sub->add_flag("-q,--quiet", o->quiet, "no progress output");
  sub->footer(
      "Writes OUT/checkpoint-<step>/ (Hugging Face layout: `slm run` loads it), OUT/train_log.jsonl "
      "and OUT/loss.png.\nCtrl-C saves a checkpoint and exits; --resume continues it exactly.");
  sub->callback([o] { exit_code() = run_train(*o); });
}
SLM_REGISTER_COMMAND(add_train, 100);

}  // namespace slm::cli
