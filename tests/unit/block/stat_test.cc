// SPDX-License-Identifier: MIT
// io.stat: per-CPU accounting, the llist flush up a depth-3 hierarchy, root stats from the
// disk, counts that survive a removed cgroup, reset, and the exact text format.
#include "impl/block/blk_stat.h"

#include <gtest/gtest.h>

#include "tests/unit/block/block_fixture.h"

#include <thread>
#include <vector>

#include "impl/kern/lockdep.h"
#include "impl/kern/report.h"

namespace blk {
namespace {

class StatTest : public BlockTest {};

struct World {
  cgroup_hierarchy h;
  gendisk* disk = nullptr;
  cgroup *a = nullptr, *b = nullptr, *c = nullptr;
  World() {
    disk = alloc_disk(8, 16, 1);
    EXPECT_EQ(add_disk(disk), 0);
    EXPECT_EQ(h.mkdir(h.root(), "a", &a), 0);
    EXPECT_EQ(h.mkdir(a, "b", &b), 0);
    EXPECT_EQ(h.mkdir(b, "c", &c), 0);
  }
  ~World() {
    for (const char* path : {"/a/b/c", "/a/b", "/a"})
      if (cgroup* x = h.lookup(path)) h.rmdir(x);
    disk_release(disk);
    h.flush_frees();
  }
  void io(cgroup* cg, bio_op op, uint64_t size, int splits = 0) {
    bio* bi = bio_alloc(disk, op, size, 0, kern::GFP_NOIO);
    ASSERT_TRUE(bio_associate_blkg(bi, cg->io, false));
    std::vector<bio*> pieces;
    for (int i = 0; i < splits; ++i) pieces.push_back(bio_split(bi, bi->size / 2, kern::GFP_NOIO));
    pieces.push_back(bi);
    for (bio* p : pieces) {
      blk_cgroup_bio_start(p);
      bio_put(p);
    }
  }
};

TEST_F(StatTest, HierarchyConservationAfterFlush) {
  World w;
  w.io(w.c, bio_op::kRead, 4096);
  w.io(w.c, bio_op::kWrite, 8192);
  w.io(w.b, bio_op::kWrite, 512);
  w.io(w.a, bio_op::kRead, 1024);
  EXPECT_EQ(blkcg_print_stat(w.h, w.c),
            "8:16 rbytes=4096 wbytes=8192 rios=1 wios=1 dbytes=0 dios=0\n");
  EXPECT_EQ(blkcg_print_stat(w.h, w.b),
            "8:16 rbytes=4096 wbytes=8704 rios=1 wios=2 dbytes=0 dios=0\n");
  // The grandparent gets the leaf's IO too (9d230c09964e: the parent is re-queued).
  EXPECT_EQ(blkcg_print_stat(w.h, w.a),
            "8:16 rbytes=5120 wbytes=8704 rios=2 wios=2 dbytes=0 dios=0\n");
  EXPECT_EQ(blkcg_print_stat(w.h, w.h.root()),
            "8:16 rbytes=5120 wbytes=8704 rios=2 wios=2 dbytes=0 dios=0\n");
}

TEST_F(StatTest, FlushingOnlyTheGrandparentStillSeesTheLeaf) {
  World w;
  w.io(w.c, bio_op::kWrite, 4096);
  // Reading a's io.stat flushes a's whole subtree, children first, in one pass.
  EXPECT_EQ(blkcg_print_stat(w.h, w.a),
            "8:16 rbytes=0 wbytes=4096 rios=0 wios=1 dbytes=0 dios=0\n");
}

TEST_F(StatTest, SplitsCountBytesOnceAndIosPerPiece) {
  World w;
  w.io(w.c, bio_op::kWrite, 8192, 2);
  EXPECT_EQ(blkcg_print_stat(w.h, w.c),
            "8:16 rbytes=0 wbytes=8192 rios=0 wios=3 dbytes=0 dios=0\n");
}

TEST_F(StatTest, DiscardOnlyAndIdleLinesAreBare) {
  World w;
  w.io(w.c, bio_op::kDiscard, 1 << 20);
  EXPECT_EQ(blkcg_print_stat(w.h, w.c), "8:16 \n");
  blkg_lookup_create(w.b->io, w.disk->queue);
  cgroup* d;
  ASSERT_EQ(w.h.mkdir(w.h.root(), "idle", &d), 0);
  EXPECT_EQ(blkcg_print_stat(w.h, d), "");  // no blkg, no line
  ASSERT_EQ(w.h.rmdir(d), 0);
}

TEST_F(StatTest, RemovedCgroupsCountsStayInTheParent) {
  World w;
  w.io(w.c, bio_op::kRead, 4096);  // never flushed before the rmdir
  ASSERT_EQ(w.h.rmdir(w.c), 0);
  w.h.flush_frees();  // c's blkg released: its lists were flushed at release
  EXPECT_EQ(blkcg_print_stat(w.h, w.b),
            "8:16 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n");
  EXPECT_EQ(blkcg_print_stat(w.h, w.a),
            "8:16 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n");
}

TEST_F(StatTest, ResetClearsCountersAndKeepsQueuedListsSound) {
  World w;
  w.io(w.c, bio_op::kWrite, 4096);  // c's set is queued on its llist
  blkcg_reset_stats(w.c->io);      // v1 reset while queued
  w.io(w.c, bio_op::kWrite, 512);
  EXPECT_EQ(blkcg_print_stat(w.h, w.c),
            "8:16 rbytes=0 wbytes=512 rios=0 wios=1 dbytes=0 dios=0\n");
  blkcg_reset_stats(w.c->io);
  EXPECT_EQ(blkcg_print_stat(w.h, w.c), "8:16 \n");
}

TEST_F(StatTest, ConcurrentSubmittersAndFlushers) {
  World w;
  std::atomic<bool> stop{false};
  std::vector<std::thread> ts;
  constexpr int kPerThread = 300;
  for (int i = 0; i < 3; ++i) {
    ts.emplace_back([&w, i] {
      kern::TaskScope scope("submit" + std::to_string(i), i);
      for (int k = 0; k < kPerThread; ++k) w.io(k % 2 ? w.c : w.b, bio_op::kWrite, 512);
    });
  }
  std::thread flusher([&] {
    kern::TaskScope scope("flusher", 3);
    while (!stop.load()) blkcg_print_stat(w.h, w.a);
  });
  for (auto& t : ts) t.join();
  stop = true;
  flusher.join();
  const uint64_t n = 3 * kPerThread;
  EXPECT_EQ(blkcg_print_stat(w.h, w.a), "8:16 rbytes=0 wbytes=" + std::to_string(n * 512) +
                                            " rios=0 wios=" + std::to_string(n) +
                                            " dbytes=0 dios=0\n");
}

}  // namespace
}  // namespace blk

