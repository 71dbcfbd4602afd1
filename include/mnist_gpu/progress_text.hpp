// The in-epoch progress line the CLI draws on a terminal: bar, percent, samples/s and the time
// left in the epoch, measured from wall time by the caller.
#pragma once
#include <string>

namespace mnist_gpu {

/// Seconds as "m:ss" (under an hour) or "h:mm:ss"; "-" for a negative or non-finite value.
std::string duration_text(double seconds);

/// "  epoch 3/10 [#########.....................]  31%  52,000 samples/s  ETA 0:12" for `done` of
/// `total` batches; `samples_per_s` <= 0 (or NaN) leaves out the rate and the ETA (not measured yet).
std::string progress_text(int epoch, int epochs, long long done, long long total, double samples_per_s,
                          double eta_s);

/// The same line with the epoch's running loss and accuracy (over the samples trained so far)
/// after the percent: "  epoch 3/10 [###...]  31%  loss 0.2104  acc 93.81%  52000 samples/s  ETA 0:12".
/// A NaN loss leaves them out (none known yet).
std::string progress_text(int epoch, int epochs, long long done, long long total, double loss, double acc,
                          double samples_per_s, double eta_s);

/// An evaluation's line: "  validation after epoch 3 [######...]  20%  2000 of 10000 images  ETA 0:41".
std::string eval_progress_text(const std::string& what, long long done, long long total, double eta_s);

}  // namespace mnist_gpu
