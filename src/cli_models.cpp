// The `eval` and `predict` commands: a saved model evaluated on the test set on the chosen device,
// or classifying digit images. Human output to stderr (spdlog); predictions to stdout.
#include "mnist_gpu/cli_models.hpp"

#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "mnist_gpu/backend.hpp"
#include "mnist_gpu/cli.hpp"
#include "mnist_gpu/dataset.hpp"
#include "mnist_gpu/error.hpp"
#include "mnist_gpu/file_io.hpp"
#include "mnist_gpu/image_io.hpp"
#include "mnist_gpu/image_prep.hpp"
#include "mnist_gpu/model_io.hpp"
#include "mnist_gpu/predict.hpp"

namespace mnist_gpu {
namespace {

using json = nlohmann::json;

std::string describe(const ModelSpec& s) {
  std::string shape = std::to_string(s.inputs);
  for (int w : s.hidden) shape += "-" + std::to_string(w);
  return shape + "-" + std::to_string(s.outputs) + ", " + to_string(s.activation) + ", " + to_string(s.loss) + " loss";
}

void log_confusion(const EvalResult& r) {
  const auto errors = r.per_class_errors();
  spdlog::info("confusion (rows: true digit, columns: predicted)");
  std::string head = "  true\\pred";
  for (int p = 0; p < 10; ++p) head += fmt::format("{:>6}", p);
  spdlog::info("{}  errors", head);
  for (int t = 0; t < 10; ++t) {
    std::string row = fmt::format("  {:>9}", t);
    for (int p = 0; p < 10; ++p) row += fmt::format("{:>6}", r.confusion[static_cast<std::size_t>(t * 10 + p)]);
    spdlog::info("{}  {:>6}", row, errors[static_cast<std::size_t>(t)]);
  }
}

// `text` with every byte that is not part of valid UTF-8 written as the four characters \xNN, so
// that a file name in another encoding can stand in JSON (which must be UTF-8) and stay distinct.
std::string escape_utf8(const std::string& text) {
  std::string out;
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  for (std::size_t i = 0; i < n;) {
    const unsigned c = p[i];
    // Length of a well-formed sequence starting at i (RFC 3629: no overlongs, no surrogates,
    // nothing past U+10FFFF), or 0.
    std::size_t len = 0;
    if (c < 0x80) len = 1;
    else if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) len = 3;
    else if (c >= 0xF0 && c <= 0xF4) len = 4;
    if (len > 1) {
      if (i + len > n) len = 0;
      for (std::size_t k = 1; k < len; ++k)
        if ((p[i + k] & 0xC0) != 0x80) len = 0;
      if (len == 3 && ((c == 0xE0 && p[i + 1] < 0xA0) || (c == 0xED && p[i + 1] > 0x9F))) len = 0;
      if (len == 4 && ((c == 0xF0 && p[i + 1] < 0x90) || (c == 0xF4 && p[i + 1] > 0x8F))) len = 0;
    }
    if (len == 0) {
      out += fmt::format("\\x{:02x}", c);
      ++i;
    } else {
      out.append(text, i, len);
      i += len;
    }
  }
  return out;
}

// File names for --show: "<stem>.png", or "<stem>-2.png", "-3" ... when that name was taken by an
// earlier image of the same run (a/3.png and b/3.png, or 3.png and 3.jpg).
class UniqueNames {
 public:
  std::string take(const std::string& stem) {
    std::string name = stem + ".png";
    for (int k = 2; !taken_.insert(name).second; ++k) name = stem + "-" + std::to_string(k) + ".png";
    return name;
  }

 private:
  std::set<std::string> taken_;
};

}  // namespace

void add_eval_options(CLI::App& app, EvalArgs& a) {
  app.add_option("--model", a.model, "a model saved by `train --save`")->required();
  app.add_option("--data", a.data, "MNIST-format directory (default: $MNIST_GPU_DATA, else the bundled data/mnist)");
  app.add_option("--device", a.device, "auto | cpu | cuda (auto: a usable GPU, else the CPU)")->capture_default_str();
  app.add_option("--batch", a.batch, "evaluation batch size, 1..65536")->capture_default_str();
  app.add_option("--json", a.json, "also write the results as JSON to this file (- for stdout)");
  app.add_option("--predictions", a.predictions,
                 "write one JSON line per test image to this file: index, label, digit, probs (10), from the CPU "
                 "forward pass");
}

void add_predict_options(CLI::App& app, PredictArgs& a) {
  app.add_option("--model", a.model, "a model saved by `train --save`")->required();
  app.add_flag("--json", a.json, "one JSON object per line: file, digit, prob, low_confidence, probs (10)");
  app.add_option("--show", a.show, "write the 28x28 image the model saw to DIR/<name>.png (-2, -3 ... when names repeat)");
  app.add_option("--min-prob", a.min_prob, "flag predictions below this probability as low confidence ('?')")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("images", a.images, "PNG or JPEG images of single digits")->required();
}

