// StopOnSignals: the only mutable globals in the program (a signal handler can reach nothing else).
#include "mnist_gpu/stop_signal.hpp"

#include <unistd.h>

#include <csignal>
#include <cstring>

namespace mnist_gpu {
namespace {

std::atomic<bool> g_stop{false};
volatile std::sig_atomic_t g_signal = 0;
// The temporary file of the atomic write under way (TempFileGuard), for the second signal.
char g_temp_path[4096];
std::atomic<bool> g_temp_set{false};
static_assert(std::atomic<bool>::is_always_lock_free, "read in a signal handler");

// The first signal asks to stop; a second one ends the process at once, by the default action
// of that signal (so the exit status says which), after removing the temporary file of an
// atomic write it cuts short. unlink, signal and raise are async-signal-safe.
extern "C" void on_stop_signal(int sig) {
  if (g_stop.load()) {
    if (g_temp_set.load()) ::unlink(g_temp_path);
    std::signal(sig, SIG_DFL);
    std::raise(sig);  // delivered as the handler returns (the signal is blocked while it runs)
    return;
  }
  g_signal = sig;
  g_stop.store(true);
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

TempFileGuard::TempFileGuard(const std::string& path) {
  if (path.size() >= sizeof g_temp_path) return;  // too long to remember: left to the caller's cleanup
  std::memcpy(g_temp_path, path.c_str(), path.size() + 1);
  g_temp_set.store(true);
  armed_ = true;
}

TempFileGuard::~TempFileGuard() {
  if (armed_) g_temp_set.store(false);
}

int StopOnSignals::signal() const { return static_cast<int>(g_signal); }

}  // namespace mnist_gpu
