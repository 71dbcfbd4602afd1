// Range-checked integers from JSON: nlohmann's get<int>() casts a float such as 1e30 to int, which
// is undefined behaviour (found by fuzz_checkpoint), and wraps integers that do not fit.
#pragma once
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>

#include "mnist_gpu/error.hpp"

namespace mnist_gpu {

/// The integer `j` holds, as a T; Error naming `what` when it is not an integer or does not fit.
template <class T>
T json_int(const nlohmann::json& j, const std::string& what) {
  static_assert(std::is_integral_v<T>);
  if (!j.is_number_integer()) throw Error(what + ": expected an integer, found " + j.dump());
  if (j.is_number_unsigned()) {
    const auto v = j.get<std::uint64_t>();
    if (v > static_cast<std::uint64_t>(std::numeric_limits<T>::max())) throw Error(what + ": integer " + j.dump() + " out of range");
    return static_cast<T>(v);
  }
  const auto v = j.get<std::int64_t>();
  if constexpr (std::is_unsigned_v<T>) {
    if (v < 0) throw Error(what + ": integer " + j.dump() + " out of range");
  } else if (v < static_cast<std::int64_t>(std::numeric_limits<T>::min()) ||
             v > static_cast<std::int64_t>(std::numeric_limits<T>::max())) {
    throw Error(what + ": integer " + j.dump() + " out of range");
  }
  return static_cast<T>(v);
}

}  // namespace mnist_gpu
