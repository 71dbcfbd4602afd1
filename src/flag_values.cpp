// Strict parsing of typed flag values (see flag_values.hpp).
#include "mnist_gpu/flag_values.hpp"

#include <algorithm>
#include <cerrno>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "mnist_gpu/config.hpp"

namespace mnist_gpu {

void refuse_value(const std::string& flag, const std::string& expected, const std::string& got) {
  throw UsageError(flag + ": expected " + expected + ", got '" + got + "'");
}

long long parse_int_value(const std::string& flag, const std::string& text, long long lo, long long hi,
                          const std::string& expected) {
  if (text.empty() || text.find_first_not_of("+-0123456789") != std::string::npos) refuse_value(flag, expected, text);
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || end != text.c_str() + text.size() || v < lo || v > hi) refuse_value(flag, expected, text);
  return v;
}

float parse_float_value(const std::string& flag, const std::string& text, double lo, bool lo_open, double hi,
                        bool hi_open, const std::string& expected) {
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  const bool whole = !text.empty() && end == text.c_str() + text.size() && !std::isspace(static_cast<unsigned char>(text[0]));
  if (!whole || errno == ERANGE || !std::isfinite(v) || v < lo || (lo_open && v == lo) || v > hi ||
      (hi_open && v == hi))
    refuse_value(flag, expected, text);
  // The value is used as a float: one that rounds onto an open bound (1e-50 to 0, 0.999999999 to
  // 1) is refused, and so is a positive one below the smallest normal float (1e-45), whose
  // products in the updates round to 0.
  const float f = static_cast<float>(v);
  const auto refuse_rounded = [&](const std::string& why) {
    throw UsageError(flag + ": expected " + expected + ", got '" + text + "', which " + why);
  };
  if ((lo_open && f == static_cast<float>(lo)) || (hi_open && f == static_cast<float>(hi))) {
    char rounded[32];
    std::snprintf(rounded, sizeof rounded, "%g", static_cast<double>(f));
    refuse_rounded("rounds to " + std::string(rounded) + " in single precision (float32)");
  }
  if (lo_open && lo == 0.0 && f < std::numeric_limits<float>::min())
    refuse_rounded("is below the smallest normal single-precision (float32) number, 1.17549e-38");
  return f;
}

unsigned long long parse_u64_value(const std::string& flag, const std::string& text) {
  const char* expected = "an integer in 0..18446744073709551615";
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos) refuse_value(flag, expected, text);
  errno = 0;
  const unsigned long long v = std::strtoull(text.c_str(), nullptr, 10);
  if (errno == ERANGE) refuse_value(flag, expected, text);
  return v;
}

std::vector<int> parse_hidden(const std::string& text) {
  std::vector<int> widths;
  if (text.empty()) return widths;
  const std::string expected =
      "a comma-separated list of at most " + std::to_string(kMaxHiddenLayers) + " layer widths in 1.." +
      std::to_string(kMaxLayerWidth) + " such as 512,256 (or \"\" for no hidden layer)";
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = text.find(',', start);
    const std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (item.empty()) refuse_value("--hidden", expected + "; width " + std::to_string(widths.size() + 1) + " is empty", text);
    if (item.find_first_not_of("0123456789") != std::string::npos)
      refuse_value("--hidden", expected + "; '" + item + "' is not a positive integer", text);
    const long long w = parse_int_value("--hidden", item, 1, kMaxLayerWidth, expected);
    widths.push_back(static_cast<int>(w));
    if (widths.size() > static_cast<std::size_t>(kMaxHiddenLayers))
      refuse_value("--hidden",
                   expected + "; this list has " + std::to_string(std::count(text.begin(), text.end(), ',') + 1) +
                       " (a model file holds at most " + std::to_string(kMaxHiddenLayers) + " hidden layers)",
                   text);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return widths;
}

std::string hidden_text(const std::vector<int>& widths) {
  std::string s;
  for (std::size_t i = 0; i < widths.size(); ++i) s += (i ? "," : "") + std::to_string(widths[i]);
  return s;
}

}  // namespace mnist_gpu
