// SPDX-License-Identifier: MIT
// Cost of the scheduling seam and the lock primitives in native mode, no chaos, against a
// bare std::mutex lock/unlock pair (the baseline, run side by side). Not a test.
#include <benchmark/benchmark.h>

#include <mutex>

#include "impl/kern/lock.h"
#include "impl/kern/lockdep.h"
#include "impl/kern/sched.h"

namespace {

void BM_StdMutexPair(benchmark::State& state) {
  std::mutex m;
  for (auto _ : state) {
    m.lock();
    benchmark::ClobberMemory();
    m.unlock();
  }
}
BENCHMARK(BM_StdMutexPair);

void BM_Seam(benchmark::State& state) {
  for (auto _ : state) kern::seam(kern::SeamKind::kAtomic);
}
BENCHMARK(BM_Seam);

template <bool kLockdep>
void BM_KernMutexPair(benchmark::State& state) {
  kern::lockdep_set_enabled(kLockdep);
  kern::mutex m("bench.mutex");
  for (auto _ : state) {
    m.lock();
    benchmark::ClobberMemory();
    m.unlock();
  }
  kern::lockdep_set_enabled(true);
}
BENCHMARK(BM_KernMutexPair<false>)->Name("BM_KernMutexPair/lockdep:off");
BENCHMARK(BM_KernMutexPair<true>)->Name("BM_KernMutexPair/lockdep:on");

template <bool kLockdep>
void BM_KernSpinPair(benchmark::State& state) {
  kern::lockdep_set_enabled(kLockdep);
  kern::spinlock_t l("bench.spin");
  for (auto _ : state) {
    l.lock();
    benchmark::ClobberMemory();
    l.unlock();
  }
  kern::lockdep_set_enabled(true);
}
BENCHMARK(BM_KernSpinPair<false>)->Name("BM_KernSpinPair/lockdep:off");
BENCHMARK(BM_KernSpinPair<true>)->Name("BM_KernSpinPair/lockdep:on");

template <bool kLockdep>
void BM_KernSpinIrqsavePair(benchmark::State& state) {
  kern::lockdep_set_enabled(kLockdep);
  kern::spinlock_t l("bench.spin_irqsave");
  for (auto _ : state) {
    const kern::irqflags_t f = l.lock_irqsave();
    benchmark::ClobberMemory();
    l.unlock_irqrestore(f);
  }
  kern::lockdep_set_enabled(true);
}
BENCHMARK(BM_KernSpinIrqsavePair<false>)->Name("BM_KernSpinIrqsavePair/lockdep:off");
BENCHMARK(BM_KernSpinIrqsavePair<true>)->Name("BM_KernSpinIrqsavePair/lockdep:on");

}  // namespace
