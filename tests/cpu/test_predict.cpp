// Images to predictions: real MNIST test digits redrawn as PNG/JPEG files (large, dark on light,
// off-centre, in every PNG colour type and as JPEG) must be prepared back to close to their 28x28
// originals and classified as before; bad images are refused with a message, never a crash;
// the executable's `train --save`, `eval` and `predict` exit codes, output and messages.
#include <gtest/gtest.h>
#include <jpeglib.h>
#include <png.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mnist_gpu/backend.hpp"
#include "mnist_gpu/dataset.hpp"
#include "mnist_gpu/device.hpp"
#include "mnist_gpu/error.hpp"
#include "mnist_gpu/image_io.hpp"
#include "mnist_gpu/image_prep.hpp"
#include "mnist_gpu/model_io.hpp"
#include "mnist_gpu/predict.hpp"
#include "mnist_gpu/train.hpp"
#include "test_paths.hpp"

#include "cpu/image_test_util.hpp"

using namespace mnist_gpu;
using namespace mnist_gpu::test_images;

// The preprocessing undoes the redrawing: a digit enlarged 8x, off-centre on a big canvas, comes
// back close to its MNIST original (which was made the same way: fitted to 20x20, centred by mass).
TEST(ImagePrep, EnlargedOffCentreDigitComesBackCloseToTheOriginal) {
  const fs::path dir = fresh_dir("prep");
  double worst = 0, sum = 0;
  const int digits = 10;
  for (int i = 0; i < digits; ++i) {
    const DigitImage orig = mnist_digit(i);
    const DigitImage got = prepare_digit(read_image(draw(dir, "d" + std::to_string(i), orig, Kind::rgb)));
    const double mad = mean_abs_diff(orig, got);
    worst = std::max(worst, mad);
    sum += mad;
  }
  // Measured: mean 8.7, worst 19.9 (resampling blur plus a one-pixel difference in placement,
  // since MNIST centred the original high-resolution scan). A blank result gives ~35, an inverted
  // one ~200, a placement off by two pixels or a wrong scale 30 and more.
  EXPECT_LT(sum / digits, 12.0);
  EXPECT_LT(worst, 28.0);
  fs::remove_all(dir);
}

TEST(ImagePrep, PreparedMnistDigitIsCentredByMass) {
  // An MNIST digit run through the preprocessing again stays where it was (within a pixel).
  for (int i = 0; i < 5; ++i) {
    const DigitImage orig = mnist_digit(i);
    GreyImage img;
    img.width = img.height = 28;
    for (auto p : orig) img.grey.push_back(p / 255.0f);
    const DigitImage got = prepare_digit(img);
    double m = 0, mx = 0, my = 0;
    for (int k = 0; k < 784; ++k) {
      m += got[k];
      mx += got[k] * (k % 28);
      my += got[k] * (k / 28);
    }
    EXPECT_NEAR(mx / m, 14.0, 0.6) << i;
    EXPECT_NEAR(my / m, 14.0, 0.6) << i;
  }
}

// Every kind of file: the digits the model gets right in their original form are still right.
TEST(Predict, RedrawnDigitsInEveryFormatAreClassifiedAsTheirOriginals) {
  const fs::path dir = fresh_dir("formats");
  DigitClassifier clf(small_model());
  std::vector<int> chosen;  // the first 6 test digits classified right as they are
  for (int i = 0; chosen.size() < 6 && i < 100; ++i)
    if (clf.classify(mnist_digit(i)).digit == real_data().test.labels[i]) chosen.push_back(i);
  ASSERT_EQ(chosen.size(), 6u);
  for (Kind kind : kAllKinds) {
    SCOPED_TRACE(kind_name(kind));
    int right = 0;
    for (int i : chosen) {
      const fs::path file = draw(dir, "d" + std::to_string(i), mnist_digit(i), kind);
      const Prediction p = clf.classify(prepare_digit(read_image(file)));
      const int label = real_data().test.labels[i];
      if (p.digit == label) ++right;
      else ADD_FAILURE() << file << ": predicted " << p.digit << " (" << p.prob << "), label " << label;  // reported, counted
      float sum = 0;
      for (float q : p.probs) sum += q;
      EXPECT_NEAR(sum, 1.0f, 1e-5f);
      EXPECT_EQ(p.prob, *std::max_element(p.probs.begin(), p.probs.end()));
    }
    EXPECT_EQ(right, static_cast<int>(chosen.size()));
  }
  fs::remove_all(dir);
}

