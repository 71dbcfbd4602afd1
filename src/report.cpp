// The training report: report.html (summary, settings, curves, epoch table, confusion heat map,
// errors per digit, gallery of mistakes) with loss.svg, accuracy.svg and misclassified.png beside
// it, every file written atomically; and the page frame the sweep report shares.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <system_error>
#include <vector>

#include "mnist_gpu/error.hpp"
#include "mnist_gpu/file_io.hpp"
#include "mnist_gpu/image_io.hpp"
#include "mnist_gpu/model.hpp"
#include "mnist_gpu/report.hpp"
#include "mnist_gpu/settings.hpp"
#include "report_detail.hpp"

namespace mnist_gpu {
namespace {

using detail::format_value;

constexpr const char* kTrainColour = "#1f77b4";  // blue
constexpr const char* kValColour = "#ff7f0e";    // orange

// 12345 -> "12,345".
std::string with_commas(unsigned long long v) {
  std::string s = std::to_string(v);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<std::size_t>(i), ",");
  return s;
}

std::string model_shape(const ModelSpec& m) {
  std::string s = std::to_string(m.inputs);
  for (int w : m.hidden) s += "-" + std::to_string(w);
  return s + "-" + std::to_string(m.outputs);
}

// A colour between `a` and `b` (both #rrggbb) at t in [0, 1].
std::string mix(const char* a, const char* b, double t) {
  t = std::clamp(t, 0.0, 1.0);
  auto channel = [&](const char* c, int k) { return std::stoi(std::string(c + 1 + 2 * k, 2), nullptr, 16); };
  std::string out = "#";
  for (int k = 0; k < 3; ++k)
    out += fmt::format("{:02x}", static_cast<int>(std::lround(channel(a, k) + t * (channel(b, k) - channel(a, k)))));
  return out;
}

// A probability as a percentage: whole percents, two decimals above 99.5% so that a confident
// mistake never reads as 100%.
std::string percent_text(float p) {
  const double v = 100.0 * static_cast<double>(p);
  if (v < 99.5) return fmt::format("{:.0f}%", v);
  return fmt::format("{:.2f}%", std::min(99.99, std::floor(v * 100) / 100));
}

bool has_validation(const std::vector<EpochMetrics>& epochs) {
  return std::any_of(epochs.begin(), epochs.end(), [](const EpochMetrics& m) { return !std::isnan(m.val_acc); });
}

// The epoch of the highest validation accuracy (the first such), or 0 without validation.
int best_val_epoch(const std::vector<EpochMetrics>& epochs) {
  int best = 0;
  double acc = -1;
  for (const auto& m : epochs)
    if (!std::isnan(m.val_acc) && m.val_acc > acc) acc = m.val_acc, best = m.epoch;
  return best;
}

struct Curves {
  std::string loss, accuracy;
};

Curves training_curves(const ReportInput& in, bool standalone) {
  CurveSeries tl{"train", {}, {}, kTrainColour}, vl{"validation", {}, {}, kValColour};
  CurveSeries ta{"train", {}, {}, kTrainColour}, va{"validation", {}, {}, kValColour};
  for (const auto& m : in.epochs) {
    for (auto* s : {&tl, &vl, &ta, &va}) s->x.push_back(m.epoch);
    tl.y.push_back(m.train_loss);
    vl.y.push_back(m.val_loss);
    ta.y.push_back(m.train_acc);
    va.y.push_back(m.val_acc);
  }
  std::vector<CurveSeries> loss{tl}, acc{ta};
  if (has_validation(in.epochs)) loss.push_back(vl), acc.push_back(va);
  std::vector<CurveMark> marks;
  if (in.best_epoch > 0) marks.push_back({static_cast<double>(in.best_epoch), "best epoch " + std::to_string(in.best_epoch)});
  return {detail::curves_svg(loss, "Loss", "loss (mean per sample)", false, marks, standalone),
          detail::curves_svg(acc, "Accuracy", "accuracy", true, marks, standalone)};
}

std::string card(const std::string& id, const std::string& key, const std::string& value, const std::string& note) {
  return fmt::format("<div class=\"card\"><div class=\"k\">{}</div><div class=\"v\" id=\"{}\">{}</div>"
                     "<div class=\"n\">{}</div></div>\n",
                     html_escape(key), id, html_escape(value), html_escape(note));
}

std::string summary_section(const ReportInput& in) {
  const unsigned long long wrong = [&] {
    unsigned long long w = 0;
    for (auto e : in.test.per_class_errors()) w += e;
    return w;
  }();
  std::string o = "<section id=\"summary\"><div class=\"cards\">\n";
  o += card("test-accuracy", "Test accuracy", format_value(in.test.acc, true),
            with_commas(static_cast<unsigned long long>(in.test.count)) + " test images");
  o += card("test-loss", "Test loss", format_value(in.test.loss, false), "mean per sample");
  o += card("test-errors", "Misclassified", with_commas(wrong),
            "of " + with_commas(static_cast<unsigned long long>(in.test.count)));
  const int best = best_val_epoch(in.epochs);
  if (best > 0) {
    const auto it = std::find_if(in.epochs.begin(), in.epochs.end(), [&](const EpochMetrics& m) { return m.epoch == best; });
    o += card("best-val", "Best validation accuracy", format_value(it->val_acc, true), "epoch " + std::to_string(best));
  }
  double samples_s = 0;
  for (const auto& m : in.epochs) samples_s += m.samples_per_s;
  o += card("train-time", "Training time", fmt::format("{:.1f} s", in.train_s),
            in.epochs.empty() ? std::string()
                              : fmt::format("{:.0f} samples/s", samples_s / static_cast<double>(in.epochs.size())));
  return o + "</div></section>\n";
}

std::string settings_section(const ReportInput& in) {
  const TrainConfig& c = in.cfg;
  std::string opt = to_string(c.optimizer.kind);
  opt += fmt::format(", lr {:g}", c.optimizer.lr);
  if (c.optimizer.kind == OptimizerKind::momentum)
    opt += fmt::format(", momentum {:g}{}", c.optimizer.momentum, c.optimizer.nesterov ? " (Nesterov)" : "");
  if (c.optimizer.kind == OptimizerKind::adam)
    opt += fmt::format(", betas {:g}/{:g}", c.optimizer.beta1, c.optimizer.beta2);
  if (c.optimizer.kind == OptimizerKind::rmsprop)
    opt += fmt::format(", rho {:g}, eps {:g}", c.optimizer.rho, c.optimizer.rms_eps);
  const std::pair<const char*, std::string> rows[] = {
      {"Data", in.dataset_name.empty() ? std::string("-") : in.dataset_name},
      {"Model", model_shape(c.model) + " (" + with_commas(ParamLayout(c.model).size) + " parameters)"},
      {"Activation", to_string(c.model.activation)},
      {"Loss", c.model.loss == Loss::xent ? "softmax cross-entropy" : "l2 (squared error to one-hot)"},
      {"Optimizer", opt},
      {"L2 regularisation", fmt::format("{:g}", c.optimizer.l2)},
      {"Dropout", fmt::format("{:g}", c.optimizer.dropout) +
                      (c.optimizer.input_dropout > 0 ? fmt::format(" (inputs {:g})", c.optimizer.input_dropout) : "")},
      {"Max-norm", c.optimizer.max_norm > 0 ? fmt::format("{:g}", c.optimizer.max_norm) : std::string("off")},
      {"Initial weights", c.optimizer.init == WeightInit::uniform
                              ? fmt::format("uniform in +-{:g}", c.optimizer.init_uniform)
                          : c.optimizer.init == WeightInit::glorot ? std::string("Glorot-uniform")
                                                                   : std::string("default")},
      {"Deformed training images",
       c.augment.on() ? fmt::format("{} (rotate {:g} deg, scale {:g}%, shear {:g} deg, sigma {:g}, alpha {:g})",
                                    to_string(c.augment.kind), c.augment.rotate, c.augment.scale, c.augment.shear,
                                    c.augment.sigma, c.augment.alpha)
                      : std::string("no")},
      {"Schedule", std::string(to_string(c.schedule)) +
                       (c.schedule == Schedule::step  ? fmt::format(" (x{:g} every {} epochs)", c.lr_factor, c.lr_step)
                        : c.schedule == Schedule::exp ? fmt::format(" (x{:g} each epoch)", c.lr_factor)
                                                      : "")},
      {"Plateau cuts", c.lr_patience > 0 ? fmt::format("x{:g} after {} epochs without improvement, min lr {:g}",
                                                       c.lr_factor, c.lr_patience, c.min_lr)
                                         : std::string("off")},
      {"Early stopping", c.patience > 0 ? fmt::format("patience {} epochs (relative min-delta {:g}), best weights tested",
                                                      c.patience, c.min_delta)
                                        : std::string("off")},
      {"Training images", c.limit > 0 ? "first " + with_commas(static_cast<unsigned long long>(c.limit)) + " of the split"
                                      : std::string("all of the split")},
      {"Batch", std::to_string(c.batch)},
      {"Precision", std::string(to_string(c.model.precision)) +
                        (c.model.precision == Precision::fp32 ? " (strict FP32 products)"
                                                              : " (products on tensor cores, FP32 accumulation)")},
      {"Epochs", std::to_string(in.epochs.size()) + " of " + std::to_string(c.epochs) +
                     (in.continued.empty() ? std::string() : " (" + in.continued + ")")},
      {"Validation images", with_commas(static_cast<unsigned long long>(c.val))},
      {"Seed", std::to_string(c.seed)},
      {"Flags", settings_as_flags(c)},
      {"Device", in.device_name.empty() ? std::string("-") : in.device_name}};
  std::string o = "<section id=\"settings\"><h2>Settings</h2><dl class=\"settings\">\n";
  for (const auto& [k, v] : rows) o += fmt::format("<dt>{}</dt><dd>{}</dd>\n", k, html_escape(v));
  return o + "</dl></section>\n";
}

std::string curves_section(const ReportInput& in) {
  const Curves c = training_curves(in, false);
  return "<section id=\"curves\"><h2>Learning curves</h2><div class=\"charts\">\n"
         "<figure id=\"curves-loss\">\n" + c.loss + "</figure>\n"
         "<figure id=\"curves-accuracy\">\n" + c.accuracy + "</figure>\n</div>\n"
         "<p class=\"note\">Train: over each epoch's batches as they were trained. " +
         std::string(has_validation(in.epochs) ? "Validation: after each epoch. "
                                               : "No validation set (--val 0): training curves only. ") +
         "Also saved as loss.svg and accuracy.svg.</p></section>\n";
}

std::string epochs_section(const ReportInput& in) {
  std::string o = "<section id=\"epochs-section\"><h2>Per epoch</h2><div class=\"scroll\"><table id=\"epochs\">\n"
                  "<thead><tr><th>epoch</th><th>train loss</th><th>train acc</th><th>val loss</th><th>val acc</th>"
                  "<th>lr</th><th>time</th><th>samples/s</th></tr></thead><tbody>\n";
  for (const auto& m : in.epochs)
    o += fmt::format("<tr id=\"epoch-{}\"{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3g}</td>"
                     "<td>{:.2f} s</td><td>{:.0f}</td></tr>\n",
                     m.epoch, m.epoch == in.best_epoch ? " class=\"best\"" : "", m.epoch, format_value(m.train_loss, false),
                     format_value(m.train_acc, true), format_value(m.val_loss, false), format_value(m.val_acc, true),
                     m.lr, m.epoch_s, m.samples_per_s);
  o += "</tbody></table></div>";
  if (in.best_epoch > 0) o += fmt::format("<p class=\"note\">Highlighted: the best epoch ({}).</p>", in.best_epoch);
  return o + "</section>\n";
}

std::string confusion_table(const EvalResult& r) {
  auto at = [&](int t, int p) { return r.confusion[static_cast<std::size_t>(t * 10 + p)]; };
  double max_off = 0;
  for (int t = 0; t < 10; ++t) {
    unsigned long long row = 0;
    for (int p = 0; p < 10; ++p) row += at(t, p);
    for (int p = 0; p < 10; ++p)
      if (p != t && row > 0) max_off = std::max(max_off, static_cast<double>(at(t, p)) / static_cast<double>(row));
  }
  std::string o = "<table id=\"confusion\" class=\"heat\"><thead><tr><th class=\"corner\">true \\ predicted</th>";
  for (int p = 0; p < 10; ++p) o += fmt::format("<th>{}</th>", p);
  o += "<th class=\"total\">total</th></tr></thead><tbody>\n";
  for (int t = 0; t < 10; ++t) {
    unsigned long long row = 0;
    for (int p = 0; p < 10; ++p) row += at(t, p);
    o += fmt::format("<tr><th>{}</th>", t);
    for (int p = 0; p < 10; ++p) {
      const unsigned long long n = at(t, p);
      const double share = row ? static_cast<double>(n) / static_cast<double>(row) : 0.0;
      std::string bg = "#ffffff", fg = "#b7bcc6";
      if (p == t && n > 0) {
        bg = mix("#e8f0fa", "#1d5aa6", share);
        fg = share > 0.55 ? "#ffffff" : "#1d2330";
      } else if (n > 0) {
        // Mistakes are a few percent of a row: their scale runs up to the largest such share.
        const double s = std::max(0.08, std::sqrt(max_off > 0 ? share / max_off : 0.0));
        bg = mix("#ffffff", "#c9302c", s);
        fg = s > 0.6 ? "#ffffff" : "#1d2330";
      }
      o += fmt::format("<td id=\"cm-{}-{}\" class=\"{}\" style=\"background:{};color:{}\" "
                       "title=\"true {}, predicted {}: {} ({:.1f}% of {})\">{}</td>",
                       t, p, p == t ? "diag" : "off", bg, fg, t, p, n, 100 * share, row, n);
    }
    o += fmt::format("<td class=\"total\">{}</td></tr>\n", row);
  }
  o += "</tbody></table>\n";
  o += fmt::format("<p class=\"note\">Rows: true digit; columns: predicted digit. Blue: correct, by share of the row. "
                   "Red: mistakes, darker for a larger share of the row (darkest: {:.1f}%).</p>\n",
                   100 * max_off);
  return o;
}

std::string per_digit_table(const EvalResult& r) {
  auto at = [&](int t, int p) { return r.confusion[static_cast<std::size_t>(t * 10 + p)]; };
  const auto errors = r.per_class_errors();
  std::array<double, 10> rate{};
  std::array<unsigned long long, 10> total{};
  for (int t = 0; t < 10; ++t) {
    for (int p = 0; p < 10; ++p) total[static_cast<std::size_t>(t)] += at(t, p);
    const auto k = static_cast<std::size_t>(t);
    rate[k] = total[k] ? static_cast<double>(errors[k]) / static_cast<double>(total[k]) : 0.0;
  }
  std::array<int, 10> order{};
  for (int t = 0; t < 10; ++t) order[static_cast<std::size_t>(t)] = t;
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return rate[static_cast<std::size_t>(a)] > rate[static_cast<std::size_t>(b)]; });
  const double max_rate = *std::max_element(rate.begin(), rate.end());

  std::string o = "<table id=\"per-digit\"><thead><tr><th>digit</th><th>images</th><th>errors</th><th>error rate</th>"
                  "<th>mistaken for</th></tr></thead><tbody>\n";
  for (int t : order) {
    const auto k = static_cast<std::size_t>(t);
    // The two most frequent wrong predictions of this digit.
    std::vector<std::pair<unsigned long long, int>> wrong;
    for (int p = 0; p < 10; ++p)
      if (p != t && at(t, p) > 0) wrong.push_back({at(t, p), p});
    std::stable_sort(wrong.begin(), wrong.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    std::string as = wrong.empty() ? "-" : "";
    for (std::size_t i = 0; i < std::min<std::size_t>(2, wrong.size()); ++i)
      as += fmt::format("{}<b>{}</b> ({})", i ? ", " : "", wrong[i].second, wrong[i].first);
    const double bar = max_rate > 0 ? 100 * rate[k] / max_rate : 0;
    o += fmt::format("<tr id=\"digit-{}\"><th>{}</th><td>{}</td><td>{}</td><td><span class=\"track\"><span "
                     "class=\"bar\" style=\"width:{:.0f}%\"></span></span>{:.2f}%</td><td class=\"left\">{}</td></tr>\n",
                     t, t, total[k], errors[k], bar, 100 * rate[k], as);
  }
  return o + "</tbody></table>\n<p class=\"note\">Sorted by error rate, highest first; \"mistaken for\": the most "
             "frequent wrong predictions (count).</p>\n";
}

