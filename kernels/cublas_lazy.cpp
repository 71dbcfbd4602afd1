// cuBLAS and cuBLASLt loaded on first use instead of at process start.
//
// Linked the usual way (-lcublas -lcublasLt), the two libraries load before main, and
// libcublasLt's initialisation touches about 210 MB of its 540 MB file: 0.14-0.18 s of every
// mnist_gpu start, `--version`, `--help` and CPU-only runs included, all before the first line
// of main (measured on the 2-core development machine). Instead, this file defines the cuBLAS
// and cuBLASLt entry points mnist_gpu calls (the declarations of cublas_v2.h and cublasLt.h,
// nothing else), and each forwards to the real one, found with dlopen/dlsym on its first call:
// the libraries now load inside the backend's setup, which runs beside the data loading, and a
// run that never touches the GPU never loads them. A library that cannot be loaded makes every
// entry point answer CUBLAS_STATUS_NOT_INITIALIZED, and cublasGetStatusString names the reason
// (dlerror's text), which CUBLAS_CHECK puts in its error. So does a library that loaded without
// the entry point called (one older than the headers this build used): the status string, asked
// for on the same thread right after that call, names the function and the library.
// tests/cublas_lazy/ checks both against stand-in libraries.
//
// Adding a cuBLAS or cuBLASLt call to kernels/ means adding its forwarder here (the link fails
// with an undefined reference until then).
#include <cublasLt.h>
#include <cublas_v2.h>
#include <dlfcn.h>

#include <string>

namespace {

#define MNIST_GPU_STRINGIFY2(x) #x
#define MNIST_GPU_STRINGIFY(x) MNIST_GPU_STRINGIFY2(x)

struct Library {
  std::string soname;
  void* handle = nullptr;
  std::string error;  ///< why dlopen failed ("" when loaded)
};

Library open_library(const char* soname) {
  Library lib;
  lib.soname = soname;
  lib.handle = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
  if (!lib.handle) {
    const char* e = dlerror();
    lib.error = std::string("cannot load ") + soname + ": " + (e ? e : "unknown error");
  }
  return lib;
}

// The sonames this build was compiled against (the same major version as its headers).
const Library& cublas_library() {
  static const Library lib = open_library("libcublas.so." MNIST_GPU_STRINGIFY(CUBLAS_VER_MAJOR));
  return lib;
}
const Library& cublaslt_library() {
  static const Library lib = open_library("libcublasLt.so." MNIST_GPU_STRINGIFY(CUBLAS_VER_MAJOR));
  return lib;
}

// The real function `name` of `lib` with the type of its declaration F; nullptr when the library
// or the symbol is missing.
template <class F>
F* find(const Library& lib, const char* name) {
  return lib.handle ? reinterpret_cast<F*>(dlsym(lib.handle, name)) : nullptr;
}

// Why `name` cannot be called: the library's load failure, or the symbol missing from it.
std::string unusable(const Library& lib, const char* name) {
  if (!lib.handle) return lib.error;
  return std::string(name) + " is missing from " + lib.soname + " (a cuBLAS older than the cuBLAS " +
         MNIST_GPU_STRINGIFY(CUBLAS_VER_MAJOR) "." MNIST_GPU_STRINGIFY(CUBLAS_VER_MINOR) " headers this build used?)";
}

// The reason the last forwarded call on this thread failed without reaching cuBLAS (nullptr when
// it reached cuBLAS): cublasGetStatusString's answer for CUBLAS_STATUS_NOT_INITIALIZED until the
// next forwarded call.
thread_local const char* last_unusable = nullptr;

}  // namespace

// Each forwarder: the real function, looked up once (a thread-safe static), or the status that
// says cuBLAS is unusable, with the reason kept for cublasGetStatusString.
#define MNIST_GPU_FORWARD_TO(real, lib, name, ...)                                 \
  if (!real) {                                                                    \
    static const std::string why = unusable(lib(), name);                         \
    last_unusable = why.c_str();                                                  \
    return CUBLAS_STATUS_NOT_INITIALIZED;                                         \
  }                                                                               \
  last_unusable = nullptr;                                                        \
  return real(__VA_ARGS__)
#define MNIST_GPU_FORWARD(lib, name, ...)                                          \
  static auto* const real = find<decltype(name)>(lib(), #name);                   \
  MNIST_GPU_FORWARD_TO(real, lib, #name, __VA_ARGS__)

extern "C" {

// --- cuBLAS (libcublas) ----------------------------------------------------------------------
cublasStatus_t cublasCreate_v2(cublasHandle_t* handle) { MNIST_GPU_FORWARD(cublas_library, cublasCreate_v2, handle); }

cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) { MNIST_GPU_FORWARD(cublas_library, cublasDestroy_v2, handle); }

cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t stream) {
  MNIST_GPU_FORWARD(cublas_library, cublasSetStream_v2, handle, stream);
}

cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t handle, void* workspace, size_t bytes) {
  MNIST_GPU_FORWARD(cublas_library, cublasSetWorkspace_v2, handle, workspace, bytes);
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
  MNIST_GPU_FORWARD(cublas_library, cublasSetMathMode, handle, mode);
}

