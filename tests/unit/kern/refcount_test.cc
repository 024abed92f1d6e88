// SPDX-License-Identifier: MIT
// refcount_t: counting, every misuse report (and the saturation that follows it), and
// concurrent get/put with exactly one release.
#include "impl/kern/refcount.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "impl/kern/report.h"
#include "impl/kern/task.h"

namespace kern {
namespace {

bool has_signature(const ReportCapture& cap, const char* part) {
  for (const Report& r : cap.reports())
    if (r.signature.find(part) != std::string::npos) return true;
  return false;
}

TEST(RefcountTest, CountsAndSignalsTheLastPut) {
  ReportCapture cap;
  refcount_t r;
  refcount_set(r, 1);
  refcount_inc(r);
  EXPECT_TRUE(refcount_inc_not_zero(r));
  EXPECT_EQ(refcount_read(r), 3);
  EXPECT_FALSE(refcount_dec_and_test(r));
  refcount_dec(r);
  EXPECT_EQ(refcount_read(r), 1);
  EXPECT_TRUE(refcount_dec_and_test(r));
  EXPECT_EQ(refcount_read(r), 0);
  EXPECT_FALSE(refcount_inc_not_zero(r));  // not a misuse: the lookup just fails
  EXPECT_EQ(refcount_read(r), 0);
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

TEST(RefcountTest, IncrementFromZeroIsReportedAndSaturates) {
  refcount_t r;
  r.name = "test.ref";
  ReportCapture cap;
  refcount_inc(r);
  ASSERT_EQ(cap.count(ReportKind::kRefcount), 1u) << cap.dump();
  EXPECT_TRUE(has_signature(cap, "refcount:test.ref:increment on 0; use-after-free")) << cap.dump();
  EXPECT_EQ(refcount_read(r), kRefcountSaturated);
  EXPECT_FALSE(refcount_dec_and_test(r));  // saturated: never reaches zero again
  refcount_inc(r);                         // and stays saturated, silently
  EXPECT_EQ(refcount_read(r), kRefcountSaturated);
  EXPECT_EQ(cap.size(), 1u) << cap.dump();
}

TEST(RefcountTest, DecrementOfZeroIsReported) {
  refcount_t r;
  refcount_set(r, 1);
  ReportCapture cap;
  EXPECT_TRUE(refcount_dec_and_test(r));
  EXPECT_FALSE(refcount_dec_and_test(r));  // underflow
  ASSERT_EQ(cap.count(ReportKind::kRefcount), 1u) << cap.dump();
  EXPECT_TRUE(has_signature(cap, "underflow")) << cap.dump();
  EXPECT_EQ(refcount_read(r), kRefcountSaturated);
}

TEST(RefcountTest, PlainDecrementOfZeroIsReported) {
  refcount_t r;
  ReportCapture cap;
  refcount_dec(r);
  EXPECT_EQ(cap.count(ReportKind::kRefcount), 1u) << cap.dump();
  EXPECT_TRUE(has_signature(cap, "underflow")) << cap.dump();
}

TEST(RefcountTest, DecrementToZeroWithoutTestIsReported) {
  refcount_t r;
  refcount_set(r, 1);
  ReportCapture cap;
  refcount_dec(r);  // the last reference, dropped without freeing
  ASSERT_EQ(cap.count(ReportKind::kRefcount), 1u) << cap.dump();
  EXPECT_TRUE(has_signature(cap, "leaking memory")) << cap.dump();
  EXPECT_EQ(refcount_read(r), kRefcountSaturated);
}

TEST(RefcountTest, OverflowSaturates) {
  refcount_t r;
  refcount_set(r, kRefcountSaturated - 2);
  ReportCapture cap;
  refcount_inc(r);  // kRefcountSaturated - 1: still fine
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
  refcount_inc(r);  // reaches saturation
  ASSERT_EQ(cap.count(ReportKind::kRefcount), 1u) << cap.dump();
  EXPECT_TRUE(has_signature(cap, "saturated")) << cap.dump();
  EXPECT_TRUE(refcount_inc_not_zero(r));  // stays saturated, silently
  EXPECT_FALSE(refcount_dec_and_test(r));
  EXPECT_EQ(refcount_read(r), kRefcountSaturated);
  EXPECT_EQ(cap.size(), 1u) << cap.dump();

  refcount_t q;
  refcount_set(q, kRefcountSaturated - 1);
  EXPECT_TRUE(refcount_inc_not_zero(q));  // inc_not_zero reaching saturation
  EXPECT_EQ(cap.count(ReportKind::kRefcount), 2u) << cap.dump();
  EXPECT_EQ(refcount_read(q), kRefcountSaturated);
}

// Threads take and drop references while holding one; the count never reaches zero
// until the owner's final put, which is the only one to see zero.
TEST(RefcountTest, ConcurrentGetPutReachesZeroOnce) {
  ReportCapture cap;
  refcount_t r;
  refcount_set(r, 1);
  std::atomic<int> zeros{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 4; ++i) {
    ts.emplace_back([&, i] {
      TaskScope s("ref", i);
      for (int k = 0; k < 5000; ++k) {
        refcount_inc(r);
        if (refcount_inc_not_zero(r) && refcount_dec_and_test(r)) zeros.fetch_add(1);
        if (refcount_dec_and_test(r)) zeros.fetch_add(1);
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(zeros.load(), 0);
  EXPECT_EQ(refcount_read(r), 1);
  EXPECT_TRUE(refcount_dec_and_test(r));
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

// Lookups race with the final put: once the count has hit zero every inc_not_zero fails,
// and the object is "freed" exactly once (by the thread that saw zero).
TEST(RefcountTest, IncNotZeroRacesWithTheLastPut) {
  ReportCapture cap;
  for (int round = 0; round < 50; ++round) {
    refcount_t r;
    refcount_set(r, 1);
    std::atomic<int> frees{0};
    std::atomic<bool> freed{false};
    std::atomic<long> got_after_free{0};
    std::vector<std::thread> ts;
    for (int i = 0; i < 3; ++i) {
      ts.emplace_back([&, i] {
        TaskScope s("lookup", i);
        for (int k = 0; k < 200; ++k) {
          const bool was_freed = freed.load();
          if (!refcount_inc_not_zero(r)) continue;
          if (was_freed) got_after_free.fetch_add(1);
          if (refcount_dec_and_test(r)) {
            frees.fetch_add(1);
            freed.store(true);
          }
        }
      });
    }
    if (refcount_dec_and_test(r)) {
      frees.fetch_add(1);
      freed.store(true);
    }
    for (auto& t : ts) t.join();
    EXPECT_EQ(frees.load(), 1) << "round " << round;
    EXPECT_EQ(got_after_free.load(), 0) << "round " << round;
  }
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

}  // namespace
}  // namespace kern