// With --augment: a few training digits, each followed by its deformations in the first epochs.
std::string deformations_section(const ReportInput& in) {
  if (!in.cfg.augment.on() || !in.train_set || in.train_set->rows != 28 || in.train_set->cols != 28) return "";
  const AugmentConfig& a = in.cfg.augment;
  const GreyPixels grid = deformations_grid(*in.train_set, a, in.cfg.seed);
  const int digits = std::min(kDeformedDigits, in.train_set->count);
  return fmt::format(
      "<section id=\"deformations\"><h2>What the network saw</h2>\n<p class=\"note\">--augment {}: rotation within "
      "&plusmn;{}&deg;{}, scaling within &plusmn;{}%, shear within &plusmn;{}&deg;, elastic sigma {} and alpha {} "
      "pixels. Each row: a training digit, then its deformations in epochs 1 to {} (every epoch deforms every "
      "training digit afresh; validation and test digits are never deformed).</p>\n"
      "<img id=\"deformations-grid\" src=\"data:image/png;base64,{}\" width=\"{}\" height=\"{}\" alt=\"{} training "
      "digits and {} deformations of each\"></section>\n",
      to_string(a.kind), float_text(a.rotate), a.kind == AugmentKind::ciresan ? " (half for 1 and 7)" : "",
      float_text(a.scale), float_text(a.shear), float_text(a.sigma), float_text(a.alpha), kDeformationsPerDigit,
      base64_encode(encode_grey_png(grid.width, grid.height, grid.pixels.data())), grid.width, grid.height, digits,
      kDeformationsPerDigit);
}

