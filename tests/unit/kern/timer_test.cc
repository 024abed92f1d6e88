// SPDX-License-Identifier: MIT
// Virtual clock and timers.
#include "impl/kern/timer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include "impl/kern/clock.h"
#include "impl/kern/lock.h"
#include "impl/kern/lockdep.h"
#include "impl/kern/sched_controlled.h"
#include "impl/kern/report.h"
#include "impl/kern/task.h"

namespace kern {
namespace {

struct Probe {
  timer_list timer;
  std::vector<uint64_t>* fired;
  int id = 0;
  bool was_softirq = false;
  uint64_t rearm_to = 0;
};

void probe_fn(timer_list* t) {
  Probe* p = reinterpret_cast<Probe*>(t);  // timer is the first member
  p->fired->push_back(jiffies() * 10 + static_cast<uint64_t>(p->id));
  p->was_softirq = in_serving_softirq();
  if (p->rearm_to) {
    const uint64_t to = p->rearm_to;
    p->rearm_to = 0;
    mod_timer(t, to);
  }
}

class TimerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    timers_reset();
    clock_reset();
    lockdep_reset();
  }
  void TearDown() override { timers_reset(); }
};

TEST_F(TimerTest, JiffiesMoveOnlyWhenAdvanced) {
  const uint64_t t0 = jiffies();
  EXPECT_EQ(t0, kInitialJiffies);
  EXPECT_EQ(jiffies(), t0);
  advance_jiffies(5);
  EXPECT_EQ(jiffies(), t0 + 5);
  EXPECT_EQ(msecs_to_jiffies(100), 100u);
  set_hz(250);
  EXPECT_EQ(msecs_to_jiffies(100), 25u);
  set_hz(1000);
  EXPECT_TRUE(time_after(t0 + 1, t0));
  EXPECT_TRUE(time_before(t0, t0 + 1));
}

TEST_F(TimerTest, FireInExpiryOrderAtTheirExpiry) {
  std::vector<uint64_t> fired;
  Probe a{{}, &fired, 1}, b{{}, &fired, 2}, c{{}, &fired, 3};
  for (Probe* p : {&a, &b, &c}) timer_setup(&p->timer, probe_fn, "test.probe");
  const uint64_t t0 = jiffies();
  mod_timer(&a.timer, t0 + 30);
  mod_timer(&b.timer, t0 + 10);
  mod_timer(&c.timer, t0 + 10);  // same expiry as b, armed later
  EXPECT_EQ(nr_pending_timers(), 3u);
  advance_jiffies(9);
  EXPECT_TRUE(fired.empty());
  advance_jiffies(25);
  EXPECT_EQ(fired, (std::vector<uint64_t>{(t0 + 10) * 10 + 2, (t0 + 10) * 10 + 3,
                                          (t0 + 30) * 10 + 1}));
  EXPECT_TRUE(a.was_softirq);
  EXPECT_EQ(jiffies(), t0 + 34);
  EXPECT_EQ(nr_pending_timers(), 0u);
}

TEST_F(TimerTest, ModTimerRearmsAndDelTimerCancels) {
  std::vector<uint64_t> fired;
  Probe a{{}, &fired, 1};
  timer_setup(&a.timer, probe_fn, "test.rearm");
  const uint64_t t0 = jiffies();
  EXPECT_FALSE(mod_timer(&a.timer, t0 + 5));
  EXPECT_TRUE(mod_timer(&a.timer, t0 + 50));
  advance_jiffies(10);
  EXPECT_TRUE(fired.empty());
  EXPECT_TRUE(del_timer(&a.timer));
  EXPECT_FALSE(del_timer(&a.timer));
  advance_jiffies(100);
  EXPECT_TRUE(fired.empty());
}

// The timer base is a heap with each timer's slot in it: arming, re-arming and deleting in
// any order must still fire by (expiry, order of the last arming), as a sorted list would.
struct Logged {
  timer_list timer;
  std::vector<std::pair<uint64_t, int>>* log = nullptr;
  int id = 0;
};

