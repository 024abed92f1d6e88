// SPDX-License-Identifier: MIT
// The blocking primitives under the controlled scheduler: every wait goes through the seam,
// so grace periods, completions, queue freezing and flush_work work with fibers, over many
// schedules, without deadlock reports.
#include <gtest/gtest.h>

#include "impl/kern/lock.h"
#include "impl/kern/lockdep.h"
#include "impl/kern/rcu.h"
#include "impl/kern/report.h"
#include "impl/kern/sched_controlled.h"
#include "impl/kern/wait.h"
#include "impl/kern/workqueue.h"

namespace kern {
namespace {

constexpr int kSeeds = 150;

struct Obj {
  long a = 1, b = 1;
};

TEST(ControlledPrimitives, SynchronizeRcuWaitsForReaderFiber) {
  ReportCapture cap;
  for (int seed = 1; seed <= kSeeds; ++seed) {
    std::atomic<Obj*> gp{new Obj};
    long torn = 0;
    auto reader = [&] {
      for (int k = 0; k < 3; ++k) {
        rcu_read_lock();
        Obj* o = rcu_dereference(gp);
        seam(SeamKind::kAtomic);
        if (o->a != o->b) ++torn;
        rcu_read_unlock();
      }
    };
    auto updater = [&] {
      for (int k = 2; k < 5; ++k) {
        Obj* old = gp.exchange(new Obj{k, k});
        synchronize_rcu();
        old->a = -1;  // a reader still inside would see the pair torn
        delete old;
      }
    };
    RandomWalk s(static_cast<uint64_t>(seed));
    const RunResult r =
        run_controlled({{"r0", 0, reader}, {"r1", 1, reader}, {"upd", 2, updater}}, s);
    ASSERT_FALSE(r.deadlock) << cap.dump();
    EXPECT_EQ(torn, 0) << "seed " << seed;
    delete gp.load();
  }
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

TEST(ControlledPrimitives, MissingGracePeriodIsFoundBySchedule) {
  // The busted updater (no synchronize_rcu) is caught by some schedule: the reader sees
  // the poisoned pair. (Objects are parked, not freed, so the test itself stays safe.)
  int caught = 0;
  for (int seed = 1; seed <= kSeeds && caught == 0; ++seed) {
    Obj objs[4];
    std::atomic<Obj*> gp{&objs[0]};
    auto reader = [&] {
      rcu_read_lock();
      Obj* o = rcu_dereference(gp);
      seam(SeamKind::kAtomic);
      if (o->a != o->b) ++caught;
      rcu_read_unlock();
    };
    auto updater = [&] {
      Obj* old = gp.exchange(&objs[1]);
      old->a = -1;  // BUG: "freed" without waiting for readers
    };
    RandomWalk s(static_cast<uint64_t>(seed));
    run_controlled({{"reader", 0, reader}, {"upd", 1, updater}}, s);
  }
  EXPECT_GT(caught, 0);
}

TEST(ControlledPrimitives, CompletionAndFreeze) {
  ReportCapture cap;
  for (int seed = 1; seed <= kSeeds; ++seed) {
    completion done("test.ctl.done");
    freeze_counter q("test.ctl.queue");
    long inside = 0, max_inside_frozen = 0;
    auto io = [&] {
      for (int k = 0; k < 3; ++k) {
        if (!q.enter(false)) continue;
        ++inside;
        seam(SeamKind::kAtomic);
        --inside;
        q.exit();
      }
      done.complete();
    };
    auto freezer = [&] {
      q.freeze();
      max_inside_frozen = std::max(max_inside_frozen, inside);
      seam(SeamKind::kPreempt);
      q.unfreeze();
      done.wait_for_completion();
      done.wait_for_completion();
    };
    RandomWalk s(static_cast<uint64_t>(seed));
    const RunResult r =
        run_controlled({{"io0", 0, io}, {"io1", 1, io}, {"freezer", 2, freezer}}, s);
    ASSERT_FALSE(r.deadlock) << cap.dump();
    EXPECT_EQ(max_inside_frozen, 0) << "seed " << seed;
  }
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

struct Job {
  work_struct work;
  long* runs;
};
void job_fn(work_struct* w) { ++*reinterpret_cast<Job*>(w)->runs; }

TEST(ControlledPrimitives, FlushWorkFromFibers) {
  ReportCapture cap;
  for (int seed = 1; seed <= kSeeds; ++seed) {
    long runs = 0;
    Job j{{}, &runs};
    INIT_WORK(&j.work, job_fn, "test.ctl.job");
    auto producer = [&] {
      for (int k = 0; k < 3; ++k) {
        queue_work(system_wq(), &j.work);
        seam(SeamKind::kPreempt);
      }
      flush_work(&j.work);
    };
    auto flusher = [&] { flush_work(&j.work); };
    RandomWalk s(static_cast<uint64_t>(seed));
    const RunResult r = run_controlled({{"prod", 0, producer}, {"flush", 1, flusher}}, s);
    ASSERT_FALSE(r.deadlock) << cap.dump();
    EXPECT_FALSE(work_pending(&j.work));
    EXPECT_GE(runs, 1);
  }
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

}  // namespace
}  // namespace kern