TEST(ImageIo, AllPngLayoutsDecodeToTheSameGrey) {
  const fs::path dir = fresh_dir("layouts");
  // 3x2 pixels of known grey levels in grey 1/2/4/8/16-bit, grey+alpha, RGB, RGBA, palette.
  const std::uint8_t g[6] = {0, 255, 0, 255, 255, 0};
  Bytes grey8(g, g + 6), grey16, ga, rgb, rgba, pal_idx, one_bit = {0x40, 0xC0};  // 010, 110
  for (std::uint8_t v : grey8) {
    grey16.insert(grey16.end(), {v, v});
    ga.insert(ga.end(), {v, 255});
    rgb.insert(rgb.end(), {v, v, v});
    rgba.insert(rgba.end(), {v, v, v, 255});
    pal_idx.push_back(v ? 1 : 0);
  }
  ASSERT_TRUE(write_png(dir / "g8.png", 3, 2, 8, PNG_COLOR_TYPE_GRAY, grey8));
  ASSERT_TRUE(write_png(dir / "g16.png", 3, 2, 16, PNG_COLOR_TYPE_GRAY, grey16));
  ASSERT_TRUE(write_png(dir / "ga.png", 3, 2, 8, PNG_COLOR_TYPE_GRAY_ALPHA, ga));
  ASSERT_TRUE(write_png(dir / "rgb.png", 3, 2, 8, PNG_COLOR_TYPE_RGB, rgb));
  ASSERT_TRUE(write_png(dir / "rgba.png", 3, 2, 8, PNG_COLOR_TYPE_RGBA, rgba));
  ASSERT_TRUE(write_png(dir / "pal.png", 3, 2, 8, PNG_COLOR_TYPE_PALETTE, pal_idx, {{0, 0, 0}, {255, 255, 255}}));
  ASSERT_TRUE(write_png(dir / "g1.png", 3, 2, 1, PNG_COLOR_TYPE_GRAY, one_bit));
  for (const char* name : {"g8.png", "g16.png", "ga.png", "rgb.png", "rgba.png", "pal.png", "g1.png"}) {
    SCOPED_TRACE(name);
    const GreyImage img = read_image(dir / name);
    ASSERT_EQ(img.width, 3);
    ASSERT_EQ(img.height, 2);
    for (int i = 0; i < 6; ++i) EXPECT_NEAR(img.grey[i], g[i] / 255.0f, 1e-6f) << i;
    const bool alpha = std::string(name) == "ga.png" || std::string(name) == "rgba.png";
    EXPECT_EQ(img.alpha.empty(), !alpha);
  }
  fs::remove_all(dir);
}

TEST(ImageIo, BadFilesAreRefusedWithAMessage) {
  const fs::path dir = fresh_dir("bad");
  write_bytes(dir / "notes.txt", Bytes{'h', 'e', 'l', 'l', 'o', '\n'});
  EXPECT_TRUE(contains(refusal([&] { read_image(dir / "notes.txt"); }), "not an image"));
  write_bytes(dir / "empty.png", Bytes{});
  EXPECT_TRUE(contains(refusal([&] { read_image(dir / "empty.png"); }), "empty"));
  EXPECT_TRUE(contains(refusal([&] { read_image(dir / "missing.png"); }), "missing.png"));
  EXPECT_TRUE(contains(refusal([&] { read_image(dir); }), "directory"));

  // Truncated PNG and JPEG files of a real digit.
  const fs::path png = draw(dir, "seven", mnist_digit(0), Kind::rgb);
  const fs::path jpg = draw(dir, "seven", mnist_digit(0), Kind::jpeg_grey);
  for (const fs::path& f : {png, jpg}) {
    Bytes b = read_bytes(f);
    for (std::size_t keep : {b.size() / 2, std::size_t{40}, std::size_t{12}}) {
      SCOPED_TRACE(f.string() + " cut to " + std::to_string(keep));
      write_bytes(dir / "cut", Bytes(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(keep)));
      EXPECT_TRUE(contains(refusal([&] { read_image(dir / "cut"); }), (dir / "cut").string()));
    }
  }
  // A flipped byte in the compressed data of the PNG: libpng's CRC check, an Error not an abort.
  Bytes b = read_bytes(png);
  b[b.size() / 2] ^= 0xFF;
  write_bytes(dir / "flipped.png", b);
  EXPECT_TRUE(contains(refusal([&] { read_image(dir / "flipped.png"); }), "PNG"));

  // Declared sizes beyond the limits, refused from the header (a 100000x100000 decode would need 10 GB).
  write_bytes(dir / "huge.png", forged_png(100000, 100000));
  EXPECT_TRUE(contains(refusal([&] { read_image(dir / "huge.png"); }), "100000x100000 pixels, more than the 8192x8192"));
  write_bytes(dir / "wide.png", forged_png(9000, 10));
  EXPECT_TRUE(contains(refusal([&] { read_image(dir / "wide.png"); }), "9000x10"));
  write_bytes(dir / "many.png", forged_png(8000, 6000));  // 48 megapixels
  EXPECT_TRUE(contains(refusal([&] { read_image(dir / "many.png"); }), "40 megapixel"));
  write_bytes(dir / "zero.png", forged_png(0, 10));
  EXPECT_FALSE(refusal([&] { read_image(dir / "zero.png"); }).empty());
  fs::remove_all(dir);
}

