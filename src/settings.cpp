// The settings table (settings.hpp): every train setting defined once, and the functions that
// read it for checkpoints, --resume and flags that do nothing.
#include "mnist_gpu/settings.hpp"

#include <charconv>
#include <utility>

#include "mnist_gpu/activation.hpp"
#include "mnist_gpu/error.hpp"
#include "mnist_gpu/flag_values.hpp"
#include "mnist_gpu/json_int.hpp"

namespace mnist_gpu {
namespace {

using json = nlohmann::json;
constexpr int kMaxBatch = 65536;

// The common fields of a setting; the builders below add the typed functions.
Setting base(std::string flag, std::string key, std::string help, std::optional<std::string> def,
             std::string example, SettingScope scope, SettingRole role) {
  Setting s;
  s.flag = std::move(flag);
  s.key = std::move(key);
  s.help = std::move(help);
  s.default_text = std::move(def);
  s.example = std::move(example);
  s.scope = scope;
  s.role = role;
  return s;
}

// An integer field (int, long long) in [lo, hi]; `field` maps a config to the field.
template <class F>
Setting int_setting(Setting s, long long lo, long long hi, std::string expected, F field) {
  using T = std::decay_t<decltype(field(std::declval<TrainConfig&>()))>;
  const std::string flag = s.name(), key = s.key;
  s.parse = [=](const std::string& text, TrainConfig& c) {
    field(c) = static_cast<T>(parse_int_value(flag, text, lo, hi, expected));
  };
  s.show = [=](const TrainConfig& c) { return std::to_string(field(c)); };
  s.to_json = [=](const TrainConfig& c) { return json(field(c)); };
  s.from_json = [=](const json& j, TrainConfig& c) { field(c) = json_int<T>(j, key); };
  return s;
}

// A number used as a float (the field may be float or double) in the stated range.
template <class F>
Setting float_setting(Setting s, double lo, bool lo_open, double hi, bool hi_open, std::string expected, F field) {
  using T = std::decay_t<decltype(field(std::declval<TrainConfig&>()))>;
  const std::string flag = s.name(), key = s.key;
  s.parse = [=](const std::string& text, TrainConfig& c) {
    field(c) = parse_float_value(flag, text, lo, lo_open, hi, hi_open, expected);
  };
  s.show = [=](const TrainConfig& c) { return float_text(static_cast<float>(field(c))); };
  s.to_json = [=](const TrainConfig& c) { return json(field(c)); };
  s.from_json = [=](const json& j, TrainConfig& c) {
    if (!j.is_number()) throw Error(key + ": expected a number, found " + j.dump());
    field(c) = j.get<T>();
  };
  return s;
}

// One of named values; stored under the same names.
template <class E, class F>
Setting choice_setting(Setting s, std::vector<std::pair<std::string, E>> choices, F field) {
  const std::string flag = s.name(), key = s.key;
  s.parse = [=](const std::string& text, TrainConfig& c) { field(c) = parse_choice_value(flag, text, choices); };
  s.show = [=](const TrainConfig& c) {
    for (const auto& [name, value] : choices)
      if (value == field(c)) return name;
    return std::string("?");
  };
  s.to_json = [=](const TrainConfig& c) {
    for (const auto& [name, value] : choices)
      if (value == field(c)) return json(name);
    return json(nullptr);
  };
  s.from_json = [=](const json& j, TrainConfig& c) {
    if (j.is_string())
      for (const auto& [name, value] : choices)
        if (j.get<std::string>() == name) {
          field(c) = value;
          return;
        }
    throw Error(j.is_string() ? "unknown " + key + " '" + j.get<std::string>() + "'"
                              : key + ": expected a name, found " + j.dump());
  };
  return s;
}

// A path or directory, taken as typed; not stored.
template <class F>
Setting text_setting(Setting s, F field) {
  s.help_shows_default = false;
  s.parse = [=](const std::string& text, TrainConfig& c) { field(c) = text; };
  s.show = [=](const TrainConfig& c) { return field(c); };
  return s;
}

std::string only_for_optimizer(const TrainConfig& c, const char* what) {
  return c.optimizer.kind == OptimizerKind::momentum
             ? ""
             : std::string("applies to --optimizer momentum only, not '") + to_string(c.optimizer.kind) + "'" + what;
}

std::string gpu_only(const TrainConfig& c) {
  return c.device == DeviceChoice::cpu ? "applies to the GPU only; --device cpu ignores it" : "";
}

std::vector<Setting> make_settings() {
  using S = SettingScope;
  using R = SettingRole;
  std::vector<Setting> t;
  // --- the model and optimizer flags (add_model_options), in --help order ---
  t.push_back(text_setting(base("--data", "", "MNIST-format directory (default: $MNIST_GPU_DATA, else the bundled data/mnist)",
                                "", "/tmp/mnist", S::model, R::runtime),
                           [](auto& c) -> auto& { return c.data_dir; }));
  t.push_back(int_setting(base("--batch", "batch", "mini-batch size, 1.." + std::to_string(kMaxBatch), "128", "256",
                               S::model, R::result),
                          1, kMaxBatch, "a whole number of images in 1.." + std::to_string(kMaxBatch),
                          [](auto& c) -> auto& { return c.batch; }));
  {
    Setting s = base("--hidden", "hidden", "hidden layer widths, e.g. 512,256 (\"\" for softmax regression)", "512,256",
                     "300,100", S::model, R::result);
    s.parse = [](const std::string& text, TrainConfig& c) { c.model.hidden = parse_hidden(text); };
    s.show = [](const TrainConfig& c) { return hidden_text(c.model.hidden); };
    s.to_json = [](const TrainConfig& c) { return json(c.model.hidden); };
    s.from_json = [](const json& j, TrainConfig& c) {
      if (!j.is_array()) throw Error("hidden: expected an array, found " + j.dump());
      c.model.hidden.clear();
      for (const json& w : j) c.model.hidden.push_back(json_int<int>(w, "hidden"));
    };
    t.push_back(s);
  }
  {
    // The names come from the activation table (activation.hpp).
    std::vector<std::pair<std::string, Activation>> names;
    for (const ActivationInfo& a : kActivationTable) names.emplace_back(a.name, a.value);
    t.push_back(choice_setting<Activation>(
        base("--activation", "activation", activation_names(" | "), "relu", "tanh", S::model, R::result), names,
        [](auto& c) -> auto& { return c.model.activation; }));
  }
  t.push_back(choice_setting<Loss>(base("--loss", "loss", "xent (softmax cross-entropy) | l2 (squared error to one-hot)",
                                        "xent", "l2", S::model, R::result),
                                   {{"xent", Loss::xent}, {"l2", Loss::l2}},
                                   [](auto& c) -> auto& { return c.model.loss; }));
  t.push_back(choice_setting<OptimizerKind>(
      base("--optimizer", "optimizer", "sgd | momentum | adam | rmsprop (Keras's: rho 0.9, eps 1e-7)", "adam", "sgd",
           S::model, R::result),
      {{"sgd", OptimizerKind::sgd},
       {"momentum", OptimizerKind::momentum},
       {"adam", OptimizerKind::adam},
       {"rmsprop", OptimizerKind::rmsprop}},
      [](auto& c) -> auto& { return c.optimizer.kind; }));
  {
    Setting s = float_setting(base("--lr", "lr", "learning rate > 0 (default: sgd 0.1, momentum 0.05, adam 0.002, rmsprop 0.001)",
                                   std::nullopt, "0.003", S::model, R::result),
                              0.0, true, 1e6, false, "a number > 0 and at most 1e6",
                              [](auto& c) -> auto& { return c.optimizer.lr; });
    s.unset = [](TrainConfig& c) { c.optimizer.lr = default_lr(c.optimizer.kind); };
    t.push_back(s);
  }
  {
    Setting s = float_setting(base("--momentum", "momentum", "momentum in [0, 1) (optimizer momentum)", "0.9", "0.5",
                                   S::model, R::result),
                              0.0, false, 1.0, true, "a finite number in [0, 1)",
                              [](auto& c) -> auto& { return c.optimizer.momentum; });
    s.inert = [](const TrainConfig& c) { return only_for_optimizer(c, ""); };
    t.push_back(s);
  }
  {
    Setting s = base("--nesterov", "nesterov", "Nesterov momentum (optimizer momentum)", "off", "on", S::model, R::result);
    s.is_switch = true;
    s.help_shows_default = false;
    s.parse = [](const std::string& text, TrainConfig& c) {
      c.optimizer.nesterov = parse_choice_value<bool>("--nesterov", text, {{"on", true}, {"off", false}});
    };
    s.show = [](const TrainConfig& c) { return std::string(c.optimizer.nesterov ? "on" : "off"); };
    s.to_json = [](const TrainConfig& c) { return json(c.optimizer.nesterov); };
    s.from_json = [](const json& j, TrainConfig& c) {
      if (!j.is_boolean()) throw Error("nesterov: expected true or false, found " + j.dump());
      c.optimizer.nesterov = j.get<bool>();
    };
    s.inert = [](const TrainConfig& c) { return only_for_optimizer(c, ""); };
    t.push_back(s);
  }
  t.push_back(float_setting(base("--l2", "l2", "L2 regularisation on the weights, >= 0", "0", "1e-4", S::model, R::result),
                            0.0, false, 1e6, false, "a number in [0, 1e6]",
                            [](auto& c) -> auto& { return c.optimizer.l2; }));
  {
    Setting s = float_setting(base("--dropout", "dropout",
                                   "probability of dropping each hidden unit while training, in [0, 1)", "0", "0.25",
                                   S::model, R::result),
                              0.0, false, 1.0, true, "a probability in [0, 1)",
                              [](auto& c) -> auto& { return c.optimizer.dropout; });
    s.stored_since = 2;
    s.inert = [](const TrainConfig& c) {
      return c.optimizer.dropout > 0 && c.model.hidden.empty()
                 ? std::string("drops hidden units, and --hidden is empty (no hidden layer)")
                 : std::string();
    };
    t.push_back(s);
  }
  {
    Setting s = choice_setting<Precision>(
        base("--precision", "precision",
             "dense products: fp32 (strict) | tf32 (TF32 tensor cores, FP32 accumulation) | bf16 (BF16 copies of "
             "weights and activations, FP32 accumulation and master weights); GPU: tf32 and bf16 run on cuBLASLt; "
             "the CPU emulates their rounding",
             "fp32", "bf16", S::model, R::result),
        {{"fp32", Precision::fp32}, {"tf32", Precision::tf32}, {"bf16", Precision::bf16}},
        [](auto& c) -> auto& { return c.model.precision; });
    s.stored_since = 4;
    t.push_back(s);
  }
  {
    Setting s = float_setting(base("--input-dropout", "input_dropout",
                                   "probability of dropping each input pixel while training, in [0, 1)", "0", "0.2",
                                   S::model, R::result),
                              0.0, false, 1.0, true, "a probability in [0, 1)",
                              [](auto& c) -> auto& { return c.optimizer.input_dropout; });
    s.stored_since = 4;
    t.push_back(s);
  }
  {
    Setting s = float_setting(base("--max-norm", "max_norm",
                                   "after each update, scale each hidden unit's incoming weights to L2 norm <= this "
                                   "(Srivastava et al. 2014; 0: off)",
                                   "0", "2", S::model, R::result),
                              0.0, false, 1e6, false, "a norm in [0, 1e6] (0: off)",
                              [](auto& c) -> auto& { return c.optimizer.max_norm; });
    s.stored_since = 4;
    s.inert = [](const TrainConfig& c) {
      return c.optimizer.max_norm > 0 && c.model.hidden.empty()
                 ? std::string("constrains hidden units' weights, and --hidden is empty (no hidden layer)")
                 : std::string();
    };
    t.push_back(s);
  }
  {
    // "default", "uniform:A" or "glorot". Stored as a number, A (0 for default), so that files
    // written before glorot existed read unchanged; glorot is stored as the string "glorot".
    Setting s = base("--init", "init_uniform",
                     "initial weights: default (He-normal for relu and gelu, Glorot-uniform for sigmoid and tanh) | "
                     "uniform:A (uniform in +-A, biases 0, as Ciresan et al. 2010) | "
                     "glorot (Glorot-uniform +-sqrt(6/(in+out)) per layer for any activation, as Keras's Dense)",
                     "default", "uniform:0.05", S::model, R::result);
    s.stored_since = 4;
    s.parse = [](const std::string& text, TrainConfig& c) {
      c.optimizer.init_uniform = 0.0f;
      if (text == "default" || text == "glorot") {
        c.optimizer.init = text == "glorot" ? WeightInit::glorot : WeightInit::standard;
        return;
      }
      if (text.rfind("uniform:", 0) != 0)
        refuse_value("--init", "default, glorot or uniform:A with A > 0 (uniform:0.05)", text);
      c.optimizer.init_uniform =
          parse_float_value("--init", text.substr(8), 0.0, true, 1e3, false, "uniform:A with A a number in (0, 1000]");
      c.optimizer.init = WeightInit::uniform;
    };
    s.show = [](const TrainConfig& c) {
      switch (c.optimizer.init) {
        case WeightInit::uniform: return "uniform:" + float_text(c.optimizer.init_uniform);
        case WeightInit::glorot: return std::string("glorot");
        case WeightInit::standard: break;
      }
      return std::string("default");
    };
    s.to_json = [](const TrainConfig& c) {
      if (c.optimizer.init == WeightInit::glorot) return json("glorot");
      return json(c.optimizer.init == WeightInit::uniform ? c.optimizer.init_uniform : 0.0f);
    };
    s.from_json = [](const json& j, TrainConfig& c) {
      c.optimizer.init_uniform = 0.0f;
      if (j == json("glorot")) {
        c.optimizer.init = WeightInit::glorot;
        return;
      }
      if (!j.is_number() || j.get<double>() < 0)
        throw Error("init_uniform: expected a number >= 0 or \"glorot\", found " + j.dump());
      c.optimizer.init_uniform = j.get<float>();
      c.optimizer.init = c.optimizer.init_uniform > 0 ? WeightInit::uniform : WeightInit::standard;
    };
    t.push_back(s);
  }
  {
    Setting s = base("--seed", "seed", "seed of the initialisation, split and shuffles", "1", "18446744073709551615",
                     S::model, R::result);
    s.parse = [](const std::string& text, TrainConfig& c) { c.seed = parse_u64_value("--seed", text); };
    s.show = [](const TrainConfig& c) { return std::to_string(c.seed); };
    s.to_json = [](const TrainConfig& c) { return json(c.seed); };
    s.from_json = [](const json& j, TrainConfig& c) { c.seed = json_int<std::uint64_t>(j, "seed"); };
    t.push_back(s);
  }
  {
    // How fast, never what: every algorithm computes the same GEMM (to rounding), so not stored.
    Setting s = choice_setting<bool>(
        base("--autotune", "",
             "GPU: on (time cuBLASLt's candidate algorithms for each GEMM at setup, keep the fastest, cached in "
             "$XDG_CACHE_HOME/mnist_gpu or $MNIST_GPU_TUNE_CACHE) | off (the heuristic's first choice; no cache)",
             "on", "off", S::model, R::runtime),
        {{"on", true}, {"off", false}}, [](auto& c) -> auto& { return c.cuda.autotune; });
    s.inert = gpu_only;
    s.refuse_inert = false;
    t.push_back(s);
  }
  // --- the train flags (add_train_options) ---
  {
    // cuda:N names one GPU (0-based among the visible ones); cuda is cuda:0.
    Setting s = base("--device", "",
                     "auto | cpu | cuda | cuda:N (auto: a usable GPU, else the CPU; cuda: the first visible GPU, "
                     "cuda:N the N-th from 0)",
                     "auto", "cuda:1", S::train, R::runtime);
    s.parse = [](const std::string& text, TrainConfig& c) {
      c.cuda.device = 0;
      if (text.rfind("cuda:", 0) == 0) {
        c.device = DeviceChoice::cuda;
        c.cuda.device = static_cast<int>(
            parse_int_value("--device", text.substr(5), 0, 1023, "cuda:N with N a GPU index in 0..1023"));
        return;
      }
      c.device = parse_choice_value<DeviceChoice>(
          "--device", text, {{"auto", DeviceChoice::automatic}, {"cpu", DeviceChoice::cpu}, {"cuda", DeviceChoice::cuda}});
    };
    s.show = [](const TrainConfig& c) {
      if (c.device == DeviceChoice::cuda && c.cuda.device > 0) return "cuda:" + std::to_string(c.cuda.device);
      return std::string(to_string(c.device));
    };
    t.push_back(s);
  }
  {
    Setting s = choice_setting<DataPath>(
        base("--data-path", "",
             "GPU: streamed (batches gathered on the host, copied from pinned memory while the previous one trains) | "
             "resident (the training set copied to the GPU once, batches gathered there)",
             "streamed", "resident", S::train, R::runtime),
        {{"streamed", DataPath::streamed}, {"resident", DataPath::resident}},
        [](auto& c) -> auto& { return c.cuda.data; });
    s.inert = gpu_only;
    s.refuse_inert = false;
    t.push_back(s);
  }
  {
    Setting s = choice_setting<bool>(
        base("--cuda-graph", "", "GPU: on (each full-batch step replayed from one captured CUDA graph) | off (kernel by kernel)",
             "on", "off", S::train, R::runtime),
        {{"on", true}, {"off", false}}, [](auto& c) -> auto& { return c.cuda.graph; });
    s.inert = gpu_only;
    s.refuse_inert = false;
    t.push_back(s);
  }
  {
    // The default stays cublas, the path verified on a GPU (H200, 2026-11-30), until a GPU run has
    // verified the cuBLASLt path: it has never run on a GPU yet.
    Setting s = choice_setting<GemmPath>(
        base("--gemm", "",
             "GPU dense products: cublas (SGEMM, separate bias/activation kernels) | cublaslt (bias, ReLU and their "
             "gradients fused into the GEMMs); --precision tf32/bf16 always run on cublaslt",
             "cublas", "cublaslt", S::model, R::runtime),
        {{"cublas", GemmPath::cublas}, {"cublaslt", GemmPath::cublaslt}}, [](auto& c) -> auto& { return c.cuda.gemm; });
    s.inert = [](const TrainConfig& c) {
      if (c.cuda.gemm == GemmPath::cublas && c.model.precision != Precision::fp32)
        return std::string("cublas runs fp32 only; --precision ") + to_string(c.model.precision) +
               " needs --gemm cublaslt (or no --gemm)";
      return std::string();
    };
    t.push_back(s);
  }
  {
    // The preset first: the parameters below take their defaults from it (their `unset`).
    Setting s = choice_setting<AugmentKind>(
        base("--augment", "augment",
             "deform every training image afresh each epoch: none | affine (rotation, scaling, shear) | elastic "
             "(Simard et al. 2003) | ciresan (both, Ciresan et al. 2010); --aug-* set the parameters",
             "none", "affine", S::train, R::result),
        {{"none", AugmentKind::none}, {"affine", AugmentKind::affine}, {"elastic", AugmentKind::elastic},
         {"ciresan", AugmentKind::ciresan}},
        [](auto& c) -> auto& { return c.augment.kind; });
    s.stored_since = 4;
    t.push_back(s);
  }
  {
    struct AugParam {
      const char* flag;
      const char* key;
      const char* help;
      const char* example;
      double hi;
      const char* expected;
      float AugmentConfig::*field;
    };
    const AugParam params[] = {
        {"--aug-rotate", "aug_rotate",
         "--augment: rotation within +-this many degrees (ciresan: half for the digits 1 and 7), 0..180 (default: "
         "affine, ciresan 15; elastic 0)",
         "10", 180.0, "a number of degrees in [0, 180]", &AugmentConfig::rotate},
        {"--aug-scale", "aug_scale",
         "--augment: horizontal and vertical scaling, each within +-this many percent, 0..99 (default: affine, "
         "ciresan 15; elastic 0)",
         "20", 99.0, "a percentage in [0, 99]", &AugmentConfig::scale},
        {"--aug-shear", "aug_shear",
         "--augment: horizontal shear within +-this many degrees, 0..80 (default: affine, ciresan 15; elastic 0)", "5",
         80.0, "a number of degrees in [0, 80]", &AugmentConfig::shear},
        {"--aug-sigma", "aug_sigma",
         "--augment: width in pixels of the Gaussian smoothing the elastic field, 0..100 (default: elastic 4, ciresan 6; "
         "affine 0)",
         "5", 100.0, "a number of pixels in [0, 100]", &AugmentConfig::sigma},
        {"--aug-alpha", "aug_alpha",
         "--augment: scale in pixels of the elastic field, 0..1000, 0 for none (default: elastic 34, ciresan 36; "
         "affine 0)",
         "38", 1000.0, "a number of pixels in [0, 1000]", &AugmentConfig::alpha},
    };
    for (const AugParam& p : params) {
      float AugmentConfig::*field = p.field;
      Setting s = float_setting(base(p.flag, p.key, p.help, std::nullopt, p.example, S::train, R::result), 0.0, false,
                                p.hi, false, p.expected,
                                [field](auto& c) -> auto& { return c.augment.*field; });
      s.stored_since = 4;
      s.unset = [field](TrainConfig& c) { c.augment.*field = augment_preset(c.augment.kind).*field; };
      const bool is_sigma = field == &AugmentConfig::sigma;
      s.inert = [is_sigma](const TrainConfig& c) {
        if (!c.augment.on()) return std::string("sets a deformation, and --augment is none");
        if (is_sigma && c.augment.alpha == 0.0f)
          return std::string("smooths the elastic field, and --aug-alpha is 0 (no elastic distortion)");
        return std::string();
      };
      t.push_back(s);
    }
  }
  {
    Setting s = base("--timings", "",
                     "log where the run's wall time goes at the end: start-up, backend setup, data loading, training, "
                     "evaluation, outputs",
                     "off", "on", S::train, R::runtime);
    s.is_switch = true;
    s.help_shows_default = false;
    s.parse = [](const std::string& text, TrainConfig& c) {
      c.timings = parse_choice_value<bool>("--timings", text, {{"on", true}, {"off", false}});
    };
    s.show = [](const TrainConfig& c) { return std::string(c.timings ? "on" : "off"); };
    t.push_back(s);
  }
  {
    Setting s = float_setting(
        base("--time-limit", "",
             "end the run after the epoch during which this many seconds of training have passed (this process's; "
             "evaluations not counted), then test and save as after the last epoch; --checkpoint's file then "
             "continues it with --resume (0: off)",
             "0", "600", S::train, R::runtime),
        0.0, false, 1e9, false, "a number of seconds >= 0 (0: off)", [](auto& c) -> auto& { return c.time_limit_s; });
    t.push_back(s);
  }
  t.push_back(choice_setting<Schedule>(
      base("--schedule", "schedule",
           "learning-rate schedule: constant | cosine (to 0 over the epochs; each epoch trains at the rate of its "
           "midpoint, the rate logged) | step (x --lr-factor every --lr-step epochs) | exp (x --lr-factor each epoch)",
           "cosine", "step", S::train, R::result),
      {{"constant", Schedule::constant}, {"cosine", Schedule::cosine}, {"step", Schedule::step}, {"exp", Schedule::exp}},
      [](auto& c) -> auto& { return c.schedule; }));
  {
    Setting s = int_setting(base("--lr-step", "lr_step", "step schedule: epochs between cuts, >= 1", "5", "3", S::train,
                                 R::result),
                            1, 100000, "a whole number of epochs in 1..100000", [](auto& c) -> auto& { return c.lr_step; });
    s.stored_since = 2;
    s.inert = [](const TrainConfig& c) {
      return c.schedule == Schedule::step ? std::string()
                                          : std::string("applies to --schedule step only, not '") + to_string(c.schedule) + "'";
    };
    t.push_back(s);
  }
  {
    Setting s = float_setting(base("--lr-factor", "lr_factor",
                                   "rate multiplier of a step or plateau cut, or of each epoch under --schedule exp, in (0, 1)",
                                   "0.5", "0.25", S::train, R::result),
                              0.0, true, 1.0, true, "a factor in (0, 1)", [](auto& c) -> auto& { return c.lr_factor; });
    s.stored_since = 2;
    s.inert = [](const TrainConfig& c) {
      return c.schedule == Schedule::step || c.schedule == Schedule::exp || c.lr_patience > 0
                 ? std::string()
                 : std::string("scales the cuts of --schedule step and exp and of --lr-patience; with --schedule ") +
                       to_string(c.schedule) + " and no --lr-patience it does nothing";
    };
    t.push_back(s);
  }
  {
    Setting s = int_setting(base("--lr-patience", "lr_patience",
                                 "cut the rate by --lr-factor after this many epochs without a better validation loss (0: off)",
                                 "0", "2", S::train, R::result),
                            0, 100000, "a whole number of epochs in 0..100000 (0: off)",
                            [](auto& c) -> auto& { return c.lr_patience; });
    s.stored_since = 2;
    s.inert = [](const TrainConfig& c) {
      return c.lr_patience > 0 && c.val == 0
                 ? std::string("plateau cuts watch the validation loss; they need --val > 0")
                 : std::string();
    };
    t.push_back(s);
  }
  {
    Setting s = float_setting(base("--min-lr", "min_lr", "plateau cuts never take the rate below this, >= 0", "0", "0.001",
                                   S::train, R::result),
                              0.0, false, 1e6, false, "a number in [0, 1e6]", [](auto& c) -> auto& { return c.min_lr; });
    s.stored_since = 2;
    s.inert = [](const TrainConfig& c) {
      return c.lr_patience > 0 ? std::string()
                               : std::string("is the floor of the plateau cuts; it does nothing without --lr-patience");
    };
    t.push_back(s);
  }
  {
    Setting s = int_setting(base("--patience", "patience",
                                 "early stopping: stop after this many epochs without a better validation loss and test "
                                 "the best epoch's weights (0: off)",
                                 "0", "3", S::train, R::result),
                            0, 100000, "a whole number of epochs in 0..100000 (0: off)",
                            [](auto& c) -> auto& { return c.patience; });
    s.stored_since = 2;
    s.inert = [](const TrainConfig& c) {
      return c.patience > 0 && c.val == 0
                 ? std::string("early stopping watches the validation loss; it needs --val > 0")
                 : std::string();
    };
    t.push_back(s);
  }
  {
    Setting s = float_setting(base("--min-delta", "min_delta",
                                   "relative improvement that counts as better: loss < best * (1 - min-delta), in [0, 1)",
                                   "1e-4", "0.01", S::train, R::result),
                              0.0, false, 1.0, true, "a relative threshold in [0, 1)",
                              [](auto& c) -> auto& { return c.min_delta; });
    s.stored_since = 2;
    s.inert = [](const TrainConfig& c) {
      return c.patience > 0 || c.lr_patience > 0
                 ? std::string()
                 : std::string("defines what counts as better for --patience and --lr-patience; it does nothing "
                               "without either");
    };
    t.push_back(s);
  }
  t.push_back(int_setting(base("--epochs", "epochs", "epochs, >= 1", "10", "3", S::train, R::result), 1, 100000,
                          "a whole number of epochs in 1..100000", [](auto& c) -> auto& { return c.epochs; }));
  t.push_back(int_setting(base("--val", "val", "training images held out for validation, 0..59999", "5000", "1000",
                               S::train, R::result),
                          0, 59999, "a whole number of images in 0..59999", [](auto& c) -> auto& { return c.val; }));
  {
    Setting s = int_setting(base("--limit", "limit",
                                 "train on this many images of the training split only, for quick searches (0: all)", "0",
                                 "10000", S::train, R::result),
                            0, 1 << 30, "a whole number of images (0: all)", [](auto& c) -> auto& { return c.limit; });
    s.stored_since = 2;
    t.push_back(s);
  }
  {
    Setting s = float_setting(base("--target", "target",
                                   "test accuracy (e.g. 0.98) whose time to reach is reported; tests after every epoch (0: off)",
                                   "0", "0.98", S::train, R::result),
                              0.0, false, 1.0, false, "a test accuracy in [0, 1] such as 0.98",
                              [](auto& c) -> auto& { return c.target; });
    s.stored_since = 2;
    t.push_back(s);
  }
  t.push_back(text_setting(
      base("--recipe", "",
           "apply the recipe NAME (recipes/NAME.json: a published result's settings) as if its flags came before "
           "the others, which override it; `mnist_gpu recipes` lists them (folder: $MNIST_GPU_RECIPES, else the "
           "source tree's recipes/)",
           "", "keras-mnist-mlp", S::train, R::output),
      [](auto& c) -> auto& { return c.recipe; }));
  t.push_back(text_setting(base("--metrics", "", "write JSON lines (one per epoch, then a summary) to this file (- for stdout)", "",
                                "m.jsonl", S::train, R::output),
                           [](auto& c) -> auto& { return c.metrics_path; }));
  t.push_back(text_setting(base("--checkpoint", "", "write a checkpoint here after every epoch and on SIGINT/SIGTERM (atomically)",
                                "", "c.ckpt", S::train, R::output),
                           [](auto& c) -> auto& { return c.checkpoint_path; }));
  t.push_back(text_setting(
      base("--resume", "",
           "continue the run saved in this checkpoint (its settings are used; flags given must agree, but --epochs may "
           "grow it: the schedule is recomputed for the new total)",
           "", "c.ckpt", S::train, R::output),
      [](auto& c) -> auto& { return c.resume_path; }));
  t.push_back(text_setting(base("--init-from", "",
                                "start from the parameters of this saved model (train --save); its architecture must match "
                                "--hidden, --activation and --loss; the optimizer starts afresh",
                                "", "m.mgpu", S::train, R::output),
                           [](auto& c) -> auto& { return c.init_from_path; }));
  t.push_back(text_setting(base("--save", "", "write the trained model to this file (atomically; for eval and predict)", "",
                                "m.mgpu", S::train, R::output),
                           [](auto& c) -> auto& { return c.save_path; }));
  t.push_back(text_setting(
      base("--report", "", "write DIR/report.html (curves, confusion heat map, misclassified digits) and its images to DIR",
           "", "r", S::train, R::output),
      [](auto& c) -> auto& { return c.report_path; }));
  // --- stored only: fixed by the program, kept in checkpoints so that a resume is exact ---
  t.push_back(int_setting(base("", "inputs", "pixels per image", "784", "100", S::train, R::stored), 1, 1 << 20,
                          "a whole number of inputs", [](auto& c) -> auto& { return c.model.inputs; }));
  t.push_back(int_setting(base("", "outputs", "classes", "10", "5", S::train, R::stored), 1, 1 << 16,
                          "a whole number of outputs", [](auto& c) -> auto& { return c.model.outputs; }));
  t.push_back(float_setting(base("", "beta1", "Adam's first-moment decay", "0.9", "0.8", S::train, R::stored), 0.0, false,
                            1.0, true, "a number in [0, 1)", [](auto& c) -> auto& { return c.optimizer.beta1; }));
  t.push_back(float_setting(base("", "beta2", "Adam's second-moment decay", "0.999", "0.99", S::train, R::stored), 0.0,
                            false, 1.0, true, "a number in [0, 1)", [](auto& c) -> auto& { return c.optimizer.beta2; }));
  t.push_back(float_setting(base("", "eps", "Adam's epsilon", "1e-8", "1e-7", S::train, R::stored), 0.0, true, 1.0, false,
                            "a number in (0, 1]", [](auto& c) -> auto& { return c.optimizer.eps; }));
  {
    Setting s = float_setting(base("", "rho", "RMSprop's decay of the squared-gradient mean", "0.9", "0.95", S::train,
                                   R::stored),
                              0.0, false, 1.0, true, "a number in [0, 1)", [](auto& c) -> auto& { return c.optimizer.rho; });
    s.stored_since = 4;
    t.push_back(s);
  }
  {
    Setting s = float_setting(base("", "rms_eps", "RMSprop's epsilon", "1e-7", "1e-8", S::train, R::stored), 0.0, true,
                              1.0, false, "a number in (0, 1]", [](auto& c) -> auto& { return c.optimizer.rms_eps; });
    s.stored_since = 4;
    t.push_back(s);
  }
  return t;
}

}  // namespace

const std::vector<Setting>& train_settings() {
  static const std::vector<Setting> table = make_settings();
  return table;
}

const Setting* find_setting(const std::string& name) {
  for (const Setting& s : train_settings())
    if (s.name() == name) return &s;
  return nullptr;
}

std::string float_text(float v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);  // shortest text that reads back as v
  std::string s(buf, r.ptr);
  // "1e-04" -> "1e-4", "1e+06" -> "1e6": as one would type them.
  const std::size_t e = s.find('e');
  if (e != std::string::npos) {
    std::string mant = s.substr(0, e), exp = s.substr(e + 1);
    std::string sign;
    if (!exp.empty() && (exp[0] == '+' || exp[0] == '-')) {
      if (exp[0] == '-') sign = "-";
      exp.erase(0, 1);
    }
    while (exp.size() > 1 && exp[0] == '0') exp.erase(0, 1);
    s = mant + "e" + sign + exp;
  }
  return s;
}

