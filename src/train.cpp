// train(): epochs of seeded shuffles over a backend, with validation after each epoch.
#include "mnist_gpu/train.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>

#include "mnist_gpu/batches.hpp"
#include "mnist_gpu/error.hpp"
#include "mnist_gpu/rng.hpp"

namespace mnist_gpu {

std::vector<std::uint32_t> epoch_order(std::uint64_t seed, int epoch, int n) {
  std::vector<std::uint32_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0u);
  Rng rng(seed, RngStream::shuffle, static_cast<std::uint64_t>(epoch));
  rng.shuffle(order);
  return order;
}

EpochSums run_epoch(Backend& backend, const Dataset& data, const std::vector<std::uint32_t>& order, float lr,
                    const EpochControl& ctl) {
  const BatchPlan plan(order, backend.batch());
  const long long n_batches = plan.count();
  EpochSums sums = ctl.start;
  backend.begin_epoch(data, order, lr, ctl.first_batch, ctl.start, ctl.epoch);
  for (long long k = ctl.first_batch; k < n_batches; ++k) {
    if (ctl.stop && ctl.stop->load(std::memory_order_relaxed)) {
      sums.stopped = true;
      break;
    }
    backend.step(k);
    sums.samples += plan.rows(k);
    sums.batches = k + 1;
    if (ctl.progress) ctl.progress(k + 1, n_batches);
  }
  const EpochSums device = backend.end_epoch();
  sums.loss_sum = device.loss_sum;
  sums.correct = device.correct;
  return sums;
}

float epoch_lr(const TrainConfig& cfg, int epoch) {
  const double lr = cfg.optimizer.lr;
  switch (cfg.schedule) {
    case Schedule::constant: return static_cast<float>(lr);
    case Schedule::step:
      return static_cast<float>(lr * std::pow(static_cast<double>(cfg.lr_factor), (epoch - 1) / std::max(1, cfg.lr_step)));
    case Schedule::exp: return static_cast<float>(lr * std::pow(static_cast<double>(cfg.lr_factor), epoch - 1));
    case Schedule::cosine: break;
  }
  const double pi = 3.14159265358979323846;
  return static_cast<float>(lr * 0.5 * (1.0 + std::cos(pi * (epoch - 0.5) / cfg.epochs)));
}

ValidationState replay_validation(const TrainConfig& cfg, const std::vector<EpochMetrics>& done) {
  ValidationState st;
  for (const EpochMetrics& m : done) {
    if (std::isnan(m.val_loss)) continue;  // no validation set: nothing to decide
    const bool improved = st.best_epoch == 0 || m.val_loss < st.best_loss * (1.0 - static_cast<double>(cfg.min_delta));
    if (improved) {
      st.best_epoch = m.epoch;
      st.best_loss = m.val_loss;
      st.since_best = st.since_cut = 0;
      continue;
    }
    ++st.since_best;
    ++st.since_cut;
    if (cfg.lr_patience > 0 && st.since_cut >= cfg.lr_patience) {
      st.lr_scale *= cfg.lr_factor;
      ++st.cuts;
      st.since_cut = 0;
    }
    if (cfg.patience > 0 && st.since_best >= cfg.patience) st.stop = true;
  }
  return st;
}

float next_epoch_lr(const TrainConfig& cfg, int epoch, const std::vector<EpochMetrics>& done) {
  const ValidationState st = replay_validation(cfg, done);
  double lr = static_cast<double>(epoch_lr(cfg, epoch)) * st.lr_scale;
  if (st.cuts > 0) lr = std::max(lr, static_cast<double>(cfg.min_lr));
  return static_cast<float>(lr);
}

namespace {

EvalResult evaluate_observed(Backend& backend, const Dataset& data, TrainObserver& observer, EvalKind what, int epoch) {
  observer.on_eval(what, epoch, 0, data.count);
  return backend.evaluate(data, [&](long long done, long long total) { observer.on_eval(what, epoch, done, total); });
}

}  // namespace

