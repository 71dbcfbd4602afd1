// StopOnSignals: the only mutable globals in the program (a signal handler can reach nothing else).
#include "mnist_gpu/stop_signal.hpp"

#include <csignal>

namespace mnist_gpu {
namespace {

std::atomic<bool> g_stop{false};
volatile std::sig_atomic_t g_signal = 0;

extern "C" void on_stop_signal(int sig) {
  g_signal = sig;
  g_stop.store(true);
  std::signal(sig, SIG_DFL);
}

}  // namespace

StopOnSignals::StopOnSignals() {
  g_stop.store(false);
  g_signal = 0;
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
}

StopOnSignals::~StopOnSignals() {
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
}

const std::atomic<bool>* StopOnSignals::flag() const { return &g_stop; }

int StopOnSignals::signal() const { return static_cast<int>(g_signal); }

}  // namespace mnist_gpu
