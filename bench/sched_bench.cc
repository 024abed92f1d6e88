// SPDX-License-Identifier: MIT
// Controlled-mode throughput: context switches per second between fibers, and whole
// small runs per second (what a schedule fuzzer pays per input). Not a test.
#include <benchmark/benchmark.h>

#include "impl/kern/sched_controlled.h"

namespace {

// Alternates between the runnable tasks at every decision: every seam is a switch.
class Alternate final : public kern::DecisionSource {
 public:
  int choose(const std::vector<int>& runnable, int cur, kern::SeamKind, uint32_t) override {
    for (int r : runnable)
      if (r != cur) return r;
    return runnable.front();
  }
};

void BM_ControlledSwitches(benchmark::State& state) {
  const int seams = 10000;
  uint64_t switches = 0;
  for (auto _ : state) {
    auto body = [] {
      for (int i = 0; i < seams; ++i) kern::seam(kern::SeamKind::kPreempt);
    };
    Alternate src;
    kern::ControlledOptions opt;
    opt.record_trace = false;
    const kern::RunResult r = kern::run_controlled({{"a", 0, body}, {"b", 1, body}}, src, opt);
    switches += r.switches;
  }
  state.counters["switches/s"] =
      benchmark::Counter(static_cast<double>(switches), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ControlledSwitches)->Unit(benchmark::kMillisecond);

void BM_ControlledSmallRun(benchmark::State& state) {
  uint64_t seed = 0;
  for (auto _ : state) {
    long v = 0;
    auto body = [&v] {
      for (int i = 0; i < 10; ++i) {
        const long x = v;
        kern::seam(kern::SeamKind::kAtomic);
        v = x + 1;
      }
    };
    kern::RandomWalk src(++seed);
    benchmark::DoNotOptimize(
        kern::run_controlled({{"a", 0, body}, {"b", 1, body}, {"c", 2, body}}, src));
  }
}
BENCHMARK(BM_ControlledSmallRun);

}  // namespace
