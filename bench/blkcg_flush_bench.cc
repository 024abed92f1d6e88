// SPDX-License-Identifier: MIT
// io.stat flush cost: the lockless llist flush (only sets updated since the last flush)
// against the pre-2022 baseline that walks every blkg x every CPU, side by side, at
// 1,000 disks x 64 virtual CPUs, with 1% of the per-CPU sets updated between flushes and
// with none updated. Not a test.
#include <benchmark/benchmark.h>

#include <memory>
#include <vector>

#include "impl/block/blk_stat.h"
#include "impl/kern/cpu.h"
#include "impl/kern/report.h"
#include "impl/kern/task.h"

namespace {

using namespace blk;

constexpr int kDisks = 1000;
constexpr int kCpus = 64;

struct Fixture {
  std::unique_ptr<cgroup_hierarchy> h;
  cgroup* a = nullptr;
  std::vector<gendisk*> disks;
  std::vector<blkcg_gq*> blkgs;
  std::vector<bio*> bios;
  // Baseline's own "last" per (blkg, cpu), as the old flush kept in each set.
  std::vector<blkg_iostat> last;
  uint64_t cursor = 0;

  Fixture() {
    kern::set_nr_cpus(kCpus);
    h = std::make_unique<cgroup_hierarchy>();
    h->mkdir(h->root(), "a", &a);
    for (int i = 0; i < kDisks; ++i) {
      gendisk* d = alloc_disk(8, i, i + 1);
      add_disk(d);
      disks.push_back(d);
      blkgs.push_back(blkg_lookup_create(a->io, d->queue));
      bio* b = bio_alloc(d, bio_op::kWrite, 4096, 0, kern::GFP_KERNEL);
      bio_associate_blkg(b, a->io, false);
      bios.push_back(b);
    }
    last.resize(static_cast<size_t>(kDisks) * kCpus);
  }

  // Update `n` (blkg, cpu) sets, spread over the matrix.
  void update(int n) {
    kern::Task* t = kern::current();
    for (int k = 0; k < n; ++k) {
      const uint64_t idx = (cursor++ * 7919) % (static_cast<uint64_t>(kDisks) * kCpus);
      kern::set_task_cpu(t, static_cast<int>(idx % kCpus));
      bio* b = bios[idx / kCpus];
      b->flags = 0;
      blk_cgroup_bio_start(b);
    }
    kern::set_task_cpu(t, 0);
  }

  void llist_flush() {
    for_each_possible_cpu(cpu) blkcg_rstat_flush_cpu(a->io, cpu);
  }

  // The baseline: every blkg of the blkcg, every CPU, read and fold the delta.
  uint64_t walk_flush() {
    uint64_t folded = 0;
    for (size_t i = 0; i < blkgs.size(); ++i) {
      for (int cpu = 0; cpu < kCpus; ++cpu) {
        const blkg_iostat_set* s = blkgs[i]->iostat_cpu->per_cpu_ptr(cpu);
        blkg_iostat& l = last[i * kCpus + static_cast<size_t>(cpu)];
        unsigned seq;
        blkg_iostat cur;
        do {
          seq = kern::u64_stats_fetch_begin(s->sync);
          for (int t = 0; t < BLKG_IOSTAT_NR; ++t) {
            cur.bytes[t] = s->cur_bytes[t].read();
            cur.ios[t] = s->cur_ios[t].read();
          }
        } while (kern::u64_stats_fetch_retry(s->sync, seq));
        for (int t = 0; t < BLKG_IOSTAT_NR; ++t) {
          folded += cur.ios[t] - l.ios[t];
          l = cur;
        }
      }
    }
    return folded;
  }
};

Fixture& fixture() {
  static Fixture* f = new Fixture();  // shared by every benchmark; never torn down
  return *f;
}

void BM_FlushLlist(benchmark::State& state) {
  kern::TaskScope scope("bench", 0);  // a real task: current() is the fast path
  Fixture& f = fixture();
  const int updates = static_cast<int>(state.range(0));
  f.llist_flush();
  for (auto _ : state) {
    state.PauseTiming();
    f.update(updates);
    state.ResumeTiming();
    f.llist_flush();
  }
}

void BM_FlushWalkAll(benchmark::State& state) {
  kern::TaskScope scope("bench", 0);  // a real task: current() is the fast path
  Fixture& f = fixture();
  const int updates = static_cast<int>(state.range(0));
  f.walk_flush();
  for (auto _ : state) {
    state.PauseTiming();
    f.update(updates);
    state.ResumeTiming();
    benchmark::DoNotOptimize(f.walk_flush());
  }
}

// 1% of 1,000 x 64 sets = 640 updated sets per flush; and none.
BENCHMARK(BM_FlushLlist)->Arg(640)->Arg(0)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_FlushWalkAll)->Arg(640)->Arg(0)->Unit(benchmark::kMicrosecond);

void BM_HotPathAssociateAndAccount(benchmark::State& state) {
  kern::TaskScope scope("bench", 0);  // a real task: current() is the fast path
  Fixture& f = fixture();
  bio* b = bio_alloc(f.disks[0], bio_op::kWrite, 4096, 0, kern::GFP_KERNEL);
  for (auto _ : state) {
    bio_associate_blkg_from_css(b, f.a->io, true);  // existing blkg: RCU lookup + tryget
    b->flags = 0;
    blk_cgroup_bio_start(b);
  }
  bio_put(b);
}
BENCHMARK(BM_HotPathAssociateAndAccount);

void BM_HotPathBaselinePercpuIncrement(benchmark::State& state) {
  kern::TaskScope scope("bench", 0);  // a real task: current() is the fast path
  kern::PerCpu<blkg_iostat_set> pc;
  for (auto _ : state) {
    const int cpu = kern::get_cpu();
    blkg_iostat_set* s = pc.per_cpu_ptr(cpu);
    kern::u64_stats_update_begin(s->sync);
    s->cur_ios[1].inc();
    kern::u64_stats_update_end(s->sync);
    kern::put_cpu();
  }
}
BENCHMARK(BM_HotPathBaselinePercpuIncrement);

}  // namespace