TrainResult train(const TrainConfig& cfg, const TrainData& data, Backend& backend, TrainObserver& observer,
                  const TrainOptions& options) {
  using clock = std::chrono::steady_clock;
  TrainResult result;
  TrainProgress progress = options.resume;
  for (const auto& m : progress.done) result.train_s += m.epoch_s;
  const bool early_stopping = cfg.patience > 0 && data.val.count > 0;
  double session_train_s = 0;  // this call's epochs (cfg.time_limit_s), the resumed ones not counted
  for (int epoch = static_cast<int>(progress.done.size()) + 1; epoch <= cfg.epochs; ++epoch) {
    if (early_stopping && replay_validation(cfg, progress.done).stop) {  // resumed after the stop
      result.stopped_early = true;
      break;
    }
    const float lr = next_epoch_lr(cfg, epoch, progress.done);
    const std::vector<std::uint32_t> order = epoch_order(cfg.seed, epoch, data.train.count);
    EpochControl ctl;
    ctl.epoch = epoch;
    ctl.first_batch = progress.partial.batches;
    ctl.start = progress.partial;
    ctl.stop = options.stop;
    const RunningSumsFn running = [&backend](EpochSums& out) { return backend.running_sums(out); };
    ctl.progress = [&](long long done, long long total) { observer.on_batch(epoch, done, total, running); };
    const auto t0 = clock::now();
    const EpochSums sums = run_epoch(backend, data.train, order, lr, ctl);
    const double dt = progress.partial_s + std::chrono::duration<double>(clock::now() - t0).count();
    // Divergence: the loss accumulator (on the device for the GPU, read once per epoch anyway)
    // turns NaN or infinite. The last good checkpoint is the previous epoch's: none is written.
    if (!std::isfinite(sums.loss_sum))
      throw Error("training diverged in epoch " + std::to_string(epoch) + ": the loss became " +
                  (std::isnan(sums.loss_sum) ? "NaN" : "infinite") + " at learning rate " + std::to_string(lr) +
                  "; try a smaller --lr, --optimizer adam, or a smaller --batch");
    if (sums.stopped) {
      progress.partial = sums;
      progress.partial.stopped = false;
      progress.partial_s = dt;
      result.stopped = true;
      break;
    }

    EpochMetrics m;
    m.epoch = epoch;
    m.train_loss = sums.samples ? sums.loss_sum / static_cast<double>(sums.samples) : 0.0;
    m.train_acc = sums.samples ? static_cast<double>(sums.correct) / static_cast<double>(sums.samples) : 0.0;
    if (data.val.count > 0) {
      const EvalResult v = evaluate_observed(backend, data.val, observer, EvalKind::validation, epoch);
      m.val_loss = v.loss;
      m.val_acc = v.acc;
    } else {
      m.val_loss = m.val_acc = std::numeric_limits<double>::quiet_NaN();
    }
    if (cfg.target > 0)  // time to accuracy (untimed)
      m.test_acc = evaluate_observed(backend, data.test, observer, EvalKind::target, epoch).acc;
    m.lr = lr;
    m.epoch_s = dt;
    m.samples_per_s = dt > 0 ? static_cast<double>(sums.samples) / dt : 0.0;
    result.train_s += dt;
    session_train_s += dt - progress.partial_s;
    progress.done.push_back(m);
    progress.partial = EpochSums{};
    progress.partial_s = 0;
    const ValidationState st = replay_validation(cfg, progress.done);
    if (early_stopping && st.best_epoch == epoch) progress.best_params = backend.get_params();
    observer.on_epoch(m);
    observer.on_progress(progress);
    if (early_stopping && st.stop) {
      result.stopped_early = epoch < cfg.epochs;
      break;
    }
    // A signal during the epoch's last step or its evaluations: stop here, the epoch whole and
    // checkpointed, rather than in the next epoch (or, after the last, instead of the test).
    if (options.stop && options.stop->load(std::memory_order_relaxed)) {
      result.stopped = true;
      break;
    }
    if (cfg.time_limit_s > 0 && session_train_s >= cfg.time_limit_s && epoch < cfg.epochs) {
      result.time_limited = true;
      break;
    }
  }
  result.epochs = progress.done;
  double elapsed = 0;
  for (const EpochMetrics& m : progress.done) {
    elapsed += m.epoch_s;
    if (cfg.target > 0 && m.test_acc >= cfg.target) {
      result.train_s_to_target = elapsed;
      break;
    }
  }
  result.best_epoch = replay_validation(cfg, progress.done).best_epoch;
  result.progress = progress;
  if (result.stopped) return result;
  if (early_stopping && !progress.best_params.empty()) {
    backend.set_params(progress.best_params);
    result.restored_best = true;
  }
  result.test = evaluate_observed(backend, data.test, observer, EvalKind::test, static_cast<int>(progress.done.size()));
  return result;
}

}  // namespace mnist_gpu