void logged_fn(timer_list* t) {
  Logged* l = reinterpret_cast<Logged*>(t);  // timer is the first member
  l->log->push_back({jiffies(), l->id});
}

TEST_F(TimerTest, RandomArmingFiresInSortedOrder) {
  constexpr int kTimers = 40;
  uint64_t rng = 0x9e3779b97f4a7c15ull;
  auto next = [&rng](uint64_t n) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng % n;
  };
  for (int round = 0; round < 20; ++round) {
    std::vector<std::pair<uint64_t, int>> log;
    std::vector<Logged> timers(kTimers);
    const uint64_t t0 = jiffies();
    // The reference: each timer's (expiry, sequence number of its last arming) if pending.
    std::vector<std::pair<uint64_t, uint64_t>> armed(kTimers);
    std::vector<bool> pending(kTimers, false);
    uint64_t seq = 0;
    for (int i = 0; i < kTimers; ++i) {
      timers[i].log = &log;
      timers[i].id = i;
      timer_setup(&timers[i].timer, logged_fn, "test.heap");
    }
    for (int step = 0; step < 200; ++step) {
      const int i = static_cast<int>(next(kTimers));
      if (next(4) == 0) {
        EXPECT_EQ(del_timer(&timers[i].timer), pending[i]);
        pending[i] = false;
      } else {
        const uint64_t at = t0 + 1 + next(8);  // few expiries: many ties
        EXPECT_EQ(mod_timer(&timers[i].timer, at), pending[i]);
        armed[i] = {at, ++seq};
        pending[i] = true;
      }
    }
    std::vector<int> order;
    for (int i = 0; i < kTimers; ++i)
      if (pending[i]) order.push_back(i);
    std::sort(order.begin(), order.end(), [&](int a, int b) { return armed[a] < armed[b]; });
    std::vector<std::pair<uint64_t, int>> want;
    for (int i : order) want.push_back({armed[i].first, i});
    EXPECT_EQ(nr_pending_timers(), want.size());
    advance_jiffies(10);
    EXPECT_EQ(log, want) << "round " << round;
    EXPECT_EQ(nr_pending_timers(), 0u);
  }
}

TEST_F(TimerTest, HandlerRearmWithinWindowFiresAgain) {
  std::vector<uint64_t> fired;
  Probe a{{}, &fired, 1};
  timer_setup(&a.timer, probe_fn, "test.self_rearm");
  const uint64_t t0 = jiffies();
  a.rearm_to = t0 + 20;
  mod_timer(&a.timer, t0 + 10);
  advance_jiffies(30);
  EXPECT_EQ(fired, (std::vector<uint64_t>{(t0 + 10) * 10 + 1, (t0 + 20) * 10 + 1}));
}

TEST_F(TimerTest, ShutdownIgnoresRearm) {
  std::vector<uint64_t> fired;
  Probe a{{}, &fired, 1};
  timer_setup(&a.timer, probe_fn, "test.shutdown");
  mod_timer(&a.timer, jiffies() + 5);
  timer_shutdown_sync(&a.timer);
  mod_timer(&a.timer, jiffies() + 5);
  EXPECT_EQ(timer_ignored_rearms(), 1u);
  advance_jiffies(10);
  EXPECT_TRUE(fired.empty());
}

TEST_F(TimerTest, DestroyingAPendingTimerIsReported) {
  ReportCapture cap;
  {
    std::vector<uint64_t> fired;
    Probe a{{}, &fired, 1};
    timer_setup(&a.timer, probe_fn, "test.freed_pending");
    mod_timer(&a.timer, jiffies() + 5);
  }
  EXPECT_EQ(cap.count(ReportKind::kTimer), 1u) << cap.dump();
  advance_jiffies(10);  // the model unlinked it: nothing fires on freed memory
  EXPECT_EQ(nr_pending_timers(), 0u);
}

