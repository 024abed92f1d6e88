// SPDX-License-Identifier: MIT
// RCU: grace periods wait for pre-existing readers, callbacks run after one (in softirq
// context, on the queueing CPU), rcu_barrier is exact, misuse is reported, and a missing
// grace period is caught by the sanitizers while the correct version is clean.
#include "impl/kern/rcu.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string_view>
#include <thread>
#include <vector>

#include "impl/kern/lock.h"
#include "impl/kern/report.h"
#include "impl/kern/sched.h"
#include "impl/kern/sched_controlled.h"
#include "impl/kern/task.h"

namespace kern {
namespace {

struct Obj {
  long a = 1, b = 1;  // a == b for every published object
};

// Wraps the native backend and counts the waits of one kind ("grace-period",
// "rcu-barrier"), so a test can tell, without timing, that a task is blocked in one.
class WaitCounter final : public SchedBackend {
 public:
  explicit WaitCounter(const char* what) : inner_(sched()), what_(what) { set_sched_backend(this); }
  ~WaitCounter() override { set_sched_backend(nullptr); }
  void seam(SeamKind k, const void* o) override { inner_.seam(k, o); }
  void wait_until(const WaitDesc& w, function_ref<bool()> ready) override {
    if (std::string_view(w.what) == what_) waits_.fetch_add(1);
    inner_.wait_until(w, ready);
  }
  void notify(const void* o) override { inner_.notify(o); }
  bool controlled() const override { return false; }
  int waits() const { return waits_.load(); }

