// The log lines the commands share (cli.hpp): the backend chosen (make_backend) and the notes of
// loading a data directory.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>

#include "mnist_gpu/backend_factory.hpp"
#include "mnist_gpu/cli.hpp"
#include "mnist_gpu/dataset.hpp"
#include "mnist_gpu/progress_text.hpp"

namespace mnist_gpu {

std::unique_ptr<Backend> choose_backend(const TrainConfig& cfg, const char* work) {
  BackendChoice c = make_backend(cfg);
  if (c.fell_back) spdlog::info("notice: no usable GPU ({}); {} on the CPU", c.probe.reason, work);
  else if (c.probe.usable)
    spdlog::info("device: {} (compute capability {}.{}, {:.1f} GiB)", c.probe.name, c.probe.compute_major,
                 c.probe.compute_minor, static_cast<double>(c.probe.total_bytes) / (1024.0 * 1024.0 * 1024.0));
  return std::move(c.backend);
}

void log_data_notes(const MnistFiles& files) {
  for (const auto& s : files.shadowed)
    spdlog::info("notice: {} holds both {} and {}; reading {}", s.used.parent_path().string(),
                 s.used.filename().string(), s.ignored.filename().string(), s.used.filename().string());
  for (const auto& w : files.warnings) spdlog::warn("warning: {}", w);
}

EvalProgressLine::EvalProgressLine(std::string what)
    : what_(std::move(what)), tty_(isatty(2) != 0), start_(std::chrono::steady_clock::now()) {}

EvalProgressLine::~EvalProgressLine() { clear(); }

void EvalProgressLine::clear() {
  if (!drawn_) return;
  std::fprintf(stderr, "\r\033[K");
  std::fflush(stderr);
  drawn_ = false;
}

void EvalProgressLine::operator()(long long done, long long total) {
  if (!tty_) return;
  if (done >= total) {
    clear();
    return;
  }
  const auto now = std::chrono::steady_clock::now();
  const double s = std::chrono::duration<double>(now - start_).count();
  if (done <= 0 || s < 0.5 || now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  const double eta = static_cast<double>(total - done) * s / static_cast<double>(done);
  std::fprintf(stderr, "\r%s\033[K", eval_progress_text(what_, done, total, eta).c_str());
  std::fflush(stderr);
  drawn_ = true;
}

}  // namespace mnist_gpu
