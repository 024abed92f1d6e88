// SPDX-License-Identifier: MIT
// Concurrent scenarios (schedule.h): the schedule lines of the text form, determinism,
// the explicit-list form of a PCT run replaying it exactly, the concurrent seed scenarios
// running clean under many schedules (no false reports), and the schedule search catching
// planted races: busted variants that must be reported.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <string>

#include "impl/block/busted.h"
#include "impl/kern/report.h"
#include "impl/scenario/binary.h"
#include "impl/scenario/schedule.h"
#include "impl/scenario/text.h"

namespace scenario {
namespace {

Scenario parse(const std::string& text) {
  Scenario s;
  ParseError err;
  EXPECT_TRUE(parse_text(text, "test.scn", &s, &err)) << err.str();
  return s;
}

Scenario load(const std::string& rel) {
  std::ifstream in(std::string(BLKCG_SOURCE_DIR) + "/" + rel);
  EXPECT_TRUE(in) << rel;
  return parse(std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()));
}

Scenario with_schedule(Scenario s, Schedule::Kind kind, uint64_t seed, int depth = 1) {
  s.sched = {};
  s.sched.kind = kind;
  s.sched.seed = seed;
  s.sched.depth = kind == Schedule::kPct ? depth : 1;
  return s;
}

TEST(SchedFormat, ScheduleLinesRoundTrip) {
  const Scenario s = parse(
      "schedule list\nmkdir /a\nT1: rmdir /a\nT2: mkdir /b\n"
      "preempt T1 op=2 seam=3 T2\npreempt T2 op=3 seam=1 T0\n");
  ASSERT_EQ(s.sched.kind, Schedule::kList);
  ASSERT_EQ(s.sched.preempts.size(), 2u);
  EXPECT_EQ(s.sched.preempts[0], (Preempt{1, 1, 3, 2}));
  EXPECT_EQ(parse(to_text(s)), s);
  const std::vector<uint8_t> bin = encode_binary(s);
  EXPECT_EQ(decode_binary(bin.data(), bin.size()), s);
  for (const char* t : {"schedule pct seed=7 depth=3\nT1: run\n", "schedule walk seed=9\nrun\n",
                        "schedule pct seed=7 depth=2 steps=140\nT1: run\n"}) {
    const Scenario p = parse(t);
    EXPECT_EQ(parse(to_text(p)), p) << t;
    const std::vector<uint8_t> b = encode_binary(p);
    EXPECT_EQ(decode_binary(b.data(), b.size()), p) << t;
  }
}

TEST(SchedFormat, MalformedScheduleLinesNameTheLine) {
  const struct {
    const char* text;
    int line;
    const char* reason;
  } cases[] = {
      {"run\nschedule often\n", 2, "unknown schedule"},
      {"schedule list seed=3\n", 1, "seed= goes with pct and walk"},
      {"schedule pct depth=9\n", 1, "bad schedule option"},
      {"schedule pct steps=0\n", 1, "bad schedule option"},
      {"schedule walk seed=1 steps=50\n", 1, "steps= with pct only"},
      {"preempt T1 op=0 seam=1 T2\n", 1, "malformed preempt"},
      {"preempt T1 op=2 T2\n", 1, "malformed preempt"},
      {"schedule walk seed=1\npreempt T1 op=1 seam=1 T0\n", 2, "need 'schedule list'"},
  };
  for (const auto& c : cases) {
    Scenario s;
    ParseError err;
    ASSERT_FALSE(parse_text(c.text, "bad.scn", &s, &err)) << c.text;
    EXPECT_EQ(err.line, c.line) << c.text;
    EXPECT_NE(err.reason.find(c.reason), std::string::npos) << err.str();
  }
}

// A preemption entry takes effect exactly where it says: T1 inside its mkdir hands over to
// T2, whose mkdir of the same path then wins.
TEST(SchedExec, PreemptionDecidesTheWinner) {
  kern::ReportCapture cap;
  const char* base = "schedule list\nmkdir /p\nT1: mkdir /p/x\nT2: mkdir /p/x\n";
  // Default policy: T1 runs to the end first.
  ConcurrentRun a = run_concurrent(parse(base));
  EXPECT_EQ(a.run.preemptions, 0u);
  EXPECT_TRUE(a.schedule.empty());
  // T1 preempted at its first seam (the cgroup_mutex acquire): T2 creates /p/x first.
  ConcurrentRun b = run_concurrent(parse(std::string(base) + "preempt T1 op=2 seam=1 T2\n"));
  EXPECT_EQ(b.run.preemptions, 1u);
  ASSERT_EQ(b.schedule.size(), 1u);
  EXPECT_EQ(b.schedule[0], (Preempt{1, 1, 1, 2}));
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

TEST(SchedExec, SameScheduleSameTrace) {
  kern::ReportCapture cap;
  const Scenario base = load("corpus/scenarios/sched-release-flush.scn");
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    EXPECT_TRUE(check_determinism(with_schedule(base, Schedule::kPct, seed, 3)));
    EXPECT_TRUE(check_determinism(with_schedule(base, Schedule::kWalk, seed)));
  }
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

// A PCT run recorded as explicit preemptions replays step for step.
TEST(SchedExec, ExplicitListReplaysThePctRun) {
  kern::ReportCapture cap;
  const Scenario base = load("corpus/scenarios/sched-destroy-free.scn");
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    const Scenario pct = with_schedule(base, Schedule::kPct, seed, 3);
    const ConcurrentRun a = run_concurrent(pct, true);
    Scenario list = pct;
    list.sched = {};
    list.sched.kind = Schedule::kList;
    list.sched.preempts = a.schedule;
    const ConcurrentRun b = run_concurrent(list, true);
    EXPECT_EQ(a.run.trace, b.run.trace) << "seed " << seed;
    EXPECT_EQ(b.schedule, a.schedule) << "seed " << seed;
    // and through the text form
    EXPECT_EQ(parse(to_text(list)), list);
  }
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

// No false reports: every concurrent seed scenario under 25 PCT and 25 random-walk
// schedules runs without a report on the correct implementation.
TEST(SchedExec, SeedScenariosRunCleanUnderManySchedules) {
  kern::ReportCapture cap;
  for (const char* f : {"sched-release-flush", "sched-destroy-free", "sched-activate",
                        "sched-timer-limit", "sched-nowait"}) {
    const Scenario base = load(std::string("corpus/scenarios/") + f + ".scn");
    for (uint64_t seed = 1; seed <= 25; ++seed) {
      run_concurrent(with_schedule(base, Schedule::kPct, seed, 1 + seed % 3));
      run_concurrent(with_schedule(base, Schedule::kWalk, seed));
      ASSERT_EQ(cap.size(), 0u) << f << " seed " << seed << "\n" << cap.dump();
    }
  }
}

// The schedule search catches a planted race the oracle sees: blkg_create inserting into
// a blkcg that went offline meanwhile (found by fuzz_sched) strands the bio's stats. The
// regression's own schedule, and a PCT search from the seed scenario both report it.
TEST(SchedBusted, CreateAfterOfflineIsReported) {
  const Scenario reg = load("corpus/regressions/assoc-racing-rmdir.scn");
  {
    kern::ReportCapture cap;
    run_concurrent(reg);
    EXPECT_EQ(cap.size(), 0u) << cap.dump();
  }
  blk::busted().blkg_create_after_offline.store(true);
  kern::ReportCapture cap;
  run_concurrent(reg);
  blk::busted().reset();
  ASSERT_GT(cap.size(), 0u);
  EXPECT_NE(cap.dump().find("model:quiesce"), std::string::npos) << cap.dump();
}

// A non-atomic blkg refcount put (#5 of the historical list) loses a concurrent put. This
// is the reproducer fuzz_sched found with the flag planted (BLKCG_BUSTED, 45 s from the
// seeds) and minimized to 9 operations and 3 preemptions: the throttle's dispatch (T0's
// wait) and the rmdir's blkg destruction (T1) put the same blkg at once; the lost put
// keeps the blkg, its blkcg and the queue alive: LEAK at teardown.
TEST(SchedBusted, NonatomicBlkgPutIsReported) {
  const Scenario s = parse(R"(schedule list
disk_alloc d0 8:0 latency=127
disk_add d0
mkdir /a
write /a/io.max "8:0 wbps=4096"
bio b0 d0 write 8192
assoc b0 /a
submit b0
T1: rmdir /a
wait b0
preempt T0 op=9 seam=47 T1
preempt T1 op=8 seam=22 T0
preempt T0 op=9 seam=50 T1
)");
  {
    kern::ReportCapture cap;
    run_concurrent(s);
    EXPECT_EQ(cap.size(), 0u) << cap.dump();
  }
  blk::busted().blkg_put_nonatomic.store(true);
  kern::ReportCapture cap;
  run_concurrent(s);
  blk::busted().reset();
  EXPECT_TRUE(cap.has(kern::ReportKind::kLeak)) << cap.dump();
}

// A scheduled scenario that is clean as it is, and dies with `flag` planted, in a
// death-test child, printing something that matches `regex` (a sanitizer report; with
// `reports_abort`, also the suite's own reports, which then abort).
void expect_clean_then_death(const Scenario& s, std::atomic<bool>* flag, const char* regex,
                             bool reports_abort) {
  {
    kern::ReportCapture cap;
    run_concurrent(s);
    EXPECT_EQ(cap.size(), 0u) << cap.dump();
  }
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        if (reports_abort) kern::set_report_mode(kern::ReportMode::kAbort);
        flag->store(true);
        run_concurrent(s);
      },
      regex);
}