cublasStatus_t cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                              int k, const float* alpha, const float* A, int lda, const float* B, int ldb,
                              const float* beta, float* C, int ldc) {
  MNIST_GPU_FORWARD(cublas_library, cublasSgemm_v2, handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C,
                    ldc);
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                            int k, const void* alpha, const void* A, cudaDataType Atype, int lda, const void* B,
                            cudaDataType Btype, int ldb, const void* beta, void* C, cudaDataType Ctype, int ldc,
                            cublasComputeType_t computeType, cublasGemmAlgo_t algo) {
  // cublas_api.h overloads cublasGemmEx in C++ (a cudaDataType compute type): name this one's type.
  using GemmEx = cublasStatus_t(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void*,
                                const void*, cudaDataType, int, const void*, cudaDataType, int, const void*, void*,
                                cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);
  static auto* const real = find<GemmEx>(cublas_library(), "cublasGemmEx");
  MNIST_GPU_FORWARD_TO(real, cublas_library, "cublasGemmEx", handle, transa, transb, m, n, k, alpha, A, Atype, lda, B,
                       Btype, ldb, beta, C, Ctype, ldc, computeType, algo);
}

// The status texts: cuBLAS's own, except for the NOT_INITIALIZED of a call that could not reach
// cuBLAS (the library or the function missing), whose reason it gives instead, so that the error
// the failed call raises says why. Neither changes last_unusable (CUBLAS_CHECK asks for both).
const char* cublasGetStatusName(cublasStatus_t status) {
  static auto* const real = find<decltype(cublasGetStatusName)>(cublas_library(), "cublasGetStatusName");
  return real ? real(status) : "CUBLAS_STATUS_NOT_INITIALIZED";
}

const char* cublasGetStatusString(cublasStatus_t status) {
  if (status == CUBLAS_STATUS_NOT_INITIALIZED && last_unusable) return last_unusable;
  static auto* const real = find<decltype(cublasGetStatusString)>(cublas_library(), "cublasGetStatusString");
  if (real) return real(status);
  static const std::string why = unusable(cublas_library(), "cublasGetStatusString");
  return why.c_str();
}

// --- cuBLASLt (libcublasLt) ------------------------------------------------------------------
size_t cublasLtGetVersion(void) {
  static auto* const real = find<decltype(cublasLtGetVersion)>(cublaslt_library(), "cublasLtGetVersion");
  return real ? real() : 0;
}

cublasStatus_t cublasLtCreate(cublasLtHandle_t* handle) { MNIST_GPU_FORWARD(cublaslt_library, cublasLtCreate, handle); }

cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
  MNIST_GPU_FORWARD(cublaslt_library, cublasLtDestroy, handle);
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* layout, cudaDataType type, uint64_t rows,
                                          uint64_t cols, int64_t ld) {
  MNIST_GPU_FORWARD(cublaslt_library, cublasLtMatrixLayoutCreate, layout, type, rows, cols, ld);
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
  MNIST_GPU_FORWARD(cublaslt_library, cublasLtMatrixLayoutDestroy, layout);
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* desc, cublasComputeType_t computeType,
                                        cudaDataType_t scaleType) {
  MNIST_GPU_FORWARD(cublaslt_library, cublasLtMatmulDescCreate, desc, computeType, scaleType);
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
  MNIST_GPU_FORWARD(cublaslt_library, cublasLtMatmulDescDestroy, desc);
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr,
                                              const void* buf, size_t bytes) {
  MNIST_GPU_FORWARD(cublaslt_library, cublasLtMatmulDescSetAttribute, desc, attr, buf, bytes);
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* pref) {
  MNIST_GPU_FORWARD(cublaslt_library, cublasLtMatmulPreferenceCreate, pref);
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
  MNIST_GPU_FORWARD(cublaslt_library, cublasLtMatmulPreferenceDestroy, pref);
}

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void* buf,
                                                    size_t bytes) {
  MNIST_GPU_FORWARD(cublaslt_library, cublasLtMatmulPreferenceSetAttribute, pref, attr, buf, bytes);
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                                              cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                              cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                              cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t results[], int* returned) {
  MNIST_GPU_FORWARD(cublaslt_library, cublasLtMatmulAlgoGetHeuristic, handle, desc, a, b, c, d, pref, requested,
                    results, returned);
}

cublasStatus_t cublasLtMatmulAlgoCheck(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t a,
                                       cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                       const cublasLtMatmulAlgo_t* algo, cublasLtMatmulHeuristicResult_t* result) {
  MNIST_GPU_FORWARD(cublaslt_library, cublasLtMatmulAlgoCheck, handle, desc, a, b, c, d, algo, result);
}

cublasStatus_t cublasLtMatmulAlgoConfigGetAttribute(const cublasLtMatmulAlgo_t* algo,
                                                    cublasLtMatmulAlgoConfigAttributes_t attr, void* buf, size_t bytes,
                                                    size_t* written) {
  MNIST_GPU_FORWARD(cublaslt_library, cublasLtMatmulAlgoConfigGetAttribute, algo, attr, buf, bytes, written);
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, const void* alpha, const void* A,
                              cublasLtMatrixLayout_t Adesc, const void* B, cublasLtMatrixLayout_t Bdesc,
                              const void* beta, const void* C, cublasLtMatrixLayout_t Cdesc, void* D,
                              cublasLtMatrixLayout_t Ddesc, const cublasLtMatmulAlgo_t* algo, void* workspace,
                              size_t workspace_bytes, cudaStream_t stream) {
  MNIST_GPU_FORWARD(cublaslt_library, cublasLtMatmul, handle, desc, alpha, A, Adesc, B, Bdesc, beta, C, Cdesc, D,
                    Ddesc, algo, workspace, workspace_bytes, stream);
}

}  // extern "C"
