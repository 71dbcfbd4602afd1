// duration_text and progress_text: the CLI's progress line, kept apart from the terminal so that
// tests can read it.
#include "mnist_gpu/progress_text.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace mnist_gpu {

std::string duration_text(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "-";
  const long long s = std::llround(seconds);
  if (s < 3600) return fmt::format("{}:{:02}", s / 60, s % 60);
  return fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
}

namespace {

std::string bar(long long done, long long total) {
  constexpr int kWidth = 30;
  const long long t = std::max(1LL, total), d = std::clamp(done, 0LL, t);
  const int filled = static_cast<int>(kWidth * d / t);
  return fmt::format("[{}{}] {:3}%", std::string(filled, '#'), std::string(kWidth - filled, '.'), 100 * d / t);
}

}  // namespace

std::string progress_text(int epoch, int epochs, long long done, long long total, double samples_per_s,
                          double eta_s) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  return progress_text(epoch, epochs, done, total, nan, nan, samples_per_s, eta_s);
}

std::string progress_text(int epoch, int epochs, long long done, long long total, double loss, double acc,
                          double samples_per_s, double eta_s) {
  std::string s = fmt::format("  epoch {}/{} {}", epoch, epochs, bar(done, total));
  if (!std::isnan(loss)) s += fmt::format("  loss {:.4f}  acc {:.2f}%", loss, 100 * acc);
  if (std::isfinite(samples_per_s) && samples_per_s > 0)
    s += fmt::format("  {:.0f} samples/s  ETA {}", samples_per_s, duration_text(eta_s));
  return s;
}

std::string eval_progress_text(const std::string& what, long long done, long long total, double eta_s) {
  std::string s = fmt::format("  {} {}  {} of {} images", what, bar(done, total), done, total);
  if (std::isfinite(eta_s) && eta_s >= 0 && done > 0) s += "  ETA " + duration_text(eta_s);
  return s;
}

}  // namespace mnist_gpu
