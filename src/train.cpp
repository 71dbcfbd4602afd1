// train(): epochs of seeded shuffles over a backend, with validation after each epoch.
#include "mnist_gpu/train.hpp"

#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>

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

float epoch_lr(const TrainConfig& cfg, int epoch) {
  const double lr = cfg.optimizer.lr;
  if (cfg.schedule == Schedule::constant) return static_cast<float>(lr);
  const double pi = 3.14159265358979323846;
  return static_cast<float>(lr * 0.5 * (1.0 + std::cos(pi * (epoch - 0.5) / cfg.epochs)));
}

TrainResult train(const TrainConfig& cfg, const TrainData& data, Backend& backend, TrainObserver& observer,
                  const TrainOptions& options) {
  using clock = std::chrono::steady_clock;
  TrainResult result;
  TrainProgress progress = options.resume;
  for (const auto& m : progress.done) result.train_s += m.epoch_s;
  for (int epoch = static_cast<int>(progress.done.size()) + 1; epoch <= cfg.epochs; ++epoch) {
    const float lr = epoch_lr(cfg, epoch);
    const std::vector<std::uint32_t> order = epoch_order(cfg.seed, epoch, data.train.count);
    EpochControl ctl;
    ctl.first_batch = progress.partial.batches;
    ctl.start = progress.partial;
    ctl.stop = options.stop;
    ctl.progress = [&](long long done, long long total) { observer.on_batch(epoch, done, total); };
    const auto t0 = clock::now();
    const EpochSums sums = backend.train_epoch(data.train, order, lr, ctl);
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
      const EvalResult v = backend.evaluate(data.val);
      m.val_loss = v.loss;
      m.val_acc = v.acc;
    } else {
      m.val_loss = m.val_acc = std::numeric_limits<double>::quiet_NaN();
    }
    m.lr = lr;
    m.epoch_s = dt;
    m.samples_per_s = dt > 0 ? static_cast<double>(sums.samples) / dt : 0.0;
    result.train_s += dt;
    progress.done.push_back(m);
    progress.partial = EpochSums{};
    progress.partial_s = 0;
    observer.on_epoch(m);
    observer.on_progress(progress);
  }
  result.epochs = progress.done;
  result.progress = progress;
  if (!result.stopped) result.test = backend.evaluate(data.test);
  return result;
}

}  // namespace mnist_gpu
