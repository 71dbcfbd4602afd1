// Reports: base64, escaping, the SVG charts, the mistakes grid and predict_dataset as units; then
// `train --report` end to end (the page's numbers against the --metrics file) and the page
// rendered by a real browser (Debian's chromium, headless: screenshot and DOM after load).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "mnist_gpu/backend.hpp"
#include "mnist_gpu/cli.hpp"
#include "mnist_gpu/dataset.hpp"
#include "mnist_gpu/error.hpp"
#include "mnist_gpu/file_io.hpp"
#include "mnist_gpu/image_io.hpp"
#include "mnist_gpu/model.hpp"
#include "mnist_gpu/predict.hpp"
#include "mnist_gpu/report.hpp"
#include "test_paths.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace mnist_gpu;
using mnist_gpu::test::TempDir;

namespace {

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::size_t count_of(const std::string& text, const std::string& part) {
  std::size_t n = 0;
  for (std::size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + part.size())) ++n;
  return n;
}

// The text of the element with id="id" up to its first child or end tag.
std::string text_of_id(const std::string& html, const std::string& id) {
  const std::size_t at = html.find("id=\"" + id + "\"");
  if (at == std::string::npos) return "<missing id " + id + ">";
  const std::size_t open = html.find('>', at) + 1;
  return html.substr(open, html.find('<', open) - open);
}

::testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "the text does not contain '" << part << "'";
}

// A shell command's stdout and exit status (stderr goes where `cmd` sends it).
mnist_gpu::test::RunResult shell(const std::string& cmd) {
  mnist_gpu::test::RunResult r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int status = ::pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

// The points of every <path class="series" ... d="..."> in an SVG, one vector per path.
std::vector<std::vector<std::pair<double, double>>> series_points(const std::string& svg) {
  std::vector<std::vector<std::pair<double, double>>> out;
  const std::regex path_re("<path class=\"series\"[^>]* d=\"([^\"]*)\"");
  const std::regex point_re("[ML](-?[0-9.]+) (-?[0-9.]+)");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), path_re); it != std::sregex_iterator(); ++it) {
    const std::string d = (*it)[1];
    std::vector<std::pair<double, double>> pts;
    for (auto p = std::sregex_iterator(d.begin(), d.end(), point_re); p != std::sregex_iterator(); ++p)
      pts.push_back({std::stod((*p)[1]), std::stod((*p)[2])});
    out.push_back(pts);
  }
  return out;
}

// --- units ------------------------------------------------------------------------------------