TEST(ImagePrep, BlankAndTinyImagesHaveNoInk) {
  const fs::path dir = fresh_dir("blank");
  ASSERT_TRUE(write_png(dir / "white.png", 40, 30, 8, PNG_COLOR_TYPE_GRAY, Bytes(1200, 255)));
  ASSERT_TRUE(write_png(dir / "grey.png", 40, 30, 8, PNG_COLOR_TYPE_GRAY, Bytes(1200, 128)));
  ASSERT_TRUE(write_png(dir / "one.png", 1, 1, 8, PNG_COLOR_TYPE_GRAY, Bytes(1, 0)));
  Bytes faint(1200, 200);
  faint[600] = 190;  // 4% contrast: paper texture, not ink
  ASSERT_TRUE(write_png(dir / "faint.png", 40, 30, 8, PNG_COLOR_TYPE_GRAY, faint));
  ASSERT_TRUE(write_png(dir / "clear.png", 40, 30, 8, PNG_COLOR_TYPE_RGBA, Bytes(4800, 0)));
  for (const char* name : {"white.png", "grey.png", "faint.png", "clear.png"}) {
    SCOPED_TRACE(name);
    EXPECT_TRUE(contains(refusal([&] { prepare_digit(read_image(dir / name)); }), "no ink found"));
  }
  EXPECT_TRUE(contains(refusal([&] { prepare_digit(read_image(dir / "one.png")); }), "1x1 pixels, too small"));
  fs::remove_all(dir);
}

TEST(Predict, ClassifierRefusesAModelOfTheWrongShape) {
  SavedModel m;
  m.spec.inputs = 100;
  m.spec.hidden = {};
  m.params.assign(1010, 0.0f);
  EXPECT_TRUE(contains(refusal([&] { DigitClassifier c(m); }), "needs 784 and 10"));
}

// --- the executable: train --save, eval, predict ------------------------------------------------

TEST(ModelsExe, TrainSaveThenEvalAndPredict) {
  const fs::path dir = fresh_dir("exe");
  const fs::path model = dir / "m.bin";
  const ExeRun t = run_exe("train --device cpu --epochs 1 --hidden 32 --batch 256 --val 0 --save " + q(model));
  ASSERT_EQ(t.exit_code, 0) << t.err;
  EXPECT_TRUE(contains(t.err, "model saved to"));
  const SavedModel saved = load_model(model);
  EXPECT_EQ(saved.spec.hidden, std::vector<int>{32});

  const ExeRun e = run_exe("eval --device cpu --model " + q(model) + " --json " + q(dir / "eval.json"));
  ASSERT_EQ(e.exit_code, 0) << e.err;
  EXPECT_TRUE(contains(e.err, "accuracy"));
  EXPECT_TRUE(contains(e.err, "true\\pred"));
  std::ifstream in(dir / "eval.json");
  const nlohmann::json j = nlohmann::json::parse(in);
  EXPECT_GE(j["test_acc"].get<double>(), 0.85);  // one epoch of a 32-wide net: ~93%
  EXPECT_EQ(j["count"], 10000);
  ASSERT_EQ(j["confusion"].size(), 10u);
  unsigned long long total = 0, errors = 0;
  for (const auto& row : j["confusion"]) {
    ASSERT_EQ(row.size(), 10u);
    for (const auto& c : row) total += c.get<unsigned long long>();
  }
  for (const auto& c : j["per_class_errors"]) errors += c.get<unsigned long long>();
  EXPECT_EQ(total, 10000u);
  EXPECT_NEAR(static_cast<double>(errors) / 10000.0, 1.0 - j["test_acc"].get<double>(), 1e-12);

  // predict: the executable agrees with the library on the same saved model.
  DigitClassifier clf(saved);
  std::vector<fs::path> images;
  for (int i = 0; i < 3; ++i) {
    images.push_back(draw(dir, "d" + std::to_string(i), mnist_digit(i), Kind::palette));
    images.push_back(draw(dir, "d" + std::to_string(i), mnist_digit(i), Kind::jpeg_rgb));
  }
  std::string args;
  for (const auto& f : images) args += " " + q(f);
  const ExeRun p = run_exe("predict --model " + q(model) + " --show " + q(dir / "shown") + args);
  ASSERT_EQ(p.exit_code, 0) << p.err;
  std::string expect;
  for (const auto& f : images) {
    const DigitImage d = prepare_digit(read_image(f));
    const Prediction pr = clf.classify(d);
    char pct[32];
    std::snprintf(pct, sizeof pct, "%.1f", 100.0 * pr.prob);
    expect += f.string() + ": " + std::to_string(pr.digit) + (pr.prob < 0.7f ? "?" : "") + " (" + pct + "%)\n";
    // --show wrote the 28x28 the model saw.
    const GreyImage shown = read_image(dir / "shown" / (f.stem().string() + ".png"));
    ASSERT_EQ(shown.width, 28);
    ASSERT_EQ(shown.height, 28);
    for (std::size_t k = 0; k < d.size(); ++k) ASSERT_EQ(std::lround(shown.grey[k] * 255), d[k]) << f << " pixel " << k;
  }
  EXPECT_EQ(p.out, expect);

  const ExeRun pj = run_exe("predict --json --model " + q(model) + " " + q(images[0]));
  ASSERT_EQ(pj.exit_code, 0) << pj.err;
  const nlohmann::json line = nlohmann::json::parse(pj.out);
  EXPECT_EQ(line["file"], images[0].string());
  EXPECT_EQ(line["digit"], clf.classify(prepare_digit(read_image(images[0]))).digit);
  ASSERT_EQ(line["probs"].size(), 10u);
  double sum = 0;
  for (const auto& v : line["probs"]) sum += v.get<double>();
  EXPECT_NEAR(sum, 1.0, 1e-4);  // rounded to 6 decimals each
  EXPECT_EQ(line["prob"], line["probs"][line["digit"].get<int>()]);
  fs::remove_all(dir);
}

