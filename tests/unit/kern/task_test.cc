// SPDX-License-Identifier: MIT
// Task contexts and might_sleep().
#include "impl/kern/task.h"

#include <gtest/gtest.h>

#include <thread>

#include "impl/kern/cpu.h"
#include "impl/kern/report.h"

namespace kern {
namespace {

// Two guards, told apart by their __func__.
bool guarded_call(bool misuse) { return WARN_ON(misuse); }
bool other_call(bool misuse) { return WARN_ON(misuse); }

TEST(TaskTest, ExpectWarnCountsOnlyTheNamedFunctionOnThisTask) {
  ReportCapture cap;
  {
    ExpectWarn w("guarded_call");
    EXPECT_TRUE(guarded_call(true));
    EXPECT_FALSE(guarded_call(false));
    EXPECT_EQ(w.fired(), 1);
    EXPECT_TRUE(other_call(true));                    // another function: reported
    std::thread([] { guarded_call(true); }).join();  // another task: reported
    {
      ExpectWarn inner("other_call");
      other_call(true);
      guarded_call(true);  // the inner scope names other_call: reported
      EXPECT_EQ(inner.fired(), 1);
    }
    guarded_call(true);
    EXPECT_EQ(w.fired(), 2);  // the outer count survives the inner scope
  }
  guarded_call(true);  // out of scope: reported
  EXPECT_EQ(cap.count(ReportKind::kWarn), 4u) << cap.dump();
}

TEST(TaskTest, ProcessContextIsPreemptible) {
  EXPECT_TRUE(preemptible());
  EXPECT_FALSE(in_atomic());
  EXPECT_FALSE(in_interrupt());
  EXPECT_TRUE(in_task());
  ReportCapture cap;
  might_sleep("test");
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

TEST(TaskTest, PreemptDisableNestsAndOwnsCpu) {
  Task* t = current();
  preempt_disable();
  preempt_disable();
  EXPECT_FALSE(preemptible());
  EXPECT_EQ(cpu_state(t->cpu).owner.load(), t);
  preempt_enable();
  EXPECT_FALSE(preemptible());
  preempt_enable();
  EXPECT_TRUE(preemptible());
  EXPECT_EQ(cpu_state(t->cpu).owner.load(), nullptr);
}

struct SleepCase {
  const char* name;
  void (*enter)();
  void (*leave)();
  const char* reason;
};

class MightSleepTest : public ::testing::TestWithParam<SleepCase> {};

TEST_P(MightSleepTest, ReportsTheReason) {
  const SleepCase& c = GetParam();
  ReportCapture cap;
  c.enter();
  might_sleep("test_sleeper");
  c.leave();
  ASSERT_EQ(cap.count(ReportKind::kSleepInAtomic), 1u) << cap.dump();
  EXPECT_NE(cap.reports()[0].signature.find(c.reason), std::string::npos)
      << cap.reports()[0].signature;
  EXPECT_TRUE(preemptible());
}

INSTANTIATE_TEST_SUITE_P(
    Contexts, MightSleepTest,
    ::testing::Values(SleepCase{"preempt", preempt_disable, preempt_enable, "preemption"},
                      SleepCase{"irq", local_irq_disable, local_irq_enable, "IRQs disabled"},
                      SleepCase{"bh", local_bh_disable, local_bh_enable, "bottom halves"},
                      SleepCase{"hardirq", hardirq_enter, hardirq_exit, "hardirq"},
                      SleepCase{"softirq", softirq_enter, softirq_exit, "softirq"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(TaskTest, IrqSaveRestoreNests) {
  const irqflags_t outer = local_irq_save();
  EXPECT_TRUE(irqs_disabled());
  const irqflags_t inner = local_irq_save();
  local_irq_restore(inner);
  EXPECT_TRUE(irqs_disabled());
  local_irq_restore(outer);
  EXPECT_FALSE(irqs_disabled());
  EXPECT_TRUE(preemptible());
}

TEST(TaskTest, InterruptContextQueries) {
  run_in_irq(current()->cpu, true, [] {
    EXPECT_TRUE(in_hardirq());
    EXPECT_TRUE(in_interrupt());
    EXPECT_TRUE(irqs_disabled());
    EXPECT_FALSE(in_task());
  });
  run_in_irq(current()->cpu + 1, false, [] {
    EXPECT_TRUE(in_serving_softirq());
    EXPECT_FALSE(in_hardirq());
    EXPECT_EQ(current()->kind, TaskKind::kIrqDelivery);
  });
  EXPECT_TRUE(in_task());
  EXPECT_TRUE(preemptible());
}

TEST(TaskTest, MemallocNoioScope) {
  EXPECT_EQ(current()->gfp_scope & kScopeNoIo, 0u);
  const unsigned saved = memalloc_noio_save();
  EXPECT_NE(current()->gfp_scope & kScopeNoIo, 0u);
  memalloc_noio_restore(saved);
  EXPECT_EQ(current()->gfp_scope & kScopeNoIo, 0u);
}

TEST(TaskTest, UnbalancedEnableIsReported) {
  ReportCapture cap;
  preempt_enable();
  EXPECT_EQ(cap.count(ReportKind::kBug), 1u);
}

TEST(TaskTest, ExitInAtomicContextIsReported) {
  ReportCapture cap;
  {
    TaskScope ts("leaky", 3);
    preempt_disable();
  }
  EXPECT_EQ(cap.count(ReportKind::kBug), 1u) << cap.dump();
  EXPECT_EQ(cpu_state(3).owner.load(), nullptr);
}

}  // namespace
}  // namespace kern
