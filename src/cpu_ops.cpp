// CPU twins of the GPU ops: dense products through OpenBLAS (or a plain loop without it) and
// the elementwise passes, each written once as a template for float and double.
#include "mnist_gpu/cpu_ops.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#ifdef MNIST_GPU_HAVE_OPENBLAS
#include <cblas.h>
#endif

namespace mnist_gpu {

OptimStep make_optim_step(const OptimizerConfig& cfg, float lr, long long t) {
  OptimStep s;
  s.kind = cfg.kind;
  s.lr = lr;
  s.momentum = cfg.momentum;
  s.nesterov = cfg.nesterov;
  s.beta1 = cfg.beta1;
  s.beta2 = cfg.beta2;
  s.eps = cfg.kind == OptimizerKind::rmsprop ? cfg.rms_eps : cfg.eps;
  s.rho = cfg.rho;
  s.l2 = cfg.l2;
  const double td = static_cast<double>(t);
  s.bias_correction1 = static_cast<float>(1.0 - std::pow(static_cast<double>(cfg.beta1), td));
  s.bias_correction2 = static_cast<float>(1.0 - std::pow(static_cast<double>(cfg.beta2), td));
  return s;
}

namespace cpu {
namespace {

// C (m, n) = op(A) . op(B), row-major, overwriting C. ta/tb: whether A/B are stored transposed
// (A is (k, m) when ta, else (m, k); B is (n, k) when tb, else (k, n)).
template <class T>
void gemm(bool ta, bool tb, int m, int n, int k, const T* a, const T* b, T* c) {
#ifdef MNIST_GPU_HAVE_OPENBLAS
  const int lda = ta ? m : k;
  const int ldb = tb ? k : n;
  const CBLAS_TRANSPOSE opa = ta ? CblasTrans : CblasNoTrans;
  const CBLAS_TRANSPOSE opb = tb ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<T, float>) {
    cblas_sgemm(CblasRowMajor, opa, opb, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, n);
  } else {
    cblas_dgemm(CblasRowMajor, opa, opb, m, n, k, 1.0, a, lda, b, ldb, 0.0, c, n);
  }
#else
  // Plain loop: i-p-j order so the inner loop streams rows of B and C.
  std::fill(c, c + static_cast<std::size_t>(m) * n, T(0));
  for (int i = 0; i < m; ++i) {
    T* crow = c + static_cast<std::size_t>(i) * n;
    for (int p = 0; p < k; ++p) {
      const T av = ta ? a[static_cast<std::size_t>(p) * m + i] : a[static_cast<std::size_t>(i) * k + p];
      if (av == T(0)) continue;
      if (tb) {
        for (int j = 0; j < n; ++j) crow[j] += av * b[static_cast<std::size_t>(j) * k + p];
      } else {
        const T* brow = b + static_cast<std::size_t>(p) * n;
        for (int j = 0; j < n; ++j) crow[j] += av * brow[j];
      }
    }
  }
#endif
}

constexpr double kInvSqrt2 = 0.70710678118654752440;    // 1 / sqrt(2)
constexpr double kInvSqrt2Pi = 0.39894228040143267794;  // 1 / sqrt(2 pi)

// gelu(z) = z Phi(z), Phi the standard normal CDF. Saturates to z (z >> 0) and -0 (z << 0): erf
// reaches +-1 exactly, so no overflow; NaN stays NaN.
template <class T>
T gelu(T z) {
  return T(0.5) * z * (T(1) + std::erf(z * T(kInvSqrt2)));
}

// gelu'(z) = Phi(z) + z phi(z), phi the standard normal density; exp underflows to 0 for |z| > ~40.
template <class T>
T gelu_grad(T z) {
  return T(0.5) * (T(1) + std::erf(z * T(kInvSqrt2))) + z * T(kInvSqrt2Pi) * std::exp(T(-0.5) * z * z);
}

template <class T>
T activate(T z, Activation act) {
  switch (act) {
    case Activation::relu: return z > T(0) ? z : T(0);
    case Activation::sigmoid: return T(1) / (T(1) + std::exp(-z));
    case Activation::tanh: return std::tanh(z);
    case Activation::gelu: return gelu(z);
    case Activation::identity: return z;
  }
  return z;
}

// Index of the first maximum of a row.
template <class T>
int argmax(const T* row, int n) {
  int best = 0;
  for (int j = 1; j < n; ++j)
    if (row[j] > row[best]) best = j;
  return best;
}

}  // namespace

template <class T>
void u8_to_unit(const std::uint8_t* src, T* dst, std::size_t n) {
  const T scale = T(1) / T(255);
  for (std::size_t i = 0; i < n; ++i) dst[i] = static_cast<T>(src[i]) * scale;
}

template <class T>
void dense_forward(const T* x, const T* w, T* y, int batch, int in, int out) {
  gemm<T>(false, true, batch, out, in, x, w, y);
}

template <class T>
void dense_backward_data(const T* dy, const T* w, T* dx, int batch, int in, int out) {
  gemm<T>(false, false, batch, in, out, dy, w, dx);
}

template <class T>
void dense_backward_weights(const T* dy, const T* x, T* dw, int batch, int in, int out) {
  gemm<T>(true, false, out, in, batch, dy, x, dw);
}

// The activation is chosen once per call, not per element, so that each loop vectorises.
template <class T, class F>
void bias_then(T* y, const T* b, int batch, int out, F f) {
  for (int i = 0; i < batch; ++i) {
    T* __restrict row = y + static_cast<std::size_t>(i) * out;
    for (int j = 0; j < out; ++j) row[j] = f(row[j] + b[j]);
  }
}

template <class T>
void bias_act_forward(T* y, const T* b, int batch, int out, Activation act) {
  switch (act) {
    case Activation::relu: bias_then(y, b, batch, out, [](T z) { return z > T(0) ? z : T(0); }); break;
    case Activation::sigmoid: bias_then(y, b, batch, out, [](T z) { return activate(z, Activation::sigmoid); }); break;
    case Activation::tanh: bias_then(y, b, batch, out, [](T z) { return activate(z, Activation::tanh); }); break;
    case Activation::gelu: bias_then(y, b, batch, out, [](T z) { return gelu(z); }); break;
    case Activation::identity: bias_then(y, b, batch, out, [](T z) { return z; }); break;
  }
}

// The same values as bias_act_forward (the same activate), with z kept on the way.
template <class T>
void bias_act_forward_keep(T* y, T* z, const T* b, int batch, int out, Activation act) {
  for (int i = 0; i < batch; ++i) {
    T* __restrict yrow = y + static_cast<std::size_t>(i) * out;
    T* __restrict zrow = z + static_cast<std::size_t>(i) * out;
    for (int j = 0; j < out; ++j) {
      const T v = yrow[j] + b[j];
      zrow[j] = v;
      yrow[j] = activate(v, act);
    }
  }
}

template <class T>
void act_backward(T* dy, const T* y, std::size_t n, Activation act) {
  // y is the saved tensor: the output, or z for gelu (the table's backward_reads_z).
  switch (act) {
    case Activation::relu:
      for (std::size_t i = 0; i < n; ++i) dy[i] = y[i] > T(0) ? dy[i] : T(0);
      break;
    case Activation::sigmoid:
      for (std::size_t i = 0; i < n; ++i) dy[i] *= y[i] * (T(1) - y[i]);
      break;
    case Activation::tanh:
      for (std::size_t i = 0; i < n; ++i) dy[i] *= T(1) - y[i] * y[i];
      break;
    case Activation::gelu:
      for (std::size_t i = 0; i < n; ++i) dy[i] *= gelu_grad(y[i]);
      break;
    case Activation::identity: break;
  }
}

template <class T>
void bias_grad(const T* dy, T* db, int batch, int out) {
  std::fill(db, db + out, T(0));
  for (int i = 0; i < batch; ++i) {
    const T* row = dy + static_cast<std::size_t>(i) * out;
    for (int j = 0; j < out; ++j) db[j] += row[j];
  }
}

template <class T>
void softmax_xent(const T* logits, const std::uint8_t* labels, T* dlogits, int batch, int classes,
                  T grad_scale, double* loss_sum, unsigned long long* correct) {
  double loss = 0;
  unsigned long long hits = 0;
  for (int i = 0; i < batch; ++i) {
    const T* z = logits + static_cast<std::size_t>(i) * classes;
    const int y = labels[i];
    const int best = argmax(z, classes);
    const T m = z[best];
    T sum = 0;
    for (int j = 0; j < classes; ++j) sum += std::exp(z[j] - m);
    const T log_sum = std::log(sum);
    loss += static_cast<double>(log_sum - (z[y] - m));
    hits += best == y;
    if (dlogits) {
      T* d = dlogits + static_cast<std::size_t>(i) * classes;
      for (int j = 0; j < classes; ++j) {
        const T p = std::exp(z[j] - m - log_sum);
        d[j] = (p - (j == y ? T(1) : T(0))) * grad_scale;
      }
    }
  }
  *loss_sum += loss;
  *correct += hits;
}

template <class T>
void l2_loss(const T* out, const std::uint8_t* labels, T* grad, int batch, int classes, T grad_scale,
             double* loss_sum, unsigned long long* correct) {
  double loss = 0;
  unsigned long long hits = 0;
  for (int i = 0; i < batch; ++i) {
    const T* o = out + static_cast<std::size_t>(i) * classes;
    const int y = labels[i];
    T row_loss = 0;
    for (int j = 0; j < classes; ++j) {
      const T diff = o[j] - (j == y ? T(1) : T(0));
      row_loss += diff * diff;
      if (grad) grad[static_cast<std::size_t>(i) * classes + j] = diff * grad_scale;
    }
    loss += 0.5 * static_cast<double>(row_loss);
    hits += argmax(o, classes) == y;
  }
  *loss_sum += loss;
  *correct += hits;
}

template <class T>
void confusion_update(const T* logits, const std::uint8_t* labels, int batch, int classes,
                      unsigned long long* confusion) {
  for (int i = 0; i < batch; ++i) {
    const int pred = argmax(logits + static_cast<std::size_t>(i) * classes, classes);
    confusion[static_cast<std::size_t>(labels[i]) * classes + pred] += 1;
  }
}

// One optimizer step over w[lo, hi) with a fixed L2 coefficient; a branch-free loop body so
// that the compiler vectorises it.
template <class T>
void update_range(const OptimStep& s, T* __restrict w, const T* __restrict g, T* __restrict s1,
                  T* __restrict s2, std::size_t lo, std::size_t hi, T l2) {
  const T lr = s.lr;
  switch (s.kind) {
    case OptimizerKind::sgd:
      for (std::size_t i = lo; i < hi; ++i) w[i] -= lr * (g[i] + l2 * w[i]);
      break;
    case OptimizerKind::momentum: {
      const T mu = s.momentum;
      const T nest = s.nesterov ? T(1) : T(0);
      for (std::size_t i = lo; i < hi; ++i) {
        const T gi = g[i] + l2 * w[i];
        const T v = mu * s1[i] + gi;
        s1[i] = v;
        // nesterov: g + mu v; classic: v.
        w[i] -= lr * (nest * (gi + mu * v) + (T(1) - nest) * v);
      }
      break;
    }
    case OptimizerKind::adam: {
      const T b1 = s.beta1, b2 = s.beta2, eps = s.eps;
      const T inv_c1 = T(1) / static_cast<T>(s.bias_correction1);
      const T inv_c2 = T(1) / static_cast<T>(s.bias_correction2);
      for (std::size_t i = lo; i < hi; ++i) {
        const T gi = g[i] + l2 * w[i];
        const T m = b1 * s1[i] + (T(1) - b1) * gi;
        const T v = b2 * s2[i] + (T(1) - b2) * gi * gi;
        s1[i] = m;
        s2[i] = v;
        w[i] -= lr * (m * inv_c1) / (std::sqrt(v * inv_c2) + eps);
      }
      break;
    }
    case OptimizerKind::rmsprop: {
      const T rho = s.rho, eps = s.eps;
      for (std::size_t i = lo; i < hi; ++i) {
        const T gi = g[i] + l2 * w[i];
        const T sq = rho * s1[i] + (T(1) - rho) * gi * gi;
        s1[i] = sq;
        w[i] -= lr * gi / (std::sqrt(sq) + eps);
      }
      break;
    }
  }
}

template <class T>
void max_norm(T* w, int out, int in, float c) {
  for (int j = 0; j < out; ++j) {
    T* row = w + static_cast<std::size_t>(j) * in;
    double sum = 0;
    for (int k = 0; k < in; ++k) sum += static_cast<double>(row[k]) * static_cast<double>(row[k]);
    const double norm = std::sqrt(sum);
    if (norm <= static_cast<double>(c)) continue;
    const T scale = static_cast<T>(static_cast<double>(c) / norm);
    for (int k = 0; k < in; ++k) row[k] *= scale;
  }
}

template <class T>
void optimizer_update(const OptimStep& s, T* w, const T* g, T* s1, T* s2, std::size_t n,
                      std::size_t n_decay) {
  update_range<T>(s, w, g, s1, s2, 0, n_decay, static_cast<T>(s.l2));
  update_range<T>(s, w, g, s1, s2, n_decay, n, T(0));
}

template <class T>
void dropout_forward(const T* a, T* out, std::size_t n, const DropoutMask& mask) {
  const T scale = static_cast<T>(mask.scale);
  for (std::size_t i = 0; i < n; ++i) out[i] = dropout_keep(mask, i) ? a[i] * scale : T(0);
}

template <class T>
void dropout_backward(T* d, std::size_t n, const DropoutMask& mask) {
  dropout_forward<T>(d, d, n, mask);
}

#define MNIST_GPU_INSTANTIATE(T)                                                                   \
  template void u8_to_unit<T>(const std::uint8_t*, T*, std::size_t);                              \
  template void dense_forward<T>(const T*, const T*, T*, int, int, int);                           \
  template void dense_backward_data<T>(const T*, const T*, T*, int, int, int);                     \
  template void dense_backward_weights<T>(const T*, const T*, T*, int, int, int);                  \
  template void bias_act_forward<T>(T*, const T*, int, int, Activation);                           \
  template void bias_act_forward_keep<T>(T*, T*, const T*, int, int, Activation);                  \
  template void act_backward<T>(T*, const T*, std::size_t, Activation);                            \
  template void bias_grad<T>(const T*, T*, int, int);                                              \
  template void dropout_forward<T>(const T*, T*, std::size_t, const DropoutMask&);                 \
  template void dropout_backward<T>(T*, std::size_t, const DropoutMask&);                          \
  template void softmax_xent<T>(const T*, const std::uint8_t*, T*, int, int, T, double*,           \
                                unsigned long long*);                                              \
  template void l2_loss<T>(const T*, const std::uint8_t*, T*, int, int, T, double*,                \
                           unsigned long long*);                                                   \
  template void confusion_update<T>(const T*, const std::uint8_t*, int, int, unsigned long long*); \
  template void optimizer_update<T>(const OptimStep&, T*, const T*, T*, T*, std::size_t, std::size_t); \
  template void max_norm<T>(T*, int, int, float);
MNIST_GPU_INSTANTIATE(float)
MNIST_GPU_INSTANTIATE(double)
#undef MNIST_GPU_INSTANTIATE

}  // namespace cpu
}  // namespace mnist_gpu
