// The `slm train` loop: setup and resume checks, then per step: accumulate micro-batch
// gradients, clip, AdamW at the scheduled rate, log; validation, plot and checkpoint at their
// intervals. Everything that decides the losses lives in the checkpoint, so resume is exact.
#include "train/trainer.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <thread>

#include "core/mmap.h"
#include "data/shards.h"
#include "tokenizer/tokenizer.h"
#include "train/checkpoint.h"
#include "train/data_loader.h"
#include "train/plot.h"
#include "train/train_log.h"
#include "train/train_model.h"

namespace slm::train {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// An exclusive lock on OUT/.lock for the whole run: two trainers writing one directory would
// interleave checkpoints and logs.
class DirLock {
 public:
  ~DirLock() {
    if (fd_ >= 0) ::close(fd_);  // closing releases the lock
  }
  Status acquire(const std::string& dir) {
    const std::string path = dir + "/.lock";
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) return error("%s: cannot open: %s", path.c_str(), std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      return error("%s: another `slm train` is writing this directory", dir.c_str());
    }
    return Status();
  }

 private:
  int fd_ = -1;
};

// The tokenizer the dataset was made with, loaded once to check it and to learn BOS/EOS.
Status load_tokenizer(const TokenDataset& ds, CheckpointExtras* ex) {
  const std::string tok_path = ds.tokenizer_path();
  SLM_ASSIGN_OR_RETURN(ex->tokenizer_json, read_file(tok_path, 256ull << 20));
  const std::string cfg_path = (fs::path(tok_path).parent_path() / "tokenizer_config.json").string();
  std::error_code ec;
  if (fs::exists(cfg_path, ec)) {
    SLM_ASSIGN_OR_RETURN(ex->tokenizer_config, read_file(cfg_path, 64ull << 20));
  }
  auto tok = Tokenizer::from_hf_json(ex->tokenizer_json, ex->tokenizer_config);
  if (!tok.ok()) return tok.status().with_context(tok_path);
  if ((*tok)->vocab_size() > ds.vocab_size()) {
    return error("%s: the tokenizer has %lld tokens but the dataset says vocab_size %lld",
                 tok_path.c_str(), (long long)(*tok)->vocab_size(), (long long)ds.vocab_size());
  }
  ex->bos_id = (*tok)->bos_id();
  ex->eos_id = ds.eos_id() >= 0 ? ds.eos_id() : (*tok)->eos_id();
  return Status();
}

// Resume checks: same model shape, same trajectory settings, same dataset, same thread count.
Status check_resume(const std::string& ckpt, const TrainerState& st, const TrainConfig& cfg,
                    const TokenDataset& ds, const DataLoader& dl, int n_threads) {
  SLM_TRY(check_checkpoint_shape(ckpt, cfg.model));
  if (st.config_hash != train_config_hash(cfg)) {
    std::string diff = train_config_difference(st.config_json, cfg);
    return error("%s: the config changed since this checkpoint (%s); a resumed run must use the "
                 "same settings to continue exactly",
                 ckpt.c_str(), diff.empty() ? "settings differ" : diff.c_str());
  }
  if (st.dataset_train_tokens != dl.train_tokens() || st.dataset_vocab != ds.vocab_size()) {
    return error("%s: the checkpoint was trained on a dataset with %lld train tokens and vocab "
                 "%lld; %s has %lld and %lld",
                 ckpt.c_str(), (long long)st.dataset_train_tokens, (long long)st.dataset_vocab,
                 ds.dir().c_str(), (long long)dl.train_tokens(), (long long)ds.vocab_size());
  }
  if (st.n_threads != n_threads) {
    return error("%s: the run used %d threads and this one %d; results are bit-exact only with "
                 "the same count: pass --threads %d",
                 ckpt.c_str(), st.n_threads, n_threads, st.n_threads);
  }
  return Status();
}

}  // namespace

