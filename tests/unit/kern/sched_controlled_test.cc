// SPDX-License-Identifier: MIT
// The controlled scheduler: determinism, replay, divergence detection, finding a planted
// race, deadlock and lost-wakeup reports, and one body under both backends.
#include "impl/kern/sched_controlled.h"

#include <gtest/gtest.h>

#include <atomic>

#include "impl/kern/clock.h"
#include "impl/kern/cpu.h"
#include "impl/kern/lock.h"
#include "impl/kern/lockdep.h"
#include "impl/kern/report.h"
#include "impl/kern/wait.h"

namespace kern {
namespace {

class ControlledTest : public ::testing::Test {
 protected:
  void SetUp() override { lockdep_reset(); }
};

// Two tasks, each takes a mutex-protected counter three times.
struct Counter {
  mutex m{"test.ctl.counter"};
  long v GUARDED_BY(m) = 0;
};

long read(Counter& c) {
  MutexGuard g(c.m);
  return c.v;
}

std::vector<TaskSpec> counter_tasks(Counter& c, int tasks = 2) {
  std::vector<TaskSpec> specs;
  for (int i = 0; i < tasks; ++i) {
    specs.push_back({"inc" + std::to_string(i), i, [&c]() NO_THREAD_SAFETY_ANALYSIS {
                       for (int k = 0; k < 3; ++k) {
                         MutexGuard g(c.m);
                         const long v = c.v;
                         seam(SeamKind::kAtomic);
                         c.v = v + 1;
                       }
                     }});
  }
  return specs;
}

TEST_F(ControlledTest, SameDecisionsSameTrace) {
  Counter c1, c2;
  RandomWalk s1(7), s2(7);
  const RunResult a = run_controlled(counter_tasks(c1), s1);
  const RunResult b = run_controlled(counter_tasks(c2), s2);
  EXPECT_FALSE(a.deadlock);
  EXPECT_GT(a.trace.size(), 6u);
  EXPECT_EQ(a.trace, b.trace);
  EXPECT_EQ(read(c1), 6);
  EXPECT_EQ(read(c2), 6);
}

TEST_F(ControlledTest, ReplayReproducesTrace) {
  Counter c1, c2;
  RandomWalk s1(11);
  const RunResult a = run_controlled(counter_tasks(c1), s1);
  ReportCapture cap;
  ReplaySource replay(a.trace);
  const RunResult b = run_controlled(counter_tasks(c2), replay);
  EXPECT_FALSE(replay.diverged());
  EXPECT_EQ(a.trace, b.trace);
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

TEST_F(ControlledTest, ReplayOfAChangedProgramReportsDivergence) {
  Counter c1, c2;
  RandomWalk s1(3);
  const RunResult a = run_controlled(counter_tasks(c1, 2), s1);
  ReportCapture cap;
  ReplaySource replay(a.trace);
  run_controlled(counter_tasks(c2, 3), replay);  // one more task: different runnable sets
  EXPECT_TRUE(replay.diverged());
  ASSERT_EQ(cap.count(ReportKind::kNondeterminism), 1u) << cap.dump();
  EXPECT_NE(cap.reports()[0].text.find("diverged at step"), std::string::npos);
}

// The planted race: a non-atomic read-modify-write with a seam in the window.
struct Racy {
  long v = 0;
};

std::vector<TaskSpec> racy_tasks(Racy& r) {
  auto body = [&r] {
    const long v = r.v;
    seam(SeamKind::kAtomic);
    r.v = v + 1;
  };
  return {{"a", 0, body}, {"b", 1, body}};
}

TEST_F(ControlledTest, RandomWalkFindsPlantedRace) {
  int found_at = -1;
  for (int seed = 1; seed <= 100 && found_at < 0; ++seed) {
    Racy r;
    RandomWalk s(static_cast<uint64_t>(seed));
    run_controlled(racy_tasks(r), s);
    if (r.v != 2) found_at = seed;
  }
  EXPECT_GT(found_at, 0) << "lost update not found in 100 random walks";
}

TEST_F(ControlledTest, PctFindsPlantedRace) {
  int found_at = -1;
  for (int seed = 1; seed <= 100 && found_at < 0; ++seed) {
    Racy r;
    PctSource s(static_cast<uint64_t>(seed), 2, 8);
    run_controlled(racy_tasks(r), s);
    if (r.v != 2) found_at = seed;
  }
  EXPECT_GT(found_at, 0) << "lost update not found in 100 PCT runs";
}

TEST_F(ControlledTest, ByteSourceReplaysTheRace) {
  // Decision bytes written out by hand: start a; at a's seam switch to b; at b's seam
  // switch back to a; a finishes; b finishes. Both read 0: the update is lost.
  const uint8_t lose[] = {0, 1, 0, 0};
  Racy r;
  ByteSource s(lose, sizeof lose);
  run_controlled(racy_tasks(r), s);
  EXPECT_EQ(r.v, 1);
  // Start a; at a's seam keep a running: no interleaving, no lost update.
  const uint8_t serial[] = {0, 0};
  Racy r2;
  ByteSource s2(serial, sizeof serial);
  run_controlled(racy_tasks(r2), s2);
  EXPECT_EQ(r2.v, 2);
}

TEST_F(ControlledTest, AbbaDeadlockIsReportedWithWaitForGraph) {
  ReportCapture cap;
  int deadlocks = 0;
  for (int seed = 1; seed <= 50; ++seed) {
    mutex a("test.ctl.A"), b("test.ctl.B");
    auto t0 = [&]() NO_THREAD_SAFETY_ANALYSIS {
      a.lock();
      seam(SeamKind::kPreempt);
      b.lock();
      b.unlock();
      a.unlock();
    };
    auto t1 = [&]() NO_THREAD_SAFETY_ANALYSIS {
      b.lock();
      seam(SeamKind::kPreempt);
      a.lock();
      a.unlock();
      b.unlock();
    };
    RandomWalk s(static_cast<uint64_t>(seed));
    const RunResult r = run_controlled({{"ab", 0, t0}, {"ba", 1, t1}}, s);
    deadlocks += r.deadlock;
  }
  ASSERT_GT(deadlocks, 0);
  bool saw_graph = false;
  for (const Report& r : cap.reports()) {
    if (r.kind != ReportKind::kDeadlock) continue;
    saw_graph = r.text.find("waits for mutex 'test.ctl.A' held by") != std::string::npos &&
                r.text.find("waits for mutex 'test.ctl.B' held by") != std::string::npos;
    if (saw_graph) break;
  }
  EXPECT_TRUE(saw_graph) << cap.dump();
  EXPECT_GE(cap.count(ReportKind::kLockOrder), 1u);  // lockdep saw it too
}

// A waiter that tests the flag BEFORE queueing itself: the wakeup can fall in between.
struct Flag {
  wait_queue_head wq{"test.ctl.wq"};
  std::atomic<bool> set{false};
};

void buggy_wait(Flag& f) {
  if (!f.set.load()) {
    wait_queue_entry e;
    prepare_to_wait(f.wq, e);  // too late: a wake_up before this line is lost
    schedule_wait(f.wq, e);
    finish_wait(f.wq, e);
  }
}

void waker(Flag& f) {
  f.set.store(true);
  wake_up(f.wq);
}

TEST_F(ControlledTest, LostWakeupIsFoundAsDeadlock) {
  ReportCapture cap;
  int lost = 0;
  for (int seed = 1; seed <= 200 && lost == 0; ++seed) {
    Flag f;
    RandomWalk s(static_cast<uint64_t>(seed));
    const RunResult r =
        run_controlled({{"waiter", 0, [&] { buggy_wait(f); }}, {"waker", 1, [&] { waker(f); }}}, s);
    lost += r.deadlock;
  }
  EXPECT_GT(lost, 0) << "the lost wakeup was never scheduled";
  EXPECT_GE(cap.count(ReportKind::kDeadlock), 1u);
}

TEST_F(ControlledTest, CorrectWaitNeverLosesTheWakeup) {
  ReportCapture cap;
  for (int seed = 1; seed <= 200; ++seed) {
    Flag f;
    RandomWalk s(static_cast<uint64_t>(seed));
    const RunResult r = run_controlled(
        {{"waiter", 0, [&] { wait_event(f.wq, [&] { return f.set.load(); }); }},
         {"waker", 1, [&] { waker(f); }}},
        s);
    ASSERT_FALSE(r.deadlock) << "seed " << seed << "\n" << cap.dump();
  }
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

// The livelock check, planted: a task that waits for a flag nobody sets, by spinning on
// a preemption point (no sleep, so no deadlock), never lets the clock move. (Bounded
// here: a reported run unwinds a fiber when it next blocks, and this one never would;
// once the report is out its seams return at once and the loop ends.)
TEST_F(ControlledTest, SpinningWithoutProgressIsReportedAsLivelock) {
  ReportCapture cap;
  std::atomic<bool> never{false};
  RandomWalk s(1);
  ControlledOptions opt;
  opt.max_steps_without_progress = 5'000;
  opt.record_trace = false;
  const RunResult r = run_controlled(
      {{"spinner", 0, [&] {
          for (int i = 0; i < 100'000 && !never.load(); ++i) seam(SeamKind::kPreempt);
        }},
       {"other", 1, [] { seam(SeamKind::kPreempt); }}},
      s, opt);
  EXPECT_TRUE(r.step_limit);
  EXPECT_LE(r.steps, 5'001u + 2u);
  EXPECT_TRUE(cap.has(ReportKind::kDeadlock)) << cap.dump();
}

// Time that moves is progress: 20,000 decisions, each after the clock advanced, pass a
// no-progress limit of 5,000 (a long `advance` through a timer that fires every few
// jiffies looks like this); the total cap still ends a run that is merely too long.
TEST_F(ControlledTest, ClockProgressIsNotALivelockButTheTotalCapHolds) {
  auto ticker = [] {
    for (int i = 0; i < 20'000; ++i) {
      advance_jiffies(1);
      seam(SeamKind::kPreempt);
    }
  };
  {
    ReportCapture cap;
    RandomWalk s(1);
    ControlledOptions opt;
    opt.max_steps_without_progress = 5'000;
    opt.record_trace = false;
    const RunResult r = run_controlled({{"ticker", 0, ticker}}, s, opt);
    EXPECT_FALSE(r.step_limit);
    EXPECT_GT(r.steps, 20'000u);
    EXPECT_EQ(cap.size(), 0u) << cap.dump();
  }
  ReportCapture cap;
  RandomWalk s(1);
  ControlledOptions opt;
  opt.max_steps_without_progress = 5'000;
  opt.max_steps = 10'000;
  opt.record_trace = false;
  const RunResult r = run_controlled({{"ticker", 0, ticker}}, s, opt);
  EXPECT_TRUE(r.step_limit);
  EXPECT_TRUE(cap.has(ReportKind::kDeadlock)) << cap.dump();
}

// Per-CPU ownership holds under the controlled scheduler too: tasks sharing a CPU never
// interleave inside get_cpu()/put_cpu().
TEST_F(ControlledTest, CpuOwnershipSerialisesTasksOfOneCpu) {
  for (int seed = 1; seed <= 50; ++seed) {
    PerCpu<long> pc;
    auto body = [&pc] {
      for (int k = 0; k < 5; ++k) {
        get_cpu();
        long* p = pc.this_cpu_ptr();
        const long v = *p;
        seam(SeamKind::kAtomic);
        *p = v + 1;
        put_cpu();
      }
    };
    RandomWalk s(static_cast<uint64_t>(seed));
    const RunResult r = run_controlled({{"x", 0, body}, {"y", 0, body}, {"z", 1, body}}, s);
    ASSERT_FALSE(r.deadlock);
    EXPECT_EQ(*pc.per_cpu_ptr(0), 10);
    EXPECT_EQ(*pc.per_cpu_ptr(1), 5);
  }
}

// One body, both backends.
TEST_F(ControlledTest, SameBodyRunsNativeAndControlled) {
  Counter native_c, ctl_c;
  run_native(counter_tasks(native_c, 3));
  RandomWalk s(1);
  const RunResult r = run_controlled(counter_tasks(ctl_c, 3), s);
  EXPECT_FALSE(r.deadlock);
  EXPECT_EQ(read(native_c), 9);
  EXPECT_EQ(read(ctl_c), 9);
}

TEST_F(ControlledTest, ManyRunsDoNotGrow) {
  // Stacks come from a pool: 2000 runs reuse the same few mappings.
  for (int i = 0; i < 2000; ++i) {
    Racy r;
    RandomWalk s(static_cast<uint64_t>(i));
    run_controlled(racy_tasks(r), s);
  }
  SUCCEED();
}

}  // namespace
}  // namespace kern

namespace kern {
namespace {

TEST_F(ControlledTest, IdleDaemonDoesNotDeadlockAndIsUnwound) {
  std::atomic<int> jobs{0};
  bool stop = false;
  bool daemon_unwound = false;
  struct Unwind {
    bool* flag;
    ~Unwind() { *flag = true; }
  };
  auto daemon = [&] {
    Unwind u{&daemon_unwound};
    for (;;) {
      WaitDesc d{"daemon-idle", &jobs, "jobs", nullptr};
      wait_until(d, [&] { return jobs.load() > 0 || stop; });
      if (stop) return;
      jobs.fetch_sub(1);
    }
  };
  auto producer = [&] {
    for (int i = 0; i < 3; ++i) {
      jobs.fetch_add(1);
      seam(SeamKind::kPreempt);
    }
  };
  ReportCapture cap;
  RandomWalk s(5);
  const RunResult r = run_controlled(
      {{"kworker", 0, daemon, TaskKind::kKworker}, {"producer", 1, producer}}, s);
  EXPECT_FALSE(r.deadlock);
  EXPECT_TRUE(daemon_unwound);
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

}  // namespace
}  // namespace kern

// ---- ASan's use-after-return on fiber stacks ----
//
// Each fiber stack in the pool keeps the ASan fake stack (where use-after-return frames
// live) of its last fiber. That is only sound if a dead fiber leaves no frame allocated in
// it: a leaked frame per fiber would fill the fake stack's size class within a few thousand
// runs, after which ASan silently puts frames on the real stack and sees no use-after-return.
// So the test runs thousands of fibers whose frames end every way a fiber can end (return,
// unwound while blocked), then checks a use-after-return in a fiber is still caught.

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CONTROLLED_TEST_ASAN 1
// ASan's run-time switch for use-after-return (clang 19 builds check it at every function
// entry): set here so the test does not depend on the ASAN_OPTIONS it runs under.
extern "C" int __asan_option_detect_stack_use_after_return;
#endif
#endif

namespace kern {
namespace {

// A 64-byte frame (ASan's smallest fake-frame class) whose local's address escapes.
__attribute__((noinline)) int* escape_local(int v) {
  int x = v;
  int* volatile p = &x;
  return p;
}

// Holds a frame of the same class while blocked; unwound when its run ends.
__attribute__((noinline)) void block_with_local(const bool& stop) {
  int x = 1;
  int* volatile p = &x;
  WaitDesc d{"test-idle", p, "never", nullptr};
  wait_until(d, [&] { return stop; });
}

void run_fibers_ending_every_way(int runs) {
  for (int i = 0; i < runs; ++i) {
    const bool stop = false;
    RandomWalk s(static_cast<uint64_t>(i));
    run_controlled({{"returns", 0, [] { (void)*escape_local(1); }},
                    {"unwound", 1, [&] { block_with_local(stop); }, TaskKind::kKworker}},
                   s);
  }
}

TEST(ControlledDeathTest, UseAfterReturnOnAPooledFiberStackIsCaught) {
#ifdef CONTROLLED_TEST_ASAN
  EXPECT_DEATH(
      {
        __asan_option_detect_stack_use_after_return = 1;
        run_fibers_ending_every_way(6000);  // 12,000 fibers: far past one class's 4,096 slots
        RandomWalk s(1);
        run_controlled({{"uar", 0, [] {
                           int* p = escape_local(7);
                           std::fprintf(stderr, "read %d\n", *p);
                         }}},
                       s);
      },
      "stack-use-after-return");
#else
  // The tsan gate build: TSan has no use-after-return detection (the asan-ubsan build runs it).
  GTEST_SKIP() << "needs ASan to see a use-after-return";
#endif
}

TEST(ControlledTest2, FibersEndingEveryWayLeaveNoReport) {
  ReportCapture cap;
  run_fibers_ending_every_way(100);
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

}  // namespace
}  // namespace kern