std::string gallery_section(const ReportInput& in) {
  std::string o = "<section id=\"gallery-section\"><h2>Misclassified test digits</h2>\n";
  if (!in.test_set) return o + "<p class=\"note\">No per-sample predictions were recorded.</p></section>\n";
  const std::vector<Mistake> mistakes = find_mistakes(*in.test_set, in.test_predictions);
  const std::size_t shown = std::min<std::size_t>(kReportGalleryMax, mistakes.size());
  unsigned long long wrong = 0;
  for (auto e : in.test.per_class_errors()) wrong += e;
  if (mistakes.empty()) {
    o += "<p class=\"note\">None: every test digit was classified correctly.</p>\n";
  } else {
    o += fmt::format("<p class=\"note\" id=\"gallery-count\">{} of {} misclassified test digits, the most confident "
                     "mistakes first: true digit &rarr; predicted digit (the model's probability for it). Also saved "
                     "as misclassified.png.",
                     shown == mistakes.size() ? std::string("All") : "The " + std::to_string(shown),
                     with_commas(mistakes.size()));
    if (mistakes.size() != wrong)
      o += fmt::format(" (The gallery re-classifies the test set with the final parameters on the CPU: {} mistakes "
                       "there, {} in the confusion matrix from the training device.)",
                       with_commas(mistakes.size()), with_commas(wrong));
    o += "</p>\n";
  }
  o += fmt::format("<div id=\"gallery\" class=\"gallery\" data-count=\"{}\">\n", shown);
  for (std::size_t i = 0; i < shown; ++i) {
    const Mistake& m = mistakes[i];
    o += fmt::format("<figure class=\"mistake\"><img src=\"data:image/png;base64,{}\" width=\"56\" height=\"56\" "
                     "alt=\"test image {}: true {}, predicted {}\"><figcaption>true {} &rarr; {} <span class=\"conf\">"
                     "({})</span><span class=\"idx\">test #{}</span></figcaption></figure>\n",
                     base64_encode(detail::digit_png(*in.test_set, m.index)), m.index, m.label, m.predicted, m.label,
                     m.predicted, percent_text(m.prob), m.index);
  }
  return o + "</div></section>\n";
}