TEST(ModelsExe, RefusalsExitWithTheRightCodeAndMessage) {
  const fs::path dir = fresh_dir("exe_refusals");
  ModelSpec spec;
  spec.hidden = {8};
  std::vector<float> params(ParamLayout(spec).size);
  init_params(spec, ParamLayout(spec), 1, params.data());
  const fs::path model = dir / "m.bin";
  save_model(model, spec, params);
  Bytes corrupt = read_bytes(model);
  corrupt[100] ^= 1;
  write_bytes(dir / "corrupt.bin", corrupt);
  const fs::path good = draw(dir, "seven", mnist_digit(0), Kind::rgb);
  ASSERT_TRUE(write_png(dir / "blank.png", 40, 30, 8, PNG_COLOR_TYPE_GRAY, Bytes(1200, 255)));
  write_bytes(dir / "notes.txt", Bytes{'h', 'i', '\n'});

  struct Case {
    std::string args;
    int code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"eval", 2, "--model"},
      {"eval --model " + q(dir / "missing.bin"), 1, "missing.bin"},
      {"eval --model " + q(dir / "corrupt.bin"), 1, "checksum mismatch: the file is corrupt"},
      {"eval --model " + q(good), 1, "not an mnist_gpu model file"},
      {"eval --model " + q(model) + " --batch 0", 2, "--batch"},
      {"eval --model " + q(model) + " --device gpu", 2, "--device"},
      {"eval --model --json", 2, "--model"},
      {"eval --model " + q(model) + " --data /nonexistent/mnist_gpu", 1, "/nonexistent/mnist_gpu"},
      {"predict --model " + q(model), 2, "images"},
      {"predict " + q(good), 2, "--model"},
      {"predict --model " + q(dir / "corrupt.bin") + " " + q(good), 1, "checksum mismatch"},
      {"predict --model " + q(model) + " " + q(dir / "notes.txt"), 1, "not an image"},
      {"predict --model " + q(model) + " " + q(dir / "blank.png"), 1, "no ink found"},
      {"train --epochs 1 --save " + q(dir / "no" / "such" / "m.bin"), 1, "cannot save the model here"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.args);
    const ExeRun r = run_exe(c.args);
    EXPECT_EQ(r.exit_code, c.code) << r.err;
    EXPECT_TRUE(contains(r.err, c.message));
    EXPECT_EQ(r.err.find("epoch"), std::string::npos) << "refused only after training:\n" << r.err;
  }

  // One bad image among good ones: the good ones are still classified, the exit code is 1.
  const ExeRun mixed = run_exe("predict --model " + q(model) + " " + q(dir / "notes.txt") + " " + q(good));
  EXPECT_EQ(mixed.exit_code, 1);
  EXPECT_TRUE(contains(mixed.out, good.string() + ": "));
  EXPECT_TRUE(contains(mixed.err, (dir / "notes.txt").string()));
  EXPECT_TRUE(contains(mixed.err, "1 of 2 images could not be classified"));

  if (!probe_device().usable) {
    const ExeRun r = run_exe("eval --device cuda --model " + q(model));
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_TRUE(contains(r.err, "--device cuda: no usable GPU"));
    const ExeRun a = run_exe("eval --device auto --model " + q(model));
    EXPECT_EQ(a.exit_code, 0) << a.err;
    EXPECT_TRUE(contains(a.err, "evaluating on the CPU"));
  }
  fs::remove_all(dir);
}
