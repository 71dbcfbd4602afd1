// Dense-layer products through cuBLAS SGEMM, for row-major tensors.
//
// The mapping, derived once: cuBLAS is column-major, and a row-major (r, c) matrix M with leading
// dimension c is, to cuBLAS, the column-major (c, r) matrix M^T. With x (batch, in), w (out, in),
// y (batch, out), dy (batch, out), dx (batch, in), dw (out, in), all row-major:
//   forward      y  = x w^T   <=>  y^T (out, batch)  = w (out, in)    . x^T (in, batch)
//                cuBLAS sees w as (in, out) => op T; x as (in, batch) => op N.
//                gemm(T, N, m=out, n=batch, k=in, A=w lda=in, B=x ldb=in, C=y ldc=out)
//   data grad    dx = dy w    <=>  dx^T (in, batch)  = w^T (in, out)  . dy^T (out, batch)
//                gemm(N, N, m=in, n=batch, k=out, A=w lda=in, B=dy ldb=out, C=dx ldc=in)
//   weight grad  dw = dy^T x  <=>  dw^T (in, out)    = x^T (in, batch) . dy (batch, out)
//                cuBLAS sees dy as (out, batch) => op T.
//                gemm(N, T, m=in, n=out, k=batch, A=x lda=in, B=dy ldb=out, C=dw ldc=in)
#include "gpu_ops.hpp"
#include "mnist_gpu/error.hpp"

namespace mnist_gpu::gpu {
namespace {

void check_dims(int batch, int in, int out, const char* op) {
  if (batch < 0 || in <= 0 || out <= 0) throw Error(std::string(op) + ": needs batch >= 0, in > 0, out > 0");
}

}  // namespace

void dense_forward(const float* x, const float* w, float* y, int batch, int in, int out, cublasHandle_t h) {
  check_dims(batch, in, out, "dense_forward");
  if (batch == 0) return;
  const float one = 1.0f, zero = 0.0f;
  CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, out, batch, in, &one, w, in, x, in, &zero, y, out));
}

void dense_backward_data(const float* dy, const float* w, float* dx, int batch, int in, int out, cublasHandle_t h) {
  check_dims(batch, in, out, "dense_backward_data");
  if (batch == 0) return;
  const float one = 1.0f, zero = 0.0f;
  CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, in, batch, out, &one, w, in, dy, out, &zero, dx, in));
}

void dense_backward_weights(const float* dy, const float* x, float* dw, int batch, int in, int out,
                            cublasHandle_t h) {
  check_dims(batch, in, out, "dense_backward_weights");
  const float one = 1.0f, zero = 0.0f;
  // batch == 0 still defines dw (= 0): cuBLAS with k = 0 scales C by beta.
  CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, in, out, batch, &one, x, in, dy, out, &zero, dw, in));
}

}  // namespace mnist_gpu::gpu
