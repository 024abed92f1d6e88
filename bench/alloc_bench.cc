// SPDX-License-Identifier: MIT
// Cost of the injectable allocator (impl/kern/alloc.h) against the bare allocation it wraps,
// run side by side: kzalloc_obj/kfree vs new/delete, kmalloc_bytes/kfree_bytes vs
// malloc/free, the same with a fault-injection site filter armed (matched by name on every
// allocation), a per-CPU allocation, and two threads sharing the bookkeeping lock.
// Native backend, no chaos, no fault fires. Not a test.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>

#include "impl/kern/alloc.h"

namespace {

struct Obj {
  long a = 0;
  long b = 0;
  long c[6] = {};
};

void BM_NewDelete(benchmark::State& state) {
  for (auto _ : state) {
    Obj* o = new Obj();
    benchmark::DoNotOptimize(o);
    delete o;
  }
}
BENCHMARK(BM_NewDelete)->ThreadRange(1, 2);

void BM_KzallocKfree(benchmark::State& state) {
  for (auto _ : state) {
    Obj* o = kern::kzalloc_obj<Obj>(kern::GFP_NOWAIT, "bench.obj");
    benchmark::DoNotOptimize(o);
    kern::kfree(o);
  }
}
BENCHMARK(BM_KzallocKfree)->ThreadRange(1, 2);

// A blocking class adds the might_sleep() context check (one seam on the fast path).
void BM_KzallocKfreeGfpKernel(benchmark::State& state) {
  kern::alloc_reset();
  for (auto _ : state) {
    Obj* o = kern::kzalloc_obj<Obj>(kern::GFP_KERNEL, "bench.obj");
    benchmark::DoNotOptimize(o);
    kern::kfree(o);
  }
}
BENCHMARK(BM_KzallocKfreeGfpKernel);

// Fault injection armed for another site: every allocation is counted and name-matched.
void BM_KzallocKfreeInjectionArmed(benchmark::State& state) {
  kern::alloc_reset();
  kern::fault_set({.fail_site = "bench.never*"});
  for (auto _ : state) {
    Obj* o = kern::kzalloc_obj<Obj>(kern::GFP_NOWAIT, "bench.obj");
    benchmark::DoNotOptimize(o);
    kern::kfree(o);
  }
  kern::alloc_reset();
}
BENCHMARK(BM_KzallocKfreeInjectionArmed);

void BM_MallocFree64(benchmark::State& state) {
  for (auto _ : state) {
    void* p = std::malloc(64);
    std::memset(p, 0, 64);
    benchmark::DoNotOptimize(p);
    std::free(p);
  }
}
BENCHMARK(BM_MallocFree64);

void BM_KzallocBytesKfree64(benchmark::State& state) {
  kern::alloc_reset();
  for (auto _ : state) {
    void* p = kern::kzalloc_bytes(64, kern::GFP_NOWAIT, "bench.bytes");
    benchmark::DoNotOptimize(p);
    kern::kfree_bytes(p);
  }
}
BENCHMARK(BM_KzallocBytesKfree64);

void BM_NewDeletePerCpu(benchmark::State& state) {
  for (auto _ : state) {
    auto* p = new kern::PerCpu<long>();
    benchmark::DoNotOptimize(p);
    delete p;
  }
}
BENCHMARK(BM_NewDeletePerCpu);

void BM_AllocFreePercpu(benchmark::State& state) {
  kern::alloc_reset();
  for (auto _ : state) {
    kern::PerCpu<long>* p = kern::alloc_percpu_gfp<long>(kern::GFP_NOWAIT, "bench.percpu");
    benchmark::DoNotOptimize(p);
    kern::free_percpu(p);
  }
}
BENCHMARK(BM_AllocFreePercpu);

}  // namespace
