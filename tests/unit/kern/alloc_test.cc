// SPDX-License-Identifier: MIT
// The injectable allocator: accounting, leak and misuse reports, GFP context checks,
// deterministic fault injection, record/replay, memory pressure.
#include "impl/kern/alloc.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "impl/kern/lock.h"
#include "impl/kern/rcu.h"
#include "impl/kern/report.h"

namespace kern {
namespace {

struct Widget {
  int a = 7;
  long b = 0;
};

class AllocTest : public ::testing::Test {
 protected:
  void SetUp() override { alloc_reset(); }
  void TearDown() override { alloc_reset(); }
};

TEST_F(AllocTest, TypedAllocationIsTracked) {
  Widget* w = kzalloc_obj<Widget>(GFP_KERNEL, "test.widget");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->a, 7);
  EXPECT_EQ(alloc_live_total(), 1u);
  EXPECT_EQ(alloc_live_by_type()["kern::(anonymous namespace)::Widget"], 1u);
  kfree(w);
  EXPECT_EQ(alloc_live_total(), 0u);
  ReportCapture cap;
  EXPECT_TRUE(alloc_check_no_leaks("end"));
  EXPECT_EQ(cap.size(), 0u);
}

TEST_F(AllocTest, LeakIsReportedWithTypeAndSite) {
  Widget* w = kzalloc_obj<Widget>(GFP_KERNEL, "test.leaky_site");
  ReportCapture cap;
  EXPECT_FALSE(alloc_check_no_leaks("teardown"));
  ASSERT_EQ(cap.count(ReportKind::kLeak), 1u);
  EXPECT_NE(cap.reports()[0].text.find("test.leaky_site"), std::string::npos);
  kfree(w);
}

TEST_F(AllocTest, DoubleFreeIsReported) {
  void* p = kmalloc_bytes(32, GFP_KERNEL, "test.bytes");
  kfree_bytes(p);
  ReportCapture cap;
  kfree_bytes(p);  // not freed twice for real: the allocator refuses it
  EXPECT_EQ(cap.count(ReportKind::kAlloc), 1u) << cap.dump();
}

TEST_F(AllocTest, BlockingAllocationUnderSpinlockIsReported) {
  spinlock_t l("test.alloc.spin");
  ReportCapture cap;
  l.lock();
  Widget* a = kzalloc_obj<Widget>(GFP_NOWAIT, "test.nowait");
  Widget* b = kzalloc_obj<Widget>(GFP_ATOMIC | GFP_NOWARN, "test.atomic");
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
  Widget* c = kzalloc_obj<Widget>(GFP_KERNEL, "test.kernel");
  l.unlock();
  EXPECT_EQ(cap.count(ReportKind::kSleepInAtomic), 1u) << cap.dump();
  kfree(a);
  kfree(b);
  kfree(c);
}

TEST_F(AllocTest, BlockingAllocationInRcuIsReported) {
  ReportCapture cap;
  rcu_read_lock();
  void* p = kmalloc_bytes(8, GFP_NOIO, "test.rcu");
  rcu_read_unlock();
  EXPECT_EQ(cap.count(ReportKind::kSleepInAtomic), 1u) << cap.dump();
  kfree_bytes(p);
}

TEST_F(AllocTest, FailNth) {
  fault_set({.fail_nth = 3});
  std::vector<bool> ok;
  for (int i = 0; i < 5; ++i) {
    void* p = kmalloc_bytes(8, GFP_KERNEL, "test.nth");
    ok.push_back(p != nullptr);
    kfree_bytes(p);
  }
  EXPECT_EQ(ok, (std::vector<bool>{true, true, false, true, true}));
}

TEST_F(AllocTest, FailSiteEveryOrNth) {
  fault_set({.fail_site = "test.bad"});
  EXPECT_EQ(kmalloc_bytes(8, GFP_KERNEL, "test.bad"), nullptr);
  EXPECT_EQ(kmalloc_bytes(8, GFP_KERNEL, "test.bad"), nullptr);
  void* good = kmalloc_bytes(8, GFP_KERNEL, "test.good");
  EXPECT_NE(good, nullptr);
  kfree_bytes(good);
  fault_set({.fail_site = "test.bad", .fail_site_nth = 2});
  void* first = kmalloc_bytes(8, GFP_KERNEL, "test.bad");
  EXPECT_NE(first, nullptr);
  EXPECT_EQ(kmalloc_bytes(8, GFP_KERNEL, "test.bad"), nullptr);
  kfree_bytes(first);
}

TEST_F(AllocTest, OnlyNonblockingClassFails) {
  fault_set({.permille = 1000, .only_nonblocking = true});
  EXPECT_EQ(kmalloc_bytes(8, GFP_NOWAIT, "test.cls"), nullptr);
  EXPECT_EQ(kmalloc_bytes(8, GFP_ATOMIC, "test.cls"), nullptr);
  void* p = kmalloc_bytes(8, GFP_NOIO, "test.cls");
  EXPECT_NE(p, nullptr);
  kfree_bytes(p);
}

std::vector<bool> run_probabilistic(uint64_t seed) {
  alloc_reset();
  fault_set({.permille = 300, .seed = seed});
  std::vector<bool> out;
  for (int i = 0; i < 200; ++i) {
    void* p = kmalloc_bytes(8, GFP_KERNEL, "test.prob");
    out.push_back(p != nullptr);
    kfree_bytes(p);
  }
  return out;
}

TEST_F(AllocTest, ProbabilityIsDeterministicPerSeed) {
  const auto a = run_probabilistic(42), b = run_probabilistic(42), c = run_probabilistic(43);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  const long fails = std::count(a.begin(), a.end(), false);
  EXPECT_GT(fails, 20);
  EXPECT_LT(fails, 120);
}

TEST_F(AllocTest, RecordThenReplayReproducesFailures) {
  fault_set({.permille = 250, .seed = 9});
  fault_record(true);
  std::vector<bool> first;
  for (int i = 0; i < 100; ++i) {
    void* p = kmalloc_bytes(8, (i % 2) ? GFP_KERNEL : GFP_NOWAIT, "test.rec");
    first.push_back(p != nullptr);
    kfree_bytes(p);
  }
  std::vector<uint64_t> failed;
  for (const AllocDecision& d : fault_log())
    if (d.failed) failed.push_back(d.index);
  ASSERT_FALSE(failed.empty());
  alloc_reset();
  fault_replay(failed);
  std::vector<bool> second;
  for (int i = 0; i < 100; ++i) {
    void* p = kmalloc_bytes(8, (i % 2) ? GFP_KERNEL : GFP_NOWAIT, "test.rec");
    second.push_back(p != nullptr);
    kfree_bytes(p);
  }
  EXPECT_EQ(first, second);
}

TEST_F(AllocTest, NoioScopeDisablesReclaimWriteback) {
  int writebacks = 0;
  reclaim_set({.enabled = true, .every_nth = 1, .writeback = [&](gfp_t) { ++writebacks; }});
  kfree_bytes(kmalloc_bytes(8, GFP_KERNEL, "test.pressure"));
  EXPECT_EQ(writebacks, 1);
  kfree_bytes(kmalloc_bytes(8, GFP_NOWAIT, "test.pressure"));  // cannot reclaim
  kfree_bytes(kmalloc_bytes(8, GFP_NOIO, "test.pressure"));    // may not do IO
  EXPECT_EQ(writebacks, 1);
  const unsigned saved = memalloc_noio_save();
  kfree_bytes(kmalloc_bytes(8, GFP_KERNEL, "test.pressure"));  // downgraded to NOIO
  memalloc_noio_restore(saved);
  EXPECT_EQ(writebacks, 1);
}

TEST_F(AllocTest, ReclaimRecursionIsReported) {
  // The 2011 shape: reclaim writeback issues IO whose path allocates with GFP_KERNEL.
  reclaim_set({.enabled = true, .every_nth = 1, .writeback = [](gfp_t) {
                 kfree_bytes(kmalloc_bytes(16, GFP_KERNEL, "test.io_path_percpu"));
               }});
  ReportCapture cap;
  kfree_bytes(kmalloc_bytes(8, GFP_KERNEL, "test.first"));
  ASSERT_EQ(cap.count(ReportKind::kAlloc), 1u) << cap.dump();
  EXPECT_NE(cap.reports()[0].signature.find("test.io_path_percpu"), std::string::npos);
  EXPECT_EQ(reclaim_count(), 1u);
}

TEST_F(AllocTest, PercpuAllocation) {
  PerCpu<long>* pc = alloc_percpu_gfp<long>(GFP_NOWAIT, "test.percpu");
  ASSERT_NE(pc, nullptr);
  EXPECT_EQ(*pc->per_cpu_ptr(0), 0);
  free_percpu(pc);
  EXPECT_EQ(alloc_live_total(), 0u);
}

TEST_F(AllocTest, ConcurrentAllocFree) {
  std::vector<std::thread> ts;
  for (int i = 0; i < 4; ++i) {
    ts.emplace_back([i] {
      TaskScope s("alloc", i);
      std::vector<Widget*> ws;
      for (int k = 0; k < 2000; ++k) {
        ws.push_back(kzalloc_obj<Widget>(GFP_KERNEL, "test.mt"));
        if (k % 3 == 0) {
          kfree(ws.back());
          ws.pop_back();
        }
      }
      for (Widget* w : ws) kfree(w);
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(alloc_live_total(), 0u);
  EXPECT_EQ(alloc_count(), 8000u);
}

}  // namespace
}  // namespace kern
