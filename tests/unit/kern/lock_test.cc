// SPDX-License-Identifier: MIT
// Locks under real threads: mutual exclusion (TSan-visible), trylock, queue freeze.
#include "impl/kern/lock.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "impl/kern/cpu.h"
#include "impl/kern/report.h"

namespace kern {
namespace {

// A plain (non-atomic) counter protected by the lock: TSan reports a race, and the total
// comes out short, if the lock ever lets two holders in.
template <typename Lock, typename LockFn, typename UnlockFn>
long hammer(Lock& l, LockFn lock, UnlockFn unlock, int threads, int iters) {
  long counter = 0;
  std::vector<std::thread> ts;
  for (int i = 0; i < threads; ++i) {
    ts.emplace_back([&, i] {
      TaskScope scope("hammer", i % nr_cpu_ids());
      for (int k = 0; k < iters; ++k) {
        lock(l);
        const long v = counter;
        seam(SeamKind::kAtomic);
        counter = v + 1;
        unlock(l);
      }
    });
  }
  for (auto& t : ts) t.join();
  return counter;
}

TEST(LockTest, SpinlockMutualExclusion) {
  spinlock_t l("test.lock.spin");
  ReportCapture cap;
  EXPECT_EQ(hammer(l, [](spinlock_t& x) { x.lock(); }, [](spinlock_t& x) { x.unlock(); }, 4, 3000),
            12000);
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

TEST(LockTest, SpinlockIrqVariantsMutualExclusion) {
  spinlock_t l("test.lock.spinirq");
  ReportCapture cap;
  EXPECT_EQ(hammer(
                l, [](spinlock_t& x) { x.lock_irq(); }, [](spinlock_t& x) { x.unlock_irq(); }, 3,
                2000),
            6000);
  EXPECT_EQ(hammer(
                l, [](spinlock_t& x) { x.lock_bh(); }, [](spinlock_t& x) { x.unlock_bh(); }, 3,
                2000),
            6000);
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

TEST(LockTest, MutexMutualExclusionWithSleepers) {
  mutex m("test.lock.mutex");
  ReportCapture cap;
  EXPECT_EQ(hammer(m, [](mutex& x) { x.lock(); }, [](mutex& x) { x.unlock(); }, 6, 2000), 12000);
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

TEST(LockTest, TrylockFailsWhenHeld) {
  mutex m("test.lock.try");
  spinlock_t s("test.lock.trys");
  m.lock();
  s.lock();
  std::thread t([&] {
    TaskScope ts("other", 1);
    EXPECT_FALSE(m.trylock());
    EXPECT_FALSE(s.trylock());
    EXPECT_TRUE(preemptible());  // a failed spin trylock gives preemption back
  });
  t.join();
  s.unlock();
  m.unlock();
  EXPECT_TRUE(m.trylock());
  m.unlock();
}

TEST(LockTest, SpinlockHolderIsNotPreemptible) {
  spinlock_t s("test.lock.preempt");
  s.lock();
  EXPECT_FALSE(preemptible());
  EXPECT_TRUE(s.is_locked());
  EXPECT_EQ(s.owner(), current());
  s.unlock();
  EXPECT_TRUE(preemptible());
  const irqflags_t f = s.lock_irqsave();
  EXPECT_TRUE(irqs_disabled());
  s.unlock_irqrestore(f);
  EXPECT_FALSE(irqs_disabled());
}

TEST(LockTest, FreezeWaitsForUsersAndBlocksNewOnes) {
  freeze_counter q("test.lock.freeze");
  ASSERT_TRUE(q.enter(false));
  std::atomic<bool> frozen{false}, entered{false}, go_unfreeze{false};
  std::thread freezer([&] {
    TaskScope ts("freezer", 1);
    q.freeze();
    frozen.store(true);
    while (!go_unfreeze.load()) std::this_thread::yield();
    EXPECT_FALSE(entered.load());  // the IO task waits for the unfreeze
    q.unfreeze();
  });
  // The freezer cannot finish while we are inside.
  while (!q.frozen()) std::this_thread::yield();
  EXPECT_FALSE(frozen.load());
  q.exit();
  while (!frozen.load()) std::this_thread::yield();
  EXPECT_FALSE(q.enter(true));  // nowait enter fails on a frozen queue
  std::thread io([&] {
    TaskScope ts("io", 2);
    ASSERT_TRUE(q.enter(false));  // waits for unfreeze
    entered.store(true);
    q.exit();
  });
  go_unfreeze.store(true);
  freezer.join();
  io.join();
  EXPECT_TRUE(entered.load());
  EXPECT_EQ(q.users(), 0);
}

TEST(LockTest, GuardsReleaseOnScopeExit) {
  mutex m("test.lock.guard");
  spinlock_t s("test.lock.guards");
  {
    MutexGuard g(m);
    SpinIrqGuard h(s);
    EXPECT_TRUE(lock_is_held(&m));
    EXPECT_TRUE(lock_is_held(&s));
  }
  EXPECT_FALSE(m.is_locked());
  EXPECT_FALSE(s.is_locked());
  EXPECT_TRUE(preemptible());
}

}  // namespace
}  // namespace kern