Expected<TrainResult> run_training(const TrainRunOptions& o) {
  TrainConfig cfg = o.config;
  auto emit = [&o](TrainEvent e) {
    if (o.on_event) o.on_event(e);
  };
  auto say = [&emit](const std::string& text) {
    TrainEvent e;
    e.kind = TrainEventKind::message;
    e.text = text;
    emit(e);
  };
  if (cfg.out_dir.empty()) return error("no output directory: pass --out or set \"out\" in the config");

  // Dataset and vocabulary.
  std::error_code ec;
  if (!fs::is_directory(cfg.data_dir, ec)) {
    return error("%s: not a dataset directory (make one with `slm data prepare`)", cfg.data_dir.c_str());
  }
  SLM_ASSIGN_OR_RETURN(TokenDataset ds, TokenDataset::open(cfg.data_dir));
  if (cfg.vocab_from_data) {
    cfg.model.vocab_size = ds.vocab_size();
  } else if (cfg.model.vocab_size < ds.vocab_size()) {
    return error("%s: model.vocab_size %lld is smaller than the dataset's vocabulary (%lld)",
                 cfg.source.c_str(), (long long)cfg.model.vocab_size, (long long)ds.vocab_size());
  }
  SLM_TRY(validate_train_config(cfg));
  SLM_TRY(validate(cfg.model).with_context(cfg.source));
  CheckpointExtras extras;
  SLM_TRY(load_tokenizer(ds, &extras));
  const TrainSettings& t = cfg.train;
  const int n_threads = t.threads > 0 ? static_cast<int>(t.threads)
                                      : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  // Validation needs a val split of at least one window; without one it is an error unless
  // the config turned interval evaluation off. The train split is checked first.
  bool have_val = false;
  if (auto v = ds.split("val"); v.ok() && (*v)->n_tokens() >= t.seq_len + 1) have_val = true;
  SLM_ASSIGN_OR_RETURN(DataLoader dl, DataLoader::create(&ds, t.batch_size, t.seq_len,
                                                         cfg.model.vocab_size, t.seed,
                                                         have_val ? t.eval_batches : 0));
  if (!have_val && t.eval_interval > 0) {
    return error("%s: no val split of at least seq_len + 1 = %lld tokens for validation; prepare "
                 "the dataset with a validation share, or set train.eval_interval to 0",
                 ds.dir().c_str(), (long long)(t.seq_len + 1));
  }

  // Output directory, lock, and the checkpoint to resume from.
  if (!fs::create_directories(cfg.out_dir, ec) && ec) {
    return error("%s: cannot create: %s", cfg.out_dir.c_str(), ec.message().c_str());
  }
  DirLock lock;
  SLM_TRY(lock.acquire(cfg.out_dir));
  SLM_ASSIGN_OR_RETURN(auto existing, list_checkpoints(cfg.out_dir));
  TrainerState st;
  std::string resume_dir;
  if (o.resume) {
    if (existing.empty()) {
      return error("%s: --resume: no complete checkpoint here to resume from", cfg.out_dir.c_str());
    }
    resume_dir = existing.back().second;
    SLM_ASSIGN_OR_RETURN(st, read_trainer_state(resume_dir));
    SLM_TRY(check_resume(resume_dir, st, cfg, ds, dl, n_threads));
  } else if (!existing.empty()) {
    return error("%s already holds checkpoints (%s): pass --resume to continue that run, or "
                 "choose another --out",
                 cfg.out_dir.c_str(), existing.back().second.c_str());
  }
  SLM_ASSIGN_OR_RETURN(auto model, TrainModel::create(cfg.model, n_threads));
  model->init_weights(t.seed);
  AdamWConfig ac;
  ac.beta1 = static_cast<float>(t.beta1);
  ac.beta2 = static_cast<float>(t.beta2);
  ac.eps = static_cast<float>(t.adam_eps);
  ac.weight_decay = static_cast<float>(t.weight_decay);
  AdamW opt(model->params(), ac);
  if (o.resume) {
    SLM_TRY(load_checkpoint_weights(resume_dir, *model));
    SLM_TRY(load_optimizer_state(resume_dir, opt));
    dl.restore(st.data);
  } else {
    st.config_json = train_config_json(cfg);
    st.config_hash = train_config_hash(cfg);
    st.n_threads = n_threads;
    st.dataset_train_tokens = dl.train_tokens();
    st.dataset_vocab = ds.vocab_size();
  }
  SLM_TRY(write_file_atomic(cfg.out_dir + "/train_config.json", train_config_json(cfg) + "\n"));

  TrainResult res;
  res.n_params = model->n_params();
  res.first_step = st.step + 1;
  res.last_step = st.step;
  res.final_loss = st.losses.empty() ? NAN : st.losses.back();
  res.final_val_loss = st.val_losses.empty() ? NAN : st.val_losses.back().second;
  if (!existing.empty()) res.last_checkpoint = existing.back().second;
  TrainLog log;
  SLM_TRY(log.open(cfg.out_dir + "/train_log.jsonl", st.step));
  {
    TrainEvent e;
    e.kind = TrainEventKind::started;
    e.step = st.step;
    e.max_steps = t.max_steps;
    e.text = o.resume ? resume_dir : "";
    emit(e);
  }
  if (st.step >= t.max_steps) {
    say("the run already reached max_steps " + std::to_string(t.max_steps) + "; nothing to do");
    return res;
  }

  const std::string plot_path = cfg.out_dir + "/loss.png";
  auto update_plot = [&]() -> Status {
    LossSeries ls;
    ls.max_steps = t.max_steps;
    ls.train.reserve(st.losses.size());
    for (size_t i = 0; i < st.losses.size(); ++i) ls.train.emplace_back(static_cast<int64_t>(i) + 1, st.losses[i]);
    ls.val = st.val_losses;
    return write_loss_plot(plot_path, ls);
  };
  auto evaluate = [&]() -> Expected<double> {
    Batch b;
    double sum = 0;
    for (int64_t i = 0; i < dl.n_eval_batches(); ++i) {
      SLM_TRY(dl.eval_batch(i, &b));
      SLM_ASSIGN_OR_RETURN(double l, model->eval_loss(b.tokens.data(), b.targets.data(), b.B, b.T));
      sum += l;
    }
    return sum / static_cast<double>(dl.n_eval_batches());
  };
  auto save = [&]() -> Status {
    SLM_ASSIGN_OR_RETURN(std::string dir, save_checkpoint(cfg.out_dir, *model, opt, st, extras, t.keep_last));
    res.last_checkpoint = dir;
    TrainEvent e;
    e.kind = TrainEventKind::checkpoint;
    e.step = st.step;
    e.max_steps = t.max_steps;
    e.text = dir;
    emit(e);
    return Status();
  };

  const auto t_start = Clock::now();
  const double elapsed_before = st.elapsed_s;
  const int64_t start_step = st.step;
  const int64_t tokens_per_step = t.batch_size * t.seq_len * t.grad_accum;
  Batch batch;
  while (st.step < t.max_steps) {
    const auto t0 = Clock::now();
    const int64_t step = st.step + 1;
    const float lr = lr_at(step - 1, t.warmup_steps, t.max_steps, static_cast<float>(t.lr),
                           static_cast<float>(t.min_lr));
    model->zero_grads();
    double loss = 0;
    for (int64_t k = 0; k < t.grad_accum; ++k) {
      SLM_TRY(dl.next_batch(&batch));
      SLM_ASSIGN_OR_RETURN(double l, model->forward_backward(batch.tokens.data(), batch.targets.data(),
                                                             batch.B, batch.T,
                                                             1.0f / static_cast<float>(t.grad_accum)));
      loss += l;
    }
    loss /= static_cast<double>(t.grad_accum);
    if (!std::isfinite(loss)) {
      return error("step %lld: the loss is %g; training diverged (lower train.lr or raise "
                   "train.warmup_steps); the last checkpoint is %s",
                   (long long)step, loss, res.last_checkpoint.empty() ? "none" : res.last_checkpoint.c_str());
    }
    const double gnorm = t.grad_clip > 0 ? clip_grad_norm(model->params(), t.grad_clip, model->pool())
                                         : grad_norm(model->params(), model->pool());
    opt.step(model->params(), lr, model->pool());
    st.step = step;
    st.losses.push_back(loss);
    st.tokens_seen += tokens_per_step;
    st.data = dl.state();

    const auto now = Clock::now();
    const double run_s = std::chrono::duration<double>(now - t_start).count();
    const double step_s = std::chrono::duration<double>(now - t0).count();
    st.elapsed_s = elapsed_before + run_s;
    TrainEvent e;
    e.kind = TrainEventKind::step;
    e.step = step;
    e.max_steps = t.max_steps;
    e.loss = loss;
    e.lr = lr;
    e.grad_norm = gnorm;
    const double done = static_cast<double>(step - start_step);
    e.tokens_per_s = run_s > 0 ? done * static_cast<double>(tokens_per_step) / run_s : 0;
    e.eta_s = done > 0 ? run_s / done * static_cast<double>(t.max_steps - step) : 0;
    StepRecord rec{step, loss, lr, gnorm,
                   step_s > 0 ? static_cast<double>(tokens_per_step) / step_s : 0, st.elapsed_s};
    SLM_TRY(log.write_step(rec));
    emit(e);
    res.last_step = step;
    res.final_loss = loss;

    const bool last = step == t.max_steps;
    const bool stopping = o.stop && o.stop->load();
    const bool do_eval = have_val && (last || (t.eval_interval > 0 && step % t.eval_interval == 0));
    const bool do_save = last || stopping || (t.save_interval > 0 && step % t.save_interval == 0);
    if (do_eval) {
      SLM_ASSIGN_OR_RETURN(double vl, evaluate());
      st.val_losses.emplace_back(step, vl);
      res.final_val_loss = vl;
      SLM_TRY(log.write_val(step, vl));
      TrainEvent ev;
      ev.kind = TrainEventKind::eval;
      ev.step = step;
      ev.max_steps = t.max_steps;
      ev.val_loss = vl;
      emit(ev);
    }
    if (do_save) SLM_TRY(save());
    if (do_eval || do_save) SLM_TRY(update_plot());
    if (stopping && !last) {
      res.interrupted = true;
      break;
    }
  }
  SLM_TRY(log.close());
  return res;
}

}  // namespace slm::train
