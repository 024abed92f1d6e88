// SPDX-License-Identifier: MIT
// The injectable allocator: accounting, leak and misuse reports, GFP context checks,
// deterministic fault injection, record/replay, memory pressure and bounded reclaim,
// concurrency (native threads and controlled fibers).
#include "impl/kern/alloc.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "impl/kern/lock.h"
#include "impl/kern/lockdep.h"
#include "impl/kern/rcu.h"
#include "impl/kern/report.h"
#include "impl/kern/sched_controlled.h"
#include "impl/kern/task.h"

namespace kern {
namespace {

struct Widget {
  int a = 7;
  long b = 0;
};

struct Pair {
  Pair(int x, std::string y) : x(x), y(std::move(y)) {}
  int x;
  std::string y;
};

struct Plain {  // no constructor: value-initialisation zeroes it
  long v[4];
};

struct Base {
  virtual ~Base() = default;
  long tag = 1;
};
struct Mixin {
  virtual ~Mixin() = default;
  long m = 2;
};
struct Derived : Mixin, Base {  // Mixin is the primary base: Base is not at offset 0
  std::string s = "derived";
};

class AllocTest : public ::testing::Test {
 protected:
  void SetUp() override { alloc_reset(); }
  void TearDown() override { alloc_reset(); }
};

// Allocates and frees `n` blocks at `site`; returns which succeeded.
std::vector<bool> churn(int n, gfp_t gfp, const char* site) {
  std::vector<bool> ok;
  for (int i = 0; i < n; ++i) {
    void* p = kmalloc_bytes(8, gfp, site);
    ok.push_back(p != nullptr);
    kfree_bytes(p);
  }
  return ok;
}

// ---- Typed API and accounting ----

TEST_F(AllocTest, TypedAllocationIsConstructedAndTracked) {
  ReportCapture cap;
  Widget* w = kzalloc_obj<Widget>(GFP_KERNEL, "test.widget");
  Pair* p = kmalloc_obj<Pair>(GFP_KERNEL, "test.pair", 3, "three");
  Plain* z = kzalloc_obj<Plain>(GFP_NOWAIT, "test.plain");
  ASSERT_NE(w, nullptr);
  ASSERT_NE(p, nullptr);
  ASSERT_NE(z, nullptr);
  EXPECT_EQ(w->a, 7);
  EXPECT_EQ(p->x, 3);
  EXPECT_EQ(p->y, "three");
  for (long v : z->v) EXPECT_EQ(v, 0);
  EXPECT_EQ(alloc_live_total(), 3u);
  EXPECT_EQ(alloc_live_by_type()["kern::(anonymous namespace)::Widget"], 1u);
  EXPECT_EQ(alloc_stats_by_site()["test.pair"], (AllocStats{.live = 1, .allocated = 1}));
  kfree(w);
  kfree(p);
  kfree(z);
  kfree(static_cast<Widget*>(nullptr));  // a no-op, not a report
  EXPECT_EQ(alloc_live_total(), 0u);
  EXPECT_TRUE(alloc_live_by_type().empty());
  EXPECT_EQ(alloc_stats_by_type()["kern::(anonymous namespace)::Widget"],
            (AllocStats{.live = 0, .allocated = 1}));
  EXPECT_EQ(alloc_count(), 3u);
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

TEST_F(AllocTest, BytesArePoisonedUnlessZeroed) {
  auto* a = static_cast<unsigned char*>(kmalloc_bytes(16, GFP_KERNEL, "test.bytes"));
  auto* b = static_cast<unsigned char*>(kzalloc_bytes(16, GFP_KERNEL, "test.bytes"));
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(a[0], 0x5a);
  EXPECT_EQ(a[15], 0x5a);
  EXPECT_EQ(b[0], 0);
  EXPECT_EQ(b[15], 0);
  EXPECT_EQ(alloc_stats_by_type()["bytes"].live, 2u);
  kfree_bytes(a);
  kfree_bytes(b);
  kfree_bytes(nullptr);
  EXPECT_EQ(alloc_live_total(), 0u);
}

TEST_F(AllocTest, PolymorphicObjectFreedThroughAnOffsetBase) {
  ReportCapture cap;
  Derived* d = kzalloc_obj<Derived>(GFP_KERNEL, "test.derived");
  ASSERT_NE(d, nullptr);
  Base* b = d;
  ASSERT_NE(static_cast<void*>(b), static_cast<void*>(d));  // the test needs an offset base
  kfree(b);
  EXPECT_EQ(alloc_live_total(), 0u);
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

TEST_F(AllocTest, PercpuAllocation) {
  PerCpu<long>* pc = alloc_percpu_gfp<long>(GFP_NOWAIT, "test.percpu");
  ASSERT_NE(pc, nullptr);
  for_each_possible_cpu(cpu) EXPECT_EQ(*pc->per_cpu_ptr(cpu), 0);
  EXPECT_EQ(alloc_stats_by_site()["test.percpu"].live, 1u);
  free_percpu(pc);
  free_percpu(static_cast<PerCpu<long>*>(nullptr));
  EXPECT_EQ(alloc_live_total(), 0u);
}

TEST_F(AllocTest, UnnamedSiteIsTheCallingFunction) {
  Widget* w = kzalloc_obj<Widget>(GFP_KERNEL, AllocSite());
  const auto sites = alloc_stats_by_site();
  ASSERT_EQ(sites.size(), 1u);
  EXPECT_NE(sites.begin()->first.find("UnnamedSiteIsTheCallingFunction"), std::string::npos)
      << sites.begin()->first;
  kfree(w);
}

// ---- Leaks and misuse ----

TEST_F(AllocTest, LeakIsReportedWithTypeAndSite) {
  Widget* w = kzalloc_obj<Widget>(GFP_KERNEL, "test.leaky_site");
  void* p = kmalloc_bytes(8, GFP_KERNEL, "test.leaky_bytes");
  ReportCapture cap;
  EXPECT_FALSE(alloc_check_no_leaks("teardown"));
  ASSERT_EQ(cap.count(ReportKind::kLeak), 1u) << cap.dump();
  const std::string text = cap.reports()[0].text;
  EXPECT_NE(text.find("teardown"), std::string::npos) << text;
  EXPECT_NE(text.find("Widget @test.leaky_site"), std::string::npos) << text;
  EXPECT_NE(text.find("bytes @test.leaky_bytes"), std::string::npos) << text;
  kfree(w);
  kfree_bytes(p);
  EXPECT_TRUE(alloc_check_no_leaks("after freeing"));
  EXPECT_EQ(cap.count(ReportKind::kLeak), 1u);  // quiet now
}

TEST_F(AllocTest, DoubleFreeIsReported) {
  void* p = kmalloc_bytes(32, GFP_KERNEL, "test.bytes");
  kfree_bytes(p);
  ReportCapture cap;
  kfree_bytes(p);  // not freed twice for real: the allocator refuses it
  EXPECT_EQ(cap.count(ReportKind::kAlloc), 1u) << cap.dump();
}

TEST_F(AllocTest, UnknownPointerIsReportedAndLeftAlone) {
  static Widget not_heap;
  ReportCapture cap;
  kfree(&not_heap);  // deleting it would crash: the allocator must not
  EXPECT_EQ(cap.count(ReportKind::kAlloc), 1u) << cap.dump();
  EXPECT_NE(cap.reports()[0].signature.find("kfree-unknown-pointer"), std::string::npos);
}

TEST_F(AllocTest, FreeAsTheWrongTypeIsReportedAndKeepsTheObject) {
  Widget* w = kzalloc_obj<Widget>(GFP_KERNEL, "test.typed");
  ReportCapture cap;
  kfree_bytes(w);  // wrong free function
  ASSERT_EQ(cap.count(ReportKind::kAlloc), 1u) << cap.dump();
  EXPECT_NE(cap.reports()[0].signature.find("kfree-type-mismatch"), std::string::npos);
  EXPECT_EQ(alloc_live_total(), 1u);  // not destroyed
  kfree(w);                           // the right one still works
  EXPECT_EQ(alloc_live_total(), 0u);
  EXPECT_EQ(cap.size(), 1u) << cap.dump();
}

// ---- GFP context ----

TEST_F(AllocTest, BlockingAllocationUnderSpinlockIsReported) {
  spinlock_t l("test.alloc.spin");
  ReportCapture cap;
  l.lock();
  Widget* a = kzalloc_obj<Widget>(GFP_NOWAIT, "test.nowait");
  Widget* b = kzalloc_obj<Widget>(GFP_ATOMIC | GFP_NOWARN, "test.atomic");
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
  Widget* c = kzalloc_obj<Widget>(GFP_KERNEL, "test.kernel");
  l.unlock();
  ASSERT_EQ(cap.count(ReportKind::kSleepInAtomic), 1u) << cap.dump();
  const Report r = cap.reports()[0];
  EXPECT_NE(r.signature.find("kmalloc(GFP_KERNEL) at test.kernel"), std::string::npos)
      << r.signature;
  EXPECT_NE(r.text.find("alloc_test.cc"), std::string::npos) << r.text;  // the caller's line
  EXPECT_NE(c, nullptr);  // reported, yet it succeeds
  kfree(a);
  kfree(b);
  kfree(c);
}

TEST_F(AllocTest, BlockingAllocationInRcuOrWithIrqsOffIsReported) {
  ReportCapture cap;
  rcu_read_lock();
  void* p = kmalloc_bytes(8, GFP_NOIO, "test.rcu");
  rcu_read_unlock();
  EXPECT_EQ(cap.count(ReportKind::kSleepInAtomic), 1u) << cap.dump();
  local_irq_disable();
  void* q = kmalloc_bytes(8, GFP_NOFS, "test.irqs_off");
  void* r = kmalloc_bytes(8, GFP_ATOMIC, "test.irqs_off");
  local_irq_enable();
  EXPECT_EQ(cap.count(ReportKind::kSleepInAtomic), 2u) << cap.dump();
  kfree_bytes(p);
  kfree_bytes(q);
  kfree_bytes(r);
}

TEST_F(AllocTest, LegacyAllocPercpuIsGfpKernelAndReportedUnderALock) {
  // The 2011 shape: percpu allocation took no gfp and always allowed reclaim.
  spinlock_t l("test.alloc.queue_lock");
  ReportCapture cap;
  l.lock_irq();
  PerCpu<long>* pc = alloc_percpu<long>("test.stats_cpu");
  l.unlock_irq();
  EXPECT_EQ(cap.count(ReportKind::kSleepInAtomic), 1u) << cap.dump();
  free_percpu(pc);
}

TEST_F(AllocTest, NoioScopeDowngradesKernelToNoio) {
  fault_record(true);
  const unsigned saved = memalloc_noio_save();
  kfree_bytes(kmalloc_bytes(8, GFP_KERNEL, "test.scoped"));
  memalloc_noio_restore(saved);
  kfree_bytes(kmalloc_bytes(8, GFP_KERNEL, "test.unscoped"));
  const std::vector<AllocDecision> log = fault_log();
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[0].gfp, GFP_NOIO);
  EXPECT_EQ(log[1].gfp, GFP_KERNEL);
  // A fault filter sees the effective class.
  fault_set({.permille = 1000, .classes = kGfpClassNoio});
  const unsigned saved2 = memalloc_noio_save();
  EXPECT_EQ(kmalloc_bytes(8, GFP_KERNEL, "test.scoped"), nullptr);
  memalloc_noio_restore(saved2);
  EXPECT_EQ(churn(1, GFP_KERNEL, "test.unscoped"), (std::vector<bool>{1}));
}

// ---- Fault injection ----

TEST_F(AllocTest, FailNth) {
  fault_set({.fail_nth = 3});
  EXPECT_EQ(churn(5, GFP_KERNEL, "test.nth"), (std::vector<bool>{1, 1, 0, 1, 1}));
  EXPECT_EQ(alloc_stats_by_site()["test.nth"], (AllocStats{.allocated = 4, .failed = 1}));
  // Counting restarts at fault_set.
  fault_set({.fail_nth = 1});
  EXPECT_EQ(churn(2, GFP_KERNEL, "test.nth"), (std::vector<bool>{0, 1}));
}

TEST_F(AllocTest, FailNthCountingOnlyBlockingAllocations) {
  fault_set({.fail_nth = 2, .classes = kGfpClassesBlocking});
  std::vector<bool> ok;
  for (gfp_t g : {GFP_ATOMIC, GFP_KERNEL, GFP_NOWAIT, GFP_NOIO, GFP_KERNEL}) {
    void* p = kmalloc_bytes(8, g, "test.nth_blocking");
    ok.push_back(p != nullptr);
    kfree_bytes(p);
  }
  // The 2nd blocking one is the 4th allocation.
  EXPECT_EQ(ok, (std::vector<bool>{1, 1, 1, 0, 1}));
}

TEST_F(AllocTest, FailSiteEveryOrNthOrPrefix) {
  fault_set({.fail_site = "test.bad"});
  EXPECT_EQ(churn(2, GFP_KERNEL, "test.bad"), (std::vector<bool>{0, 0}));
  EXPECT_EQ(churn(1, GFP_KERNEL, "test.good"), (std::vector<bool>{1}));
  fault_set({.fail_site = "test.bad", .fail_site_nth = 2});
  EXPECT_EQ(churn(3, GFP_KERNEL, "test.bad"), (std::vector<bool>{1, 0, 1}));
  fault_set({.fail_site = "blkg_alloc*"});
  EXPECT_EQ(churn(1, GFP_KERNEL, "blkg_alloc"), (std::vector<bool>{0}));
  EXPECT_EQ(churn(1, GFP_KERNEL, "blkg_alloc.iostat_cpu"), (std::vector<bool>{0}));
  EXPECT_EQ(churn(1, GFP_KERNEL, "blkg_free"), (std::vector<bool>{1}));
  EXPECT_EQ(alloc_stats_by_site()["blkg_alloc"].failed, 1u);
}

TEST_F(AllocTest, SiteNameNeedNotOutliveTheCall) {
  fault_set({.fail_site = "test.dynamic"});
  std::string name = "test.dynamic";
  EXPECT_EQ(kmalloc_bytes(8, GFP_KERNEL, name.c_str()), nullptr);
  void* p;
  {
    std::string other = "test.dynamic2";
    p = kmalloc_bytes(8, GFP_KERNEL, other.c_str());
  }
  ASSERT_NE(p, nullptr);
  ReportCapture cap;
  EXPECT_FALSE(alloc_check_no_leaks("dynamic"));
  EXPECT_NE(cap.reports().at(0).text.find("@test.dynamic2"), std::string::npos) << cap.dump();
  kfree_bytes(p);
}

TEST_F(AllocTest, OnlyNonblockingClassesFail) {
  // Config writes preallocate with a blocking class: they must survive this configuration.
  fault_set({.permille = 1000, .only_nonblocking = true});
  EXPECT_EQ(kmalloc_bytes(8, GFP_NOWAIT, "test.cls"), nullptr);
  EXPECT_EQ(kmalloc_bytes(8, GFP_ATOMIC, "test.cls"), nullptr);
  EXPECT_EQ(churn(3, GFP_NOIO, "test.cls"), (std::vector<bool>{1, 1, 1}));
  EXPECT_EQ(churn(1, GFP_KERNEL, "test.cls"), (std::vector<bool>{1}));
  fault_set({.permille = 1000, .classes = kGfpClassAtomic});
  EXPECT_EQ(churn(1, GFP_NOWAIT, "test.cls"), (std::vector<bool>{1}));
  EXPECT_EQ(churn(1, GFP_ATOMIC, "test.cls"), (std::vector<bool>{0}));
}

std::vector<bool> run_probabilistic(uint64_t seed) {
  alloc_reset();
  fault_set({.permille = 300, .seed = seed});
  return churn(200, GFP_KERNEL, "test.prob");
}

TEST_F(AllocTest, ProbabilityIsDeterministicPerSeed) {
  const auto a = run_probabilistic(42), b = run_probabilistic(42), c = run_probabilistic(43);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  const long fails = std::count(a.begin(), a.end(), false);
  EXPECT_GT(fails, 30);
  EXPECT_LT(fails, 100);
}

TEST_F(AllocTest, TakingTheLogStopsRecordingAndLeavesNothingBehind) {
  fault_record(true);
  kfree_bytes(kmalloc_bytes(8, GFP_KERNEL, "test.take_log.a_site_name_past_sso"));
  std::vector<AllocDecision> log = fault_take_log();
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].site, "test.take_log.a_site_name_past_sso");
  EXPECT_TRUE(fault_log().empty());
  kfree_bytes(kmalloc_bytes(8, GFP_KERNEL, "test.take_log.after"));  // not recorded
  EXPECT_TRUE(fault_log().empty());
  EXPECT_TRUE(fault_take_log().empty());
}

TEST_F(AllocTest, RecordThenReplayReproducesFailures) {
  auto run = [] {
    std::vector<bool> out;
    for (int i = 0; i < 100; ++i) {
      void* p = kmalloc_bytes(8, (i % 2) ? GFP_KERNEL : GFP_NOWAIT, "test.rec");
      out.push_back(p != nullptr);
      kfree_bytes(p);
    }
    return out;
  };
  fault_set({.permille = 250, .seed = 9});
  fault_record(true);
  const std::vector<bool> first = run();
  const std::vector<AllocDecision> log = fault_log();
  ASSERT_EQ(log.size(), 100u);
  std::vector<uint64_t> failed;
  for (const AllocDecision& d : log) {
    EXPECT_EQ(d.site, "test.rec");
    EXPECT_EQ(d.gfp, (d.index % 2) ? GFP_NOWAIT : GFP_KERNEL);  // index is 1-based
    if (d.failed) failed.push_back(d.index);
  }
  ASSERT_FALSE(failed.empty());
  ASSERT_LT(failed.size(), 100u);

  alloc_reset();
  fault_replay(failed);
  EXPECT_EQ(run(), first);

  alloc_reset();  // replay of the whole log, with a different (ignored) fault config
  fault_set({.fail_nth = 1});
  fault_replay_log(log);
  EXPECT_EQ(run(), first);
}

TEST_F(AllocTest, NowarnOnlyDecidesTheWarning) {
  fault_set({.fail_site = "test.warn"});
  EXPECT_EQ(kmalloc_bytes(8, GFP_KERNEL, "test.warn"), nullptr);
  EXPECT_EQ(alloc_warn_count(), 1u);
  EXPECT_EQ(kmalloc_bytes(8, GFP_KERNEL | GFP_NOWARN, "test.warn"), nullptr);
  EXPECT_EQ(kzalloc_obj<Widget>(GFP_NOWAIT | GFP_NOWARN, "test.warn"), nullptr);
  EXPECT_EQ(alloc_warn_count(), 1u);
  EXPECT_EQ(alloc_stats_by_site()["test.warn"].failed, 3u);
  EXPECT_EQ(alloc_stats_by_type()["kern::(anonymous namespace)::Widget"].failed, 1u);
}

TEST_F(AllocTest, ResetForgetsTheWorldButNotTheObjects) {
  Widget* old = kzalloc_obj<Widget>(GFP_KERNEL, "test.old");
  fault_set({.permille = 1000});
  reclaim_set({.enabled = true, .writeback = [](gfp_t) {}});
  alloc_reset();
  EXPECT_EQ(alloc_live_total(), 0u);
  EXPECT_EQ(alloc_count(), 0u);
  EXPECT_TRUE(alloc_stats_by_site().empty());
  ReportCapture cap;
  EXPECT_TRUE(alloc_check_no_leaks("fresh world"));
  Widget* fresh = kzalloc_obj<Widget>(GFP_KERNEL, "test.new");  // injection is off again
  ASSERT_NE(fresh, nullptr);
  EXPECT_EQ(reclaim_count(), 0u);
  kfree(old);  // legal and quiet
  EXPECT_EQ(alloc_live_total(), 1u);
  kfree(fresh);
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

// ---- Memory pressure ----

TEST_F(AllocTest, ReclaimOnlyForBlockingAllocationsThatMayDoIo) {
  std::vector<gfp_t> seen;
  reclaim_set({.enabled = true, .every_nth = 1, .writeback = [&](gfp_t g) { seen.push_back(g); }});
  kfree_bytes(kmalloc_bytes(8, GFP_KERNEL, "test.pressure"));
  kfree_bytes(kmalloc_bytes(8, GFP_NOFS, "test.pressure"));
  EXPECT_EQ(seen, (std::vector<gfp_t>{GFP_KERNEL, GFP_NOFS}));
  kfree_bytes(kmalloc_bytes(8, GFP_NOWAIT, "test.pressure"));  // cannot reclaim
  kfree_bytes(kmalloc_bytes(8, GFP_ATOMIC, "test.pressure"));  // cannot reclaim
  kfree_bytes(kmalloc_bytes(8, GFP_NOIO, "test.pressure"));    // may not do IO
  const unsigned saved = memalloc_noio_save();
  kfree_bytes(kmalloc_bytes(8, GFP_KERNEL, "test.pressure"));  // downgraded to NOIO
  memalloc_noio_restore(saved);
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_EQ(reclaim_count(), 2u);
}

// fs_reclaim: a lock that reclaim may take (primed, as alloc_disk primes q->blkcg_mutex),
// held across an allocation that may enter FS reclaim, is a lock-order cycle; GFP_NOIO,
// GFP_NOFS and a noio scope are not. The planted misuse is the 2011 per-CPU stats bug's
// shape: GFP_KERNEL under the lock the IO path needs.
TEST_F(AllocTest, FsReclaimCycleWhenReclaimMayNeedTheHeldLock) {
  lockdep_reset();
  mutex m("test.reclaim_needs_me");
  fs_reclaim_acquire();
  lock_acquire(m.cls(), m.dep_instance(), false, false, 0, std::source_location::current());
  lock_release(m.cls(), m.dep_instance(), std::source_location::current());
  fs_reclaim_release();
  {
    ReportCapture cap;
    m.lock();
    kfree_bytes(kmalloc_bytes(8, GFP_NOIO, "test.noio"));
    kfree_bytes(kmalloc_bytes(8, GFP_NOFS, "test.nofs"));
    const unsigned saved = memalloc_noio_save();
    kfree_bytes(kmalloc_bytes(8, GFP_KERNEL, "test.kernel_in_noio_scope"));
    memalloc_noio_restore(saved);
    m.unlock();
    EXPECT_EQ(cap.size(), 0u) << cap.dump();
  }
  {
    ReportCapture cap;
    m.lock();
    kfree_bytes(kmalloc_bytes(8, GFP_KERNEL, "test.kernel"));
    m.unlock();
    ASSERT_EQ(cap.count(ReportKind::kLockOrder), 1u) << cap.dump();
    EXPECT_NE(cap.dump().find("fs_reclaim"), std::string::npos) << cap.dump();
  }
  lockdep_reset();
}

// Without priming: reclaim's writeback runs inside fs_reclaim, so a lock it takes gets
// fs_reclaim -> lock, and a GFP_KERNEL allocation under that lock closes the cycle.
TEST_F(AllocTest, FsReclaimLearnsFromReclaimWriteback) {
  lockdep_reset();
  mutex m("test.writeback_lock");
  reclaim_set({.enabled = true, .every_nth = 1, .writeback = [&](gfp_t) {
                 m.lock();
                 kfree_bytes(kmalloc_bytes(8, GFP_NOIO, "test.inside_reclaim"));
                 m.unlock();
               }});
  {
    ReportCapture cap;
    kfree_bytes(kmalloc_bytes(8, GFP_KERNEL, "test.enter_reclaim"));
    EXPECT_EQ(cap.size(), 0u) << cap.dump();
  }
  reclaim_set({});
  {
    ReportCapture cap;
    m.lock();
    kfree_bytes(kmalloc_bytes(8, GFP_KERNEL, "test.kernel_under_writeback_lock"));
    m.unlock();
    EXPECT_EQ(cap.count(ReportKind::kLockOrder), 1u) << cap.dump();
  }
  lockdep_reset();
}

TEST_F(AllocTest, ReclaimEveryNthAndByProbabilityAreDeterministic) {
  int calls = 0;
  reclaim_set({.enabled = true, .every_nth = 3, .writeback = [&](gfp_t) { ++calls; }});
  churn(9, GFP_KERNEL, "test.pressure");
  EXPECT_EQ(calls, 3);

  auto run = [](uint64_t seed) {
    alloc_reset();
    std::vector<int> at;
    int i = 0;
    reclaim_set({.enabled = true, .permille = 200, .seed = seed, .writeback = [&](gfp_t) {
                   at.push_back(i);
                 }});
    for (i = 0; i < 200; ++i) kfree_bytes(kmalloc_bytes(8, GFP_KERNEL, "test.pressure"));
    reclaim_set({});
    return at;
  };
  const auto a = run(5), b = run(5), c = run(6);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_GT(a.size(), 15u);
  EXPECT_LT(a.size(), 70u);
}

TEST_F(AllocTest, ReclaimIsRecordedAndReplayed) {
  std::vector<int> first, second;
  int i = 0;
  reclaim_set({.enabled = true, .permille = 300, .seed = 77, .writeback = [&](gfp_t) {
                 first.push_back(i);
               }});
  fault_record(true);
  for (i = 0; i < 50; ++i) kfree_bytes(kmalloc_bytes(8, GFP_KERNEL, "test.pressure"));
  const std::vector<AllocDecision> log = fault_log();
  ASSERT_FALSE(first.empty());

  alloc_reset();  // every_nth = 1 would reclaim everywhere: the log must win
  reclaim_set({.enabled = true, .every_nth = 1, .writeback = [&](gfp_t) { second.push_back(i); }});
  fault_replay_log(log);
  for (i = 0; i < 50; ++i) kfree_bytes(kmalloc_bytes(8, GFP_KERNEL, "test.pressure"));
  EXPECT_EQ(first, second);
}

TEST_F(AllocTest, ReclaimRecursionIsBoundedAndReported) {
  // The 2011 shape: reclaim writeback issues IO whose path allocates with GFP_KERNEL.
  int depth = 0, max_depth = 0, calls = 0;
  reclaim_set({.enabled = true, .every_nth = 1, .writeback = [&](gfp_t) {
                 ++calls;
                 max_depth = std::max(max_depth, ++depth);
                 kfree_bytes(kmalloc_bytes(16, GFP_KERNEL, "test.io_path_percpu"));
                 kfree_bytes(kmalloc_bytes(16, GFP_NOIO, "test.io_path_fixed"));  // the fix
                 --depth;
               }});
  ReportCapture cap;
  void* p = kmalloc_bytes(8, GFP_KERNEL, "test.first");
  EXPECT_NE(p, nullptr);  // the outer allocation still completes
  ASSERT_EQ(cap.count(ReportKind::kAlloc), 1u) << cap.dump();
  EXPECT_EQ(cap.reports()[0].signature, "reclaim-recursion:test.io_path_percpu");
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(max_depth, 1);
  EXPECT_EQ(reclaim_count(), 1u);
  EXPECT_EQ(reclaim_recursion_count(), 1u);
  // Out of the hook, reclaim may be entered again.
  kfree_bytes(p);
  kfree_bytes(kmalloc_bytes(8, GFP_KERNEL, "test.second"));
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(cap.count(ReportKind::kAlloc), 2u);
}

// ---- Concurrency ----

TEST_F(AllocTest, ConcurrentAllocFreeWithInjection) {
  constexpr int kThreads = 4, kPerThread = 2000;
  fault_set({.permille = 100, .seed = 3});
  std::atomic<uint64_t> failed{0}, succeeded{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < kThreads; ++i) {
    ts.emplace_back([i, &failed, &succeeded] {
      TaskScope s("alloc", i);
      std::vector<Widget*> ws;
      for (int k = 0; k < kPerThread; ++k) {
        Widget* w = kzalloc_obj<Widget>(GFP_KERNEL, "test.mt");
        (w ? succeeded : failed).fetch_add(1, std::memory_order_relaxed);
        if (w) ws.push_back(w);
        if (k % 3 == 0 && !ws.empty()) {
          kfree(ws.back());
          ws.pop_back();
        }
      }
      for (Widget* w : ws) kfree(w);
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(alloc_live_total(), 0u);
  EXPECT_EQ(alloc_count(), uint64_t{kThreads * kPerThread});
  const AllocStats st = alloc_stats_by_site()["test.mt"];
  EXPECT_EQ(st.allocated, succeeded.load());
  EXPECT_EQ(st.failed, failed.load());
  EXPECT_GT(st.failed, 0u);
}

TEST_F(AllocTest, ConcurrentReclaimIsPerTaskNotPerThread) {
  // Two fibers of one thread are both inside the writeback hook at once: neither is a
  // recursion. The hook waits until both are inside, so marking reclaim per thread would
  // refuse the second (a report) and leave the first waiting (a deadlock report).
  int inside = 0;
  reclaim_set({.enabled = true, .every_nth = 1, .writeback = [&inside](gfp_t) {
                 ++inside;
                 wait_until({.what = "test.both-in-reclaim", .obj = &inside},
                            [&inside] { return inside == 2; });
               }});
  auto body = [] { kfree_bytes(kmalloc_bytes(8, GFP_KERNEL, "test.fiber")); };
  ReportCapture cap;
  RandomWalk src(1);
  const RunResult r = run_controlled({{"a", 0, body}, {"b", 1, body}}, src);
  EXPECT_FALSE(r.deadlock);
  EXPECT_EQ(inside, 2);
  EXPECT_EQ(reclaim_count(), 2u);
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
  // Every allocation was a seam point.
  EXPECT_TRUE(std::any_of(r.trace.begin(), r.trace.end(),
                          [](const TraceStep& s) { return s.kind == SeamKind::kAlloc; }));
}

}  // namespace
}  // namespace kern
