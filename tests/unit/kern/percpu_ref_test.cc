// SPDX-License-Identifier: MIT
// percpu_ref: the lifecycle stages of percpu_ref.h, release in the context of the last put,
// every misuse report, and kill racing with tryget/tryget_live on real threads.
#include "impl/kern/percpu_ref.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "impl/kern/cpu.h"
#include "impl/kern/report.h"
#include "impl/kern/task.h"

namespace kern {
namespace {

std::atomic<int> released{0};
std::string released_by;  // task name that ran release()
bool released_in_hardirq = false;

void on_release(percpu_ref*) {
  released.fetch_add(1);
  released_by = current()->name;
  released_in_hardirq = in_hardirq();
}

void reset_release() {
  released = 0;
  released_by.clear();
  released_in_hardirq = false;
}

bool has_signature(const ReportCapture& cap, const char* part) {
  for (const Report& r : cap.reports())
    if (r.signature.find(part) != std::string::npos) return true;
  return false;
}

TEST(PercpuRefTest, LifecycleKillThenLastPutReleases) {
  reset_release();
  ReportCapture cap;
  percpu_ref ref;
  percpu_ref_init(&ref, on_release, "test.pref");
  EXPECT_EQ(percpu_ref_count(&ref), 1u);  // stage 1: the initial reference
  EXPECT_FALSE(percpu_ref_is_dying(&ref));
  percpu_ref_get(&ref);  // stage 2
  EXPECT_TRUE(percpu_ref_tryget_live(&ref));
  EXPECT_TRUE(percpu_ref_tryget(&ref));
  percpu_ref_put(&ref);
  percpu_ref_kill(&ref);  // stage 3: drops the initial reference
  EXPECT_TRUE(percpu_ref_is_dying(&ref));
  EXPECT_EQ(percpu_ref_count(&ref), 2u);
  EXPECT_FALSE(percpu_ref_tryget_live(&ref));
  EXPECT_TRUE(percpu_ref_tryget(&ref));  // a dying ref with count > 0: still works
  percpu_ref_get(&ref);                  // so does get from a held reference
  percpu_ref_put(&ref);
  percpu_ref_put(&ref);
  percpu_ref_put(&ref);
  EXPECT_EQ(released.load(), 0);
  EXPECT_FALSE(percpu_ref_is_zero(&ref));
  percpu_ref_put(&ref);  // stage 4: the last put releases
  EXPECT_EQ(released.load(), 1);
  EXPECT_TRUE(percpu_ref_is_zero(&ref));
  EXPECT_FALSE(percpu_ref_tryget(&ref));
  EXPECT_FALSE(percpu_ref_tryget_live(&ref));
  percpu_ref_exit(&ref);  // stage 5
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

TEST(PercpuRefTest, KillWithoutOtherReferencesReleasesAtOnce) {
  reset_release();
  percpu_ref ref;
  percpu_ref_init(&ref, on_release, "test.pref.kill");
  percpu_ref_kill(&ref);
  EXPECT_EQ(released.load(), 1);
  EXPECT_TRUE(percpu_ref_is_zero(&ref));
}

TEST(PercpuRefTest, ReleaseRunsInTheContextOfTheLastPut) {
  reset_release();
  percpu_ref ref;
  percpu_ref_init(&ref, on_release, "test.pref.ctx");
  percpu_ref_get(&ref);
  percpu_ref_kill(&ref);
  std::thread t([&] {
    TaskScope ts("last-putter", 2);
    run_in_irq(2, /*hard=*/true, [&] { percpu_ref_put(&ref); });  // an IO completion
  });
  t.join();
  EXPECT_EQ(released.load(), 1);
  EXPECT_EQ(released_by, "last-putter");
  EXPECT_TRUE(released_in_hardirq);
}

TEST(PercpuRefTest, ExitOnTheInitErrorPathIsAllowed) {
  ReportCapture cap;
  percpu_ref ref;
  percpu_ref_init(&ref, on_release, "test.pref.unwind");
  percpu_ref_exit(&ref);  // initialised, never went live: count 1, not killed
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

TEST(PercpuRefTest, ExitWithReferencesHeldIsReported) {
  reset_release();
  ReportCapture cap;
  percpu_ref ref;
  percpu_ref_init(&ref, on_release, "test.pref.exit");
  percpu_ref_get(&ref);
  percpu_ref_exit(&ref);  // live with two references
  EXPECT_EQ(cap.count(ReportKind::kRefcount), 1u) << cap.dump();
  percpu_ref dying;
  percpu_ref_init(&dying, on_release, "test.pref.exit.dying");
  percpu_ref_get(&dying);
  percpu_ref_kill(&dying);
  percpu_ref_exit(&dying);  // killed, one reference still out
  EXPECT_EQ(cap.count(ReportKind::kRefcount), 2u) << cap.dump();
  EXPECT_TRUE(has_signature(cap, "exit with references held")) << cap.dump();
}

TEST(PercpuRefTest, PutAfterReleaseIsReported) {
  reset_release();
  percpu_ref ref;
  percpu_ref_init(&ref, on_release, "test.pref.after");
  percpu_ref_kill(&ref);
  ASSERT_EQ(released.load(), 1);
  ReportCapture cap;
  percpu_ref_put(&ref);
  EXPECT_EQ(cap.count(ReportKind::kRefcount), 1u) << cap.dump();
  EXPECT_TRUE(has_signature(cap, "percpu_ref:test.pref.after:put underflow")) << cap.dump();
  EXPECT_EQ(released.load(), 1);  // no second release
  EXPECT_TRUE(percpu_ref_is_zero(&ref));
  EXPECT_TRUE(percpu_ref_is_dying(&ref));  // the word is left intact
}

TEST(PercpuRefTest, GetAfterReleaseIsReported) {
  reset_release();
  percpu_ref ref;
  percpu_ref_init(&ref, on_release, "test.pref.get");
  percpu_ref_kill(&ref);
  ReportCapture cap;
  percpu_ref_get(&ref);
  EXPECT_EQ(cap.count(ReportKind::kRefcount), 1u) << cap.dump();
  EXPECT_TRUE(has_signature(cap, "use-after-free")) << cap.dump();
  EXPECT_TRUE(percpu_ref_is_zero(&ref));  // not resurrected: no second release later
}

TEST(PercpuRefTest, PuttingTheInitialReferenceIsReported) {
  reset_release();
  percpu_ref ref;
  percpu_ref_init(&ref, on_release, "test.pref.initial");
  ReportCapture cap;
  percpu_ref_put(&ref);  // only kill may drop the initial reference
  EXPECT_EQ(cap.count(ReportKind::kRefcount), 1u) << cap.dump();
  EXPECT_TRUE(has_signature(cap, "last reference dropped before kill")) << cap.dump();
  EXPECT_EQ(percpu_ref_count(&ref), 1u);
  percpu_ref_kill(&ref);  // the ref is still usable: kill releases it normally
  EXPECT_EQ(released.load(), 1);
  percpu_ref_kill(&ref);  // double kill
  EXPECT_EQ(cap.count(ReportKind::kRefcount), 2u) << cap.dump();
  EXPECT_TRUE(has_signature(cap, "kill of a dead ref")) << cap.dump();
  EXPECT_EQ(released.load(), 1);
}

// Getters race with kill; release runs exactly once, after every getter's put.
TEST(PercpuRefTest, ConcurrentTrygetAndKillReleaseExactlyOnce) {
  ReportCapture cap;
  for (int round = 0; round < 50; ++round) {
    reset_release();
    percpu_ref ref;
    percpu_ref_init(&ref, on_release, "test.pref.race");
    std::atomic<long> held_at_release{0};
    std::vector<std::thread> ts;
    for (int i = 0; i < 3; ++i) {
      ts.emplace_back([&, i] {
        TaskScope s("getter", i);
        for (int k = 0; k < 200; ++k) {
          if (!percpu_ref_tryget(&ref)) continue;
          if (released.load() != 0) held_at_release.fetch_add(1);  // got a released ref
          percpu_ref_put(&ref);
        }
      });
    }
    percpu_ref_kill(&ref);
    for (auto& t : ts) t.join();
    EXPECT_EQ(released.load(), 1) << "round " << round;
    EXPECT_EQ(held_at_release.load(), 0) << "round " << round;
  }
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

// tryget_live fails in every attempt ordered after the kill, although the count stays
// positive (the test holds a reference), so only the DEAD bit can make it fail.
TEST(PercpuRefTest, TrygetLiveFailsAfterKillWhileTrygetSucceeds) {
  ReportCapture cap;
  reset_release();
  percpu_ref ref;
  percpu_ref_init(&ref, on_release, "test.pref.live");
  percpu_ref_get(&ref);  // keeps the count positive after kill
  std::atomic<bool> killed{false};
  std::atomic<long> live_after_kill{0}, attempts_after_kill{0}, tryget_after_kill{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 3; ++i) {
    ts.emplace_back([&, i] {
      TaskScope s("getter", i);
      long after = 0;
      while (after < 200) {
        const bool k = killed.load();  // acquire: ordered after the kill below
        if (percpu_ref_tryget_live(&ref)) {
          if (k) live_after_kill.fetch_add(1);
          percpu_ref_put(&ref);
        }
        if (k) {
          ++after;
          if (percpu_ref_tryget(&ref)) {
            tryget_after_kill.fetch_add(1);
            percpu_ref_put(&ref);
          }
        }
      }
      attempts_after_kill.fetch_add(after);
    });
  }
  percpu_ref_kill(&ref);
  killed.store(true);
  for (auto& t : ts) t.join();
  EXPECT_EQ(live_after_kill.load(), 0);
  EXPECT_EQ(attempts_after_kill.load(), 600);
  EXPECT_EQ(tryget_after_kill.load(), 600);
  EXPECT_EQ(released.load(), 0);
  percpu_ref_put(&ref);
  EXPECT_EQ(released.load(), 1);
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

}  // namespace
}  // namespace kern
