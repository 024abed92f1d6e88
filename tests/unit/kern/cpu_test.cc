// SPDX-License-Identifier: MIT
// Virtual CPUs: ownership, per-CPU data, interrupt delivery.
#include "impl/kern/cpu.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "impl/kern/lock.h"
#include "impl/kern/report.h"

namespace kern {
namespace {

TEST(CpuTest, ThisCpuPtrNeedsOwnership) {
  PerCpu<long> pc;
  ReportCapture cap;
  const int c = get_cpu();
  (*pc.this_cpu_ptr())++;
  put_cpu();
  EXPECT_EQ(*pc.per_cpu_ptr(c), 1);
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
  (void)pc.this_cpu_ptr();  // preemptible: the kernel's "smp_processor_id() in preemptible"
  EXPECT_EQ(cap.count(ReportKind::kPercpu), 1u) << cap.dump();
}

TEST(CpuTest, ConfigurableCpuCount) {
  const int saved = nr_cpu_ids();
  set_nr_cpus(64);
  PerCpu<int> pc;
  EXPECT_EQ(pc.nr(), 64);
  int n = 0;
  for_each_possible_cpu(cpu) n += (pc.per_cpu_ptr(cpu) != nullptr);
  EXPECT_EQ(n, 64);
  set_nr_cpus(saved);
}

// Many threads share few CPUs. Each increments its CPU's counter non-atomically inside
// get_cpu()/put_cpu(): ownership must make that exclusive (TSan would see a race, and the
// total would be short, if two tasks ever owned one CPU at once).
TEST(CpuTest, OwnershipMakesPerCpuDataExclusive) {
  const int saved = nr_cpu_ids();
  set_nr_cpus(2);
  PerCpu<long> pc;
  constexpr int kThreads = 6, kIters = 2000;
  std::vector<std::thread> ts;
  for (int i = 0; i < kThreads; ++i) {
    ts.emplace_back([&pc, i] {
      TaskScope scope("percpu", i % 2);
      for (int k = 0; k < kIters; ++k) {
        get_cpu();
        long* p = pc.this_cpu_ptr();
        const long v = *p;
        seam(SeamKind::kAtomic);
        *p = v + 1;
        put_cpu();
      }
    });
  }
  for (auto& t : ts) t.join();
  long total = 0;
  for_each_possible_cpu(cpu) total += *pc.per_cpu_ptr(cpu);
  EXPECT_EQ(total, long{kThreads} * kIters);
  set_nr_cpus(saved);
}

TEST(CpuTest, IrqOnAnotherCpuWaitsForItsOwner) {
  // A task owning CPU 1 (spinlock held) delays interrupt work aimed at CPU 1 until it is
  // preemptible again.
  spinlock_t l("test.cpu.irqwait");
  std::atomic<int> stage{0};
  std::atomic<bool> irq_ran{false};
  std::thread owner([&] {
    TaskScope ts("owner", 1);
    l.lock();
    stage.store(1);
    while (stage.load() != 2) std::this_thread::yield();
    // The interrupt has been requested but cannot run while we own CPU 1.
    EXPECT_FALSE(irq_ran.load());
    l.unlock();
  });
  while (stage.load() != 1) std::this_thread::yield();
  std::thread irq([&] {
    TaskScope ts("irq-sender", 0);
    stage.store(2);
    run_in_irq(1, true, [&] { irq_ran.store(true); });
  });
  owner.join();
  irq.join();
  EXPECT_TRUE(irq_ran.load());
}

TEST(CpuTest, MigrationOnlyWhenPreemptible) {
  ReportCapture cap;
  TaskScope ts("mover", 0);
  set_task_cpu(current(), 1);
  EXPECT_EQ(current()->cpu, 1);
  preempt_disable();
  set_task_cpu(current(), 2);
  preempt_enable();
  EXPECT_EQ(current()->cpu, 1);
  EXPECT_EQ(cap.count(ReportKind::kBug), 1u);
}

}  // namespace
}  // namespace kern
