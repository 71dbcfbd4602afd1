// RowWorkers: a fixed set of threads splitting a range of rows (the CPU backend's deformations).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include "mnist_gpu/row_workers.hpp"

#if defined(__SSE2__)
#include <xmmintrin.h>
#endif

using namespace mnist_gpu;

namespace {

struct Visits {
  std::vector<std::atomic<int>> row;           // times each row was given to a part
  std::vector<std::thread::id> thread;         // the thread that took each row
  std::atomic<int> parts{0};
  explicit Visits(int rows) : row(static_cast<std::size_t>(rows)), thread(static_cast<std::size_t>(rows)) {}
};

void visit(void* context, int begin, int end) noexcept {
  Visits& v = *static_cast<Visits*>(context);
  ++v.parts;
  for (int r = begin; r < end; ++r) {
    ++v.row[static_cast<std::size_t>(r)];
    v.thread[static_cast<std::size_t>(r)] = std::this_thread::get_id();
  }
}

}  // namespace

TEST(RowWorkers, EveryRowIsDoneOnceInAtMostThreadsPartsOfAtLeastMinRows) {
  for (int threads : {0, 1, 2, 3, 8}) {
    RowWorkers w(threads);
    EXPECT_EQ(w.threads(), threads < 1 ? 1 : threads);
    for (int rows : {0, 1, 2, 3, 7, 15, 16, 31, 32, 33, 128, 1001}) {
      for (int min_rows : {1, 16}) {
        SCOPED_TRACE(testing::Message() << threads << " threads, " << rows << " rows, parts of >= " << min_rows);
        Visits v(rows);
        w.run(rows, min_rows, visit, &v);
        for (int r = 0; r < rows; ++r) ASSERT_EQ(v.row[static_cast<std::size_t>(r)].load(), 1) << "row " << r;
        const int want_parts = rows == 0 ? 0 : std::max(1, std::min(w.threads(), rows / min_rows));
        EXPECT_EQ(v.parts.load(), want_parts);
        // Contiguous parts: a thread's rows form one run.
        int runs = 0;
        for (int r = 0; r < rows; ++r)
          runs += r == 0 || v.thread[static_cast<std::size_t>(r)] != v.thread[static_cast<std::size_t>(r - 1)];
        EXPECT_EQ(runs, want_parts);
        if (rows > 0) {
          EXPECT_EQ(v.thread[0], std::this_thread::get_id()) << "the caller takes the first part";
        }
      }
    }
  }
}

// Many calls one after another, with the number of parts changing between them, as a training
// run's last, shorter batch does: no call is lost, none runs twice, none hangs.
TEST(RowWorkers, ManyCallsInARowWithChangingPartsAllComplete) {
  RowWorkers w(4);
  for (int call = 0; call < 5000; ++call) {
    const int rows = 1 + (call * 37) % 90;
    Visits v(rows);
    w.run(rows, 16, visit, &v);
    for (int r = 0; r < rows; ++r) ASSERT_EQ(v.row[static_cast<std::size_t>(r)].load(), 1) << "call " << call << " row " << r;
    ASSERT_EQ(v.parts.load(), std::max(1, std::min(4, rows / 16))) << "call " << call;
  }
}

// A pool that never ran, and one whose last call left some threads idle, end without hanging.
TEST(RowWorkers, EndsCleanlyIdleOrAfterACallThatLeftThreadsIdle) {
  { RowWorkers never(8); }
  {
    RowWorkers w(4);
    Visits v(20);
    w.run(20, 16, visit, &v);  // one part: the caller's; the three threads stay idle
    EXPECT_EQ(v.parts.load(), 1);
  }
  {
    RowWorkers w(4);
    Visits v(40);
    w.run(40, 16, visit, &v);  // two parts: threads 2 and 3 wake and stay idle
    EXPECT_EQ(v.parts.load(), 2);
  }
}

#if defined(__SSE2__)
namespace {
void record_csr(void* context, int begin, int end) noexcept {
  auto* csr = static_cast<std::vector<unsigned>*>(context);
  for (int r = begin; r < end; ++r) (*csr)[static_cast<std::size_t>(r)] = _mm_getcsr();
}
}  // namespace

// The CPU backend trains with flush-to-zero and denormals-are-zero set on its thread; the workers
// compute with the same setting, so a split does not change a bit of the result.
TEST(RowWorkers, PartsRunWithTheCallersFlushToZeroSetting) {
  RowWorkers w(3);
  const unsigned saved = _mm_getcsr();
  for (unsigned csr : {saved | 0x8040u, saved & ~0x8040u}) {
    _mm_setcsr(csr);
    std::vector<unsigned> seen(48, 0);
    w.run(48, 16, record_csr, &seen);
    _mm_setcsr(saved);
    for (unsigned s : seen) EXPECT_EQ(s & 0x8040u, csr & 0x8040u);
  }
}
#endif
