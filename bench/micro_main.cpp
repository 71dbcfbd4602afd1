// main() of the micro-benchmark binaries: Google Benchmark's own flags, the binary's benchmarks
// (register_benchmarks), and an exit status that fails when any benchmark ended in an error (a
// result that disagreed with its reference, no usable GPU), which Google Benchmark 1.7 does not do.
#include <benchmark/benchmark.h>

#include <iostream>
#include <vector>

#include "micro_work.hpp"

namespace {

// Forwards everything to the display reporter that the flags chose (--benchmark_format) and
// counts the runs that ended in an error.
class ErrorCountingReporter final : public benchmark::BenchmarkReporter {
 public:
  explicit ErrorCountingReporter(benchmark::BenchmarkReporter* inner) : inner_(inner) {}
  bool ReportContext(const Context& context) override { return inner_->ReportContext(context); }
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) errors_ += r.error_occurred ? 1 : 0;
    inner_->ReportRuns(runs);
  }
  void Finalize() override { inner_->Finalize(); }
  int errors() const { return errors_; }

 private:
  benchmark::BenchmarkReporter* inner_;  // owned by Google Benchmark
  int errors_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  mnist_gpu::micro::register_benchmarks();
  ErrorCountingReporter reporter(benchmark::CreateDefaultDisplayReporter());
  const std::size_t matched = benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  if (matched == 0) {
    std::cerr << "no benchmark matches the filter\n";
    return 1;
  }
  if (reporter.errors() > 0) {
    std::cerr << reporter.errors() << " benchmark(s) ended in an error (the lines above say why) and were not timed\n";
    return 1;
  }
  return 0;
}
