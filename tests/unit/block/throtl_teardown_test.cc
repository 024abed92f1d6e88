// SPDX-License-Identifier: MIT
// Throttle teardown ordering (RFC patch 4): after disk deletion and release, a tg's
// pending timer that was still armed must never run on the freed throttle data. The pds
// of destroyed blkgs are freed later (their free work runs after an RCU grace period), so
// blk_throtl_exit has to shut their timers down itself. Also explored under controlled
// schedules: deletion and release racing the timers and a submitter.
#include <gtest/gtest.h>

#include "impl/block/blk_core.h"
#include "impl/block/blk_throttle.h"
#include "impl/block/busted.h"
#include "impl/block/cgroupfs.h"
#include "impl/kern/clock.h"
#include "impl/kern/sched_controlled.h"
#include "impl/kern/timer.h"
#include "impl/kern/workqueue.h"
#include "tests/unit/block/block_fixture.h"

namespace blk {
namespace {

class ThrotlTeardown : public BlockTest {
 protected:
  void TearDown() override {
    busted().reset();
    BlockTest::TearDown();
  }
};

struct Ended {
  int n = 0, eio = 0;
};
void ended(bio* b) {
  auto* e = static_cast<Ended*>(b->bi_private);
  ++e->n;
  e->eio += b->status == -EIO;
  bio_put(b);
}

// Queues bios in /a/b (so the pending timers of /a's and the root's service queues are
// armed), deletes and releases the disk, then lets time run before the blkgs' free work.
void delete_release_then_time_passes() {
  cgroup_hierarchy h;
  gendisk* disk = alloc_disk(8, 16, 1);
  ASSERT_EQ(add_disk(disk), 0);
  cgroup *a, *b;
  ASSERT_EQ(h.mkdir(h.root(), "a", &a), 0);
  ASSERT_EQ(h.mkdir(a, "b", &b), 0);
  ASSERT_GT(cgroup_file_write(h, "/a/b/io.max", "8:16 wbps=1024"), 0);
  Ended e;
  for (int i = 0; i < 4; ++i) {
    bio* bi = bio_alloc(disk, bio_op::kWrite, 4096, 0, kern::GFP_NOIO);
    ASSERT_TRUE(bio_associate_blkg(bi, b->io, false));
    bi->bi_end_io = ended;
    bi->bi_private = &e;
    submit_bio(bi);
  }
  kern::advance_jiffies(5);
  EXPECT_EQ(e.n, 0);
  EXPECT_GT(kern::nr_pending_timers(), 0u);
  del_gendisk(disk);
  EXPECT_EQ(e.n, 4);
  EXPECT_EQ(e.eio, 4);
  ASSERT_EQ(h.rmdir(b), 0);
  ASSERT_EQ(h.rmdir(a), 0);
  disk_release(disk);
  kern::advance_jiffies(2000);  // any timer still armed fires now
  kern::run_pending_work();
  h.flush_frees();
  EXPECT_EQ(kern::nr_pending_timers(), 0u);
}

TEST_F(ThrotlTeardown, NoTimerRunsOnFreedThrottleData) {
  kern::ReportCapture cap;
  delete_release_then_time_passes();
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BLKCG_HAVE_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define BLKCG_HAVE_ASAN 1
#endif

#ifdef BLKCG_HAVE_ASAN
// The planted bug is a use-after-free: only AddressSanitizer can see it, in a child
// process (a death test), where it ends the program.
TEST_F(ThrotlTeardown, PlantedExitSkippingTgTimersIsAUseAfterFree) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        busted().throtl_exit_skips_tg_timers = true;
        delete_release_then_time_passes();
      },
      "heap-use-after-free");
}
#endif

// Controlled schedules: the clock (firing the pending timers), a submitter and the
// deletion + release race; every bio ends (success or EIO), nothing is reported, nothing
// leaks (the fixture's check).
TEST_F(ThrotlTeardown, DeletionRacesTimersUnderControlledSchedules) {
  kern::ReportCapture cap;
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    cgroup_hierarchy h;
    gendisk* disk = alloc_disk(8, 16, 1);
    ASSERT_EQ(add_disk(disk), 0);
    cgroup* a;
    ASSERT_EQ(h.mkdir(h.root(), "a", &a), 0);
    ASSERT_GT(cgroup_file_write(h, "/a/io.max", "8:16 wbps=65536"), 0);
    Ended e;
    int submitted = 0;
    auto submitter = [&] {
      for (int i = 0; i < 6; ++i) {
        bio* bi = bio_alloc(disk, bio_op::kWrite, 4096 << (i % 3), 0, kern::GFP_NOIO);
        bio_associate_blkg(bi, a->io, false);
        bi->bi_end_io = ended;
        bi->bi_private = &e;
        ++submitted;
        submit_bio(bi);
      }
    };
    auto clock = [&] {
      for (int i = 0; i < 30; ++i) {
        kern::advance_jiffies(10);
        kern::run_pending_work();
      }
    };
    auto deleter = [&] { del_gendisk(disk); };
    kern::RandomWalk src(seed);
    const kern::RunResult r = kern::run_controlled(
        {{"submit", 0, submitter}, {"clock", 1, clock}, {"delete", 1, deleter}}, src);
    ASSERT_FALSE(r.deadlock) << "seed " << seed;
    kern::run_pending_work();
    EXPECT_EQ(e.n, submitted) << "seed " << seed;
    disk_release(disk);
    kern::advance_jiffies(2000);
    ASSERT_EQ(h.rmdir(a), 0);
    h.flush_frees();
  }
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

}  // namespace
}  // namespace blk
