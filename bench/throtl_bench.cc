// SPDX-License-Identifier: MIT
// blk-throttle costs, each beside its baseline. Not a test.
//
//   BM_SubmitNoRules / BM_SubmitUnderLimit: the submit path (live check, blk_throtl_bio,
//     io.stat accounting, a zero-latency device, completion) of one bio, on a queue where
//     throttling is active, for a group without rules (the bypass) and for a group with a
//     limit it stays under (td->lock, the bps and iops checks, charge, trim, climb to the
//     top). Target: under-limit <= 2x no-rules.
//   BM_Dispatch10k / BM_Direct10k: 10,000 bios queued in one group, then released by a
//     limit raise and dispatched by the pending timers and the dispatch work, against the
//     same 10,000 bios submitted to a group without rules.
#include <benchmark/benchmark.h>

#include <memory>
#include <vector>

#include "impl/block/blk_core.h"
#include "impl/block/blk_throttle.h"
#include "impl/block/cgroupfs.h"
#include "impl/kern/clock.h"
#include "impl/kern/report.h"
#include "impl/kern/task.h"
#include "impl/kern/workqueue.h"

namespace {

using namespace blk;

struct Fixture {
  std::unique_ptr<cgroup_hierarchy> h;
  gendisk* disk = nullptr;
  cgroup *free_cg = nullptr, *limited = nullptr, *held = nullptr;
  Fixture() {
    h = std::make_unique<cgroup_hierarchy>();
    disk = alloc_disk(8, 16, 1);
    add_disk(disk);
    h->mkdir(h->root(), "free", &free_cg);
    h->mkdir(h->root(), "limited", &limited);
    h->mkdir(h->root(), "held", &held);
    // A limit never reached in a run (time does not move: one slice of it is 10^14 B).
    cgroup_file_write(*h, "/limited/io.max", "8:16 wbps=1000000000000000 wiops=4000000000");
  }
};

Fixture& fixture() {
  static Fixture* f = new Fixture();
  return *f;
}

void nop_end(bio*) {}

void submit_loop(benchmark::State& state, cgroup* cg) {
  kern::TaskScope scope("bench", 0);
  Fixture& f = fixture();
  bio* b = bio_alloc(f.disk, bio_op::kWrite, 4096, 0, kern::GFP_KERNEL);
  bio_associate_blkg(b, cg->io, false);
  b->bi_end_io = nop_end;
  for (auto _ : state) {
    b->flags = 0;
    b->bi_remaining.store(1, std::memory_order_relaxed);
    submit_bio_noacct(b);
  }
  b->bi_end_io = nullptr;
  bio_put(b);
}

void BM_SubmitNoRules(benchmark::State& state) { submit_loop(state, fixture().free_cg); }
void BM_SubmitUnderLimit(benchmark::State& state) { submit_loop(state, fixture().limited); }
BENCHMARK(BM_SubmitNoRules);
BENCHMARK(BM_SubmitUnderLimit);

constexpr int kQueued = 10000;

std::vector<bio*> make_bios(Fixture& f, cgroup* cg) {
  std::vector<bio*> v;
  for (int i = 0; i < kQueued; ++i) {
    bio* b = bio_alloc(f.disk, bio_op::kWrite, 4096, 0, kern::GFP_KERNEL);
    bio_associate_blkg(b, cg->io, false);
    v.push_back(b);
  }
  return v;
}

void BM_Dispatch10k(benchmark::State& state) {
  kern::TaskScope scope("bench", 0);
  Fixture& f = fixture();
  for (auto _ : state) {
    state.PauseTiming();
    cgroup_file_write(*f.h, "/held/io.max", "8:16 wiops=1");
    std::vector<bio*> bios = make_bios(f, f.held);
    for (bio* b : bios) submit_bio_noacct(b);  // one passes, the rest queue
    state.ResumeTiming();
    cgroup_file_write(*f.h, "/held/io.max", "8:16 wiops=max");
    kern::advance_jiffies(1);  // the forced parent timer: dispatch to the top
    kern::run_pending_work();  // the dispatch work: submit everything
  }
  state.SetItemsProcessed(state.iterations() * kQueued);
}

void BM_Direct10k(benchmark::State& state) {
  kern::TaskScope scope("bench", 0);
  Fixture& f = fixture();
  for (auto _ : state) {
    state.PauseTiming();
    std::vector<bio*> bios = make_bios(f, f.free_cg);
    state.ResumeTiming();
    for (bio* b : bios) submit_bio_noacct(b);
  }
  state.SetItemsProcessed(state.iterations() * kQueued);
}

BENCHMARK(BM_Dispatch10k)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Direct10k)->Unit(benchmark::kMillisecond);

}  // namespace