spinlock_t* handler_lock;
void locking_fn(timer_list*) {
  handler_lock->lock();
  handler_lock->unlock();
}

TEST_F(TimerTest, DelTimerSyncUnderHandlersLockIsLockOrder) {
  spinlock_t l("test.timer.handler_lock");
  handler_lock = &l;
  timer_list t;
  timer_setup(&t, locking_fn, "test.locking_timer");
  ReportCapture cap;
  mod_timer(&t, jiffies() + 1);
  advance_jiffies(2);  // handler: timer -> lock
  l.lock_bh();
  del_timer_sync(&t);  // lock -> timer
  l.unlock_bh();
  EXPECT_EQ(cap.count(ReportKind::kLockOrder), 1u) << cap.dump();
}

TEST_F(TimerTest, DelTimerSyncWithoutTheLockIsQuiet) {
  spinlock_t l("test.timer.quiet_lock");
  handler_lock = &l;
  timer_list t;
  timer_setup(&t, locking_fn, "test.quiet_timer");
  ReportCapture cap;
  mod_timer(&t, jiffies() + 1);
  advance_jiffies(2);
  del_timer_sync(&t);
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

void self_sync_fn(timer_list* t) { del_timer_sync(t); }

TEST_F(TimerTest, DelTimerSyncFromOwnHandlerIsReported) {
  timer_list t;
  timer_setup(&t, self_sync_fn, "test.self_sync");
  ReportCapture cap;
  mod_timer(&t, jiffies() + 1);
  advance_jiffies(1);
  EXPECT_EQ(cap.count(ReportKind::kTimer), 1u) << cap.dump();
}

// A handler running on one thread; del_timer_sync on another waits for it to finish.
std::atomic<int> slow_stage{0};
void slow_fn(timer_list*) {
  slow_stage.store(1);
  while (slow_stage.load() != 2) std::this_thread::yield();
  slow_stage.store(3);
}

TEST_F(TimerTest, DelTimerSyncWaitsForRunningHandler) {
  slow_stage = 0;
  timer_list t;
  timer_setup(&t, slow_fn, "test.slow", 1);
  mod_timer(&t, jiffies() + 1);
  std::thread advancer([] {
    TaskScope ts("clock", 2);
    advance_jiffies(1);
  });
  while (slow_stage.load() != 1) std::this_thread::yield();
  std::thread syncer([&] {
    TaskScope ts("syncer", 3);
    del_timer_sync(&t);
    EXPECT_EQ(slow_stage.load(), 3);  // returned only after the handler finished
  });
  slow_stage.store(2);
  syncer.join();
  advancer.join();
}

// Two tasks advance the clock at once, one of them preempted inside its window (at the
// seam after its timer's handler): the clock ends at the later of the two targets
// (each is its start + its n) whatever the interleaving. advance_jiffies used to store
// its own target at the end, so the task that resumed last could set the clock back by
// almost the other's whole advance.
TEST_F(TimerTest, ConcurrentAdvancesNeverMoveTheClockBack) {
  int rewound = 0;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    timers_reset();
    clock_reset();
    std::vector<uint64_t> fired;
    Probe p{};
    p.fired = &fired;
    timer_setup(&p.timer, probe_fn, "test.window", 0);
    mod_timer(&p.timer, jiffies() + 5);
    uint64_t short_target = 0, long_target = 0, after_short = 0;
    RandomWalk walk(seed);
    run_controlled({{"short", 0, [&] {
                       short_target = jiffies() + 10;  // no seam before advance reads it
                       advance_jiffies(10);
                       after_short = jiffies();
                     }},
                    {"long", 1, [&] {
                       long_target = jiffies() + 1000;
                       advance_jiffies(1000);
                     }}},
                   walk);
    if (jiffies() != std::max(short_target, long_target) || after_short < short_target) ++rewound;
    EXPECT_EQ(fired.size(), 1u);
  }
  EXPECT_EQ(rewound, 0) << "runs (of 200) that ended with the clock set back";
}

}  // namespace
}  // namespace kern
