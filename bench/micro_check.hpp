// The checks that every micro-benchmark runs before it times anything: a comparison under a named
// tolerance (compare.hpp) that names the worst element and refuses an all-zero reference, and the
// float64 references for the CPU ops, written as plain formulas independently of src/cpu_ops.cpp.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <iomanip>
#include <sstream>
#include <string>
#include <vector>

#include "micro_work.hpp"
#include "mnist_gpu/compare.hpp"
#include "mnist_gpu/config.hpp"
#include "mnist_gpu/cpu_ops.hpp"

namespace mnist_gpu::micro {

/// Empty when got[0..n) matches want[0..n) under tol and (with nonzero_reference) want is not all
/// zeros; otherwise what disagrees: the worst element (row and column when cols > 0), both values,
/// the error in tolerances and the tolerance's name.
template <class A, class B>
std::string mismatch(const std::string& what, const A* got, const B* want, std::size_t n, const Tolerance& tol,
                     std::size_t cols = 0, bool nonzero_reference = true) {
  const Comparison c = compare(got, want, n, tol);
  std::ostringstream msg;
  msg << std::setprecision(9) << what << " (" << n << " elements, tolerance " << tol.name << ")";
  if (!c.ok) {
    msg << ": worst element " << c.worst;
    if (cols > 0) msg << " (row " << c.worst / cols << ", col " << c.worst % cols << ")";
    msg << " got " << c.got << " want " << c.want << ", error " << c.ratio << "x the tolerance";
    return msg.str();
  }
  if (nonzero_reference && !(c.want_norm > 0)) {
    msg << ": the reference is all zeros, so a match would mean nothing";
    return msg.str();
  }
  return {};
}

template <class A, class B>
std::string mismatch(const std::string& what, const std::vector<A>& got, const std::vector<B>& want,
                     const Tolerance& tol, std::size_t cols = 0, bool nonzero_reference = true) {
  if (got.size() != want.size())
    return what + ": " + std::to_string(got.size()) + " elements, the reference has " + std::to_string(want.size());
  return mismatch(what, got.data(), want.data(), got.size(), tol, cols, nonzero_reference);
}

// ---- float64 references (CPU binary) ----

/// About eight rows spread over [0, m), the first and the last included.
inline std::vector<int> sample_rows(int m) {
  std::vector<int> rows;
  for (int r = 0; r < 8; ++r) rows.push_back(static_cast<int>(static_cast<long long>(m - 1) * r / 7));
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  return rows;
}

/// The given rows of a float output C (m, n), concatenated.
inline std::vector<float> take_rows(const std::vector<float>& c, int n, const std::vector<int>& rows) {
  std::vector<float> out;
  for (int i : rows) out.insert(out.end(), c.begin() + static_cast<std::ptrdiff_t>(count(i, n)),
                                c.begin() + static_cast<std::ptrdiff_t>(count(i + 1, n)));
  return out;
}

/// The given rows of the op's output (gemm_dims(op, s): m rows of n), concatenated, in float64 from
/// the float operands a, b in the op's argument order (dense_operands).
inline std::vector<double> dense_reference_rows(DenseOp op, const DenseShape& s, const std::vector<float>& a,
                                                const std::vector<float>& b, const std::vector<int>& rows) {
  const GemmDims d = gemm_dims(op, s);
  std::vector<double> out;
  out.reserve(rows.size() * static_cast<std::size_t>(d.n));
  for (int i : rows) {
    for (int j = 0; j < d.n; ++j) {
      double acc = 0;
      for (int p = 0; p < d.k; ++p) {
        double av = 0, bv = 0;
        switch (op) {
          case DenseOp::forward:  // y[i][j] = sum_p x[i][p] w[j][p]
            av = a[count(i, s.in) + p], bv = b[count(j, s.in) + p];
            break;
          case DenseOp::backward_data:  // dx[i][j] = sum_p dy[i][p] w[p][j]
            av = a[count(i, s.out) + p], bv = b[count(p, s.in) + j];
            break;
          case DenseOp::backward_weights:  // dw[i][j] = sum_p dy[p][i] x[p][j]
            av = a[count(p, s.out) + i], bv = b[count(p, s.in) + j];
            break;
        }
        acc += av * bv;
      }
      out.push_back(acc);
    }
  }
  return out;
}

inline std::vector<double> ref_u8_to_unit(const std::vector<std::uint8_t>& src) {
  std::vector<double> out(src.size());
  for (std::size_t i = 0; i < src.size(); ++i) out[i] = src[i] / 255.0;
  return out;
}

inline double ref_activate(double z, Activation act) {
  switch (act) {
    case Activation::relu: return z > 0 ? z : 0;
    case Activation::sigmoid: return 1 / (1 + std::exp(-z));
    case Activation::tanh: return std::tanh(z);
    case Activation::gelu: return 0.5 * z * (1 + std::erf(z / std::sqrt(2.0)));
    case Activation::identity: return z;
  }
  return z;
}

inline std::vector<double> ref_bias_act_forward(const std::vector<float>& y, const std::vector<float>& b, int batch,
                                                int width, Activation act) {
  std::vector<double> out(y.size());
  for (int i = 0; i < batch; ++i)
    for (int j = 0; j < width; ++j) out[count(i, width) + j] = ref_activate(double{y[count(i, width) + j]} + b[j], act);
  return out;
}

/// dy * act'(.) through the activation's output y.
inline std::vector<double> ref_act_backward(const std::vector<float>& dy, const std::vector<float>& y, Activation act) {
  std::vector<double> out(dy.size());
  for (std::size_t i = 0; i < dy.size(); ++i) {
    const double a = y[i];
    double d = 1;
    switch (act) {
      case Activation::relu: d = a > 0 ? 1 : 0; break;
      case Activation::sigmoid: d = a * (1 - a); break;
      case Activation::tanh: d = 1 - a * a; break;
      case Activation::gelu:  // a is the pre-activation z
        d = 0.5 * (1 + std::erf(a / std::sqrt(2.0))) + a * std::exp(-0.5 * a * a) / std::sqrt(2 * 3.14159265358979323846);
        break;
      case Activation::identity: break;
    }
    out[i] = dy[i] * d;
  }
  return out;
}

inline std::vector<double> ref_bias_grad(const std::vector<float>& dy, int batch, int width) {
  std::vector<double> db(static_cast<std::size_t>(width), 0.0);
  for (int i = 0; i < batch; ++i)
    for (int j = 0; j < width; ++j) db[j] += dy[count(i, width) + j];
  return db;
}

/// Index of a row's first maximum.
inline int ref_argmax(const float* row, int n) {
  int best = 0;
  for (int j = 1; j < n; ++j)
    if (row[j] > row[best]) best = j;
  return best;
}

struct LossRef {
  double loss = 0;
  unsigned long long correct = 0;
  std::vector<double> grad;
};

/// Per row: loss log(sum_j exp z_j) - z_label, gradient (softmax - onehot) * scale.
inline LossRef ref_softmax_xent(const std::vector<float>& logits, const std::vector<std::uint8_t>& lab, int batch,
                                int classes, double scale) {
  LossRef r;
  r.grad.resize(logits.size());
  for (int i = 0; i < batch; ++i) {
    const float* z = logits.data() + count(i, classes);
    const int best = ref_argmax(z, classes);
    double sum = 0;
    for (int j = 0; j < classes; ++j) sum += std::exp(double{z[j]} - z[best]);
    const double lse = z[best] + std::log(sum);
    r.loss += lse - z[lab[i]];
    r.correct += best == lab[i];
    for (int j = 0; j < classes; ++j)
      r.grad[count(i, classes) + j] = (std::exp(z[j] - lse) - (j == lab[i] ? 1 : 0)) * scale;
  }
  return r;
}

/// Per row: loss 0.5 * sum_j (out_j - onehot_j)^2, gradient (out - onehot) * scale.
inline LossRef ref_l2_loss(const std::vector<float>& out, const std::vector<std::uint8_t>& lab, int batch, int classes,
                           double scale) {
  LossRef r;
  r.grad.resize(out.size());
  for (int i = 0; i < batch; ++i) {
    const float* o = out.data() + count(i, classes);
    for (int j = 0; j < classes; ++j) {
      const double diff = double{o[j]} - (j == lab[i] ? 1 : 0);
      r.loss += 0.5 * diff * diff;
      r.grad[count(i, classes) + j] = diff * scale;
    }
    r.correct += ref_argmax(o, classes) == lab[i];
  }
  return r;
}

/// The counts one confusion_update adds to a zero matrix (classes, classes): [label][argmax].
inline std::vector<unsigned long long> ref_confusion(const std::vector<float>& logits,
                                                     const std::vector<std::uint8_t>& lab, int batch, int classes) {
  std::vector<unsigned long long> c(count(classes, classes), 0);
  for (int i = 0; i < batch; ++i) c[count(lab[i], classes) + ref_argmax(logits.data() + count(i, classes), classes)] += 1;
  return c;
}

struct OptimRef {
  std::vector<double> w, s1, s2;
};

/// One update of the arena in float64, the formulas of cpu_ops.hpp's optimizer_update comment.
inline OptimRef ref_optimizer_update(const OptimInputs& in) {
  const OptimStep& st = in.step;
  OptimRef r;
  r.w.assign(in.w.begin(), in.w.end());
  r.s1.assign(in.s1.begin(), in.s1.end());
  r.s2.assign(in.s2.begin(), in.s2.end());
  for (std::size_t i = 0; i < in.n; ++i) {
    const double g = double{in.g[i]} + (i < in.n_decay ? double{st.l2} * in.w[i] : 0.0);
    switch (st.kind) {
      case OptimizerKind::sgd: r.w[i] -= double{st.lr} * g; break;
      case OptimizerKind::momentum: {
        const double mu = st.momentum;
        r.s1[i] = mu * r.s1[i] + g;
        r.w[i] -= double{st.lr} * (st.nesterov ? g + mu * r.s1[i] : r.s1[i]);
        break;
      }
      case OptimizerKind::adam: {
        r.s1[i] = double{st.beta1} * r.s1[i] + (1 - double{st.beta1}) * g;
        r.s2[i] = double{st.beta2} * r.s2[i] + (1 - double{st.beta2}) * g * g;
        const double m_hat = r.s1[i] / st.bias_correction1, v_hat = r.s2[i] / st.bias_correction2;
        r.w[i] -= double{st.lr} * m_hat / (std::sqrt(v_hat) + st.eps);
        break;
      }
      case OptimizerKind::rmsprop: {
        r.s1[i] = double{st.rho} * r.s1[i] + (1 - double{st.rho}) * g * g;
        r.w[i] -= double{st.lr} * g / (std::sqrt(r.s1[i]) + st.eps);
        break;
      }
    }
  }
  return r;
}

}  // namespace mnist_gpu::micro