json config_to_json(const TrainConfig& c) {
  json j = json::object();
  for (const Setting& s : train_settings())
    if (!s.key.empty()) j[s.key] = s.to_json(c);
  return j;
}

TrainConfig config_from_json(const json& j, std::uint32_t version) {
  if (!j.is_object()) throw Error("config: expected an object, found " + j.dump());
  TrainConfig c;
  for (const Setting& s : train_settings()) {
    if (s.key.empty()) continue;
    if (!j.contains(s.key)) {
      if (version < static_cast<std::uint32_t>(s.stored_since)) continue;  // older format: the default
      throw Error("config: no \"" + s.key + "\"");
    }
    s.from_json(j.at(s.key), c);
  }
  return c;
}

std::string show_json_value(const Setting& s, const json& value) {
  if (!s.from_json || !s.show) return value.dump();
  try {
    TrainConfig c;
    s.from_json(value, c);
    return s.show(c);
  } catch (const std::exception&) {
    return value.dump();
  }
}

std::string settings_as_flags(const TrainConfig& c) {
  std::string out;
  for (const Setting& s : train_settings()) {
    if (s.role != SettingRole::result || (s.inert && !s.inert(c).empty())) continue;
    const std::string v = s.show(c);
    if (s.is_switch) {
      if (v == "on") out += (out.empty() ? "" : " ") + s.flag;
      continue;
    }
    out += (out.empty() ? "" : " ") + s.flag + " " + (v.empty() ? std::string("\"\"") : v);
  }
  return out;
}

