// The sweep grid and its comparison tables.
#include "mnist_gpu/sweep.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

namespace mnist_gpu {

std::string SweepPoint::label() const {
  std::string h;
  for (std::size_t i = 0; i < hidden.size(); ++i) h += (i ? "-" : "") + std::to_string(hidden[i]);
  if (h.empty()) h = "none";
  return h + " " + to_string(activation) + " " + to_string(loss) + " b" + std::to_string(batch);
}

std::vector<SweepPoint> SweepGrid::points() const {
  std::vector<SweepPoint> out;
  for (const auto& h : hidden)
    for (Activation a : activations)
      for (Loss l : losses)
        for (int b : batches) out.push_back(SweepPoint{h, a, l, b});
  return out;
}

SweepRow make_sweep_row(const SweepPoint& point, const TrainResult& r) {
  SweepRow row;
  row.point = point;
  row.epochs = r.epochs;
  row.test_acc = r.test.acc;
  row.test_loss = r.test.loss;
  row.train_s = r.train_s;
  row.stopped_early = r.stopped_early;
  row.best_val_acc = std::numeric_limits<double>::quiet_NaN();
  double samples = 0;
  for (const EpochMetrics& m : r.epochs) {
    samples += m.samples_per_s * m.epoch_s;
    if (!std::isnan(m.val_acc) && (row.best_val_epoch == 0 || m.val_acc > row.best_val_acc)) {
      row.best_val_acc = m.val_acc;
      row.best_val_epoch = m.epoch;
    }
  }
  row.samples_per_s = r.train_s > 0 ? samples / r.train_s : 0.0;
  return row;
}

namespace {

std::string hidden_text(const std::vector<int>& h) {
  std::string s;
  for (std::size_t i = 0; i < h.size(); ++i) s += (i ? "," : "") + std::to_string(h[i]);
  return s;
}

std::string pct(double v) { return std::isnan(v) ? "-" : fmt::format("{:.2f}%", 100 * v); }

}  // namespace

std::string sweep_markdown(const std::vector<SweepRow>& rows) {
  // The best run is chosen by validation accuracy, as the HTML page chooses it; by test accuracy
  // only when no run has a validation set.
  const bool by_val = std::any_of(rows.begin(), rows.end(), [](const SweepRow& r) { return r.best_val_epoch > 0; });
  auto score = [by_val](const SweepRow& r) { return by_val ? (r.best_val_epoch > 0 ? r.best_val_acc : -1.0) : r.test_acc; };
  double best = -1;
  for (const SweepRow& r : rows) best = std::max(best, score(r));
  std::string s =
      "| hidden | activation | loss | batch | test acc | test loss | best val acc (epoch) | epochs | time (s) | samples/s |\n"
      "|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const SweepRow& r : rows) {
    const bool top = best >= 0 && score(r) == best;
    std::string acc = pct(r.test_acc);
    std::string val =
        r.best_val_epoch ? fmt::format("{} ({})", pct(r.best_val_acc), r.best_val_epoch) : std::string("-");
    if (top) (by_val ? val : acc) = "**" + (by_val ? val : acc) + "**";
    s += fmt::format("| {} | {} | {} | {} | {} | {:.4f} | {} | {}{} | {:.1f} | {:.0f} |\n",
                     r.point.hidden.empty() ? "none" : hidden_text(r.point.hidden), to_string(r.point.activation),
                     to_string(r.point.loss), r.point.batch, acc,
                     r.test_loss, val, r.epochs.size(), r.stopped_early ? " (early stop)" : "", r.train_s,
                     r.samples_per_s);
  }
  if (best >= 0)
    s += by_val ? "\nBold: the best run by validation accuracy (the test set is not used to choose).\n"
                : "\nBold: the best run by test accuracy (no run has a validation set).\n";
  return s;
}

std::string sweep_csv(const std::vector<SweepRow>& rows) {
  std::string s =
      "label,hidden,activation,loss,batch,test_acc,test_loss,best_val_acc,best_val_epoch,epochs,stopped_early,"
      "train_s,samples_per_s\n";
  auto num = [](double v) { return std::isnan(v) ? std::string() : fmt::format("{}", v); };
  for (const SweepRow& r : rows)
    s += fmt::format("\"{}\",\"{}\",{},{},{},{},{},{},{},{},{},{},{}\n", r.point.label(), hidden_text(r.point.hidden),
                     to_string(r.point.activation), to_string(r.point.loss), r.point.batch, num(r.test_acc),
                     num(r.test_loss), num(r.best_val_acc), r.best_val_epoch, r.epochs.size(),
                     r.stopped_early ? "true" : "false", num(r.train_s), num(r.samples_per_s));
  return s;
}

}  // namespace mnist_gpu
