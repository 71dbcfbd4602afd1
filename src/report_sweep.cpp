// The sweep report: one self-contained page comparing runs (overlaid validation-accuracy and
// training-loss curves, a table of the results).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <system_error>
#include <vector>

#include "mnist_gpu/error.hpp"
#include "mnist_gpu/file_io.hpp"
#include "mnist_gpu/report.hpp"
#include "report_detail.hpp"

namespace mnist_gpu {
namespace {

// Runs past the palette's ten colours repeat them dashed.
CurveSeries series_of(const SweepRunSummary& run, std::size_t i, double EpochMetrics::*field) {
  CurveSeries s{run.label, {}, {}, detail::palette(i), i >= 10};
  for (const auto& m : run.epochs) {
    s.x.push_back(m.epoch);
    s.y.push_back(m.*field);
  }
  return s;
}

// (best validation accuracy, its epoch): the run's own when given, else the first epoch of the
// highest val_acc; (NaN, 0) without validation.
std::pair<double, int> best_of(const SweepRunSummary& run) {
  if (run.best_epoch > 0) return {run.best_val_acc, run.best_epoch};
  std::pair<double, int> best{std::nan(""), 0};
  for (const auto& m : run.epochs)
    if (!std::isnan(m.val_acc) && (best.second == 0 || m.val_acc > best.first)) best = {m.val_acc, m.epoch};
  return best;
}

}  // namespace

int best_sweep_run(const std::vector<SweepRunSummary>& runs, bool& by_validation) {
  by_validation = false;
  int top = -1;
  double top_acc = 0;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const double acc = best_of(runs[i]).first;
    if (std::isnan(acc)) continue;
    if (top < 0 || acc > top_acc) top = static_cast<int>(i), top_acc = acc;
  }
  if (top >= 0) {
    by_validation = true;
    return top;
  }
  for (std::size_t i = 0; i < runs.size(); ++i)
    if (top < 0 || runs[i].test_acc > top_acc) top = static_cast<int>(i), top_acc = runs[i].test_acc;
  return top;
}

std::string sweep_report_html(const std::string& title, const std::vector<SweepRunSummary>& runs,
                              const ReportStamp& stamp) {
  std::vector<CurveSeries> val, loss;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    val.push_back(series_of(runs[i], i, &EpochMetrics::val_acc));
    loss.push_back(series_of(runs[i], i, &EpochMetrics::train_loss));
  }
  bool by_validation = false;
  const int top = best_sweep_run(runs, by_validation);
  const bool any_validation = by_validation;

  std::string o = detail::page_head(title);
  o += "<header><h1>" + html_escape(title) + "</h1><p class=\"sub\">" + std::to_string(runs.size()) +
       (runs.size() == 1 ? " run" : " runs") + " compared</p>" + detail::stamp_html(stamp) + "</header>\n";
  o += "<section id=\"curves\"><h2>Learning curves</h2><div class=\"charts\">\n";
  if (any_validation)
    o += "<figure id=\"sweep-val-acc\">\n" + detail::curves_svg(val, "Validation accuracy", "accuracy", true, {}, false) +
         "</figure>\n";
  o += "<figure id=\"sweep-train-loss\">\n" +
       detail::curves_svg(loss, "Training loss", "loss (mean per sample)", false, {}, false) + "</figure>\n</div>\n" +
       (any_validation ? "<p class=\"note\">Validation accuracy after each epoch; training loss over each epoch's "
                         "batches as they were trained.</p></section>\n"
                       : "<p class=\"note\">No validation set (--val 0): training loss over each epoch's batches as "
                         "they were trained.</p></section>\n");
  o += "<section id=\"results\"><h2>Results</h2><div class=\"scroll\"><table id=\"sweep-table\">\n<thead><tr>"
       "<th class=\"left\">run</th><th>test acc</th><th>test loss</th><th>best val acc</th><th>best epoch</th>"
       "<th>epochs</th><th>train time</th><th>samples/s</th></tr></thead><tbody>\n";
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const SweepRunSummary& r = runs[i];
    const auto [best_acc, best_epoch] = best_of(r);
    // A run past the palette's ten colours is dashed on the charts and hollow here.
    const std::string swatch = i < 10 ? fmt::format("background:{}", detail::palette(i))
                                      : fmt::format("border:2px solid {}", detail::palette(i));
    o += fmt::format("<tr id=\"run-{}\"{}><td class=\"left\"><span class=\"swatch\" style=\"{}\"></span>{}"
                     "</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1f} s</td><td>{:.0f}</td></tr>\n",
                     i + 1, static_cast<int>(i) == top ? " class=\"best\"" : "", swatch, html_escape(r.label),
                     detail::format_value(r.test_acc, true), detail::format_value(r.test_loss, false),
                     detail::format_value(best_acc, true), best_epoch > 0 ? std::to_string(best_epoch) : "-",
                     r.epochs.size(), r.train_s, r.samples_per_s);
  }
  o += "</tbody></table></div>";
  if (top >= 0)
    o += by_validation ? "<p class=\"note\" id=\"best-note\">Highlighted: the best run by validation accuracy (the "
                         "test set is not used to choose).</p>"
                       : "<p class=\"note\" id=\"best-note\">Highlighted: the best run by test accuracy (no run has a "
                         "validation set).</p>";
  o += "</section>\n";
  return o + detail::page_tail();
}

void write_sweep_report(const std::filesystem::path& html_path, const std::string& title,
                        const std::vector<SweepRunSummary>& runs, const ReportStamp& stamp) {
  if (html_path.has_parent_path()) {
    std::error_code ec;
    std::filesystem::create_directories(html_path.parent_path(), ec);
    if (ec)
      throw Error(html_path.parent_path().string() + ": cannot create the report directory (" + ec.message() + ")");
  }
  const std::string html = sweep_report_html(title, runs, stamp);
  write_file_atomically(html_path, std::vector<std::uint8_t>(html.begin(), html.end()));
}

}  // namespace mnist_gpu