void check_resume_settings(const TrainConfig& flags, const TrainConfig& ck, const std::set<std::string>& given,
                           const std::string& path) {
  for (const Setting& s : train_settings()) {
    if (s.role != SettingRole::result || s.flag == "--epochs" || !given.count(s.flag)) continue;
    const std::string now = s.show(flags), then = s.show(ck);
    if (now == then) continue;
    if (s.is_switch)
      throw UsageError("--resume: " + s.flag + " differs from the checkpoint " + path + ", trained without " + s.flag +
                       "; resume without " + s.flag);
    auto typed = [](const std::string& v) { return v.empty() ? std::string("\"\"") : v; };
    throw UsageError("--resume: " + s.flag + " " + typed(now) + " differs from the checkpoint's " + typed(then) + " (" +
                     path + "); resume without " + s.flag + " or with " + s.flag + " " + typed(then));
  }
}

std::vector<std::string> check_inert_settings(const TrainConfig& c, const std::set<std::string>& given) {
  std::vector<std::string> warnings;
  for (const Setting& s : train_settings()) {
    if (!s.inert || !given.count(s.flag)) continue;
    const std::string why = s.inert(c);
    if (why.empty()) continue;
    if (s.refuse_inert) throw UsageError(s.flag + ": " + why);
    warnings.push_back("warning: " + s.flag + ": " + why);
  }
  return warnings;
}

}  // namespace mnist_gpu
