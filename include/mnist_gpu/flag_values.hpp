// Strict parsing of typed flag values: whole-string integers and floats within stated ranges,
// choices among names, hidden-layer lists. Each refusal is a UsageError naming the flag and what it
// accepts ("--batch: expected a whole number of images in 1..65536, got 'x'").
#pragma once
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "mnist_gpu/error.hpp"

namespace mnist_gpu {

/// Throws UsageError "FLAG: expected EXPECTED, got 'GOT'".
[[noreturn]] void refuse_value(const std::string& flag, const std::string& expected, const std::string& got);

/// A whole-string decimal integer in [lo, hi].
long long parse_int_value(const std::string& flag, const std::string& text, long long lo, long long hi,
                          const std::string& expected);

/// A whole-string finite number in [lo, hi] (each bound open when its flag says), used as a float:
/// one that rounds onto an open bound, or a positive one below the smallest normal float, is refused.
float parse_float_value(const std::string& flag, const std::string& text, double lo, bool lo_open, double hi,
                        bool hi_open, const std::string& expected);

/// A whole-string unsigned 64-bit integer.
unsigned long long parse_u64_value(const std::string& flag, const std::string& text);

/// One of the names; the refusal lists them all.
template <class E>
E parse_choice_value(const std::string& flag, const std::string& text,
                     const std::vector<std::pair<std::string, E>>& choices) {
  std::string names;
  for (const auto& [name, value] : choices) {
    if (text == name) return value;
    names += names.empty() ? "" : " | ";
    names += name;
  }
  refuse_value(flag, "one of " + names, text);
}

/// "512,256" -> {512, 256}; "" -> {} (softmax regression). Throws UsageError (--hidden ...).
std::vector<int> parse_hidden(const std::string& text);

/// {512, 256} -> "512,256" (what parse_hidden reads back).
std::string hidden_text(const std::vector<int>& widths);

}  // namespace mnist_gpu
