// Look-ups in the activation table (activation.hpp).
#include "mnist_gpu/activation.hpp"

#include <iterator>

#include "mnist_gpu/error.hpp"

namespace mnist_gpu {

const ActivationInfo& activation_info(Activation a) {
  for (const ActivationInfo& e : kActivationTable)
    if (e.value == a) return e;
  throw Error(std::string("activation '") + to_string(a) + "' has no table entry (it is internal)");
}

const ActivationInfo* find_activation(const std::string& name) {
  for (const ActivationInfo& e : kActivationTable)
    if (name == e.name) return &e;
  return nullptr;
}

Activation activation_from_name(const std::string& name) {
  if (const ActivationInfo* e = find_activation(name)) return e->value;
  throw Error("unknown activation '" + name + "'");
}

const ActivationInfo* find_activation_code(std::uint32_t code) {
  for (const ActivationInfo& e : kActivationTable)
    if (e.model_code == code) return &e;
  return nullptr;
}

std::vector<Activation> user_activations() {
  std::vector<Activation> all;
  for (const ActivationInfo& e : kActivationTable) all.push_back(e.value);
  return all;
}

std::string activation_names(const char* sep) {
  std::string s;
  for (const ActivationInfo& e : kActivationTable) s += (s.empty() ? "" : sep) + std::string(e.name);
  return s;
}

std::string activation_names_or() {
  constexpr std::size_t n = std::size(kActivationTable);
  std::string s;
  for (std::size_t i = 0; i < n; ++i)
    s += std::string(i == 0 ? "" : i + 1 == n ? " or " : ", ") + kActivationTable[i].name;
  return s;
}

bool keeps_preactivation(Activation a) {
  return a != Activation::identity && activation_info(a).backward_reads_z;
}

}  // namespace mnist_gpu
