// SPDX-License-Identifier: MIT
// refcount_t and percpu_ref: counting, misuse reports, and concurrent use.
#include "impl/kern/refcount.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "impl/kern/percpu_ref.h"
#include "impl/kern/report.h"
#include "impl/kern/task.h"

namespace kern {
namespace {

TEST(RefcountTest, CountsAndReportsLast) {
  refcount_t r;
  refcount_set(r, 1);
  refcount_inc(r);
  EXPECT_TRUE(refcount_inc_not_zero(r));
  EXPECT_EQ(refcount_read(r), 3);
  EXPECT_FALSE(refcount_dec_and_test(r));
  refcount_dec(r);
  EXPECT_TRUE(refcount_dec_and_test(r));
  EXPECT_FALSE(refcount_inc_not_zero(r));
}

TEST(RefcountTest, IncrementFromZeroIsReportedAndSaturates) {
  refcount_t r;
  r.name = "test.ref";
  ReportCapture cap;
  refcount_inc(r);
  ASSERT_EQ(cap.count(ReportKind::kRefcount), 1u) << cap.dump();
  EXPECT_NE(cap.reports()[0].signature.find("use-after-free"), std::string::npos);
  EXPECT_EQ(refcount_read(r), kRefcountSaturated);
  EXPECT_FALSE(refcount_dec_and_test(r));  // saturated: never reaches zero again
}

TEST(RefcountTest, UnderflowIsReported) {
  refcount_t r;
  refcount_set(r, 1);
  ReportCapture cap;
  EXPECT_TRUE(refcount_dec_and_test(r));
  EXPECT_FALSE(refcount_dec_and_test(r));
  EXPECT_EQ(cap.count(ReportKind::kRefcount), 1u) << cap.dump();
}

TEST(RefcountTest, ConcurrentGetPutReachesZeroOnce) {
  refcount_t r;
  refcount_set(r, 1);
  std::atomic<int> zeros{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 4; ++i) {
    ts.emplace_back([&, i] {
      TaskScope s("ref", i);
      for (int k = 0; k < 5000; ++k) {
        refcount_inc(r);
        if (refcount_dec_and_test(r)) zeros.fetch_add(1);
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(zeros.load(), 0);
  EXPECT_TRUE(refcount_dec_and_test(r));
}

std::atomic<int> released{0};
void on_release(percpu_ref*) { released.fetch_add(1); }

TEST(PercpuRefTest, KillThenLastPutReleases) {
  released = 0;
  percpu_ref ref;
  percpu_ref_init(&ref, on_release, "test.pref");
  percpu_ref_get(&ref);
  EXPECT_TRUE(percpu_ref_tryget_live(&ref));
  percpu_ref_kill(&ref);
  EXPECT_TRUE(percpu_ref_is_dying(&ref));
  EXPECT_FALSE(percpu_ref_tryget_live(&ref));
  EXPECT_TRUE(percpu_ref_tryget(&ref));  // tryget still works on a dying ref with count > 0
  percpu_ref_put(&ref);
  percpu_ref_put(&ref);
  EXPECT_EQ(released.load(), 0);
  percpu_ref_put(&ref);
  EXPECT_EQ(released.load(), 1);
  EXPECT_TRUE(percpu_ref_is_zero(&ref));
  EXPECT_FALSE(percpu_ref_tryget(&ref));
  percpu_ref_exit(&ref);
}

TEST(PercpuRefTest, MisuseIsReported) {
  released = 0;
  percpu_ref ref;
  percpu_ref_init(&ref, on_release, "test.pref.misuse");
  ReportCapture cap;
  percpu_ref_put(&ref);  // drops the initial ref before kill
  EXPECT_EQ(cap.count(ReportKind::kRefcount), 1u) << cap.dump();
  percpu_ref_put(&ref);  // underflow
  EXPECT_EQ(cap.count(ReportKind::kRefcount), 2u) << cap.dump();
  percpu_ref_get(&ref);  // get on zero
  EXPECT_EQ(cap.count(ReportKind::kRefcount), 3u) << cap.dump();
  EXPECT_EQ(released.load(), 0);
}

TEST(PercpuRefTest, PutAfterReleaseIsReported) {
  released = 0;
  percpu_ref ref;
  percpu_ref_init(&ref, on_release, "test.pref.after");
  percpu_ref_kill(&ref);
  EXPECT_EQ(released.load(), 1);
  ReportCapture cap;
  percpu_ref_put(&ref);
  EXPECT_EQ(cap.count(ReportKind::kRefcount), 1u) << cap.dump();
}

TEST(PercpuRefTest, ConcurrentTrygetAndKillReleaseExactlyOnce) {
  for (int round = 0; round < 50; ++round) {
    released = 0;
    percpu_ref ref;
    percpu_ref_init(&ref, on_release, "test.pref.race");
    std::vector<std::thread> ts;
    for (int i = 0; i < 3; ++i) {
      ts.emplace_back([&, i] {
        TaskScope s("getter", i);
        for (int k = 0; k < 200; ++k)
          if (percpu_ref_tryget(&ref)) percpu_ref_put(&ref);
      });
    }
    percpu_ref_kill(&ref);
    for (auto& t : ts) t.join();
    EXPECT_EQ(released.load(), 1);
  }
}

}  // namespace
}  // namespace kern