// #30 (c164c7bc9775): the free work unlinking a blkg from q->blkg_list without the lock.
// A PCT search over corpus/scenarios/sched-destroy-free.scn found it at seed 48; minimized
// (ops and preemptions) to one preemption: T1's free work stands between reading its
// neighbours and writing them while T2's run frees the neighbour: a use-after-free, which
// the sanitizer of either gate build reports.
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define BLKCG_SCHED_SANITIZER 1
#endif
#endif

TEST(SchedBustedDeathTest, FreeWorkUnlinkUnlockedIsCaught) {
#ifdef BLKCG_SCHED_SANITIZER
  const Scenario s = parse(R"(schedule list
disk_alloc d0 8:0
disk_add d0
mkdir /b
bio b1 d0 write 512
assoc b1 /b
submit b1
mkdir /a
bio b0 d0 write 512
assoc b0 /a
submit b0
T1: rmdir /a
T1: run
T2: run
disk_release d0
preempt T1 op=12 seam=54 T2
)");
  expect_clean_then_death(s, &blk::busted().free_work_unlink_unlocked, "heap-use-after-free",
                          /*reports_abort=*/false);
#else
  GTEST_SKIP() << "needs ASan or TSan to see the use-after-free";
#endif
}

// blkg_lookup under q->blkcg_mutex alone (the RFC as posted) follows the blkcg's hint into
// another queue's blkg with no grace period held off: the regression's schedule frees that
// blkg between the hint's load and its use (found by blkcg_torture under TSan).
TEST(SchedBustedDeathTest, BlkgLookupMutexOnlyIsCaught) {
#ifdef BLKCG_SCHED_SANITIZER
  expect_clean_then_death(load("corpus/regressions/blkg-lookup-hint-freed.scn"),
                          &blk::busted().blkg_lookup_mutex_only,
                          "heap-use-after-free|data race", /*reports_abort=*/false);
#else
  GTEST_SKIP() << "needs ASan or TSan to see the use-after-free";
#endif
}


