// The CPU ops of the MLP: the reference that every GPU op is checked against. Each op has a GPU
// twin of the same name and argument order in namespace mnist_gpu::gpu (kernels/), which takes
// a stream (and the cuBLAS handle for dense products) in addition. Row-major (batch, features)
// everywhere. Instantiated for float (training) and double (finite-difference checks).
#pragma once
#include <cstddef>
#include <cstdint>

#include "mnist_gpu/config.hpp"
#include "mnist_gpu/dropout.hpp"

namespace mnist_gpu {

/// One optimizer step's scalars. Bias corrections are 1 - beta^t, computed by the caller.
struct OptimStep {
  OptimizerKind kind = OptimizerKind::sgd;
  float lr = 0.0f;
  float momentum = 0.0f;
  bool nesterov = false;
  float beta1 = 0.9f, beta2 = 0.999f;
  float eps = 1e-8f;  ///< adam: OptimizerConfig::eps; rmsprop: OptimizerConfig::rms_eps
  float rho = 0.9f;   ///< rmsprop
  float l2 = 0.0f;
  float bias_correction1 = 1.0f, bias_correction2 = 1.0f;
};

/// Builds the step's scalars for update number t (1-based) of `cfg`.
OptimStep make_optim_step(const OptimizerConfig& cfg, float lr, long long t);

namespace cpu {

/// dst[i] = src[i] / 255: uint8 pixels to [0, 1].
template <class T>
void u8_to_unit(const std::uint8_t* src, T* dst, std::size_t n);

/// y (batch, out) = x (batch, in) . w^T, with w (out, in).
template <class T>
void dense_forward(const T* x, const T* w, T* y, int batch, int in, int out);

/// dx (batch, in) = dy (batch, out) . w (out, in).
template <class T>
void dense_backward_data(const T* dy, const T* w, T* dx, int batch, int in, int out);

/// dw (out, in) = dy^T (out, batch) . x (batch, in); overwrites dw.
template <class T>
void dense_backward_weights(const T* dy, const T* x, T* dw, int batch, int in, int out);

/// In place: y (batch, out) = act(y + b). identity adds the bias only.
/// gelu(z) = z Phi(z) = z (1 + erf(z / sqrt 2)) / 2 (the exact form, PyTorch's nn.GELU()).
template <class T>
void bias_act_forward(T* y, const T* b, int batch, int out, Activation act);

/// bias_act_forward that also keeps the pre-activation: z (batch, out) = y + b, then y = act(z).
/// For the activations whose backward reads z (activation.hpp's backward_reads_z).
template <class T>
void bias_act_forward_keep(T* y, T* z, const T* b, int batch, int out, Activation act);

/// In place: dy *= act'(.) (n elements), expressed through `saved`: the activation's output y, or
/// its pre-activation z for an activation whose table entry has backward_reads_z.
/// relu: y > 0; sigmoid: y (1 - y); tanh: 1 - y^2; gelu: Phi(z) + z phi(z); identity: 1.
template <class T>
void act_backward(T* dy, const T* saved, std::size_t n, Activation act);

/// Inverted dropout (dropout.hpp), forward: out[i] = keep(i) ? a[i] * scale : 0. a may equal out.
template <class T>
void dropout_forward(const T* a, T* out, std::size_t n, const DropoutMask& mask);

/// Dropout backward, in place: d[i] = keep(i) ? d[i] * scale : 0 (the same mask as forward).
template <class T>
void dropout_backward(T* d, std::size_t n, const DropoutMask& mask);

/// db (out) = column sums of dy (batch, out); overwrites db.
template <class T>
void bias_grad(const T* dy, T* db, int batch, int out);

/// Softmax cross-entropy over logits (batch, classes), numerically stable. Adds the summed loss
/// (natural log) to *loss_sum and the number of rows whose argmax (first maximum) equals the
/// label to *correct. When dlogits is non-null writes dlogits = (softmax - onehot) * grad_scale.
template <class T>
void softmax_xent(const T* logits, const std::uint8_t* labels, T* dlogits, int batch, int classes,
                  T grad_scale, double* loss_sum, unsigned long long* correct);

/// Squared error against one-hot targets: per row 0.5 * sum_j (out_j - onehot_j)^2, summed into
/// *loss_sum; argmax accuracy into *correct; when grad is non-null grad = (out - onehot) * grad_scale.
template <class T>
void l2_loss(const T* out, const std::uint8_t* labels, T* grad, int batch, int classes, T grad_scale,
             double* loss_sum, unsigned long long* correct);

/// confusion[label * classes + argmax(row)] += 1 for each row of logits (batch, classes).
template <class T>
void confusion_update(const T* logits, const std::uint8_t* labels, int batch, int classes,
                      unsigned long long* confusion);

/// One update of the whole flat arena: w (n) with gradient g (n), optimizer state s1, s2 (n each;
/// momentum uses s1, adam s1 = m and s2 = v; unused ones may be null). L2 decay g += l2 * w
/// applies to [0, n_decay) only (the weights; biases follow).
///  sgd:      w -= lr g
///  momentum: v = mu v + g; w -= lr (nesterov ? g + mu v : v)       (PyTorch's form)
///  adam:     m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; w -= lr (m/c1) / (sqrt(v/c2) + eps)
///  rmsprop:  sq = rho sq + (1-rho) g^2; w -= lr g / (sqrt(sq) + eps)  (s1 = sq; Keras's form)
template <class T>
void optimizer_update(const OptimStep& step, T* w, const T* g, T* s1, T* s2, std::size_t n,
                      std::size_t n_decay);

/// Max-norm constraint on w (out, in): each row (one unit's incoming weights) whose L2 norm
/// exceeds c is scaled to norm c: w_j *= c / |w_j|; rows within c are left untouched (bitwise).
/// The norm is summed in double on the CPU.
template <class T>
void max_norm(T* w, int out, int in, float c);

}  // namespace cpu
}  // namespace mnist_gpu
