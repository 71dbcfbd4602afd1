// kernels/cublas_lazy.cpp against stand-in libraries (stub_cublas.cpp, stub_cublaslt.cpp), found
// through LD_LIBRARY_PATH under the sonames the forwarders open: calls the stand-ins define
// reach them; a call whose function is missing answers NOT_INITIALIZED, and the status string
// asked for right after it names the function and the library instead of cuBLAS's generic text.
// Runs without a GPU (nothing here touches CUDA).
#include <cublasLt.h>
#include <cublas_v2.h>
#include <gtest/gtest.h>

#include <string>

static_assert(CUBLAS_VER_MAJOR == MNIST_GPU_STUB_MAJOR, "the stand-in libraries carry the headers' cuBLAS major");

namespace {

const std::string kCublas = "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR);
const std::string kCublasLt = "libcublasLt.so." + std::to_string(CUBLAS_VER_MAJOR);

std::string status_text(cublasStatus_t s) { return cublasGetStatusString(s); }

// The stand-ins, not a real cuBLAS, answer (ctest puts them first on LD_LIBRARY_PATH).
#define ASSERT_ON_STAND_INS() \
  ASSERT_EQ(cublasLtGetVersion(), 120345u) << "run through ctest: the stand-in libraries must come first on LD_LIBRARY_PATH"

TEST(CublasLazyStandIns, CallsReachTheLoadedLibrary) {
  ASSERT_ON_STAND_INS();
  cublasHandle_t h = reinterpret_cast<cublasHandle_t>(&h);
  EXPECT_EQ(cublasCreate_v2(&h), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(h, nullptr);  // the stand-in's answer, so the call reached it
  EXPECT_EQ(cublasLtGetVersion(), 120345u);
  EXPECT_STREQ(cublasGetStatusName(CUBLAS_STATUS_SUCCESS), "STUB_SUCCESS");
  EXPECT_EQ(status_text(CUBLAS_STATUS_NOT_INITIALIZED), "stub: its own failure text");
}

TEST(CublasLazyStandIns, AMissingFunctionIsNamedWithItsLibrary) {
  ASSERT_ON_STAND_INS();
  cublasHandle_t h = nullptr;
  ASSERT_EQ(cublasSetStream_v2(h, nullptr), CUBLAS_STATUS_NOT_INITIALIZED);
  const std::string why = status_text(CUBLAS_STATUS_NOT_INITIALIZED);
  EXPECT_NE(why.find("cublasSetStream_v2 is missing from " + kCublas), std::string::npos) << why;
  // The name of the status is still the library's own.
  EXPECT_STREQ(cublasGetStatusName(CUBLAS_STATUS_NOT_INITIALIZED), "STUB_FAILURE");
  // The same for cuBLASLt, and for the one forwarder written out by hand (cublasGemmEx).
  cublasLtHandle_t lt = nullptr;
  ASSERT_EQ(cublasLtCreate(&lt), CUBLAS_STATUS_NOT_INITIALIZED);
  const std::string why_lt = status_text(CUBLAS_STATUS_NOT_INITIALIZED);
  EXPECT_NE(why_lt.find("cublasLtCreate is missing from " + kCublasLt), std::string::npos) << why_lt;
  const float one = 1;
  ASSERT_EQ(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, &one, CUDA_R_32F, 1, &one, CUDA_R_32F, 1, &one,
                         nullptr, CUDA_R_32F, 1, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
            CUBLAS_STATUS_NOT_INITIALIZED);
  EXPECT_NE(status_text(CUBLAS_STATUS_NOT_INITIALIZED).find("cublasGemmEx is missing"), std::string::npos);
  // Another status is not given the reason.
  EXPECT_EQ(status_text(CUBLAS_STATUS_INVALID_VALUE), "stub: its own failure text");
}

TEST(CublasLazyStandIns, TheReasonLastsUntilTheNextCallOnly) {
  ASSERT_ON_STAND_INS();
  ASSERT_EQ(cublasLtCreate(nullptr), CUBLAS_STATUS_NOT_INITIALIZED);
  ASSERT_NE(status_text(CUBLAS_STATUS_NOT_INITIALIZED).find("cublasLtCreate"), std::string::npos);
  // A call that reached the library: a NOT_INITIALIZED after it is the library's own.
  cublasHandle_t h = nullptr;
  ASSERT_EQ(cublasCreate_v2(&h), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(status_text(CUBLAS_STATUS_NOT_INITIALIZED), "stub: its own failure text");
}

}  // namespace
