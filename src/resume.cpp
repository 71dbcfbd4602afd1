// Starting a run from saved state: plan_resume (the settings of a resumed or continued run) and
// init_params_from (a saved model's parameters, architecture checked).
#include "mnist_gpu/resume.hpp"

#include <algorithm>

#include "mnist_gpu/error.hpp"
#include "mnist_gpu/flag_values.hpp"
#include "mnist_gpu/model_io.hpp"
#include "mnist_gpu/settings.hpp"
#include "mnist_gpu/train.hpp"

namespace mnist_gpu {

ResumePlan plan_resume(const TrainConfig& flags, const std::set<std::string>& given, const Checkpoint& ck) {
  const std::string& path = flags.resume_path;
  check_resume_settings(flags, ck.config, given, path);
  if (ck.config.model.outputs != kClasses)
    throw Error(path + ": the checkpoint's model has " + std::to_string(ck.config.model.outputs) +
                " outputs; training on MNIST needs " + std::to_string(kClasses) + " (one per digit)");
  ResumePlan plan;
  plan.cfg = ck.config;
  plan.checkpoint_epochs = ck.config.epochs;
  // Where and how fast it runs, and its files, are the flags' (not settings of the run).
  for (const Setting& s : train_settings())
    if (s.role == SettingRole::runtime || s.role == SettingRole::output) s.parse(s.show(flags), plan.cfg);
  plan.cfg.checkpoint_path = flags.checkpoint_path.empty() ? flags.resume_path : flags.checkpoint_path;

  const int done = static_cast<int>(ck.progress.done.size());
  const bool partial = ck.progress.partial.batches > 0;
  if (given.count("--epochs") && flags.epochs != ck.config.epochs) {
    const int least = done + (partial ? 1 : 0);
    if (flags.epochs < least)
      throw UsageError("--epochs: the checkpoint " + path + " has " + std::to_string(done) + " epoch" +
                       (done == 1 ? "" : "s") + " done" + (partial ? " and epoch " + std::to_string(done + 1) + " begun" : "") +
                       "; --epochs " + std::to_string(flags.epochs) + " would end before them: give at least " +
                       std::to_string(least) + " (or leave --epochs out to finish its " + std::to_string(ck.config.epochs) + ")");
    const ValidationState st = replay_validation(ck.config, ck.progress.done);
    if (ck.config.patience > 0 && st.stop && flags.epochs > ck.config.epochs)
      throw UsageError("--epochs: early stopping ended the run in " + path + " after epoch " + std::to_string(done) +
                       " (no better validation loss than epoch " + std::to_string(st.best_epoch) + "'s for " +
                       std::to_string(ck.config.patience) + " epochs); more epochs would train nothing");
    plan.cfg.epochs = flags.epochs;
    const std::string how =
        plan.cfg.schedule == Schedule::cosine
            ? "the cosine schedule is recomputed for " + std::to_string(flags.epochs) + " epochs"
            : std::string("the ") + to_string(plan.cfg.schedule) + " schedule does not depend on the number of epochs";
    plan.continuation = "resuming at epoch " + std::to_string(std::min(done + 1, flags.epochs)) + " of " +
                        std::to_string(flags.epochs) + " (was " + std::to_string(ck.config.epochs) + "): " + how;
  }
  plan.warnings = check_inert_settings(plan.cfg, given);
  return plan;
}

std::vector<float> init_params_from(const std::string& path, const ModelSpec& spec) {
  SavedModel m = load_model(path);
  const ModelSpec& s = m.spec;
  auto refuse = [&](const std::string& what, const std::string& theirs, const std::string& ours, const std::string& fix) {
    throw UsageError("--init-from " + path + ": the model's " + what + " " + (theirs.empty() ? "\"\"" : theirs) +
                     ", not " + (ours.empty() ? "\"\"" : ours) + "; " + fix);
  };
  if (s.inputs != spec.inputs)
    refuse("inputs are", std::to_string(s.inputs), std::to_string(spec.inputs) + " (the data's pixels)",
           "it was trained on other data");
  if (s.outputs != spec.outputs)
    refuse("outputs are", std::to_string(s.outputs), std::to_string(spec.outputs), "it was trained on other classes");
  if (s.hidden != spec.hidden)
    refuse("hidden layers are", hidden_text(s.hidden), "--hidden " + hidden_text(spec.hidden),
           "give --hidden " + (s.hidden.empty() ? std::string("\"\"") : hidden_text(s.hidden)));
  if (s.activation != spec.activation)
    refuse("activation is", to_string(s.activation), std::string("--activation ") + to_string(spec.activation),
           std::string("give --activation ") + to_string(s.activation));
  if (s.loss != spec.loss)
    refuse("loss is", to_string(s.loss), std::string("--loss ") + to_string(spec.loss),
           std::string("give --loss ") + to_string(s.loss));
  return std::move(m.params);
}

}  // namespace mnist_gpu