TEST(Report, Base64MatchesTheRfc4648TestVectors) {
  auto b64 = [](const std::string& s) { return base64_encode(std::vector<std::uint8_t>(s.begin(), s.end())); };
  EXPECT_EQ(b64(""), "");
  EXPECT_EQ(b64("f"), "Zg==");
  EXPECT_EQ(b64("fo"), "Zm8=");
  EXPECT_EQ(b64("foo"), "Zm9v");
  EXPECT_EQ(b64("foob"), "Zm9vYg==");
  EXPECT_EQ(b64("fooba"), "Zm9vYmE=");
  EXPECT_EQ(b64("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64_encode({0xff, 0xfe, 0x00, 0x80}), "//4AgA==");  // the top of the alphabet, zero bytes
}

TEST(Report, HtmlEscapeReplacesEverySpecialCharacter) {
  EXPECT_EQ(html_escape("<a href=\"x\">Tom & Jerry's</a>"),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;");
  EXPECT_EQ(html_escape("plain 7 → 2"), "plain 7 → 2");  // UTF-8 passes through
}

TEST(Report, CurvesSvgDrawsMonotoneDataInsideThePlot) {
  CurveSeries down{"falling <loss>", {}, {}, "#1f77b4"}, up{"rising", {}, {}, "#ff7f0e"};
  for (int e = 1; e <= 12; ++e) {
    down.x.push_back(e);
    down.y.push_back(2.0 / e);
    up.x.push_back(e);
    up.y.push_back(0.8 + 0.015 * e);
  }
  for (bool percent : {false, true}) {
    const std::string svg = curves_svg({down, up}, "Title & more", "y axis", percent);
    EXPECT_TRUE(contains(svg, "xmlns=\"http://www.w3.org/2000/svg\"")) << "not a standalone SVG";
    EXPECT_TRUE(contains(svg, "viewBox=\"0 0 560 340\""));
    EXPECT_TRUE(contains(svg, "Title &amp; more"));
    EXPECT_TRUE(contains(svg, "data-label=\"falling &lt;loss&gt;\""));
    EXPECT_FALSE(contains(svg, "<loss>"));
    EXPECT_FALSE(contains(svg, "nan"));
    EXPECT_FALSE(contains(svg, "inf"));
    const auto paths = series_points(svg);
    ASSERT_EQ(paths.size(), 2u);
    for (std::size_t s = 0; s < 2; ++s) {
      ASSERT_EQ(paths[s].size(), 12u);
      for (std::size_t i = 0; i < paths[s].size(); ++i) {
        const auto [x, y] = paths[s][i];
        // Inside the plot area (the viewBox less its margins for title, legend and axes).
        EXPECT_GE(x, 60.0);
        EXPECT_LE(x, 545.0);
        EXPECT_GE(y, 40.0);
        EXPECT_LE(y, 300.0);
        if (i == 0) continue;
        EXPECT_GT(x, paths[s][i - 1].first) << "x must grow with the epoch";
        // SVG's y grows downwards: falling data rises on the page and vice versa.
        if (s == 0) {
          EXPECT_GT(y, paths[s][i - 1].second) << "point " << i;
        } else {
          EXPECT_LT(y, paths[s][i - 1].second) << "point " << i;
        }
      }
    }
    EXPECT_EQ(contains(svg, "%</text>"), percent);
  }
}

TEST(Report, CurvesSvgHandlesGapsSinglePointsMarksAndNoData) {
  CurveSeries gap{"gappy", {1, 2, 3, 4}, {0.5, std::nan(""), 0.3, 0.2}};
  const std::string svg = curves_svg({gap}, "t", "y", false, {{3, "best epoch 3"}});
  const auto paths = series_points(svg);
  ASSERT_EQ(paths.size(), 1u);
  EXPECT_EQ(paths[0].size(), 3u);
  EXPECT_EQ(count_of(svg.substr(svg.find("class=\"series\"")), " M"), 1u) << "a NaN must break the line";
  EXPECT_TRUE(contains(svg, "best epoch 3"));

  const std::string one = curves_svg({CurveSeries{"one", {1}, {0.25}}}, "t", "y", true);
  EXPECT_EQ(series_points(one).at(0).size(), 1u);
  EXPECT_FALSE(contains(one, "nan"));
  EXPECT_FALSE(contains(one, "inf"));

  const std::string none = curves_svg({}, "t", "y", false);
  EXPECT_TRUE(contains(none, "no data"));
  EXPECT_FALSE(contains(none, "nan"));
}

// Six rows, labels 0..5; the predictions get rows 1, 3 and 4 wrong at different confidences.
Dataset tiny_set() {
  Dataset d;
  d.count = 6;
  d.images.assign(6 * 784, 0);
  for (int i = 0; i < 6; ++i) {
    d.labels.push_back(static_cast<std::uint8_t>(i));
    for (int y = 8; y < 20; ++y) d.images[static_cast<std::size_t>(i) * 784 + y * 28 + 14] = 255;  // a stroke
  }
  return d;
}

std::vector<Prediction> tiny_predictions() {
  std::vector<Prediction> p(6);
  for (int i = 0; i < 6; ++i) p[static_cast<std::size_t>(i)].digit = i, p[static_cast<std::size_t>(i)].prob = 0.9f;
  p[1] = {7, 0.6f, {}};
  p[3] = {8, 0.95f, {}};
  p[4] = {9, 0.6f, {}};
  return p;
}

TEST(Report, MistakesAreTheWrongRowsMostConfidentFirst) {
  const std::vector<Mistake> m = find_mistakes(tiny_set(), tiny_predictions());
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[0].index, 3);
  EXPECT_EQ(m[0].label, 3);
  EXPECT_EQ(m[0].predicted, 8);
  EXPECT_EQ(m[1].index, 1);  // a tie in confidence keeps the row order
  EXPECT_EQ(m[2].index, 4);
  EXPECT_THROW(find_mistakes(tiny_set(), std::vector<Prediction>(5)), Error);
}

TEST(Report, MisclassifiedPngDecodesToTheGridsSize) {
  // 13 mistakes: a full row of 10 and a second row; 3 mistakes: one row 3 cells wide; none: one cell.
  const Dataset d = tiny_set();
  std::vector<Mistake> many;
  for (int i = 0; i < 13; ++i) many.push_back({i % 6, i % 6, (i + 1) % 10, 0.5f});
  const TempDir dir;
  for (const auto& [mistakes, w, h] : {std::tuple{many, 10 * kGridCellWidth, 2 * kGridCellHeight},
                                       std::tuple{find_mistakes(d, tiny_predictions()), 3 * kGridCellWidth, kGridCellHeight},
                                       std::tuple{std::vector<Mistake>{}, kGridCellWidth, kGridCellHeight}}) {
    const GreyPixels g = mistakes_grid(d, mistakes);
    ASSERT_EQ(g.width, w);
    ASSERT_EQ(g.height, h);
    const fs::path png = dir / "grid.png";
    write_file_atomically(png, encode_grey_png(g.width, g.height, g.pixels.data()));
    const GreyImage back = read_image(png);
    EXPECT_EQ(back.width, w);
    EXPECT_EQ(back.height, h);
    // White paper, black ink (the strokes and the label strip) and the grey frames.
    std::set<int> levels;
    for (float v : back.grey) levels.insert(static_cast<int>(std::lround(v * 255)));
    EXPECT_TRUE(levels.count(255) && levels.count(0) && levels.count(205)) << levels.size() << " grey levels";
  }
  // The label strip of the first cell of the 3-mistake grid says "3>8": ink below the digit.
  const GreyPixels g = mistakes_grid(d, find_mistakes(d, tiny_predictions()));
  int ink = 0;
  for (int y = 62; y < kGridCellHeight; ++y)
    for (int x = 0; x < kGridCellWidth; ++x) ink += g.pixels[static_cast<std::size_t>(y) * g.width + x] == 0;
  EXPECT_GT(ink, 50) << "no label drawn under the digit";
}

TEST(Report, PredictDatasetAgreesWithTheCpuBackendsConfusionMatrix) {
  // A softmax-regression and a hidden-layer l2 model, untrained (seeded initialisation) so that
  // they make plenty of mistakes; a batch that leaves a ragged last batch.
  const MnistFiles files = load_mnist_dir(mnist_gpu::test::data_dir());
  std::vector<std::uint32_t> rows(1500);
  for (std::uint32_t i = 0; i < rows.size(); ++i) rows[i] = i;
  const Dataset test = subset(files.test, rows);
  for (const auto& [hidden, loss] : {std::pair{std::vector<int>{}, Loss::xent}, std::pair{std::vector<int>{24}, Loss::l2}}) {
    ModelSpec spec;
    spec.hidden = hidden;
    spec.loss = loss;
    auto backend = make_cpu_backend(spec, OptimizerConfig{}, 128, 3);
    const EvalResult r = backend->evaluate(test);
    const std::vector<Prediction> p = predict_dataset(spec, backend->get_params(), test, 128);
    ASSERT_EQ(p.size(), rows.size());
    std::array<unsigned long long, 100> confusion{};
    for (int i = 0; i < test.count; ++i) {
      const Prediction& pi = p[static_cast<std::size_t>(i)];
      confusion[static_cast<std::size_t>(test.labels[static_cast<std::size_t>(i)] * 10 + pi.digit)] += 1;
      double sum = 0;
      for (float v : pi.probs) sum += v;
      EXPECT_NEAR(sum, 1.0, 1e-5);
      EXPECT_EQ(pi.prob, pi.probs[static_cast<std::size_t>(pi.digit)]);
      EXPECT_EQ(pi.prob, *std::max_element(pi.probs.begin(), pi.probs.end()));
    }
    EXPECT_EQ(confusion, r.confusion) << "hidden " << hidden.size() << " layers";
    const auto mistakes = find_mistakes(test, p);
    unsigned long long off = 0;
    for (auto e : r.per_class_errors()) off += e;
    EXPECT_EQ(mistakes.size(), off);
    EXPECT_GT(off, 0u);
  }
  ModelSpec spec;
  spec.hidden = {8};
  EXPECT_THROW(predict_dataset(spec, std::vector<float>(3), test, 16), Error);  // wrong parameter count
  spec.inputs = 100;
  EXPECT_THROW(predict_dataset(spec, std::vector<float>(ParamLayout(spec).size), test, 16), Error);  // wrong shape
}

// Three runs, one without validation, one with a given best epoch and a label to escape.
std::vector<SweepRunSummary> three_runs() {
  std::vector<SweepRunSummary> runs(3);
  runs[0].label = "hidden 128";
  runs[1].label = "hidden <256> & \"wide\"";
  runs[2].label = "no validation";
  for (int e = 1; e <= 4; ++e) {
    for (std::size_t r = 0; r < 3; ++r) {
      EpochMetrics m;
      m.epoch = e;
      m.train_loss = 1.0 / (e + static_cast<double>(r));
      m.val_acc = r == 2 ? std::nan("") : 0.9 + 0.01 * e - 0.02 * (e == 4) + 0.001 * static_cast<double>(r);
      runs[r].epochs.push_back(m);
    }
  }
  runs[0].test_acc = 0.9612, runs[1].test_acc = 0.97345, runs[2].test_acc = 0.95;
  runs[0].train_s = 12.25, runs[0].samples_per_s = 4400.4;
  runs[1].best_epoch = 2, runs[1].best_val_acc = 0.925;
  return runs;
}

TEST(Report, SweepPageComparesTheRuns) {
  const std::string html = sweep_report_html("Sweep <1>", three_runs());
  for (const char* id : {"id=\"sweep-val-acc\"", "id=\"sweep-train-loss\"", "id=\"sweep-table\""})
    EXPECT_TRUE(contains(html, id));
  EXPECT_TRUE(contains(html, "<title>Sweep &lt;1&gt;</title>"));
  EXPECT_TRUE(contains(html, "hidden &lt;256&gt; &amp; &quot;wide&quot;"));
  EXPECT_FALSE(contains(html, "<256>"));
  // One line per run on each chart, except the run without validation on the accuracy chart.
  const std::string val = html.substr(html.find("id=\"sweep-val-acc\""), html.find("id=\"sweep-train-loss\"") - html.find("id=\"sweep-val-acc\""));
  EXPECT_EQ(series_points(val).size(), 2u);
  EXPECT_EQ(series_points(html.substr(html.find("id=\"sweep-train-loss\""))).size(), 3u);
  // Distinct colours, and the table: run 1's best epoch derived (3: 0.93), run 2's as given.
  EXPECT_TRUE(contains(html, "stroke=\"#1f77b4\"") && contains(html, "stroke=\"#ff7f0e\"") && contains(html, "stroke=\"#2ca02c\""));
  EXPECT_TRUE(contains(html, "<td>96.12%</td><td>0.0000</td><td>93.00%</td><td>3</td><td>4</td><td>12.2 s</td><td>4400</td>"))
      << html.substr(html.find("id=\"run-1\""), 400);
  EXPECT_TRUE(contains(html, "<td>97.34%</td><td>0.0000</td><td>92.50%</td><td>2</td>"));
  EXPECT_TRUE(contains(html, "<td>95.00%</td><td>0.0000</td><td>-</td><td>-</td>"));
  // The best run by validation accuracy (run 1: 93.00%), not by test accuracy (run 2: 97.34%).
  EXPECT_TRUE(contains(html, "<tr id=\"run-1\" class=\"best\">")) << "the best validation accuracy is not highlighted";
  EXPECT_FALSE(contains(html, "<tr id=\"run-2\" class=\"best\">")) << "chosen by the test set";
  EXPECT_TRUE(contains(text_of_id(html, "best-note"), "by validation accuracy"));
  EXPECT_FALSE(contains(html, "http")) << "an external reference";

  const TempDir dir;
  write_sweep_report(dir / "sub" / "sweep.html", "Sweep", three_runs());
  EXPECT_TRUE(contains(read_text(dir / "sub" / "sweep.html"), "id=\"sweep-table\""));
}

TEST(Report, SweepWithoutValidationPicksByTestAccuracyAndSaysSo) {
  std::vector<SweepRunSummary> runs = three_runs();
  for (auto& r : runs) {
    r.best_epoch = 0;
    for (auto& m : r.epochs) m.val_acc = m.val_loss = std::nan("");
  }
  bool by_validation = true;
  EXPECT_EQ(best_sweep_run(runs, by_validation), 1);
  EXPECT_FALSE(by_validation);
  const std::string html = sweep_report_html("Sweep", runs, ReportStamp{"mnist_gpu sweep --val 0", "2024-05-01T13:45:07Z"});
  EXPECT_TRUE(contains(html, "<tr id=\"run-2\" class=\"best\">"));
  EXPECT_TRUE(contains(text_of_id(html, "best-note"), "by test accuracy (no run has a validation set)"));
  EXPECT_FALSE(contains(html, "id=\"sweep-val-acc\"")) << "a validation chart without validation";
  EXPECT_FALSE(contains(html, "Validation accuracy after each epoch"));
  EXPECT_EQ(text_of_id(html, "run-command"), "mnist_gpu sweep --val 0");
  EXPECT_EQ(text_of_id(html, "run-date"), "2024-05-01T13:45:07Z");
  EXPECT_EQ(best_sweep_run({}, by_validation), -1);
}

TEST(Report, TickLabelsAtExtremeValuesAreCompactAndDistinct) {
  EXPECT_EQ(axis_tick_label(1.4e9, 2e8), "1.4e9");
  EXPECT_EQ(axis_tick_label(1.5e9, 5e8), "1.5e9");
  EXPECT_EQ(axis_tick_label(1e9, 5e8), "1.0e9");  // as its neighbour 1.5e9
  EXPECT_EQ(axis_tick_label(1.2e-5, 2e-6), "1.2e-5");
  EXPECT_EQ(axis_tick_label(0.25, 0.05), "0.25");
  EXPECT_EQ(axis_tick_label(1200, 200), "1200");
  EXPECT_EQ(axis_tick_label(-3e12, 1e12), "-3e12");
  EXPECT_EQ(axis_tick_label(1e-20, 2e8), "0");
  // A chart of losses around 1.4e9: every y tick label short (no overlap with the axis title at
  // 7 characters of 12 px text in the 64 px margin) and all distinct.
  CurveSeries s{"train", {1, 2, 3}, {1.21e9, 1.4e9, 1.63e9}};
  const std::string svg = curves_svg({s}, "Loss", "loss", false);
  std::vector<std::string> labels;
  const std::string key = "text-anchor=\"end\" fill=\"#4a5263\">";
  for (std::size_t at = svg.find(key); at != std::string::npos; at = svg.find(key, at + 1)) {
    const std::size_t from = at + key.size();
    labels.push_back(svg.substr(from, svg.find('<', from) - from));
  }
  ASSERT_GE(labels.size(), 3u);
  for (const auto& l : labels) EXPECT_LE(l.size(), 7u) << l;
  std::vector<std::string> sorted = labels;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::unique(sorted.begin(), sorted.end()), sorted.end()) << "two ticks read the same";
  EXPECT_TRUE(std::find(labels.begin(), labels.end(), "1.4e9") != labels.end()) << svg;
}

TEST(Report, OneEpochIsSingularAndNoValidationIsNotImplied) {
  ReportInput in;
  in.cfg.val = 0;
  EpochMetrics m;
  m.epoch = 1;
  m.train_loss = 0.5, m.train_acc = 0.8;
  m.val_loss = m.val_acc = std::nan("");
  in.epochs.push_back(m);
  in.test.count = 10;
  in.stamp = {"mnist_gpu train --val 0 --report 'a <b>'", "2024-05-01T13:45:07Z"};
  const std::string html = train_report_html(in);
  EXPECT_TRUE(contains(html, "1 epoch")) << html.substr(0, 4000);
  EXPECT_FALSE(contains(html, "1 epochs"));
  EXPECT_FALSE(contains(html, "Validation: after each epoch"));
  EXPECT_TRUE(contains(html, "No validation set (--val 0)"));
  EXPECT_FALSE(contains(html, "data-label=\"validation\"")) << "a validation curve";
  EXPECT_TRUE(contains(html, "<time datetime=\"2024-05-01T13:45:07Z\""));
  EXPECT_TRUE(contains(text_of_id(html, "run-command"), "mnist_gpu train --val 0 --report &#39;a &lt;b&gt;&#39;"))
      << text_of_id(html, "run-command");
}

// The settings list names the initial weights' scheme (--init) as the run had it.
TEST(Report, SettingsNameTheInitialWeights) {
  const std::pair<const char*, const char*> cases[] = {
      {"default", "Initial weights</dt><dd>default</dd>"},
      {"uniform:0.05", "Initial weights</dt><dd>uniform in +-0.05</dd>"},
      {"glorot", "Initial weights</dt><dd>Glorot-uniform</dd>"}};
  for (const auto& [init, row] : cases) {
    ReportInput in;
    in.cfg = parse_train_flags({"--init", init});
    in.test.count = 10;
    const std::string html = train_report_html(in);
    EXPECT_TRUE(contains(html, row)) << init;
  }
}

TEST(Report, UnwritableDirectoryIsAnErrorNamingThePath) {
  // Below a regular file: no directory can be made there, even as root.
  const TempDir dir;
  write_file_atomically(dir / "file", {1});
  const fs::path bad = dir / "file" / "report";
  for (int which = 0; which < 3; ++which) {
    try {
      if (which == 0) check_report_dir(bad);
      if (which == 1) write_train_report(bad, ReportInput{});
      if (which == 2) write_sweep_report(bad / "sweep.html", "t", {});
      ADD_FAILURE() << "case " << which << " was accepted";
    } catch (const Error& e) {
      EXPECT_TRUE(contains(e.what(), (dir / "file").string())) << e.what();
    }
  }
  EXPECT_FALSE(fs::exists(dir / "file" / "report"));
}

TEST(Report, ReportFlagIsParsedAndAMissingValueRefused) {
  EXPECT_EQ(parse_train_flags({"--report", "out/run1"}).report_path, "out/run1");
  EXPECT_EQ(parse_train_flags({}).report_path, "");
  try {
    // CLI11 takes the next word as the value even when it is a flag; the value check refuses it.
    parse_train_flags({"--report", "--nesterov"});
    ADD_FAILURE() << "--report --nesterov was accepted";
  } catch (const UsageError& e) {
    EXPECT_TRUE(contains(e.what(), "--report: expected a value, got the flag '--nesterov'")) << e.what();
  }
}

TEST(Report, TrainPageMarksTheBestEpochAndEscapesText) {
  ReportInput in;
  in.cfg.model.hidden = {16};
  in.device_name = "cpu <fast> & \"new\"";
  for (int e = 1; e <= 5; ++e) {
    EpochMetrics m;
    m.epoch = e;
    m.train_loss = 1.0 / e, m.val_loss = 1.2 / e;
    m.train_acc = 0.8 + 0.02 * e, m.val_acc = 0.79 + 0.02 * e;
    in.epochs.push_back(m);
  }
  in.best_epoch = 4;
  in.test.count = 100;
  in.test.acc = 0.87654;
  for (int t = 0; t < 10; ++t) in.test.confusion[static_cast<std::size_t>(t * 11)] = 10;
  const std::string html = train_report_html(in);
  EXPECT_TRUE(contains(html, "cpu &lt;fast&gt; &amp; &quot;new&quot;"));
  EXPECT_FALSE(contains(html, "<fast>"));
  EXPECT_EQ(text_of_id(html, "test-accuracy"), "87.65%");
  EXPECT_TRUE(contains(html, "<tr id=\"epoch-4\" class=\"best\">"));
  EXPECT_EQ(count_of(html, "best epoch 4"), 2u) << "the mark on both charts";
  EXPECT_TRUE(contains(html, "No per-sample predictions")) << "no test set given: no gallery";
  EXPECT_EQ(text_of_id(html, "cm-3-3"), "10");
  EXPECT_EQ(text_of_id(html, "cm-3-4"), "0");
  EXPECT_FALSE(contains(html, "http"));
}

// --- train --report, end to end ---------------------------------------------------------------

// One small real run per test process: 784-32-10 for 2 epochs on MNIST with 1,000 validation
// images (about two seconds), its --metrics lines, its report directory.
struct ReportRun {
  fs::path dir;
  mnist_gpu::test::RunResult result;
  std::vector<json> epochs;
  json final_line;
};

const ReportRun& report_run() {
  static const ReportRun run = [] {
    ReportRun r;
    r.dir = fs::temp_directory_path() / ("mnist_gpu_report_run_" + std::to_string(::getpid()));
    fs::remove_all(r.dir);
    fs::create_directories(r.dir);
    const fs::path metrics = r.dir / "metrics.jsonl";
    r.result = mnist_gpu::test::run_exe("train --device cpu --hidden 32 --epochs 2 --val 1000 --batch 128 --data " +
                                        q(mnist_gpu::test::data_dir()) + " --metrics " + q(metrics) + " --report " +
                                        q(r.dir / "report"));
    std::ifstream in(metrics);
    for (std::string line; std::getline(in, line);) {
      const json j = json::parse(line);
      if (j.contains("final")) r.final_line = j;
      else r.epochs.push_back(j);
    }
    return r;
  }();
  return run;
}

class ReportRunCleanup : public ::testing::Environment {
 public:
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(fs::temp_directory_path() / ("mnist_gpu_report_run_" + std::to_string(::getpid())), ec);
  }
};
const auto* const kCleanup = ::testing::AddGlobalTestEnvironment(new ReportRunCleanup);

