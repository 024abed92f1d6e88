// SPDX-License-Identifier: MIT
// Bio association: blocking, the RFC's nowait with its three outcomes, clone and split,
// tryget-climb onto an ancestor when the blkg is dying.
#include "impl/block/bio.h"

#include <gtest/gtest.h>

#include "tests/unit/block/block_fixture.h"

#include <thread>

#include "impl/kern/lockdep.h"
#include "impl/kern/report.h"

namespace blk {
namespace {

class BioTest : public BlockTest {};

struct World {
  cgroup_hierarchy h;
  gendisk* disk = nullptr;
  cgroup *a = nullptr, *b = nullptr;
  World() {
    disk = alloc_disk(8, 0, 1);
    EXPECT_EQ(add_disk(disk), 0);
    EXPECT_EQ(h.mkdir(h.root(), "a", &a), 0);
    EXPECT_EQ(h.mkdir(a, "b", &b), 0);
  }
  ~World() {
    for (const char* path : {"/a/b", "/a"})
      if (cgroup* x = h.lookup(path)) h.rmdir(x);
    disk_release(disk);
    h.flush_frees();
  }
  bio* new_bio() { return bio_alloc(disk, bio_op::kWrite, 4096, 0, kern::GFP_NOIO); }
};

// A disk that was never added has no root blkg and gets no blkg at all: association
// fails instead of building a second root (found by fuzz_ops).
TEST_F(BioTest, NeverAddedDiskGetsNoBlkg) {
  cgroup_hierarchy h;
  cgroup* a;
  ASSERT_EQ(h.mkdir(h.root(), "a", &a), 0);
  gendisk* disk = alloc_disk(31, 2, 9);
  bio* bi = bio_alloc(disk, bio_op::kRead, 512, 0, kern::GFP_NOIO);
  EXPECT_FALSE(bio_associate_blkg(bi, a->io, false));
  EXPECT_FALSE(bio_associate_blkg(bi, a->io, true));
  EXPECT_EQ(bi->bi_blkg, nullptr);
  EXPECT_EQ(blkg_count(disk->queue), 0);
  bio_put(bi);
  disk_release(disk);
  ASSERT_EQ(h.rmdir(a), 0);
  h.flush_frees();
}

TEST_F(BioTest, BlockingAssociationCreatesTheBlkg) {
  World w;
  bio* bi = w.new_bio();
  EXPECT_TRUE(bio_associate_blkg(bi, w.b->io, false));
  ASSERT_NE(bi->bi_blkg, nullptr);
  EXPECT_EQ(bi->bi_blkg->blkcg, w.b->io);
  bio_put(bi);
}

TEST_F(BioTest, RootAssociationUsesRootBlkg) {
  World w;
  bio* bi = w.new_bio();
  EXPECT_TRUE(bio_associate_blkg(bi, w.h.root()->io, true));
  EXPECT_EQ(bi->bi_blkg, w.disk->queue->root_blkg.load());
  bio_put(bi);
}

// Outcome 1: an existing blkg is found without the mutex, even in atomic context.
TEST_F(BioTest, NowaitFindsExistingBlkgInAtomicContext) {
  World w;
  blkg_lookup_create(w.b->io, w.disk->queue);
  bio* bi = w.new_bio();
  kern::ReportCapture cap;
  kern::spinlock_t l("test.bio.driver_lock");
  l.lock_irq();  // a driver's completion path
  EXPECT_TRUE(bio_associate_blkg(bi, w.b->io, true));
  l.unlock_irq();
  EXPECT_EQ(bi->bi_blkg->blkcg, w.b->io);
  EXPECT_EQ(cap.size(), 0u) << cap.dump();  // never slept
  bio_put(bi);
}

// Outcome 2: missing blkg, preemptible caller, trylock succeeds: created with GFP_ATOMIC.
TEST_F(BioTest, NowaitCreatesWithAtomicAllocationWhenTrylockSucceeds) {
  World w;
  bio* bi = w.new_bio();
  kern::fault_record(true);
  kern::ReportCapture cap;
  EXPECT_TRUE(bio_associate_blkg(bi, w.b->io, true));
  EXPECT_EQ(bi->bi_blkg->blkcg, w.b->io);
  bool saw_atomic_blkg_alloc = false;
  for (const kern::AllocDecision& d : kern::fault_log())
    if (d.site == "blkg_alloc") saw_atomic_blkg_alloc |= d.gfp == kern::GFP_ATOMIC;
  EXPECT_TRUE(saw_atomic_blkg_alloc);
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
  bio_put(bi);
}

// Outcome 3: missing blkg in atomic context: fails, old reference dropped, unassociated;
// a blocking association afterwards succeeds.
TEST_F(BioTest, NowaitFailsInAtomicContextAndBlockingThenSucceeds) {
  World w;
  bio* bi = w.new_bio();
  ASSERT_TRUE(bio_associate_blkg(bi, w.h.root()->io, false));  // holds a root ref
  kern::ReportCapture cap;
  kern::rcu_read_lock();  // atomic: not preemptible
  EXPECT_FALSE(bio_associate_blkg_from_css(bi, w.b->io, true));
  kern::rcu_read_unlock();
  EXPECT_EQ(bi->bi_blkg, nullptr);  // the old association was dropped
  EXPECT_EQ(cap.size(), 0u) << cap.dump();  // and nothing slept
  EXPECT_TRUE(bio_associate_blkg_from_css(bi, w.b->io, false));
  EXPECT_EQ(bi->bi_blkg->blkcg, w.b->io);
  bio_put(bi);
}

TEST_F(BioTest, NowaitFailsWhenTheMutexIsContended) {
  World w;
  bio* bi = w.new_bio();
  std::atomic<int> stage{0};
  std::thread holder([&] {
    kern::TaskScope ts("config-writer", 1);
    w.disk->queue->blkcg_mutex.lock();
    stage = 1;
    while (stage.load() != 2) std::this_thread::yield();
    w.disk->queue->blkcg_mutex.unlock();
  });
  while (stage.load() != 1) std::this_thread::yield();
  EXPECT_FALSE(bio_associate_blkg(bi, w.b->io, true));
  EXPECT_EQ(bi->bi_blkg, nullptr);
  stage = 2;
  holder.join();
  EXPECT_TRUE(bio_associate_blkg(bi, w.b->io, true));
  bio_put(bi);
}

TEST_F(BioTest, BlockingAssociationInAtomicContextIsReported) {
  World w;
  bio* bi = w.new_bio();
  kern::ReportCapture cap;
  kern::preempt_disable();
  bio_associate_blkg(bi, w.h.root()->io, false);
  kern::preempt_enable();
  EXPECT_EQ(cap.count(kern::ReportKind::kSleepInAtomic), 1u) << cap.dump();
  bio_put(bi);
}

TEST_F(BioTest, DestroyedBlkgIsReplacedByLookupCreate) {
  World w;
  blkcg_gq* gb = blkg_lookup_create(w.b->io, w.disk->queue);
  blkcg_gq* ga = gb->parent;
  // Destroy b's blkg while b stays online (as an elevator switch would): it is unhashed,
  // so the next association creates a fresh one under the same parent.
  {
    kern::MutexGuard m(w.disk->queue->blkcg_mutex);
    kern::SpinIrqGuard g(w.b->io->lock);
    blkg_destroy(gb);
  }
  bio* bi = w.new_bio();
  // b's blkg is unhashed: lookup-create makes a new one.
  EXPECT_TRUE(bio_associate_blkg(bi, w.b->io, false));
  EXPECT_NE(bi->bi_blkg, gb);
  EXPECT_EQ(bi->bi_blkg->parent, ga);
  bio_put(bi);
}

TEST_F(BioTest, CloneAndSplitShareTheAssociation) {
  World w;
  bio* bi = w.new_bio();
  ASSERT_TRUE(bio_associate_blkg(bi, w.b->io, false));
  bi->flags |= BIO_CGROUP_ACCT;
  bio* part = bio_split(bi, 1024, kern::GFP_NOIO);
  ASSERT_NE(part, nullptr);
  EXPECT_EQ(part->bi_blkg, bi->bi_blkg);
  EXPECT_EQ(part->size, 1024u);
  EXPECT_EQ(bi->size, 3072u);
  EXPECT_TRUE(part->flags & BIO_CGROUP_ACCT);
  EXPECT_EQ(bio_split(bi, 0, kern::GFP_NOIO), nullptr);
  bio* clone = w.new_bio();
  EXPECT_TRUE(bio_clone_blkg_association(clone, bi, true));
  EXPECT_EQ(clone->bi_blkg, bi->bi_blkg);
  bio_put(part);
  bio_put(clone);
  bio_put(bi);
}

TEST_F(BioTest, BioOutlivesItsCgroupAndHoldsTheBlkg) {
  World w;
  bio* bi = w.new_bio();
  ASSERT_TRUE(bio_associate_blkg(bi, w.b->io, false));
  blkcg_gq* held = bi->bi_blkg;
  ASSERT_EQ(w.h.rmdir(w.b), 0);
  w.h.flush_frees();
  EXPECT_FALSE(held->hashed);  // destroyed, not freed: the bio's reference keeps it
  EXPECT_EQ(held->blkcg->cgroup->name, "b");
  bio_put(bi);  // last reference: release chain
  w.h.flush_frees();
}

}  // namespace
}  // namespace blk
