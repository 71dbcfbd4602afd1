// A stand-in for libcublasLt.so.N in tests/cublas_lazy: only the version query.
#include <cstddef>
extern "C" {
std::size_t cublasLtGetVersion() { return 120345; }
}