TEST(ReportExe, PageShowsTheNumbersOfTheMetricsFile) {
  const ReportRun& run = report_run();
  ASSERT_EQ(run.result.code, 0) << run.result.out;
  const fs::path rep = run.dir / "report";
  EXPECT_TRUE(contains(run.result.out, "report written to " + (rep / "report.html").string()));
  ASSERT_EQ(run.epochs.size(), 2u);
  ASSERT_TRUE(run.final_line.contains("confusion"));
  const std::string html = read_text(rep / "report.html");

  // The test accuracy and loss as the page formats them, from the metrics file.
  EXPECT_EQ(text_of_id(html, "test-accuracy"), fmt::format("{:.2f}%", 100 * run.final_line["test_acc"].get<double>()));
  EXPECT_EQ(text_of_id(html, "test-loss"), fmt::format("{:.4f}", run.final_line["test_loss"].get<double>()));
  // Every epoch's row.
  for (const json& m : run.epochs) {
    const std::string row = fmt::format("<tr id=\"epoch-{}\"><td>{}</td><td>{:.4f}</td><td>{:.2f}%</td><td>{:.4f}</td><td>{:.2f}%</td>",
                                        m["epoch"].get<int>(), m["epoch"].get<int>(), m["train_loss"].get<double>(),
                                        100 * m["train_acc"].get<double>(), m["val_loss"].get<double>(),
                                        100 * m["val_acc"].get<double>());
    EXPECT_TRUE(contains(html, row));
  }
  // Every confusion count; the off-diagonal total is the number of mistakes.
  unsigned long long wrong = 0;
  for (int t = 0; t < 10; ++t)
    for (int p = 0; p < 10; ++p) {
      const auto n = run.final_line["confusion"][t][p].get<unsigned long long>();
      EXPECT_EQ(text_of_id(html, fmt::format("cm-{}-{}", t, p)), std::to_string(n)) << "true " << t << ", predicted " << p;
      if (t != p) wrong += n;
    }
  for (int t = 0; t < 10; ++t)
    EXPECT_TRUE(contains(html, fmt::format("<tr id=\"digit-{}\"><th>{}</th><td>", t, t)));
  ASSERT_GT(wrong, 100u) << "a 2-epoch 784-32-10 model makes a few hundred mistakes";
  EXPECT_EQ(text_of_id(html, "test-errors"), fmt::format("{}", wrong));
  // The gallery: one inline PNG per shown mistake (capped), the total stated; on the CPU the
  // re-classification finds exactly the confusion matrix's mistakes.
  const std::size_t shown = std::min<std::size_t>(wrong, kReportGalleryMax);
  EXPECT_EQ(count_of(html, "<img src=\"data:image/png;base64,"), shown);
  EXPECT_EQ(count_of(html, "<figure class=\"mistake\">"), shown);
  EXPECT_TRUE(contains(html, fmt::format("data-count=\"{}\"", shown)));
  EXPECT_TRUE(contains(html, fmt::format("The {} of {},{:03d} misclassified", shown, wrong / 1000, wrong % 1000)) ||
              contains(html, fmt::format("The {} of {} misclassified", shown, wrong)));
  EXPECT_FALSE(contains(html, "re-classifies")) << "CPU predictions disagree with the CPU confusion matrix";
  EXPECT_EQ(count_of(html, "&rarr;"), shown + 1);  // every caption, and the note that explains them
  // Self-contained: no URL, no external stylesheet, script or image.
  for (const char* bad : {"http:", "https:", "//cdn", "<link", "@import", "url(", "src=\"/", "src=\"h"})
    EXPECT_FALSE(contains(html, bad)) << "external reference: " << bad;
  EXPECT_EQ(count_of(html, "src=\""), count_of(html, "src=\"data:image/png;base64,"));

  // The image files.
  const GreyImage grid = read_image(rep / "misclassified.png");
  EXPECT_EQ(grid.width, kGridColumns * kGridCellWidth);
  EXPECT_EQ(grid.height, static_cast<int>((shown + kGridColumns - 1) / kGridColumns) * kGridCellHeight);
  for (const char* svg : {"loss.svg", "accuracy.svg"}) {
    const std::string text = read_text(rep / svg);
    EXPECT_EQ(text.rfind("<?xml", 0), 0u) << svg;
    EXPECT_TRUE(contains(text, "xmlns=\"http://www.w3.org/2000/svg\"")) << svg;
    EXPECT_EQ(series_points(text).size(), 2u) << svg << ": train and validation";
  }
  // The page's charts are the files' (less the xmlns).
  const std::string loss = read_text(rep / "loss.svg");
  std::string inline_loss = loss.substr(loss.find("<svg"));
  inline_loss.replace(inline_loss.find("xmlns=\"http://www.w3.org/2000/svg\" "), 35, "");
  EXPECT_TRUE(contains(html, inline_loss));
}

