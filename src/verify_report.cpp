// VerifyReport's summaries (plain C++, shared by every build).
#include "mnist_gpu/verify.hpp"

namespace mnist_gpu {

bool VerifyReport::ok() const {
  for (const auto& c : checks)
    if (!c.cmp.ok) return false;
  return !checks.empty();
}

const VerifyCheck* VerifyReport::worst() const {
  const VerifyCheck* w = nullptr;
  for (const auto& c : checks)
    if (!w || c.cmp.ratio > w->cmp.ratio) w = &c;
  return w;
}

}  // namespace mnist_gpu