int run_eval(const EvalArgs& a) {
  refuse_flag_values({{"--model", &a.model}, {"--data", &a.data}, {"--device", &a.device},
                      {"--batch", &a.batch}, {"--json", &a.json}, {"--predictions", &a.predictions}});
  // --device and --batch mean what they mean for train, refusals included.
  TrainArgs targs;
  targs.set("--device", a.device);
  targs.set("--batch", a.batch);
  targs.set("--data", a.data);
  TrainConfig cfg = to_train_config(targs);

  // Before any work; never over the model, nor one output over the other.
  // "--json -" is stdout, which then holds that JSON and nothing else.
  const bool json_stdout = a.json == "-";
  check_distinct_paths({{"--model", a.model}, {"--json", json_stdout ? std::string() : a.json},
                        {"--predictions", a.predictions}});
  if (!a.json.empty() && !json_stdout) check_file_writable(a.json, "write the results");
  if (!a.predictions.empty()) check_file_writable(a.predictions, "write the predictions");
  const SavedModel model = load_model(a.model);
  if (model.spec.outputs != 10)
    throw Error(a.model + ": the model has " + std::to_string(model.spec.outputs) + " outputs; eval needs 10 classes");
  cfg.model = model.spec;
  spdlog::info("model: {} ({}, {} parameters)", a.model, describe(model.spec), model.params.size());
  std::unique_ptr<Backend> backend = choose_backend(cfg, "evaluating");
  backend->set_params(model.params);
  const std::filesystem::path dir = resolve_data_dir(cfg.data_dir);
  const MnistFiles files = load_mnist_dir(dir, model.spec.inputs);
  log_data_notes(files);

  EvalProgressLine line("test");
  const EvalResult r = backend->evaluate(files.test, [&line](long long done, long long total) { line(done, total); });
  for (const std::string& w : backend->take_warnings()) spdlog::warn("{}", w);
  const auto errors = r.per_class_errors();
  unsigned long long wrong = 0;
  for (auto e : errors) wrong += e;
  spdlog::info("test ({} from {}, {} images) on {}: accuracy {:.2f}% ({} wrong), loss {:.4f}", files.dataset_name,
               dir.string(), r.count, backend->describe(), 100 * r.acc, wrong, r.loss);
  log_confusion(r);

  if (!a.json.empty()) {
    json confusion = json::array();
    for (int t = 0; t < 10; ++t) {
      json row = json::array();
      for (int p = 0; p < 10; ++p) row.push_back(r.confusion[static_cast<std::size_t>(t * 10 + p)]);
      confusion.push_back(row);
    }
    const json out = {{"model", a.model},
                      {"dataset", files.dataset_name},
                      {"count", r.count},
                      {"test_acc", r.acc},
                      {"test_loss", r.loss},
                      {"per_class_errors", errors},
                      {"confusion", confusion},
                      {"device", backend->device()},
                      {"device_name", backend->describe()},
                      {"hidden", model.spec.hidden},
                      {"activation", to_string(model.spec.activation)},
                      {"loss", to_string(model.spec.loss)}};
    const std::string text = out.dump() + "\n";
    if (json_stdout) {
      if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size() || std::fflush(stdout) != 0)
        throw Error("--json -: writing to stdout failed");
    } else {
      write_file_atomically(a.json, std::vector<std::uint8_t>(text.begin(), text.end()));
      spdlog::info("results written to {}", a.json);
    }
  }
  if (!a.predictions.empty()) {
    // Per image, for comparisons with other runtimes: the CPU forward pass whatever --device was
    // (the digits are the first maximum of the outputs, as the confusion matrix counts them).
    const std::vector<Prediction> preds = predict_dataset(model.spec, model.params, files.test, cfg.batch);
    std::string text;
    for (std::size_t i = 0; i < preds.size(); ++i)
      text += json{{"index", i}, {"label", files.test.labels[i]}, {"digit", preds[i].digit}, {"probs", preds[i].probs}}
                  .dump() + "\n";
    write_file_atomically(a.predictions, std::vector<std::uint8_t>(text.begin(), text.end()));
    spdlog::info("predictions of the {} test images written to {}", preds.size(), a.predictions);
  }
  return 0;
}

int run_predict(const PredictArgs& a) {
  refuse_flag_values({{"--model", &a.model}, {"--show", &a.show}});
  const SavedModel model = load_model(a.model);
  DigitClassifier classifier(model);
  if (model.spec.loss == Loss::l2)
    spdlog::info("notice: {} was trained with the l2 loss; its probabilities are the softmax of its outputs", a.model);
  if (!a.show.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(a.show, ec);
    if (ec) throw Error("--show: cannot create the directory '" + a.show + "' (" + ec.message() + ")");
  }
  int failed = 0;
  UniqueNames show_names;
  for (const std::string& file : a.images) {
    DigitImage digit;
    try {
      const GreyImage img = read_image(file);  // its errors name the file
      try {
        digit = prepare_digit(img);
      } catch (const Error& e) {
        throw Error(file + ": " + e.what());
      }
    } catch (const Error& e) {
      spdlog::error("error: {}", e.what());
      ++failed;
      continue;
    }
    std::string shown;
    if (!a.show.empty()) {
      shown = (std::filesystem::path(a.show) / show_names.take(std::filesystem::path(file).stem().string())).string();
      try {
        write_grey_png(shown, kDigitSide, kDigitSide, digit.data());
      } catch (const Error& e) {  // the folder went away, filled up, or holds a non-file of that name: stop
        throw Error("--show: cannot write " + shown + " (the image of " + file + "): " + e.what() +
                    "; stopped before classifying it");
      }
    }
    const Prediction p = classifier.classify(digit);
    const bool low = p.prob < a.min_prob;
    std::string line;
    if (a.json) {
      auto rounded = [](float v) { return std::round(static_cast<double>(v) * 1e6) / 1e6; };  // 6 decimals
      json probs = json::array();
      for (float q : p.probs) probs.push_back(rounded(q));
      json out = {{"file", escape_utf8(file)}, {"digit", p.digit}, {"prob", rounded(p.prob)}, {"low_confidence", low},
                  {"probs", probs}};
      if (!shown.empty()) out["shown"] = escape_utf8(shown);
      line = out.dump();
    } else {
      line = fmt::format("{}: {}{} ({:.1f}%)", file, p.digit, low ? "?" : "", 100.0 * p.prob);
    }
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  }
  if (failed > 0) {
    spdlog::error("error: {} of {} images could not be classified", failed, a.images.size());
    return 1;
  }
  return 0;
}

}  // namespace mnist_gpu