 private:
  SchedBackend& inner_;
  std::string_view what_;
  std::atomic<int> waits_{0};
};

void spin_until(const std::atomic<bool>& flag) {
  while (!flag.load()) std::this_thread::yield();
}

// ---- Read side and context ----

TEST(RcuTest, ReadSectionIsAtomicContextAndNests) {
  ReportCapture cap;
  EXPECT_FALSE(rcu_read_lock_held());
  rcu_read_lock();
  EXPECT_TRUE(rcu_read_lock_held());
  EXPECT_FALSE(preemptible());
  EXPECT_EQ(current()->cpu_owned, 1);  // a reader owns its CPU
  rcu_read_lock();
  rcu_read_unlock();
  EXPECT_TRUE(rcu_read_lock_held());
  rcu_read_unlock();
  EXPECT_FALSE(rcu_read_lock_held());
  EXPECT_TRUE(preemptible());
  EXPECT_EQ(current()->cpu_owned, 0);
  {
    RcuReadGuard g;
    EXPECT_TRUE(rcu_read_lock_held());
  }
  EXPECT_FALSE(rcu_read_lock_held());
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

TEST(RcuTest, MightSleepInReadSectionIsReported) {
  ReportCapture cap;
  rcu_read_lock();
  might_sleep("test-sleep");
  rcu_read_unlock();
  ASSERT_EQ(cap.count(ReportKind::kSleepInAtomic), 1u) << cap.dump();
  EXPECT_NE(cap.reports()[0].signature.find("RCU"), std::string::npos) << cap.dump();
  might_sleep("test-sleep");  // outside: fine
  EXPECT_EQ(cap.size(), 1u) << cap.dump();
}

TEST(RcuTest, MutexInReadSectionIsReported) {
  ReportCapture cap;
  mutex m("test.rcu.mutex");
  rcu_read_lock();
  m.lock();  // may sleep
  m.unlock();
  rcu_read_unlock();
  EXPECT_EQ(cap.count(ReportKind::kSleepInAtomic), 1u) << cap.dump();
}

TEST(RcuTest, SynchronizeInsideReadSectionIsReported) {
  ReportCapture cap;
  rcu_read_lock();
  synchronize_rcu();  // would wait for itself: reported, returns
  rcu_read_unlock();
  EXPECT_EQ(cap.count(ReportKind::kRcu), 1u) << cap.dump();
  EXPECT_EQ(cap.size(), 1u) << cap.dump();
}

TEST(RcuTest, BarrierInsideReadSectionIsReported) {
  ReportCapture cap;
  rcu_read_lock();
  rcu_barrier();
  rcu_read_unlock();
  EXPECT_EQ(cap.count(ReportKind::kRcu), 1u) << cap.dump();
}

TEST(RcuTest, UnbalancedUnlockIsReported) {
  ReportCapture cap;
  rcu_read_unlock();
  EXPECT_EQ(cap.count(ReportKind::kRcu), 1u) << cap.dump();
  EXPECT_TRUE(preemptible());
}

TEST(RcuTest, DereferenceOutsideReadSectionIsReported) {
  Obj o;
  std::atomic<Obj*> p{&o};
  ReportCapture cap;
  rcu_read_lock();
  EXPECT_EQ(rcu_dereference(p), &o);
  rcu_read_unlock();
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
  EXPECT_EQ(rcu_dereference(p), &o);
  EXPECT_EQ(cap.count(ReportKind::kRcu), 1u) << cap.dump();
  EXPECT_EQ(rcu_dereference_check(p, /*protected_by=*/true), &o);
  EXPECT_EQ(rcu_dereference_protected(p, /*held=*/true), &o);
  EXPECT_EQ(rcu_access_pointer(p), &o);
  EXPECT_EQ(cap.count(ReportKind::kRcu), 1u) << cap.dump();
  rcu_dereference_protected(p, /*held=*/false);
  EXPECT_EQ(cap.count(ReportKind::kRcu), 2u) << cap.dump();
}

// ---- Grace periods ----

TEST(RcuTest, SingleTaskSynchronizeCompletes) {
  // No other thread: no slot is busy, so this returns at once (a hang fails by timeout).
  for (int i = 0; i < 3; ++i) synchronize_rcu();
  EXPECT_TRUE(preemptible());
}

// The updater is observed blocked in the grace period (a counted wait, not a delay) while
// the reader is inside; it completes only after the reader leaves.
TEST(RcuTest, GracePeriodWaitsForPreexistingReader) {
  WaitCounter waits("grace-period");
  std::atomic<bool> in_section{false}, gp_done{false};
  std::thread reader([&] {
    TaskScope ts("reader", 1);
    rcu_read_lock();
    in_section.store(true);
    // Until the updater blocks in its grace period, or (a broken RCU) completes it.
    while (waits.waits() == 0 && !gp_done.load()) std::this_thread::yield();
    EXPECT_FALSE(gp_done.load());
    rcu_read_unlock();
  });
  spin_until(in_section);
  std::thread updater([&] {
    TaskScope ts("updater", 2);
    synchronize_rcu();
    gp_done.store(true);
  });
  updater.join();
  reader.join();
  EXPECT_TRUE(gp_done.load());
  EXPECT_GE(waits.waits(), 1);
}

// A reader that starts after the grace period began is not waited for: the grace period
// completes while that reader is still inside its section.
TEST(RcuTest, GracePeriodDoesNotWaitForNewReaders) {
  WaitCounter waits("grace-period");
  std::atomic<bool> old_in{false}, old_go{false}, new_in{false}, gp_done{false};
  std::thread old_reader([&] {
    TaskScope ts("old-reader", 1);
    rcu_read_lock();
    old_in.store(true);
    spin_until(old_go);
    rcu_read_unlock();
  });
  spin_until(old_in);
  std::thread updater([&] {
    TaskScope ts("updater", 3);
    synchronize_rcu();
    gp_done.store(true);
  });
  while (waits.waits() == 0) std::this_thread::yield();  // blocked on the old reader
  std::thread new_reader([&] {
    TaskScope ts("new-reader", 2);
    rcu_read_lock();
    new_in.store(true);
    spin_until(gp_done);  // a grace period that waited for us would never end
    rcu_read_unlock();
  });
  spin_until(new_in);
  EXPECT_FALSE(gp_done.load());
  old_go.store(true);
  updater.join();
  EXPECT_TRUE(gp_done.load());
  new_reader.join();
  old_reader.join();
}

// Readers check a == b on the object they dereference; the updater replaces the object,
// waits a grace period, poisons and frees the old one. A premature free would show up as
// a heap-use-after-free (ASan), a race (TSan) or a torn pair.
TEST(RcuTest, ReadersNeverSeeFreedObjects) {
  std::atomic<Obj*> gp{new Obj};
  std::atomic<bool> stop{false};
  std::atomic<long> torn{0};
  std::atomic<int> running{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < 3; ++i) {
    readers.emplace_back([&, i] {
      TaskScope ts("reader", i);
      running.fetch_add(1);
      while (!stop.load(std::memory_order_relaxed)) {
        rcu_read_lock();
        Obj* o = rcu_dereference(gp);
        if (o->a != o->b) torn.fetch_add(1);
        rcu_read_unlock();
      }
    });
  }
  while (running.load() != 3) std::this_thread::yield();  // update while they read
  {
    TaskScope ts("updater", 3);
    for (long k = 2; k < 300; ++k) {
      Obj* old = gp.exchange(new Obj{k, k}, std::memory_order_acq_rel);
      synchronize_rcu();
      old->a = -1;  // poison: a reader still inside would see a torn pair
      delete old;
    }
  }
  stop.store(true);
  for (auto& t : readers) t.join();
  EXPECT_EQ(torn.load(), 0);
  delete gp.load();
}

// ---- Callbacks ----

struct CbObj {
  rcu_head rcu;  // first member: the callbacks cast back
  std::atomic<int>* freed = nullptr;
  int queued_on = -1;
};

void free_cb(rcu_head* h) {
  CbObj* o = reinterpret_cast<CbObj*>(h);
  EXPECT_TRUE(in_serving_softirq());
  EXPECT_EQ(current()->cpu, o->queued_on);  // runs on the CPU that queued it
  o->freed->fetch_add(1);
  delete o;
}

void queue_free(std::atomic<int>* freed) {
  CbObj* o = new CbObj;
  o->freed = freed;
  o->queued_on = current()->cpu;
  call_rcu(&o->rcu, free_cb);
}

TEST(RcuTest, CallRcuWaitsForReaderThenRunsInSoftirq) {
  std::atomic<int> freed{0};
  rcu_read_lock();
  queue_free(&freed);
  EXPECT_EQ(rcu_pending_callbacks(), 1u);
  EXPECT_EQ(rcu_process_callbacks(), 0);  // we are still reading: not yet
  EXPECT_EQ(freed.load(), 0);
  rcu_read_unlock();
  EXPECT_EQ(rcu_process_callbacks(), 1);
  EXPECT_EQ(freed.load(), 1);
  EXPECT_EQ(rcu_pending_callbacks(), 0u);
}

TEST(RcuTest, SingleTaskBarrierRunsEveryQueuedCallback) {
  std::atomic<int> freed{0};
  for (int i = 0; i < 50; ++i) queue_free(&freed);
  EXPECT_EQ(rcu_pending_callbacks(), 50u);
  rcu_barrier();
  EXPECT_EQ(freed.load(), 50);
  EXPECT_EQ(rcu_pending_callbacks(), 0u);
  rcu_barrier();  // nothing queued: returns at once
}

TEST(RcuTest, CallbacksRunOnTheQueueingCpu) {
  std::atomic<int> freed{0};
  std::vector<std::thread> ts;
  for (int cpu = 0; cpu < 4; ++cpu) {
    ts.emplace_back([&, cpu] {
      TaskScope s("queuer", cpu);
      for (int i = 0; i < 5; ++i) queue_free(&freed);
    });
  }
  for (auto& t : ts) t.join();
  {
    TaskScope s("barrier", 1);
    rcu_barrier();  // free_cb checks the CPU of each callback
  }
  EXPECT_EQ(freed.load(), 20);
}

// rcu_barrier must not return while a callback queued before it is still running in
// another task, even when later callbacks have finished in the meantime.
struct SlowObj {
  rcu_head rcu;
  std::atomic<bool>* started;
  std::atomic<bool>* go;
  std::atomic<bool>* finished;
};
void slow_cb(rcu_head* h) {
  SlowObj* o = reinterpret_cast<SlowObj*>(h);
  o->started->store(true);
  spin_until(*o->go);  // a long callback (softirq context: it may not sleep, so it spins)
  o->finished->store(true);
  delete o;
}

TEST(RcuTest, BarrierWaitsForCallbackRunningElsewhere) {
  WaitCounter waits("rcu-barrier");
  std::atomic<bool> started{false}, go{false}, finished{false}, barrier_returned{false};
  std::atomic<bool> finished_at_return{false};
  std::atomic<int> freed{0};
  {
    TaskScope s("queuer", 1);
    call_rcu(&(new SlowObj{{}, &started, &go, &finished})->rcu, slow_cb);
  }
  std::thread processor([&] {
    TaskScope s("processor", 0);
    EXPECT_EQ(rcu_process_callbacks(), 1);  // runs slow_cb until `go`
  });
  spin_until(started);
  std::thread barrier([&] {
    TaskScope s("barrier", 2);
    rcu_barrier();
    finished_at_return.store(finished.load());
    barrier_returned.store(true);
  });
  while (waits.waits() == 0) std::this_thread::yield();  // the barrier is blocked
  {
    // A later callback queued and run to completion meanwhile must not satisfy it.
    TaskScope s("later", 3);
    queue_free(&freed);
    EXPECT_EQ(rcu_process_callbacks(), 1);
  }
  EXPECT_EQ(freed.load(), 1);
  EXPECT_FALSE(barrier_returned.load());
  go.store(true);
  processor.join();
  barrier.join();
  EXPECT_TRUE(finished_at_return.load());
  EXPECT_EQ(rcu_pending_callbacks(), 0u);
}

TEST(RcuTest, CallbacksFromManyThreadsAllRun) {
  std::atomic<int> freed{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 3; ++i) {
    ts.emplace_back([&, i] {
      TaskScope s("user", i);
      for (int k = 0; k < 100; ++k) {
        rcu_read_lock();
        rcu_read_unlock();
        queue_free(&freed);
        if (k % 10 == 0) rcu_process_callbacks();
      }
      rcu_barrier();
    });
  }
  for (auto& t : ts) t.join();
  rcu_barrier();
  EXPECT_EQ(freed.load(), 300);
  EXPECT_EQ(rcu_pending_callbacks(), 0u);
}

// Under the controlled scheduler: readers, call_rcu and concurrent rcu_barrier in several
// fibers, over many schedules. A callback never runs while a reader that could see its
// object is inside (the object is poisoned, not freed, so a violation is counted), every
// barrier returns with its callbacks done, and no schedule deadlocks.
struct Parked {
  rcu_head rcu;
  Obj* obj;
  long* runs;
};
void poison_cb(rcu_head* h) {
  Parked* p = reinterpret_cast<Parked*>(h);
  p->obj->a = -1;
  ++*p->runs;
}

TEST(RcuTest, ControlledReadersCallbacksAndBarriers) {
  ReportCapture cap;
  for (int seed = 1; seed <= 100; ++seed) {
    Obj objs[3];
    Parked parked[2];
    std::atomic<Obj*> gp{&objs[0]};
    long torn = 0, runs = 0, done_at_barrier = 0;
    auto reader = [&] {
      for (int k = 0; k < 3; ++k) {
        rcu_read_lock();
        Obj* o = rcu_dereference(gp);
        seam(SeamKind::kAtomic);
        if (o->a != o->b) ++torn;
        rcu_read_unlock();
      }
    };
    auto updater = [&](int i) {
      Obj* old = gp.exchange(&objs[i + 1]);
      parked[i] = Parked{{}, old, &runs};
      call_rcu(&parked[i].rcu, poison_cb);
      rcu_barrier();
      // Our callback was queued before the barrier: it has run.
      if (parked[i].obj->a == -1) ++done_at_barrier;
    };
    RandomWalk src(static_cast<uint64_t>(seed));
    const RunResult r = run_controlled({{"r0", 0, reader},
                                        {"r1", 1, reader},
                                        {"u0", 2, [&] { updater(0); }},
                                        {"u1", 3, [&] { updater(1); }}},
                                       src);
    ASSERT_FALSE(r.deadlock) << "seed " << seed << "\n" << cap.dump();
    EXPECT_EQ(torn, 0) << "seed " << seed;
    EXPECT_EQ(runs, 2) << "seed " << seed;
    EXPECT_EQ(done_at_barrier, 2) << "seed " << seed;
    EXPECT_EQ(rcu_pending_callbacks(), 0u);
  }
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

spinlock_t* leak_lock;
void leaky_cb(rcu_head* h) {
  leak_lock->lock();
  delete reinterpret_cast<CbObj*>(h);
}

TEST(RcuTest, LockHeldAcrossCallbackIsReported) {
  spinlock_t l("test.rcu.leak");
  leak_lock = &l;
  ReportCapture cap;
  // In a task of its own: the leaked lock stays with that task, which then exits.
  std::thread t([&] {
    TaskScope ts("rcu-user", 2);
    call_rcu(&(new CbObj)->rcu, leaky_cb);
    rcu_barrier();
  });
  t.join();
  EXPECT_GE(cap.count(ReportKind::kLockHeld), 1u) << cap.dump();
  bool ours = false;
  for (const Report& r : cap.reports())
    ours |= r.signature.find("lock-held-across-rcu-callback") != std::string::npos;
  EXPECT_TRUE(ours) << cap.dump();
}

void nop_cb(rcu_head*) {}

TEST(RcuTest, DoubleCallRcuIsReported) {
  rcu_head h;
  ReportCapture cap;
  call_rcu(&h, nop_cb);
  call_rcu(&h, nop_cb);  // already queued
  EXPECT_EQ(cap.count(ReportKind::kRcu), 1u) << cap.dump();
  EXPECT_EQ(rcu_pending_callbacks(), 1u);
  rcu_barrier();
  EXPECT_EQ(rcu_pending_callbacks(), 0u);
  call_rcu(&h, nop_cb);  // ran: may be queued again
  rcu_barrier();
  EXPECT_EQ(cap.size(), 1u) << cap.dump();
}

int reset_ran = 0;
void count_cb(rcu_head*) {
  ++reset_ran;
}

TEST(RcuTest, ResetReportsAndDropsWithoutRunning) {
  rcu_head h1, h2;
  ReportCapture cap;
  call_rcu(&h1, count_cb);
  call_rcu(&h2, count_cb);
  rcu_read_lock();
  rcu_reset();  // a reader and two callbacks
  rcu_read_unlock();
  EXPECT_EQ(cap.count(ReportKind::kRcu), 2u) << cap.dump();
  EXPECT_EQ(reset_ran, 0);
  EXPECT_EQ(rcu_pending_callbacks(), 0u);
  rcu_barrier();  // nothing left to wait for
  EXPECT_EQ(reset_ran, 0);
  // A fresh world works normally and is reset silently.
  call_rcu(&h1, count_cb);
  rcu_barrier();
  EXPECT_EQ(reset_ran, 1);
  rcu_reset();
  EXPECT_EQ(cap.size(), 2u) << cap.dump();
}

// ---- A missing grace period is caught ----

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define BLKCG_HAVE_SANITIZER 1
#endif
#endif
#if !defined(BLKCG_HAVE_SANITIZER) && \
    (defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__))
#define BLKCG_HAVE_SANITIZER 1
#endif

// A reader holds its section open on an object while the updater unpublishes it and frees
// it: with `grace_period` after synchronize_rcu() (correct), without it (the planted bug).
// The reader reads the object after the updater says it is done unpublishing (and, in the
// buggy version, freeing). Deterministic: the order of the events is fixed by `stage`.
// relaxed `stage` accesses: no happens-before edge from the free to the read, exactly as
// with a real missing grace period, so TSan sees the free and the read as a race.
void unpublish_while_reading(bool grace_period) {
  std::atomic<Obj*> gp{new Obj};
  std::atomic<int> stage{0};
  long seen = 0;
  std::thread reader([&] {
    TaskScope ts("reader", 1);
    rcu_read_lock();
    Obj* o = rcu_dereference(gp);
    stage.store(1, std::memory_order_relaxed);
    while (stage.load(std::memory_order_relaxed) != 2) std::this_thread::yield();
    seen = *static_cast<volatile long*>(&o->a);  // use after a premature free
    rcu_read_unlock();
  });
  {
    TaskScope ts("updater", 2);
    while (stage.load(std::memory_order_relaxed) != 1) std::this_thread::yield();
    Obj* old = gp.exchange(new Obj, std::memory_order_acq_rel);
    if (grace_period) {
      stage.store(2, std::memory_order_relaxed);
      synchronize_rcu();  // waits for the reader, which then reads a live object
      delete old;
    } else {
      delete old;  // BUG: no synchronize_rcu()
      stage.store(2, std::memory_order_relaxed);
    }
  }
  reader.join();
  delete gp.load();
  EXPECT_EQ(seen, 1);
}

TEST(RcuDeathTest, MissingGracePeriodIsCaughtBySanitizer) {
#ifdef BLKCG_HAVE_SANITIZER
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(unpublish_while_reading(/*grace_period=*/false),
               "use-after-free|data race|ThreadSanitizer|AddressSanitizer");
#else
  GTEST_SKIP() << "needs an ASan or TSan build to observe the use-after-free";
#endif
}

TEST(RcuTest, WithGracePeriodTheSameScenarioIsClean) {
  ReportCapture cap;
  unpublish_while_reading(/*grace_period=*/true);
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

}  // namespace
}  // namespace kern
