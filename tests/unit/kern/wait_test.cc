// SPDX-License-Identifier: MIT
// Wait queues and completions under real threads.
#include "impl/kern/wait.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "impl/kern/report.h"

namespace kern {
namespace {

TEST(WaitTest, CompletionWakesWaiter) {
  completion done("test.done");
  std::atomic<int> payload{0};
  std::thread waiter([&] {
    TaskScope ts("waiter", 1);
    done.wait_for_completion();
    EXPECT_EQ(payload.load(std::memory_order_relaxed), 42);
  });
  payload.store(42, std::memory_order_relaxed);
  done.complete();
  waiter.join();
  EXPECT_FALSE(done.completion_done());  // the one completion was consumed
}

TEST(WaitTest, CompleteAllReleasesEveryone) {
  completion go("test.go");
  std::vector<std::thread> ts;
  std::atomic<int> woke{0};
  for (int i = 0; i < 4; ++i) {
    ts.emplace_back([&, i] {
      TaskScope s("w", i % 4);
      go.wait_for_completion();
      woke.fetch_add(1);
    });
  }
  go.complete_all();
  for (auto& t : ts) t.join();
  EXPECT_EQ(woke.load(), 4);
  EXPECT_TRUE(go.completion_done());
  go.wait_for_completion();  // future waits pass too
}

TEST(WaitTest, WaitEventSeesConditionSetBeforeWake) {
  wait_queue_head wq("test.wq");
  std::atomic<int> stage{0};
  constexpr int kRounds = 500;
  std::thread waiter([&] {
    TaskScope ts("waiter", 1);
    for (int r = 1; r <= kRounds; ++r) wait_event(wq, [&] { return stage.load() >= r; });
  });
  for (int r = 1; r <= kRounds; ++r) {
    stage.store(r);
    wake_up(wq);
  }
  waiter.join();
  EXPECT_FALSE(waitqueue_active(wq));
}

TEST(WaitTest, WaitingInAtomicContextIsReported) {
  completion c("test.atomicwait");
  c.complete();
  ReportCapture cap;
  spinlock_t l("test.wait.spin");
  l.lock();
  c.wait_for_completion();  // does not block (already completed) but may sleep: reported
  l.unlock();
  EXPECT_EQ(cap.count(ReportKind::kSleepInAtomic), 1u) << cap.dump();
}

}  // namespace
}  // namespace kern
