// The deformations of --augment (augment.hpp): identity at zero, a known rotation, the smoothing
// kernel, the pixel range, determinism per (seed, epoch, sample) whatever the batch, the presets
// and flags, the report's grid, a resumed run, and a short training run that still learns.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mnist_gpu/augment.hpp"
#include "mnist_gpu/backend.hpp"
#include "mnist_gpu/cli.hpp"
#include "mnist_gpu/dataset.hpp"
#include "mnist_gpu/error.hpp"
#include "mnist_gpu/report.hpp"
#include "mnist_gpu/rng.hpp"
#include "mnist_gpu/row_workers.hpp"
#include "mnist_gpu/settings.hpp"
#include "mnist_gpu/step_program.hpp"
#include "mnist_gpu/train.hpp"
#include "test_paths.hpp"

using namespace mnist_gpu;
namespace fs = std::filesystem;
using mnist_gpu::test::TempDir;

namespace {

constexpr int kPx = kAugmentPixels;
constexpr double kPi = 3.14159265358979323846;

// `n` images of seeded noise in [0, 1], with exact 0s and 1s among them (extreme values).
std::vector<float> noise_images(int n, std::uint64_t seed) {
  Rng rng(seed, RngStream::test_data);
  std::vector<float> x(static_cast<std::size_t>(n) * kPx);
  for (float& v : x) {
    const double u = rng.uniform();
    v = u < 0.3 ? 0.0f : u > 0.8 ? 1.0f : static_cast<float>(rng.uniform());
  }
  return x;
}

AugmentConfig zero_params(AugmentKind kind) {
  AugmentConfig a;
  a.kind = kind;
  return a;
}

std::vector<float> deform(const std::vector<float>& in, const AugmentPlan& plan, const std::vector<std::uint32_t>& idx,
                          const std::vector<std::uint8_t>& labels, long long epoch) {
  std::vector<float> out(in.size(), -1.0f);
  cpu::augment(in.data(), out.data(), static_cast<int>(idx.size()), plan, idx.data(), labels.data(), epoch);
  return out;
}

std::vector<std::string> split_words(const std::string& s) {
  std::vector<std::string> w;
  std::string cur;
  for (char c : s) {
    if (c == ' ') {
      if (!cur.empty()) w.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) w.push_back(cur);
  return w;
}

TrainConfig parse(const std::string& flags) { return parse_train_flags(split_words(flags)); }

std::string usage_error(const std::string& flags) {
  try {
    parse(flags);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "(accepted)";
}

std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

class NullObserver : public TrainObserver {};

std::vector<nlohmann::json> json_lines(const fs::path& p) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(p);
  for (std::string l; std::getline(in, l);) lines.push_back(nlohmann::json::parse(l));
  return lines;
}

}  // namespace

TEST(Augment, EveryParameterZeroIsTheIdentityBitForBit) {
  const std::vector<float> in = noise_images(5, 1);
  const std::vector<std::uint32_t> idx{0, 17, 4, 59999, 3};
  const std::vector<std::uint8_t> labels{1, 7, 0, 9, 3};
  for (AugmentKind kind : {AugmentKind::affine, AugmentKind::elastic, AugmentKind::ciresan}) {
    SCOPED_TRACE(to_string(kind));
    AugmentConfig a = zero_params(kind);
    a.sigma = 4.0f;  // smoothing a zero field (alpha 0) still moves nothing
    const std::vector<float> out = deform(in, make_augment_plan(a, 42), idx, labels, 3);
    EXPECT_EQ(std::memcmp(out.data(), in.data(), in.size() * sizeof(float)), 0);
  }
}

TEST(Augment, ARotationBy90DegreesTurnsAPixelAndABarClockwise) {
  // A pixel 6.5 right of and 3.5 above the centre (13.5, 13.5): (20, 10). Turned clockwise as
  // displayed (y down) by 90 degrees it lies 3.5 right of and 6.5 below the centre: (17, 20).
  std::vector<float> in(kPx, 0.0f), out(kPx);
  in[10 * kAugmentSide + 20] = 1.0f;
  const AugmentAffine m = augment_matrix(static_cast<float>(kPi / 2), 1.0f, 1.0f, 0.0f);
  for (int y = 0; y < kAugmentSide; ++y)
    for (int x = 0; x < kAugmentSide; ++x) out[static_cast<std::size_t>(y * kAugmentSide + x)] = augment_pixel(in.data(), m, x, y, 0, 0);
  for (int i = 0; i < kPx; ++i) EXPECT_NEAR(out[static_cast<std::size_t>(i)], i == 20 * kAugmentSide + 17 ? 1.0f : 0.0f, 1e-5f) << i;
  // A horizontal bar through the centre row pair becomes a vertical one; -90 degrees gives the same bar.
  std::vector<float> bar(kPx, 0.0f);
  for (int x = 4; x < 24; ++x) bar[static_cast<std::size_t>(13 * kAugmentSide + x)] = bar[static_cast<std::size_t>(14 * kAugmentSide + x)] = 1.0f;
  for (float angle : {static_cast<float>(kPi / 2), static_cast<float>(-kPi / 2)}) {
    const AugmentAffine r = augment_matrix(angle, 1.0f, 1.0f, 0.0f);
    for (int y = 0; y < kAugmentSide; ++y)
      for (int x = 0; x < kAugmentSide; ++x) {
        const float want = (x == 13 || x == 14) && y >= 4 && y < 24 ? 1.0f : 0.0f;
        EXPECT_NEAR(augment_pixel(bar.data(), r, x, y, 0, 0), want, 1e-5f) << x << "," << y;
      }
  }
  // Scaling by 2 about the centre: output pixel (14, 14), at offset (0.5, 0.5) from the centre,
  // samples (13.75, 13.75): the ink at (14, 13) weighs 0.75 along x and 0.25 along y.
  std::vector<float> quad(kPx, 0.0f);
  quad[13 * kAugmentSide + 14] = 1.0f;
  EXPECT_NEAR(augment_pixel(quad.data(), augment_matrix(0, 2, 2, 0), 14, 14, 0, 0), 0.25f * 0.75f, 1e-6f);
}

TEST(Augment, TheSmoothingKernelSumsToOneIsSymmetricAndTruncatedAtThreeSigma) {
  for (float sigma : {0.5f, 4.0f, 6.0f, 9.0f, 20.0f}) {
    SCOPED_TRACE(sigma);
    AugmentConfig a = augment_preset(AugmentKind::elastic);
    a.sigma = sigma;
    const AugmentPlan p = make_augment_plan(a, 1);
    EXPECT_EQ(p.radius, std::min(kAugmentMaxRadius, static_cast<int>(std::ceil(3 * sigma))));
    double sum = 0;
    for (int k = 0; k <= 2 * p.radius; ++k) {
      sum += p.weights[k];
      EXPECT_EQ(p.weights[k], p.weights[2 * p.radius - k]);
      if (k < p.radius) {
        EXPECT_LT(p.weights[k], p.weights[k + 1]);
      }
    }
    EXPECT_NEAR(sum, 1.0, 1e-6);
  }
  AugmentConfig a = augment_preset(AugmentKind::elastic);
  a.sigma = 0;
  const AugmentPlan p = make_augment_plan(a, 1);
  EXPECT_EQ(p.radius, 0);
  EXPECT_EQ(p.weights[0], 1.0f);
}

TEST(Augment, PixelsStayInRangeAndTheImagesDoChange) {
  const int n = 40;
  const std::vector<float> in = noise_images(n, 2);
  std::vector<std::uint32_t> idx(n);
  std::vector<std::uint8_t> labels(n);
  for (int r = 0; r < n; ++r) {
    idx[static_cast<std::size_t>(r)] = static_cast<std::uint32_t>(r * 7);
    labels[static_cast<std::size_t>(r)] = static_cast<std::uint8_t>(r % 10);
  }
  for (AugmentKind kind : {AugmentKind::affine, AugmentKind::elastic, AugmentKind::ciresan}) {
    SCOPED_TRACE(to_string(kind));
    AugmentConfig a = augment_preset(kind);
    if (kind == AugmentKind::ciresan) a.alpha = 1000.0f;  // extreme: displacements past the border
    const std::vector<float> out = deform(in, make_augment_plan(a, 7), idx, labels, 1);
    double moved = 0;
    for (std::size_t i = 0; i < out.size(); ++i) {
      ASSERT_GE(out[i], 0.0f) << i;
      ASSERT_LE(out[i], 1.0f) << i;
      moved += std::fabs(out[i] - in[i]);
    }
    EXPECT_GT(moved / static_cast<double>(out.size()), 0.05) << "the deformation changed almost nothing";
  }
  // All ink: interpolation between 1s stays exactly 1 where the source is covered.
  std::vector<float> ones(kPx, 1.0f), out(kPx);
  const AugmentPlan plan = make_augment_plan(augment_preset(AugmentKind::ciresan), 3);
  std::vector<float> work(3 * kPx);
  cpu::augment_image(ones.data(), out.data(), plan, augment_key(plan, 1, 0), 3, work.data());
  for (float v : out) {
    EXPECT_GE(v, 0.0f);
    EXPECT_LE(v, 1.0f);
  }
  EXPECT_NEAR(out[14 * kAugmentSide + 14], 1.0f, 1e-6f) << "the centre maps inside the image";
}

TEST(Augment, ASampleIsDeformedTheSameInAnyBatchAndDifferentlyPerEpochAndSeed) {
  const std::vector<float> all = noise_images(3, 4);  // samples 5, 9, 2 of some training set
  const std::vector<std::uint32_t> idx{5, 9, 2};
  const std::vector<std::uint8_t> labels{4, 7, 1};
  const AugmentPlan plan = make_augment_plan(augment_preset(AugmentKind::ciresan), 11);
  const std::vector<float> batch = deform(all, plan, idx, labels, 2);
  // Sample 9 alone, and in another batch in another position.
  const std::vector<float> nine(all.begin() + kPx, all.begin() + 2 * kPx);
  const std::vector<float> alone = deform(nine, plan, {9}, {7}, 2);
  EXPECT_TRUE(std::equal(alone.begin(), alone.end(), batch.begin() + kPx));
  std::vector<float> other(all.begin() + kPx, all.begin() + 2 * kPx);
  other.insert(other.end(), all.begin(), all.begin() + kPx);
  const std::vector<float> swapped = deform(other, plan, {9, 5}, {7, 4}, 2);
  EXPECT_TRUE(std::equal(swapped.begin(), swapped.begin() + kPx, batch.begin() + kPx));
  EXPECT_TRUE(std::equal(swapped.begin() + kPx, swapped.end(), batch.begin()));
  // Another epoch, another seed, another index: other images.
  EXPECT_NE(deform(nine, plan, {9}, {7}, 3), alone);
  EXPECT_NE(deform(nine, make_augment_plan(augment_preset(AugmentKind::ciresan), 12), {9}, {7}, 2), alone);
  EXPECT_NE(deform(nine, plan, {10}, {7}, 2), alone);
}

// The CPU backend splits a batch's deformations between threads (as many as OpenBLAS's): every
// split gives the images a single thread gives, bit for bit, ragged batches included.
TEST(Augment, SplitBetweenThreadsTheImagesAreTheSameBitForBit) {
  for (int rows : {1, 17, 33, 128, 131}) {
    const std::vector<float> in = noise_images(rows, 8);
    std::vector<std::uint32_t> idx(static_cast<std::size_t>(rows));
    std::vector<std::uint8_t> labels(static_cast<std::size_t>(rows));
    for (int r = 0; r < rows; ++r) {
      idx[static_cast<std::size_t>(r)] = static_cast<std::uint32_t>(59999 - 13 * r);
      labels[static_cast<std::size_t>(r)] = static_cast<std::uint8_t>((r * 3) % 10);
    }
    for (AugmentKind kind : {AugmentKind::affine, AugmentKind::elastic, AugmentKind::ciresan}) {
      const AugmentPlan plan = make_augment_plan(augment_preset(kind), 5);
      const std::vector<float> one = deform(in, plan, idx, labels, 4);
      for (int threads : {2, 3, 5}) {
        SCOPED_TRACE(testing::Message() << rows << " rows, " << to_string(kind) << ", " << threads << " threads");
        RowWorkers workers(threads);
        std::vector<float> split(in.size(), -1.0f);
        cpu::augment(in.data(), split.data(), rows, plan, idx.data(), labels.data(), 4, workers);
        ASSERT_EQ(std::memcmp(split.data(), one.data(), one.size() * sizeof(float)), 0);
      }
    }
  }
}

// The CPU backend with its deformations split between 1 and 3 threads trains the same model, bit
// for bit (the products' own threads, OpenBLAS's, are the same in both).
TEST(Augment, TheCpuBackendTrainsTheSameWithAnyNumberOfDeformationThreads) {
  static const MnistFiles f = load_mnist_dir(mnist_gpu::test::data_dir());
  std::vector<std::uint32_t> rows(1000);
  for (std::size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<std::uint32_t>(i);
  const Dataset small = subset(f.train, rows);
  TrainConfig cfg;
  cfg.model.hidden = {32};
  cfg.epochs = 2;
  cfg.batch = 100;  // with 3 threads: parts of 34, 33 and 33 images
  cfg.seed = 4;
  cfg.augment = augment_preset(AugmentKind::ciresan);
  NullObserver obs;
  std::vector<float> params[2];
  double loss[2];
  const int threads[2] = {1, 3};
  for (int run = 0; run < 2; ++run) {
    auto be = make_cpu_backend(cfg.model, cfg.optimizer, cfg.batch, cfg.seed, cfg.augment, threads[run]);
    const TrainResult r = train(cfg, TrainData{small, small, small}, *be, obs);
    params[run] = be->get_params();
    loss[run] = r.epochs.back().train_loss;
  }
  ASSERT_EQ(params[0].size(), params[1].size());
  EXPECT_EQ(0, std::memcmp(params[0].data(), params[1].data(), params[0].size() * sizeof(float)));
  EXPECT_EQ(loss[0], loss[1]);
}

TEST(Augment, CiresanRotatesOnesAndSevensHalfAsFar) {
  AugmentConfig a = zero_params(AugmentKind::ciresan);
  a.rotate = 15.0f;
  const AugmentPlan p = make_augment_plan(a, 5);
  EXPECT_FLOAT_EQ(p.rotate_17, 0.5f * p.rotate);
  EXPECT_EQ(make_augment_plan([] { AugmentConfig b = zero_params(AugmentKind::affine); b.rotate = 15; return b; }(), 5).rotate_17,
            p.rotate);
  for (std::uint64_t i = 0; i < 20; ++i) {
    const std::uint64_t key = augment_key(p, 1, i);
    const float u = augment_uniform(key, 0);
    for (int label : {0, 1, 3, 7}) {
      const float angle = (label == 1 || label == 7 ? p.rotate_17 : p.rotate) * u;
      const AugmentAffine want = augment_matrix(angle, 1.0f, 1.0f, 0.0f), got = augment_affine(p, key, label);
      EXPECT_EQ(got.m00, want.m00);
      EXPECT_EQ(got.m01, want.m01);
      EXPECT_EQ(got.m10, want.m10);
      EXPECT_EQ(got.m11, want.m11);
    }
  }
}

TEST(Augment, DrawsAreUniformInMinusOneToOne) {
  double sum = 0, lo = 1, hi = -1;
  const int n = 100000;
  for (int j = 0; j < n; ++j) {
    const float u = augment_uniform(0x1234, static_cast<std::uint64_t>(j));
    ASSERT_GE(u, -1.0f);
    ASSERT_LT(u, 1.0f);
    sum += u;
    lo = std::min<double>(lo, u);
    hi = std::max<double>(hi, u);
  }
  EXPECT_NEAR(sum / n, 0.0, 0.01);
  EXPECT_LT(lo, -0.999);
  EXPECT_GT(hi, 0.999);
}

TEST(Augment, PresetsGiveTheDefaultsAndFlagsOverrideThem) {
  const TrainConfig none = parse("");
  EXPECT_FALSE(none.augment.on());
  EXPECT_EQ(none.augment.rotate, 0.0f);
  const TrainConfig c = parse("--augment ciresan");
  EXPECT_EQ(c.augment.kind, AugmentKind::ciresan);
  EXPECT_EQ(c.augment.rotate, 15.0f);
  EXPECT_EQ(c.augment.scale, 15.0f);
  EXPECT_EQ(c.augment.shear, 15.0f);
  EXPECT_EQ(c.augment.sigma, 6.0f);
  EXPECT_EQ(c.augment.alpha, 36.0f);
  const TrainConfig e = parse("--augment elastic");
  EXPECT_EQ(e.augment.rotate, 0.0f);
  EXPECT_EQ(e.augment.sigma, 4.0f);
  EXPECT_EQ(e.augment.alpha, 34.0f);
  const TrainConfig f = parse("--augment affine --aug-rotate 10 --aug-alpha 20 --aug-sigma 5");
  EXPECT_EQ(f.augment.rotate, 10.0f);
  EXPECT_EQ(f.augment.scale, 15.0f);
  EXPECT_EQ(f.augment.alpha, 20.0f);
  EXPECT_EQ(f.augment.sigma, 5.0f);
  // The printed flags carry them (resume commands, sweeps), and read back to the same settings.
  const std::string flags = settings_as_flags(f);
  EXPECT_NE(flags.find("--augment affine --aug-rotate 10 --aug-scale 15 --aug-shear 15 --aug-sigma 5 --aug-alpha 20"),
            std::string::npos)
      << flags;
  EXPECT_EQ(config_to_json(parse(flags)), config_to_json(f));
  EXPECT_EQ(settings_as_flags(none).find("--aug-"), std::string::npos) << "no parameter without a deformation";
  // Inert parameters are refused, naming the flag and why.
  EXPECT_NE(usage_error("--aug-rotate 5").find("--aug-rotate: sets a deformation, and --augment is none"),
            std::string::npos);
  EXPECT_NE(usage_error("--augment affine --aug-sigma 3").find("--aug-sigma: smooths the elastic field"), std::string::npos);
  EXPECT_NE(usage_error("--augment affine --aug-scale 100").find("--aug-scale"), std::string::npos);
  EXPECT_NE(usage_error("--augment sideways").find("--augment"), std::string::npos);
}

TEST(Augment, TheStepProgramDeformsOnlyWhenAsked) {
  ModelSpec spec;
  EXPECT_EQ(make_step_program(spec, false).size() + 1, make_step_program(spec, true).size());
  EXPECT_EQ(make_step_program(spec, true)[1].kind, StageKind::augment);
}

TEST(Augment, ReportGridShowsEachDigitThenItsDeformations) {
  Dataset d;
  d.count = 3;
  d.rows = d.cols = 28;
  d.images.assign(3 * kPx, 0);
  for (int i = 0; i < 3; ++i)
    for (int y = 6; y < 22; ++y) d.images[static_cast<std::size_t>(i * kPx + y * 28 + 12 + i)] = 255;  // a vertical stroke
  d.labels = {1, 4, 7};
  const GreyPixels g = deformations_grid(d, augment_preset(AugmentKind::ciresan), 1, kDeformedDigits, 4);
  const int side = 56, gap = 4, split = 16;
  EXPECT_EQ(g.width, gap + (side + gap) * 5 + split);
  EXPECT_EQ(g.height, gap + (side + gap) * 3);  // only 3 digits exist
  auto cell = [&](int row, int col) {
    std::vector<std::uint8_t> px;
    const int x0 = gap + (col == 0 ? 0 : split + col * (side + gap)), y0 = gap + row * (side + gap);
    for (int y = 0; y < side; ++y)
      for (int x = 0; x < side; ++x) px.push_back(g.pixels[static_cast<std::size_t>(y0 + y) * g.width + x0 + x]);
    return px;
  };
  for (int r = 0; r < 3; ++r) {
    const std::vector<std::uint8_t> original = cell(r, 0);
    EXPECT_EQ(original[static_cast<std::size_t>(20 * side + 2 * (12 + r))], 0) << "ink of the stroke at 2x";
    for (int c = 1; c <= 4; ++c) {
      const std::vector<std::uint8_t> deformed = cell(r, c);
      EXPECT_NE(deformed, original) << r << "," << c;
      EXPECT_GT(std::count_if(deformed.begin(), deformed.end(), [](std::uint8_t v) { return v < 128; }), 20);
    }
  }
  EXPECT_EQ(deformations_grid(d, augment_preset(AugmentKind::ciresan), 1, kDeformedDigits, 4).pixels, g.pixels);
}

TEST(AugmentExe, ReportShowsTheDeformedDigitsOnlyWithAugment) {
  const TempDir dir;
  const std::string base = "train --device cpu --hidden 8 --epochs 1 --limit 300 --val 0 --batch 50 --data " +
                           q(mnist_gpu::test::data_dir());
  auto r = mnist_gpu::test::run_exe(base + " --augment elastic --report " + q(dir / "a"));
  ASSERT_EQ(r.code, 0) << r.out;
  std::ifstream in(dir / "a" / "report.html");
  const std::string html((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(html.find("<section id=\"deformations\"><h2>What the network saw</h2>"), std::string::npos);
  EXPECT_NE(html.find("<img id=\"deformations-grid\" src=\"data:image/png;base64,iVBORw0KGgo"), std::string::npos);
  EXPECT_NE(html.find("--augment elastic"), std::string::npos);
  r = mnist_gpu::test::run_exe(base + " --report " + q(dir / "b"));
  ASSERT_EQ(r.code, 0) << r.out;
  std::ifstream in2(dir / "b" / "report.html");
  const std::string plain((std::istreambuf_iterator<char>(in2)), std::istreambuf_iterator<char>());
  EXPECT_EQ(plain.find("deformations"), std::string::npos);
}

// Interrupted after its first step (a signal on entering training), then resumed: the run ends
// bit-identical to an uninterrupted one, its deformations included.
TEST(AugmentExe, AnInterruptedAndResumedRunEndsBitIdentical) {
  const TempDir dir;
  const std::string run = "train --device cpu --hidden 16 --epochs 2 --limit 600 --val 200 --batch 100 --seed 3 "
                          "--augment ciresan --aug-rotate 20 --data " +
                          q(mnist_gpu::test::data_dir());
  auto r = mnist_gpu::test::run_exe(run + " --metrics " + q(dir / "clean.jsonl"));
  ASSERT_EQ(r.code, 0) << r.out;
  ::setenv("MNIST_GPU_TEST_SIGNAL_AT", "train", 1);
  r = mnist_gpu::test::run_exe(run + " --metrics " + q(dir / "cut.jsonl") + " --checkpoint " + q(dir / "ck.ckpt"));
  ::unsetenv("MNIST_GPU_TEST_SIGNAL_AT");
  ASSERT_EQ(r.code, 130) << r.out;
  r = mnist_gpu::test::run_exe("train --resume " + q(dir / "ck.ckpt") + " --metrics " + q(dir / "cut.jsonl") +
                               " --data " + q(mnist_gpu::test::data_dir()));
  ASSERT_EQ(r.code, 0) << r.out;
  const std::vector<nlohmann::json> a = json_lines(dir / "clean.jsonl"), b = json_lines(dir / "cut.jsonl");
  ASSERT_EQ(a.size(), 3u);
  ASSERT_EQ(b.size(), 3u);
  for (std::size_t i = 0; i < 2; ++i)
    for (const char* k : {"train_loss", "train_acc", "val_loss", "val_acc"}) EXPECT_EQ(a[i][k], b[i][k]) << i << k;
  for (const char* k : {"test_loss", "test_acc", "confusion", "flags"}) EXPECT_EQ(a[2][k], b[2][k]) << k;
  // The resumed run's settings, read from the checkpoint, carry the deformations.
  EXPECT_NE(b[2]["flags"].get<std::string>().find("--augment ciresan --aug-rotate 20 --aug-scale 15"), std::string::npos)
      << b[2]["flags"];
  // A resume that changes a deformation is refused, naming it.
  r = mnist_gpu::test::run_exe("train --resume " + q(dir / "ck.ckpt") + " --aug-rotate 10 --data " +
                               q(mnist_gpu::test::data_dir()));
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--aug-rotate 10 differs from the checkpoint's 20"), std::string::npos) << r.out;
}

// A short CPU run with affine deformations still learns; its training accuracy (on deformed
// digits) is below the undeformed run's, which shows the deformations were applied.
TEST(AugmentExe, TrainingWithAffineDeformationsStaysSane) {
  const TempDir dir;
  const std::string run = "train --device cpu --hidden 64 --epochs 2 --limit 3000 --val 0 --batch 64 --data " +
                          q(mnist_gpu::test::data_dir());
  auto r = mnist_gpu::test::run_exe(run + " --augment affine --metrics " + q(dir / "aug.jsonl"));
  ASSERT_EQ(r.code, 0) << r.out;
  r = mnist_gpu::test::run_exe(run + " --metrics " + q(dir / "plain.jsonl"));
  ASSERT_EQ(r.code, 0) << r.out;
  const std::vector<nlohmann::json> a = json_lines(dir / "aug.jsonl"), p = json_lines(dir / "plain.jsonl");
  ASSERT_EQ(a.size(), 3u);
  ASSERT_EQ(p.size(), 3u);
  EXPECT_GT(a[2]["test_acc"].get<double>(), 0.85);
  EXPECT_LT(a[1]["train_acc"].get<double>(), p[1]["train_acc"].get<double>());
}