TEST(ReportExe, PageRecordsTheCommandLineAndTheDate) {
  const ReportRun& run = report_run();
  ASSERT_EQ(run.result.code, 0) << run.result.out;
  const std::string html = read_text(run.dir / "report" / "report.html");
  const std::string command = text_of_id(html, "run-command");
  EXPECT_TRUE(contains(command, "train --device cpu --hidden 32 --epochs 2 --val 1000 --batch 128 --data ")) << command;
  EXPECT_TRUE(contains(command, "--report")) << command;
  const std::size_t at = html.find("<time datetime=\"");
  ASSERT_NE(at, std::string::npos);
  const std::string date = html.substr(at + 16, 20);
  EXPECT_TRUE(std::regex_match(date, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)"))) << date;
}

TEST(ReportExe, RefusedRunLeavesNoReportFolder) {
  const TempDir dir;
  const auto r = mnist_gpu::test::run_exe("train --device cpu --hidden 8 --epochs 1 --data " +
                                          q(mnist_gpu::test::data_dir()) + " --report " + q(dir / "new" / "rep") +
                                          " --metrics " + q(dir / "same") + " --save " + q(dir / "same"));
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_FALSE(fs::exists(dir / "new")) << "the refused run left the folder it made";
}

TEST(ReportExe, UnwritableReportDirectoryFailsBeforeTraining) {
  const TempDir dir;
  write_file_atomically(dir / "file", {1});
  const auto r = mnist_gpu::test::run_exe("train --device cpu --hidden 8 --epochs 1 --data " +
                                          q(mnist_gpu::test::data_dir()) + " --report " + q(dir / "file" / "rep"));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(contains(r.out, (dir / "file" / "rep").string()));
  EXPECT_FALSE(contains(r.out, "epoch   1")) << "refused only after training:\n" << r.out;
  const auto flag = mnist_gpu::test::run_exe("train --epochs 1 --report --nesterov");
  EXPECT_EQ(flag.code, 2) << flag.out;
  EXPECT_TRUE(contains(flag.out, "--report: expected a value"));
}

// --- the page in a real browser ---------------------------------------------------------------

// Debian's chromium (or $MNIST_GPU_CHROMIUM); "" when there is none.
std::string find_chromium() {
  if (const char* env = std::getenv("MNIST_GPU_CHROMIUM"); env && *env) return env;
  for (const char* name : {"chromium", "chromium-browser"}) {
    const auto r = shell(std::string("command -v ") + name + " 2>/dev/null");
    if (r.code == 0 && !r.out.empty()) return r.out.substr(0, r.out.find('\n'));
  }
  return "";
}

TEST(ReportBrowser, PageRendersInHeadlessChromium) {
  const std::string chromium = find_chromium();
  if (chromium.empty()) {
    const char* opt_out = std::getenv("MNIST_GPU_NO_BROWSER");
    if (opt_out && std::string(opt_out) == "1")
      GTEST_SKIP() << "MNIST_GPU_NO_BROWSER=1: the report is not checked in a browser (chromium not found)";
    FAIL() << "chromium not found: the report page must be checked in a real browser. Install Debian's chromium "
              "(scripts/setup.sh --tests does), point $MNIST_GPU_CHROMIUM at one, or set MNIST_GPU_NO_BROWSER=1 to skip";
  }
  const ReportRun& run = report_run();
  ASSERT_EQ(run.result.code, 0) << run.result.out;
  const fs::path page = run.dir / "report" / "report.html";
  const TempDir work;
  // Root needs --no-sandbox; a profile of its own keeps runs apart; chromium's dbus and GPU
  // warnings on stderr go to a log shown only on failure.
  const std::string common = "timeout 120 '" + chromium + "' --headless --no-sandbox --disable-gpu --hide-scrollbars " +
                             "--no-first-run --user-data-dir=" + q(work / "profile") + " ";
  const fs::path shot = work / "page.png", log = work / "chromium.log";
  const auto s = shell(common + "--screenshot=" + q(shot) + " --window-size=1200,3000 " + q("file://" + page.string()) +
                       " >" + q(log) + " 2>&1");
  ASSERT_EQ(s.code, 0) << "chromium --screenshot failed:\n" << read_text(log);

  // The screenshot: the full window, and not blank. A blank page is one grey level with no ink
  // (measured: 1 level, 0%); the rendered report, with its cards, charts, coloured heat map and
  // 100 digits, measured 256 levels and 7.4% of its pixels darker than 0.85 (the background is
  // #f4f5f7, 0.96): require 64 levels and 3%, margin for other fonts and anti-aliasing.
  ASSERT_TRUE(fs::exists(shot)) << "chromium wrote no screenshot:\n" << read_text(log);
  const GreyImage img = read_image(shot);
  ASSERT_EQ(img.width, 1200);
  ASSERT_EQ(img.height, 3000);
  std::set<int> levels;
  std::size_t ink = 0;
  for (float v : img.grey) {
    levels.insert(static_cast<int>(std::lround(v * 255)));
    ink += v < 0.85f;
  }
  const double ink_share = static_cast<double>(ink) / static_cast<double>(img.grey.size());
  EXPECT_GE(levels.size(), 64u) << "too few grey levels for a rendered page";
  EXPECT_GT(ink_share, 0.03) << "the page looks blank";
  EXPECT_LT(ink_share, 0.6) << "the page is mostly dark: not the report";

  // The DOM after load: the sections, and every gallery image decoded (the page's script counts
  // the images with a natural width on load; the virtual time budget lets load fire first).
  const auto dom = shell(common + "--virtual-time-budget=5000 --dump-dom " + q("file://" + page.string()) + " 2>" + q(log));
  ASSERT_EQ(dom.code, 0) << "chromium --dump-dom failed:\n" << read_text(log);
  for (const char* id : {"summary", "curves-loss", "curves-accuracy", "confusion", "per-digit", "gallery", "epochs", "settings"})
    EXPECT_TRUE(contains(dom.out, std::string("id=\"") + id + "\"")) << "missing #" << id;
  EXPECT_EQ(count_of(dom.out, "<svg"), 2u);
  unsigned long long wrong = 0;
  for (int t = 0; t < 10; ++t)
    for (int p = 0; p < 10; ++p)
      if (t != p) wrong += run.final_line["confusion"][t][p].get<unsigned long long>();
  const std::size_t shown = std::min<std::size_t>(wrong, kReportGalleryMax);
  EXPECT_TRUE(contains(dom.out, fmt::format("data-images-loaded=\"{}\"", shown))) << "not every gallery image decoded";
  EXPECT_TRUE(contains(dom.out, fmt::format("data-images-total=\"{}\"", shown)));
}

}  // namespace