std::vector<std::uint8_t> bytes_of(const std::string& s) { return std::vector<std::uint8_t>(s.begin(), s.end()); }

}  // namespace

namespace detail {

const char* palette(std::size_t i) {
  // Tableau 10: distinct in hue and lightness, readable on white.
  static const char* const kColours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                         "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  return kColours[i % 10];
}

std::string page_head(const std::string& title) {
  return "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>" +
         html_escape(title) + "</title>\n<style>\n" +
         R"css(:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f4f5f7; color: #1d2330;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 28px 28px 40px; }
h1 { font-size: 24px; margin: 0 0 2px; letter-spacing: -0.01em; }
h2 { font-size: 16px; margin: 0 0 12px; }
.sub { color: #5b6475; margin: 0 0 20px; }
section { background: #fff; border: 1px solid #e1e4e9; border-radius: 8px; padding: 18px 20px; margin: 0 0 18px; }
.note { color: #5b6475; font-size: 12.5px; margin: 10px 0 0; }
.stamp { color: #5b6475; font-size: 12.5px; margin: -14px 0 18px; overflow-wrap: anywhere; }
.stamp + .stamp { margin-top: -16px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(180px, 1fr)); gap: 14px; }
.card { border-left: 3px solid #1f77b4; padding: 2px 0 2px 12px; }
.card .k { color: #5b6475; font-size: 11.5px; text-transform: uppercase; letter-spacing: 0.05em; }
.card .v { font-size: 26px; font-weight: 650; font-variant-numeric: tabular-nums; }
.card .n { color: #5b6475; font-size: 12px; }
dl.settings { display: grid; grid-template-columns: max-content 1fr max-content 1fr; gap: 4px 18px; margin: 0; }
dl.settings dt { color: #5b6475; }
dl.settings dd { margin: 0; }
.charts { display: flex; flex-wrap: wrap; gap: 18px; }
.charts > figure { flex: 1 1 440px; min-width: 0; max-width: 640px; }
figure { margin: 0; }
svg { width: 100%; height: auto; display: block; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 10px; text-align: right; white-space: nowrap; }
thead th { color: #5b6475; font-weight: 600; border-bottom: 1px solid #d5d9e0; }
tbody td { border-bottom: 1px solid #eef0f3; }
td.left, th.left { text-align: left; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px; margin-right: 8px; vertical-align: -1px; }
tr.best td { background: #fff6e0; font-weight: 600; }
.pair { display: flex; flex-wrap: wrap; gap: 28px; align-items: flex-start; }
.pair > div { flex: 0 1 auto; max-width: 460px; }
.pair > div:first-child { max-width: 540px; }
#per-digit th, #per-digit td { padding: 4px 8px; }
table.heat td { width: 40px; height: 30px; text-align: center; padding: 0; border: 2px solid #fff; font-size: 13px; }
table.heat td.diag { font-weight: 650; }
table.heat td.total, table.heat th.total { color: #5b6475; border: 0; padding-left: 10px; }
table.heat tbody th { text-align: center; padding: 0 8px; }
table.heat th.corner { font-size: 11px; color: #5b6475; white-space: normal; width: 70px; line-height: 1.2; }
.track { display: inline-block; width: 64px; height: 9px; background: #f0f1f4; border-radius: 2px; margin-right: 8px; }
.bar { display: block; height: 9px; background: #d9534f; border-radius: 2px; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(98px, 1fr)); gap: 14px 8px; }
.mistake { text-align: center; }
.mistake img { width: 56px; height: 56px; image-rendering: pixelated; border: 1px solid #d5d9e0; display: block;
  margin: 0 auto 3px; }
.mistake figcaption { font-size: 12px; line-height: 1.3; }
.mistake figcaption .conf { display: block; font-weight: 600; }
.mistake figcaption .idx { display: block; color: #8a91a0; font-size: 10.5px; }
footer { color: #8a91a0; font-size: 12px; text-align: center; margin-top: 8px; }
)css" + "</style>\n</head>\n<body>\n<main>\n";
}

std::string stamp_html(const ReportStamp& stamp) {
  std::string o;
  if (!stamp.created_utc.empty())
    o += "<p class=\"stamp\">Run at <time datetime=\"" + html_escape(stamp.created_utc) + "\" id=\"run-date\">" +
         html_escape(stamp.created_utc) + "</time></p>";
  if (!stamp.command_line.empty())
    o += "<p class=\"stamp\">Command: <code id=\"run-command\">" + html_escape(stamp.command_line) + "</code></p>";
  return o;
}

std::string page_tail() {
  // On load, the count of gallery images that decoded (a browser check reads it from the DOM).
  return std::string("<footer>mnist_gpu ") + MNIST_GPU_VERSION +
         " &middot; a self-contained page: no external resources</footer>\n</main>\n"
         "<script>\nwindow.addEventListener('load', function () {\n"
         "  var imgs = document.querySelectorAll('img'), ok = 0;\n"
         "  for (var i = 0; i < imgs.length; ++i) if (imgs[i].complete && imgs[i].naturalWidth > 0) ++ok;\n"
         "  document.body.setAttribute('data-images-loaded', String(ok));\n"
         "  document.body.setAttribute('data-images-total', String(imgs.length));\n"
         "});\n</script>\n</body>\n</html>\n";
}

}  // namespace detail

std::string train_report_html(const ReportInput& in) {
  std::string sub = in.dataset_name.empty() ? std::string() : in.dataset_name + " · ";
  sub += "model " + model_shape(in.cfg.model) + " (" + to_string(in.cfg.model.activation) + ", " +
         to_string(in.cfg.model.loss) + " loss), " + std::to_string(in.epochs.size()) +
         (in.epochs.size() == 1 ? " epoch" : " epochs");
  if (!in.device_name.empty()) sub += " · " + in.device_name;
  std::string o = detail::page_head("mnist_gpu training report");
  o += "<header><h1>Training report</h1><p class=\"sub\">" + html_escape(sub) + "</p>" + detail::stamp_html(in.stamp) +
       "</header>\n";
  o += summary_section(in);
  o += curves_section(in);
  o += "<section id=\"errors\"><h2>Test errors</h2><div class=\"pair\"><div>\n" + confusion_table(in.test) +
       "</div><div>\n" + per_digit_table(in.test) + "</div></div></section>\n";
  o += gallery_section(in);
  o += deformations_section(in);
  o += epochs_section(in);
  o += settings_section(in);
  return o + detail::page_tail();
}

std::vector<std::filesystem::path> report_files(const std::filesystem::path& dir) {
  return {dir / "loss.svg", dir / "accuracy.svg", dir / "misclassified.png", dir / "report.html"};
}

void check_report_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error(dir.string() + ": cannot create the report directory (" + ec.message() + ")");
  if (!std::filesystem::is_directory(dir, ec))
    throw Error(dir.string() + ": cannot write the report here (not a directory)");
  for (const std::filesystem::path& file : report_files(dir)) check_file_writable(file, "write the report");
}

void write_train_report(const std::filesystem::path& dir, const ReportInput& in) {
  check_report_dir(dir);
  const Curves curves = training_curves(in, true);
  const std::string xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  write_file_atomically(dir / "loss.svg", bytes_of(xml + curves.loss));
  write_file_atomically(dir / "accuracy.svg", bytes_of(xml + curves.accuracy));
  if (in.test_set) {
    const GreyPixels grid = mistakes_grid(*in.test_set, find_mistakes(*in.test_set, in.test_predictions));
    write_file_atomically(dir / "misclassified.png", encode_grey_png(grid.width, grid.height, grid.pixels.data()));
  }
  write_file_atomically(dir / "report.html", bytes_of(train_report_html(in)));
}

}  // namespace mnist_gpu
