// Error types that cross the library boundary. The CLI maps them to exit codes:
// UsageError -> 2 (a bad flag or value), Error -> 1 (bad data, I/O, device problems).
#pragma once
#include <stdexcept>
#include <string>

namespace mnist_gpu {

/// A runtime failure: unreadable or malformed input, I/O, device errors. Exit code 1.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// A command-line value that is refused; the message names the flag and what it accepts. Exit 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace mnist_gpu
