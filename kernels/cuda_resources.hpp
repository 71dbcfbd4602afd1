// Move-only owners of every CUDA resource: device and pinned buffers, streams, events, the cuBLAS
// handle and CUDA graphs (with the capture that makes them). Destructors never throw; nothing
// else calls cudaFree.
// Host-only header: compiles with g++ and nvcc.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <atomic>
#include <cstddef>
#include <utility>
#include <vector>

#include "cuda_check.hpp"

namespace mnist_gpu::gpu {

/// Bytes held by live DeviceBuffers on one GPU, and the most ever held at once (cuBLAS's
/// workspace is one of them; the CUDA context is not counted).
struct DeviceBytes {
  std::atomic<std::size_t> live{0}, peak{0};
  void add(std::size_t n) {
    const std::size_t now = live.fetch_add(n) + n;
    std::size_t p = peak.load();
    while (now > p && !peak.compare_exchange_weak(p, now)) {
    }
  }
  void sub(std::size_t n) { live.fetch_sub(n); }
};
/// The most GPUs a process accounts for separately (device ids beyond share the last counter).
inline constexpr int kMaxDevices = 64;
/// The byte counter of GPU `id` (Device::peak_bytes reads it); every DeviceBuffer counts on the
/// GPU that was current when it was made.
inline DeviceBytes& device_bytes(int id) {
  static DeviceBytes counters[kMaxDevices];
  return counters[id < 0 ? 0 : id < kMaxDevices ? id : kMaxDevices - 1];
}

/// `count` elements of T in GPU memory (uninitialised).
template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t count) : count_(count) {
    if (count == 0) return;
    CUDA_CHECK(cudaGetDevice(&device_));
    const cudaError_t err = cudaMalloc(reinterpret_cast<void**>(&ptr_), count * sizeof(T));
    if (err != cudaSuccess) throw_alloc_error(err, count * sizeof(T), false, __FILE__, __LINE__);
    device_bytes(device_).add(bytes());
  }
  ~DeviceBuffer() { release(); }
  DeviceBuffer(DeviceBuffer&& o) noexcept
      : ptr_(std::exchange(o.ptr_, nullptr)), count_(std::exchange(o.count_, 0)), device_(o.device_) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      release();
      ptr_ = std::exchange(o.ptr_, nullptr);
      count_ = std::exchange(o.count_, 0);
      device_ = o.device_;
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* get() const { return ptr_; }
  std::size_t size() const { return count_; }
  std::size_t bytes() const { return count_ * sizeof(T); }

 private:
  void release() noexcept {
    if (!ptr_) return;
    cudaFree(ptr_);
    device_bytes(device_).sub(bytes());
  }
  T* ptr_ = nullptr;
  std::size_t count_ = 0;
  int device_ = 0;  // the GPU it lives on (its byte counter)
};

/// `count` elements of T in page-locked host memory, so that copies run asynchronously.
template <class T>
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  explicit PinnedBuffer(std::size_t count) : count_(count) {
    if (count == 0) return;
    const cudaError_t err = cudaMallocHost(reinterpret_cast<void**>(&ptr_), count * sizeof(T));
    if (err != cudaSuccess) throw_alloc_error(err, count * sizeof(T), true, __FILE__, __LINE__);
  }
  ~PinnedBuffer() {
    if (ptr_) cudaFreeHost(ptr_);
  }
  PinnedBuffer(PinnedBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), count_(std::exchange(o.count_, 0)) {}
  PinnedBuffer& operator=(PinnedBuffer&& o) noexcept {
    if (this != &o) {
      if (ptr_) cudaFreeHost(ptr_);
      ptr_ = std::exchange(o.ptr_, nullptr);
      count_ = std::exchange(o.count_, 0);
    }
    return *this;
  }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;

  T* get() const { return ptr_; }
  std::size_t size() const { return count_; }

 private:
  T* ptr_ = nullptr;
  std::size_t count_ = 0;
};

