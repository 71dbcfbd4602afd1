// duration_text and progress_text: the CLI's progress line, kept apart from the terminal so that
// tests can read it.
#include "mnist_gpu/progress_text.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace mnist_gpu {

std::string duration_text(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "-";
  const long long s = std::llround(seconds);
  if (s < 3600) return fmt::format("{}:{:02}", s / 60, s % 60);
  return fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
}

std::string progress_text(int epoch, int epochs, long long done, long long total, double samples_per_s,
                          double eta_s) {
  constexpr int kWidth = 30;
  const long long t = std::max(1LL, total), d = std::clamp(done, 0LL, t);
  const int filled = static_cast<int>(kWidth * d / t);
  std::string s = fmt::format("  epoch {}/{} [{}{}] {:3}%", epoch, epochs, std::string(filled, '#'),
                              std::string(kWidth - filled, '.'), 100 * d / t);
  if (std::isfinite(samples_per_s) && samples_per_s > 0)
    s += fmt::format("  {:.0f} samples/s  ETA {}", samples_per_s, duration_text(eta_s));
  return s;
}

}  // namespace mnist_gpu
