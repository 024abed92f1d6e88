// SPDX-License-Identifier: MIT
// Lockdep checker: each check fires on a planted misuse and stays quiet on correct code.
#include "impl/kern/lockdep.h"

#include <gtest/gtest.h>

#include <thread>

#include "impl/kern/cpu.h"
#include "impl/kern/lock.h"
#include "impl/kern/report.h"
#include "impl/kern/task.h"

namespace kern {
namespace {

class LockdepTest : public ::testing::Test {
 protected:
  void SetUp() override { lockdep_reset(); }
  void TearDown() override { lockdep_reset(); }
};

TEST_F(LockdepTest, AbbaOrderIsReportedWithBothChains) {
  spinlock_t a("test.abba.A");
  spinlock_t b("test.abba.B");
  ReportCapture cap;
  // Run one after the other: lockdep reports the possibility, no actual deadlock needed.
  a.lock();
  b.lock();
  b.unlock();
  a.unlock();
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
  b.lock();
  a.lock();
  a.unlock();
  b.unlock();
  ASSERT_EQ(cap.count(ReportKind::kLockOrder), 1u) << cap.dump();
  const Report r = cap.reports()[0];
  EXPECT_NE(r.text.find("test.abba.A -> test.abba.B first seen"), std::string::npos) << r.text;
  EXPECT_NE(r.text.find("acquiring test.abba.A"), std::string::npos) << r.text;
  EXPECT_EQ(r.signature, "lock-order:test.abba.A,test.abba.B");
}

TEST_F(LockdepTest, ConsistentOrderIsQuiet) {
  mutex m("test.order.m");
  spinlock_t s("test.order.s");
  ReportCapture cap;
  for (int i = 0; i < 3; ++i) {
    m.lock();
    s.lock_irq();
    s.unlock_irq();
    m.unlock();
  }
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

TEST_F(LockdepTest, ThreeLockCycleAcrossThreads) {
  mutex a("test.cyc.A"), b("test.cyc.B"), c("test.cyc.C");
  ReportCapture cap;
  auto pair = [](mutex& x, mutex& y) {
    x.lock();
    y.lock();
    y.unlock();
    x.unlock();
  };
  std::thread t1([&] { TaskScope ts("t1", 0); pair(a, b); });
  t1.join();
  std::thread t2([&] { TaskScope ts("t2", 1); pair(b, c); });
  t2.join();
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
  std::thread t3([&] { TaskScope ts("t3", 2); pair(c, a); });
  t3.join();
  EXPECT_EQ(cap.count(ReportKind::kLockOrder), 1u) << cap.dump();
}

TEST_F(LockdepTest, RecursiveLockingOfOneClass) {
  spinlock_t x("test.rec.x"), y("test.rec.x");  // two instances, one class
  ReportCapture cap;
  x.lock();
  y.lock();
  y.unlock();
  x.unlock();
  EXPECT_EQ(cap.count(ReportKind::kLockOrder), 1u) << cap.dump();
}

TEST_F(LockdepTest, NestedSubclassIsAllowed) {
  spinlock_t x("test.nest.x"), y("test.nest.x");
  ReportCapture cap;
  x.lock();
  y.lock_nested(1);
  y.unlock();
  x.unlock();
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

TEST_F(LockdepTest, TrylockAddsNoEdgeIntoIt) {
  spinlock_t a("test.try.A"), b("test.try.B");
  ReportCapture cap;
  a.lock();
  ASSERT_TRUE(b.trylock());
  b.unlock();
  a.unlock();
  b.lock();
  a.lock();
  a.unlock();
  b.unlock();
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

TEST_F(LockdepTest, LockUsedInHardirqAndWithIrqsOnIsInconsistent) {
  spinlock_t l("test.irq.lock");
  ReportCapture cap;
  run_in_irq(1, /*hard=*/true, [&] {
    l.lock();
    l.unlock();
  });
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
  l.lock();  // process context, IRQs on: an IRQ on this CPU could now deadlock on l
  l.unlock();
  ASSERT_EQ(cap.count(ReportKind::kIrqSafety), 1u) << cap.dump();
  EXPECT_EQ(cap.reports()[0].signature, "irq-safety:test.irq.lock:IN-HARDIRQ/HARDIRQ-ON");
}

TEST_F(LockdepTest, IrqSafeUseIsQuiet) {
  spinlock_t l("test.irqsafe.lock");
  ReportCapture cap;
  run_in_irq(1, true, [&] {
    l.lock();
    l.unlock();
  });
  const irqflags_t f = l.lock_irqsave();
  l.unlock_irqrestore(f);
  l.lock_irq();
  l.unlock_irq();
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

TEST_F(LockdepTest, SoftirqUseVersusBhOnIsInconsistent) {
  // The shape of the 2023 blkg_stat_lock report: a lock taken from an RCU callback
  // (softirq) and in process context with softirqs enabled.
  raw_spinlock_t l("test.softirq.lock");
  ReportCapture cap;
  run_in_irq(0, /*hard=*/false, [&] {
    l.lock();
    l.unlock();
  });
  l.lock();
  l.unlock();
  EXPECT_EQ(cap.count(ReportKind::kIrqSafety), 1u) << cap.dump();
}

TEST_F(LockdepTest, SoftirqUseWithBhOffElsewhereIsQuiet) {
  spinlock_t l("test.softirq.bh");
  ReportCapture cap;
  run_in_irq(0, false, [&] {
    l.lock();
    l.unlock();
  });
  l.lock_bh();
  l.unlock_bh();
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

TEST_F(LockdepTest, InterruptChainDoesNotOrderAgainstInterruptedLocks) {
  spinlock_t outer("test.ctx.outer"), inner("test.ctx.inner");
  ReportCapture cap;
  outer.lock_irq();
  // A softirq on the same CPU nests here; its lock is not ordered after `outer`.
  run_in_irq(current()->cpu, false, [&] {
    inner.lock();
    inner.unlock();
  });
  outer.unlock_irq();
  inner.lock_irq();
  outer.lock();
  outer.unlock();
  inner.unlock_irq();
  EXPECT_EQ(cap.count(ReportKind::kLockOrder), 0u) << cap.dump();
}

TEST_F(LockdepTest, MutexUnderSpinlockIsSleepInAtomic) {
  spinlock_t s("test.sia.spin");
  mutex m("test.sia.mutex");
  ReportCapture cap;
  s.lock();
  m.lock();
  m.unlock();
  s.unlock();
  ASSERT_EQ(cap.count(ReportKind::kSleepInAtomic), 1u) << cap.dump();
  EXPECT_NE(cap.reports()[0].signature.find("mutex_lock"), std::string::npos);
  EXPECT_NE(cap.reports()[0].signature.find("test.sia.spin"), std::string::npos);
}

TEST_F(LockdepTest, MutexTrylockUnderSpinlockIsAllowed) {
  spinlock_t s("test.try.spin");
  mutex m("test.try.mutex");
  ReportCapture cap;
  s.lock();
  ASSERT_TRUE(m.trylock());
  m.unlock();
  s.unlock();
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

TEST_F(LockdepTest, UnlockOfLockNotHeld) {
  mutex m("test.badunlock");
  ReportCapture cap;
  m.unlock();
  EXPECT_EQ(cap.count(ReportKind::kBadUnlock), 1u) << cap.dump();
  EXPECT_FALSE(m.is_locked());
}

TEST_F(LockdepTest, UnlockByAnotherTaskIsBadUnlock) {
  mutex m("test.badunlock.other");
  ReportCapture cap;
  m.lock();
  std::thread t([&] {
    TaskScope ts("other", 1);
    m.unlock();
  });
  t.join();
  EXPECT_EQ(cap.count(ReportKind::kBadUnlock), 1u) << cap.dump();
  EXPECT_TRUE(m.is_locked());
  m.unlock();
}

TEST_F(LockdepTest, LockHeldAtTaskExit) {
  mutex m("test.exit.held");
  ReportCapture cap;
  std::thread t([&] {
    TaskScope ts("leaver", 1);
    m.lock();
  });
  t.join();
  EXPECT_EQ(cap.count(ReportKind::kLockHeld), 1u) << cap.dump();
}

TEST_F(LockdepTest, LockHeldAfterInterruptHandler) {
  spinlock_t l("test.irq.leak");
  ReportCapture cap;
  run_in_irq(2, false, [&] { l.lock(); });
  EXPECT_EQ(cap.count(ReportKind::kLockHeld), 1u) << cap.dump();
}

TEST_F(LockdepTest, AssertHeld) {
  mutex m("test.assert");
  ReportCapture cap;
  m.lock();
  lockdep_assert_held(m);
  m.unlock();
  EXPECT_EQ(cap.size(), 0u);
  lockdep_assert_held(m);
  EXPECT_EQ(cap.count(ReportKind::kBug), 1u) << cap.dump();
}

TEST_F(LockdepTest, FreezeThenEnterUnderMutexCycle) {
  // queue freeze is a lock: "freeze, then take M" in one path and "hold M, then enter the
  // queue (IO)" in another is the 2025 blkg_conf deadlock shape.
  freeze_counter q("test.q_usage_counter");
  mutex m("test.freeze.mutex");
  ReportCapture cap;
  q.freeze();
  m.lock();
  m.unlock();
  q.unfreeze();
  m.lock();
  ASSERT_TRUE(q.enter(false));
  q.exit();
  m.unlock();
  EXPECT_EQ(cap.count(ReportKind::kLockOrder), 1u) << cap.dump();
}

TEST_F(LockdepTest, ResetForgetsEdges) {
  spinlock_t a("test.reset.A"), b("test.reset.B");
  a.lock();
  b.lock();
  b.unlock();
  a.unlock();
  EXPECT_GE(lockdep_nr_edges(), 1u);
  lockdep_reset();
  EXPECT_EQ(lockdep_nr_edges(), 0u);
  ReportCapture cap;
  b.lock();
  a.lock();
  a.unlock();
  b.unlock();
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

TEST_F(LockdepTest, DeepHoldingBeyondSixtyFourLocks) {
  // TSan's detector breaks past 64 held locks; ours holds kMaxHeldLocks (> 64).
  std::vector<std::unique_ptr<mutex>> ms;
  for (int i = 0; i < kMaxHeldLocks; ++i) ms.push_back(std::make_unique<mutex>("test.deep"));
  ReportCapture cap;
  for (int i = 0; i < kMaxHeldLocks; ++i) ms[i]->lock_nested(i);
  EXPECT_EQ(current()->nr_held, kMaxHeldLocks);
  for (int i = kMaxHeldLocks - 1; i >= 0; --i) ms[i]->unlock();
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

}  // namespace
}  // namespace kern

namespace kern {
namespace {

TEST_F(LockdepTest, IrqSafeToIrqUnsafeDependency) {
  // S is taken in a softirq (always with IRQs off elsewhere): softirq-safe. U is taken in
  // process context with softirqs on: softirq-unsafe. Taking U while holding S lets a
  // softirq spinning on S deadlock against a holder of U that waits for S's holder.
  spinlock_t s("test.dep.S"), u("test.dep.U");
  ReportCapture cap;
  run_in_irq(1, false, [&] {
    s.lock();
    s.unlock();
  });
  u.lock();  // softirq-unsafe usage
  u.unlock();
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
  s.lock_bh();
  u.lock();  // S -> U: safe -> unsafe
  u.unlock();
  s.unlock_bh();
  ASSERT_EQ(cap.count(ReportKind::kIrqSafety), 1u) << cap.dump();
  EXPECT_EQ(cap.reports()[0].signature, "irq-dependency:IN-SOFTIRQ:test.dep.S->test.dep.U");
}

TEST_F(LockdepTest, IrqDependencyFoundWhenUsageArrivesLast) {
  spinlock_t s("test.dep2.S"), m("test.dep2.M"), u("test.dep2.U");
  ReportCapture cap;
  s.lock_irq();
  m.lock();
  u.lock();
  u.unlock();
  m.unlock();
  s.unlock_irq();
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
  u.lock();  // u becomes hardirq-unsafe (taken with IRQs on)
  u.unlock();
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
  run_in_irq(2, true, [&] {  // s becomes hardirq-safe: S -> M -> U is now a hazard
    s.lock();
    s.unlock();
  });
  ASSERT_EQ(cap.count(ReportKind::kIrqSafety), 1u) << cap.dump();
  EXPECT_NE(cap.reports()[0].text.find("test.dep2.S -> test.dep2.U first seen"), std::string::npos)
      << cap.dump();
}

TEST_F(LockdepTest, IrqSafeChainOfSafeLocksIsQuiet) {
  spinlock_t a("test.dep3.A"), b("test.dep3.B");
  ReportCapture cap;
  run_in_irq(1, true, [&] {
    a.lock();
    b.lock();
    b.unlock();
    a.unlock();
  });
  const irqflags_t f = a.lock_irqsave();
  b.lock();
  b.unlock();
  a.unlock_irqrestore(f);
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

}  // namespace
}  // namespace kern