#include "impl/block/busted.h"

namespace blk {
namespace {

// Each busted variant is caught by the checker meant for its bug class.

TEST_F(StatTest, BustedNoParentRequeueLosesGrandparentUpdates) {
  busted().no_parent_requeue = true;
  {
    World w;
    w.io(w.c, bio_op::kWrite, 4096);
    const std::string a = blkcg_print_stat(w.h, w.a);
    // Conservation: a must include c's IO. The busted flush loses it.
    EXPECT_NE(a, "8:16 rbytes=0 wbytes=4096 rios=0 wios=1 dbytes=0 dios=0\n");
  }
  busted().no_parent_requeue = false;
}

TEST_F(StatTest, BustedFlushLockWithIrqsOnIsAnIrqSafetyReport) {
  busted().flush_lock_irqs_on = true;
  {
    kern::ReportCapture cap;
    World w;
    w.io(w.c, bio_op::kWrite, 4096);
    blkcg_print_stat(w.h, w.c);  // process context, IRQs on
    // A blkg released from a bio completion in softirq flushes with the same lock.
    w.io(w.c, bio_op::kWrite, 512);
    blkcg* bc = w.c->io;
    kern::run_in_irq(0, /*hard=*/false, [&] { blkcg_rstat_flush_cpu(bc, 0); });
    EXPECT_GE(cap.count(kern::ReportKind::kIrqSafety), 1u) << cap.dump();
  }
  busted().flush_lock_irqs_on = false;
}

TEST_F(StatTest, CorrectFlushLockIsQuietInBothContexts) {
  kern::ReportCapture cap;
  World w;
  w.io(w.c, bio_op::kWrite, 4096);
  blkcg_print_stat(w.h, w.c);
  w.io(w.c, bio_op::kWrite, 512);
  blkcg* bc = w.c->io;
  kern::run_in_irq(0, false, [&] { blkcg_rstat_flush_cpu(bc, 0); });
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

[[maybe_unused]] void reset_then_flush() {
  busted().reset_wipes_set = true;
  World w;
  w.io(w.c, bio_op::kWrite, 4096);  // c's per-CPU set is queued
  blkcg_reset_stats(w.c->io);      // wipes the set's back pointer
  blkcg_print_stat(w.h, w.c);      // flush dereferences it
}

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define BLKCG_HAVE_SANITIZER 1
#endif
#endif

TEST_F(StatTest, BustedResetWipingTheSetCrashesTheFlush) {
#ifdef BLKCG_HAVE_SANITIZER
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(reset_then_flush(), "SEGV|null pointer|AddressSanitizer|ThreadSanitizer");
#else
  GTEST_SKIP() << "needs an ASan or TSan build to name the crash (the gate runs both)";
#endif
}

}  // namespace
}  // namespace blk
