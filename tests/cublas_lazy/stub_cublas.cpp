// A stand-in for libcublas.so.N in tests/cublas_lazy: a library that loads but lacks most of the
// entry points kernels/cublas_lazy.cpp forwards to (as an older cuBLAS would). C linkage with the
// ABI's integer types: 0 is CUBLAS_STATUS_SUCCESS.
extern "C" {
int cublasCreate_v2(void** handle) {
  *handle = nullptr;
  return 0;
}
const char* cublasGetStatusName(int status) { return status == 0 ? "STUB_SUCCESS" : "STUB_FAILURE"; }
const char* cublasGetStatusString(int status) { return status == 0 ? "stub: success" : "stub: its own failure text"; }
}
