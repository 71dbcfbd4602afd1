// Reports: one self-contained HTML page per training run (inline CSS, inline SVG curves and
// confusion heat map, the misclassified digits as inline PNGs) with the curves and the mistakes
// also as image files of their own; and one page comparing the runs of a sweep. Nothing is
// fetched when a page opens: it works offline in any browser.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "mnist_gpu/backend.hpp"
#include "mnist_gpu/config.hpp"
#include "mnist_gpu/dataset.hpp"
#include "mnist_gpu/predict.hpp"
#include "mnist_gpu/train.hpp"

namespace mnist_gpu {

// --- charts -----------------------------------------------------------------------------------

/// One line of a chart: the point (x[i], y[i]) for each i; a NaN y leaves a gap.
struct CurveSeries {
  std::string label;
  std::vector<double> x, y;
  std::string colour = "#1f77b4";  ///< a CSS colour
  bool dashed = false;
};

/// A labelled vertical line across a chart (e.g. the best epoch).
struct CurveMark {
  double x = 0;
  std::string label;
};

/// A line chart of `series` over epochs as SVG 1.1 with its xmlns, so the same text is a valid
/// standalone .svg file and inline HTML5: title, legend, axes with "nice" ticks (integers on x),
/// grid lines, the y axis labelled `y_label`, each point with a <title> tooltip. With `percent`
/// the values are fractions shown as percentages. Each series' line is a <path class="series">
/// whose data-label is the series' label. All text is escaped.
std::string curves_svg(const std::vector<CurveSeries>& series, const std::string& title, const std::string& y_label,
                       bool percent, const std::vector<CurveMark>& marks = {});

// --- the training report ----------------------------------------------------------------------

/// Where a page came from: the command line that made it (shell-quoted) and when (UTC, ISO
/// 8601). Empty fields are left off the page.
struct ReportStamp {
  std::string command_line;
  std::string created_utc;
};

/// Everything a training report shows. The accuracies and the confusion matrix come from the
/// trainer's own results (so the page agrees with the --metrics file); the gallery comes from
/// `test_predictions` (predict_dataset on `test_set`, row for row).
struct ReportInput {
  TrainConfig cfg;
  std::string device_name;   ///< e.g. Backend::describe()
  std::string dataset_name;  ///< e.g. "MNIST"; empty: not shown
  std::vector<EpochMetrics> epochs;
  EvalResult test;
  double train_s = 0;
  const Dataset* test_set = nullptr;        ///< the images of the gallery; null: no gallery
  /// The training split (its rows are the deformations' sample indices): with cfg.augment on, the
  /// page shows a few of its digits and their deformations (deformations_grid); null: not shown.
  const Dataset* train_set = nullptr;
  std::vector<Prediction> test_predictions;  ///< one per row of *test_set
  int best_epoch = 0;  ///< 0: none; otherwise marked on the curves and in the epoch table
  ReportStamp stamp;
  /// A resumed run continued for more epochs: what changed (plan_resume's note); "" otherwise.
  std::string continued;
};

/// The most misclassified test digits the page and misclassified.png show.
constexpr int kReportGalleryMax = 100;

/// A misclassified row of a dataset.
struct Mistake {
  int index = 0;      ///< row of the dataset
  int label = 0;      ///< the true digit
  int predicted = 0;  ///< the model's digit
  float prob = 0;     ///< the model's probability for `predicted`
};

/// The rows whose prediction differs from their label, most confident first (ties: lower row
/// first). Throws Error when `predictions` and `data` differ in length.
std::vector<Mistake> find_mistakes(const Dataset& data, const std::vector<Prediction>& predictions);

/// An 8-bit grey image, row-major (height, width).
struct GreyPixels {
  int width = 0, height = 0;
  std::vector<std::uint8_t> pixels;  // (height, width)
};

/// Cells of the mistakes grid: the digit at 2x (dark ink on white) above a label strip "7>2".
constexpr int kGridCellWidth = 64, kGridCellHeight = 84, kGridColumns = 10;

/// The first `max_cells` of `mistakes` as a labelled grid, kGridColumns wide (fewer when there are
/// fewer mistakes); with no mistakes, one blank cell.
GreyPixels mistakes_grid(const Dataset& data, const std::vector<Mistake>& mistakes, int max_cells = kReportGalleryMax);

/// The training digits the report shows deformed, and how many deformations of each.
constexpr int kDeformedDigits = 8, kDeformationsPerDigit = 6;

/// What the network saw under `augment` (seeded `seed`): one row per training digit (rows 0 ..
/// digits - 1 of `train`, 28 x 28), the digit at 2x, then a gap, then its deformations in epochs
/// 1 .. per_digit as the backends make them (cpu::augment_image), dark ink on white. Throws Error
/// when `train` is not 28 x 28.
GreyPixels deformations_grid(const Dataset& train, const AugmentConfig& augment, std::uint64_t seed,
                             int digits = kDeformedDigits, int per_digit = kDeformationsPerDigit);

/// The report page for `in` (see write_train_report).
std::string train_report_html(const ReportInput& in);

/// The files write_train_report writes into `dir`.
std::vector<std::filesystem::path> report_files(const std::filesystem::path& dir);

/// Creates `dir` when missing and checks that each of report_files(dir) can be written (none is
/// a device, FIFO or directory; a probe file can be created and removed), so that `train
/// --report` fails before training rather than after. Throws Error naming the directory or file.
void check_report_dir(const std::filesystem::path& dir);

/// Writes into `dir` (created when missing), each file atomically: report.html (summary,
/// settings, loss and accuracy curves, per-epoch table, confusion heat map, errors per digit,
/// gallery of the kReportGalleryMax most confident mistakes, and with --augment the grid of
/// deformed training digits inline), loss.svg and accuracy.svg (the
/// page's curves), misclassified.png (mistakes_grid). Throws Error naming the file that failed.
void write_train_report(const std::filesystem::path& dir, const ReportInput& in);

// --- the sweep report -------------------------------------------------------------------------

/// One run of a sweep, as the comparison page shows it.
struct SweepRunSummary {
  std::string label;  ///< e.g. "hidden 512,256 lr 0.002"
  std::vector<EpochMetrics> epochs;
  double test_acc = 0, test_loss = 0, train_s = 0, samples_per_s = 0;
  int best_epoch = 0;       ///< 0: taken from `epochs` (the first epoch of highest val_acc), if any
  double best_val_acc = 0;  ///< used when best_epoch > 0
};

/// One self-contained page comparing `runs`: their validation-accuracy and training-loss curves
/// overlaid (a distinct colour per run, the labels in the legend) and a table of label, test
/// accuracy and loss, best validation accuracy and its epoch, training time and samples/s. The
/// best run is chosen by validation accuracy (the test set stays out of the choice); only when no
/// run has a validation set by test accuracy, and the page says which it used.
std::string sweep_report_html(const std::string& title, const std::vector<SweepRunSummary>& runs,
                              const ReportStamp& stamp = {});

/// The run sweep_report_html highlights: the highest best validation accuracy, or, when no run
/// has one, the highest test accuracy (`by_validation` tells which). -1 for no runs.
int best_sweep_run(const std::vector<SweepRunSummary>& runs, bool& by_validation);

/// Writes sweep_report_html to `html_path` atomically (its directory created when missing).
/// Throws Error naming the path.
void write_sweep_report(const std::filesystem::path& html_path, const std::string& title,
                        const std::vector<SweepRunSummary>& runs, const ReportStamp& stamp = {});

// --- text helpers (also used by the tests) ----------------------------------------------------

/// `text` with & < > " ' replaced by character references: safe in element text and in
/// attribute values of HTML and SVG.
std::string html_escape(const std::string& text);

/// A chart's tick label for `value` on an axis of ticks `step` apart: fixed decimals enough to
/// tell the ticks apart ("0.25", "1200"); for magnitudes from 1e5 up, or steps below 1e-4, a
/// compact exponent form with the same distinctness ("1.4e9", "2.5e-6"), so that a label never
/// runs wider than 7 characters into the axis title. "0" for zero.
std::string axis_tick_label(double value, double step);

/// Standard base64 (RFC 4648, with '=' padding) of `bytes`.
std::string base64_encode(const std::vector<std::uint8_t>& bytes);

}  // namespace mnist_gpu