// The virtual clock set back by an advance preempted inside its window (found by a
// fuzz_ops campaign as a bio left in flight at teardown): with the old store planted, the
// regression's run trips the harness's direct check at the end of T0's wait.
TEST(SchedBustedDeathTest, AdvanceStoringItsTargetIsCaught) {
  expect_clean_then_death(load("corpus/regressions/concurrent-advance-rewinds-clock.scn"),
                          &kern::detail::advance_stores_target, "clock-went-back",
                          /*reports_abort=*/true);
}

// #17 (858560b27645, CVE-2021-47379): a deactivation offlining and freeing pds without
// blkcg->lock while reset_stats walks the blkcg's blkgs under it. A random walk found it
// at seed 8 (of 40 tried); minimized to one preemption: T1's reset_stats has found the
// test policy's pd when T2's deactivation frees it. The freed pd is caught by UBSan's type
// check, ASan, or testpol's own state check (pd-used-after-offline), whichever runs first.
TEST(SchedBustedDeathTest, DeactivateWithoutBlkcgLockIsCaught) {
  const Scenario s = parse(R"(schedule list
legacy_hierarchy
disk_alloc d0 8:16
disk_add d0
pol_register
pol_activate d0
mkdir /a
bio b1 d0 read 512
assoc b1 /a
T1: write /a/blkio.reset_stats "1"
T2: pol_deactivate d0
preempt T1 op=9 seam=12 T2
)");
  expect_clean_then_death(s, &blk::busted().deactivate_without_blkcg_lock,
                          "pd-used-after-offline|runtime error|use-after-free",
                          /*reports_abort=*/true);
}

}  // namespace
}  // namespace scenario