/// A non-blocking stream (does not synchronise with the legacy default stream).
class Stream {
 public:
  Stream() { CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
  ~Stream() {
    if (s_) cudaStreamDestroy(s_);
  }
  Stream(Stream&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  Stream& operator=(Stream&& o) noexcept {
    if (this != &o) {
      if (s_) cudaStreamDestroy(s_);
      s_ = std::exchange(o.s_, nullptr);
    }
    return *this;
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return s_; }
  void sync() const { CUDA_CHECK(cudaStreamSynchronize(s_)); }

 private:
  cudaStream_t s_ = nullptr;
};

/// An event; timing disabled unless asked for (cheaper to record and wait on).
class Event {
 public:
  explicit Event(bool timing = false) {
    CUDA_CHECK(cudaEventCreateWithFlags(&e_, timing ? cudaEventDefault : cudaEventDisableTiming));
  }
  ~Event() {
    if (e_) cudaEventDestroy(e_);
  }
  Event(Event&& o) noexcept : e_(std::exchange(o.e_, nullptr)) {}
  Event& operator=(Event&& o) noexcept {
    if (this != &o) {
      if (e_) cudaEventDestroy(e_);
      e_ = std::exchange(o.e_, nullptr);
    }
    return *this;
  }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  cudaEvent_t get() const { return e_; }
  void record(cudaStream_t s) const { CUDA_CHECK(cudaEventRecord(e_, s)); }
  void sync() const { CUDA_CHECK(cudaEventSynchronize(e_)); }
  /// Whether the work before the last record has finished, without waiting. cudaErrorNotReady is
  /// an answer, not a failure: it is cleared, so that the next launch check does not report it.
  bool done() const {
    const cudaError_t err = cudaEventQuery(e_);
    if (err == cudaErrorNotReady) {
      (void)cudaGetLastError();
      return false;
    }
    CUDA_CHECK(err);
    return true;
  }

 private:
  cudaEvent_t e_ = nullptr;
};

/// cuBLAS's workspace for one handle: 32 MiB, the size NVIDIA's cuBLAS guide suggests for Hopper.
/// Owning it (instead of cuBLAS's internal pool) keeps the eager and the graph-captured GEMMs on
/// the same workspace, so that they choose the same kernels, and keeps allocation out of capture.
constexpr std::size_t kCublasWorkspaceBytes = std::size_t{32} << 20;

/// The cuBLAS handle, bound to one stream and to its own workspace, FP32 maths (TF32 off unless
/// asked).
class CublasHandle {
 public:
  explicit CublasHandle(cudaStream_t stream, bool allow_tf32 = false) : workspace_(kCublasWorkspaceBytes) {
    CUBLAS_CHECK(cublasCreate(&h_));
    try {
      // cublasSetStream resets the workspace to cuBLAS's pool: set the stream first.
      CUBLAS_CHECK(cublasSetStream(h_, stream));
      CUBLAS_CHECK(cublasSetWorkspace(h_, workspace_.get(), workspace_.bytes()));
      CUBLAS_CHECK(cublasSetMathMode(h_, allow_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    } catch (...) {
      cublasDestroy(std::exchange(h_, nullptr));  // no destructor runs for a half-built object
      throw;
    }
  }
  ~CublasHandle() {
    if (h_) cublasDestroy(h_);
  }
  CublasHandle(CublasHandle&& o) noexcept : workspace_(std::move(o.workspace_)), h_(std::exchange(o.h_, nullptr)) {}
  CublasHandle& operator=(CublasHandle&& o) noexcept {
    if (this != &o) {
      if (h_) cublasDestroy(h_);
      h_ = std::exchange(o.h_, nullptr);
      workspace_ = std::move(o.workspace_);
    }
    return *this;
  }
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;
  cublasHandle_t get() const { return h_; }

 private:
  DeviceBuffer<unsigned char> workspace_;  // declared first: destroyed after the handle
  cublasHandle_t h_ = nullptr;
};

/// A captured CUDA graph (the template) and its executable instance. The template is kept: the
/// instance's kernel nodes are addressed by the template's node handles when their arguments
/// change between launches (cudaGraphExecKernelNodeSetParams).
class Graph {
 public:
  Graph() = default;
  /// Takes ownership of a graph returned by cudaStreamEndCapture and instantiates it.
  explicit Graph(cudaGraph_t graph) : graph_(graph) {
    if (!graph_) return;
    const cudaError_t err = cudaGraphInstantiate(&exec_, graph_, 0);
    if (err != cudaSuccess) {
      cudaGraphDestroy(graph_);
      graph_ = nullptr;
      throw_cuda_error(err, "cudaGraphInstantiate(&exec_, graph_, 0)", __FILE__, __LINE__);
    }
  }
  ~Graph() { release(); }
  Graph(Graph&& o) noexcept : graph_(std::exchange(o.graph_, nullptr)), exec_(std::exchange(o.exec_, nullptr)) {}
  Graph& operator=(Graph&& o) noexcept {
    if (this != &o) {
      release();
      graph_ = std::exchange(o.graph_, nullptr);
      exec_ = std::exchange(o.exec_, nullptr);
    }
    return *this;
  }
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  explicit operator bool() const { return exec_ != nullptr; }
  cudaGraphExec_t exec() const { return exec_; }
  void launch(cudaStream_t s) const { CUDA_CHECK(cudaGraphLaunch(exec_, s)); }
  /// Kernel nodes in the graph: the kernel launches one replay makes (cuBLAS's included).
  std::size_t kernel_nodes() const {
    std::size_t n = 0;
    CUDA_CHECK(cudaGraphGetNodes(graph_, nullptr, &n));
    std::vector<cudaGraphNode_t> nodes(n);
    if (n) CUDA_CHECK(cudaGraphGetNodes(graph_, nodes.data(), &n));
    std::size_t kernels = 0;
    for (cudaGraphNode_t node : nodes) {
      cudaGraphNodeType type{};
      CUDA_CHECK(cudaGraphNodeGetType(node, &type));
      kernels += type == cudaGraphNodeTypeKernel;
    }
    return kernels;
  }

 private:
  void release() noexcept {
    if (exec_) cudaGraphExecDestroy(exec_);
    if (graph_) cudaGraphDestroy(graph_);
    exec_ = nullptr;
    graph_ = nullptr;
  }
  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
};

/// Ends a stream capture on every path: an exception thrown between cudaStreamBeginCapture and
/// finish() ends the capture and discards the partial graph, so the stream is usable again.
class Capture {
 public:
  explicit Capture(cudaStream_t s) : s_(s) {
    CUDA_CHECK(cudaStreamBeginCapture(s_, cudaStreamCaptureModeThreadLocal));
  }
  ~Capture() {
    if (!s_) return;
    cudaGraph_t g = nullptr;
    cudaStreamEndCapture(s_, &g);
    if (g) cudaGraphDestroy(g);
    cudaGetLastError();  // clear the error an invalidated capture leaves as the last error
  }
  Capture(const Capture&) = delete;
  Capture& operator=(const Capture&) = delete;
  /// Ends the capture, instantiates what was captured and uploads it to the device (so that the
  /// first launch does not pay for the upload).
  Graph finish() {
    cudaGraph_t g = nullptr;
    const cudaStream_t s = std::exchange(s_, nullptr);
    CUDA_CHECK(cudaStreamEndCapture(s, &g));
    Graph graph(g);
    CUDA_CHECK(cudaGraphUpload(graph.exec(), s));
    return graph;
  }

 private:
  cudaStream_t s_ = nullptr;
};

/// The node that the last launch on a capturing stream added (each capture here is one chain on
/// one stream, so it is the capture's only leaf). Throws if the stream is not capturing or the
/// leaf is not a single kernel node.
inline cudaGraphNode_t last_captured_node(cudaStream_t s) {
  cudaStreamCaptureStatus status{};
  const cudaGraphNode_t* deps = nullptr;
  std::size_t n = 0;
#if CUDART_VERSION >= 13000
  CUDA_CHECK(cudaStreamGetCaptureInfo(s, &status, nullptr, nullptr, &deps, nullptr, &n));
#else
  CUDA_CHECK(cudaStreamGetCaptureInfo_v2(s, &status, nullptr, nullptr, &deps, &n));
#endif
  cudaGraphNodeType type{};
  if (status == cudaStreamCaptureStatusActive && n == 1) CUDA_CHECK(cudaGraphNodeGetType(deps[0], &type));
  if (status != cudaStreamCaptureStatusActive || n != 1 || type != cudaGraphNodeTypeKernel)
    throw_cuda_error(cudaErrorIllegalState, "last_captured_node: one kernel node as the capture's leaf",
                     __FILE__, __LINE__);
  return deps[0];
}

}  // namespace mnist_gpu::gpu
