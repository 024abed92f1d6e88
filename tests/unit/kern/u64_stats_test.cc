// SPDX-License-Identifier: MIT
// u64_stats: consistent snapshots under real threads and under the controlled scheduler
// (where a broken reader is shown to be caught), writer checks, and the _irqsave variants.
#include "impl/kern/u64_stats.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "impl/kern/cpu.h"
#include "impl/kern/lock.h"
#include "impl/kern/report.h"
#include "impl/kern/sched_controlled.h"

namespace kern {
namespace {

// Invariant of every write section below: bytes == ios * 512.
struct Stats {
  u64_stats_sync sync;
  u64_stats_t bytes, ios;
};

void write_one(Stats& s, bool seam_inside = false) {
  u64_stats_update_begin(s.sync);
  s.ios.inc();
  if (seam_inside) seam(SeamKind::kAtomic);  // a preemption point mid-section
  s.bytes.add(512);
  u64_stats_update_end(s.sync);
}

// A consistent snapshot: true if it satisfies the invariant.
bool read_consistent(const Stats& s, bool seam_inside = false, bool use_retry = true) {
  uint64_t b, i;
  unsigned seq;
  do {
    seq = u64_stats_fetch_begin(s.sync);
    b = s.bytes.read();
    if (seam_inside) seam(SeamKind::kAtomic);
    i = s.ios.read();
  } while (use_retry && u64_stats_fetch_retry(s.sync, seq));
  return b == i * 512;
}

TEST(U64StatsTest, CounterBasics) {
  u64_stats_t c;
  EXPECT_EQ(c.read(), 0u);
  c.add(5);
  c.inc();
  EXPECT_EQ(u64_stats_read(&c), 6u);
  u64_stats_add(&c, 4);
  u64_stats_inc(&c);
  EXPECT_EQ(c.read(), 11u);
  u64_stats_set(&c, 2);
  EXPECT_EQ(c.read(), 2u);
  u64_stats_sync s;
  u64_stats_init(&s);
  EXPECT_EQ(u64_stats_fetch_begin(s), 0u);
  EXPECT_FALSE(u64_stats_fetch_retry(s, 0));
}

TEST(U64StatsTest, RetryWhenAWriteOverlaps) {
  Stats s;
  spinlock_t l("test.u64.overlap");
  const unsigned seq = u64_stats_fetch_begin(s.sync);
  l.lock();
  write_one(s);
  l.unlock();
  EXPECT_TRUE(u64_stats_fetch_retry(s.sync, seq));
  const unsigned seq2 = u64_stats_fetch_begin(s.sync);
  EXPECT_FALSE(u64_stats_fetch_retry(s.sync, seq2));
}

TEST(U64StatsTest, ReadersNeverSeeTornSnapshotsUnderThreads) {
  Stats s;
  spinlock_t writer_lock("test.u64.writer");
  std::atomic<bool> stop{false}, running{false};
  std::atomic<long> torn{0};
  std::thread reader([&] {
    TaskScope ts("reader", 1);
    running.store(true);
    while (!stop.load())
      if (!read_consistent(s)) torn.fetch_add(1);
  });
  while (!running.load()) std::this_thread::yield();  // write while it reads
  {
    TaskScope ts("writer", 2);
    for (int k = 0; k < 20000; ++k) {
      writer_lock.lock();
      write_one(s);
      writer_lock.unlock();
    }
  }
  stop.store(true);
  reader.join();
  EXPECT_EQ(torn.load(), 0);
  EXPECT_EQ(s.ios.read(), 20000u);
  EXPECT_EQ(s.bytes.read(), 20000u * 512);
}

// Per-CPU stats: each CPU's writer owns its CPU (get_cpu), no lock; a reader folds them.
TEST(U64StatsTest, PerCpuWritersAndAFoldingReader) {
  PerCpu<Stats> pcpu;
  std::atomic<bool> stop{false};
  std::atomic<long> torn{0};
  std::thread reader([&] {
    TaskScope ts("reader", 3);
    while (!stop.load())
      for_each_possible_cpu(cpu) if (!read_consistent(*pcpu.per_cpu_ptr(cpu))) torn.fetch_add(1);
  });
  std::thread writers[2];
  for (int w = 0; w < 2; ++w) {
    writers[w] = std::thread([&, w] {
      TaskScope ts("writer", w);
      for (int k = 0; k < 5000; ++k) {
        get_cpu();
        write_one(*pcpu.this_cpu_ptr());
        put_cpu();
      }
    });
  }
  for (auto& t : writers) t.join();
  stop.store(true);
  reader.join();
  EXPECT_EQ(torn.load(), 0);
  EXPECT_EQ(pcpu.per_cpu_ptr(0)->ios.read() + pcpu.per_cpu_ptr(1)->ios.read(), 10000u);
}

TEST(U64StatsTest, UnprotectedWriterIsReported) {
  Stats s;
  ReportCapture cap;
  write_one(s);  // preemptible, no lock
  EXPECT_EQ(cap.count(ReportKind::kPercpu), 1u) << cap.dump();
  get_cpu();
  write_one(s);  // owns its CPU: fine
  put_cpu();
  EXPECT_EQ(cap.size(), 1u) << cap.dump();
}

TEST(U64StatsTest, IrqsaveVariantsDisableAndRestoreIrqs) {
  Stats s;
  ReportCapture cap;
  EXPECT_FALSE(irqs_disabled());
  const irqflags_t f = u64_stats_update_begin_irqsave(s.sync);  // IRQs off: owns the CPU
  EXPECT_TRUE(irqs_disabled());
  s.ios.inc();
  s.bytes.add(512);
  u64_stats_update_end_irqrestore(s.sync, f);
  EXPECT_FALSE(irqs_disabled());
  EXPECT_TRUE(preemptible());
  local_irq_disable();  // nested in an IRQs-off region: restores to off
  const irqflags_t g = u64_stats_update_begin_irqsave(s.sync);
  u64_stats_update_end_irqrestore(s.sync, g);
  EXPECT_TRUE(irqs_disabled());
  local_irq_enable();
  EXPECT_TRUE(read_consistent(s));
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

TEST(U64StatsTest, NestedWriterIsReportedAndParityHeals) {
  Stats s;
  spinlock_t l("test.u64.nested");
  ReportCapture cap;
  l.lock();
  u64_stats_update_begin(s.sync);
  u64_stats_update_begin(s.sync);  // e.g. an interrupt updating the same stats
  u64_stats_update_end(s.sync);
  u64_stats_update_end(s.sync);
  l.unlock();
  EXPECT_EQ(cap.count(ReportKind::kBug), 1u) << cap.dump();
  const unsigned seq = u64_stats_fetch_begin(s.sync);  // must not wait forever
  EXPECT_EQ(seq & 1, 0u);
  EXPECT_FALSE(u64_stats_fetch_retry(s.sync, seq));
}

TEST(U64StatsTest, ReaderInsideItsOwnWriteSectionIsReported) {
  Stats s;
  spinlock_t l("test.u64.self");
  ReportCapture cap;
  l.lock();
  u64_stats_update_begin(s.sync);
  // Returns (the snapshot may be torn) instead of waiting for itself forever.
  EXPECT_TRUE(read_consistent(s));
  u64_stats_update_end(s.sync);
  l.unlock();
  EXPECT_EQ(cap.count(ReportKind::kBug), 1u) << cap.dump();
}

// Under the controlled scheduler a reader that meets an open write section blocks until
// the writer ends it, and no schedule yields a torn snapshot.
TEST(U64StatsTest, ControlledSchedulesNeverTear) {
  ReportCapture cap;
  for (int seed = 1; seed <= 100; ++seed) {
    Stats s;
    long torn = 0;
    auto writer = [&] {
      for (int k = 0; k < 4; ++k) {
        get_cpu();
        write_one(s, /*seam_inside=*/true);
        put_cpu();
      }
    };
    auto reader = [&] {
      for (int k = 0; k < 4; ++k)
        if (!read_consistent(s, /*seam_inside=*/true)) ++torn;
    };
    RandomWalk src(static_cast<uint64_t>(seed));
    const RunResult r = run_controlled({{"writer", 0, writer}, {"reader", 1, reader}}, src);
    ASSERT_FALSE(r.deadlock) << "seed " << seed << "\n" << cap.dump();
    EXPECT_EQ(torn, 0) << "seed " << seed;
  }
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

// The same harness with a reader that ignores fetch_retry does tear in some schedule:
// the check above can fail.
TEST(U64StatsTest, ControlledSchedulesCatchAReaderWithoutRetry) {
  long torn = 0;
  for (int seed = 1; seed <= 100 && torn == 0; ++seed) {
    Stats s;
    auto writer = [&] {
      for (int k = 0; k < 4; ++k) {
        get_cpu();
        write_one(s, /*seam_inside=*/true);
        put_cpu();
      }
    };
    auto reader = [&] {
      for (int k = 0; k < 4; ++k)
        if (!read_consistent(s, /*seam_inside=*/true, /*use_retry=*/false)) ++torn;
    };
    RandomWalk src(static_cast<uint64_t>(seed));
    run_controlled({{"writer", 0, writer}, {"reader", 1, reader}}, src);
  }
  EXPECT_GT(torn, 0);
}

}  // namespace
}  // namespace kern
