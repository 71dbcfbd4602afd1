#include "mnist_gpu/row_workers.hpp"

#include <algorithm>
#include <cstddef>

#if defined(__SSE2__)
#include <xmmintrin.h>
#endif

#ifdef MNIST_GPU_HAVE_OPENBLAS
#include <cblas.h>
#endif

namespace mnist_gpu {

namespace {

// Part p of `parts` even parts of [0, rows): the first rows % parts parts have one row more.
void part_range(int rows, int parts, int p, int* begin, int* end) {
  const int base = rows / parts, extra = rows % parts;
  *begin = p * base + std::min(p, extra);
  *end = *begin + base + (p < extra ? 1 : 0);
}

}  // namespace

int cpu_worker_threads() {
#ifdef MNIST_GPU_HAVE_OPENBLAS
  return std::max(openblas_get_num_threads(), 1);
#else
  return 1;
#endif
}

RowWorkers::RowWorkers(int threads) {
  const int n = std::max(threads, 1) - 1;
  workers_.reserve(static_cast<std::size_t>(n));
  try {
    for (int id = 1; id <= n; ++id) workers_.emplace_back([this, id] { work(id); });
  } catch (...) {  // a thread that could not start: stop the ones that did
    {
      std::lock_guard<std::mutex> lock(m_);
      stop_ = true;
    }
    start_.notify_all();
    for (std::thread& t : workers_) t.join();
    throw;
  }
}

RowWorkers::~RowWorkers() {
  {
    std::lock_guard<std::mutex> lock(m_);
    stop_ = true;
  }
  start_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void RowWorkers::run(int rows, int min_rows, Part part, void* context) {
  if (rows <= 0) return;
  const int parts = std::max(1, std::min(threads(), rows / std::max(min_rows, 1)));
  if (parts == 1) {
    part(context, 0, rows);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(m_);
    parts_ = parts;
    rows_ = rows;
    part_ = part;
    context_ = context;
#if defined(__SSE2__)
    csr_ = _mm_getcsr();
#endif
    pending_ = parts - 1;
    ++generation_;
  }
  start_.notify_all();
  int begin = 0, end = 0;
  part_range(rows, parts, 0, &begin, &end);
  part(context, begin, end);
  std::unique_lock<std::mutex> lock(m_);
  done_.wait(lock, [this] { return pending_ == 0; });
}

void RowWorkers::work(int id) {
  unsigned long long seen = 0;
  for (;;) {
    int parts = 0, rows = 0;
    Part part = nullptr;
    void* context = nullptr;
    unsigned csr = 0;
    {
      std::unique_lock<std::mutex> lock(m_);
      start_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      parts = parts_;
      rows = rows_;
      part = part_;
      context = context_;
      csr = csr_;
    }
    if (id < parts) {  // a call with fewer parts than threads leaves the last workers idle
      int begin = 0, end = 0;
      part_range(rows, parts, id, &begin, &end);
#if defined(__SSE2__)
      _mm_setcsr(csr);
#else
      (void)csr;
#endif
      part(context, begin, end);
      bool last = false;
      {
        std::lock_guard<std::mutex> lock(m_);
        last = --pending_ == 0;
      }
      if (last) done_.notify_one();
    }
  }
}

}  // namespace mnist_gpu
