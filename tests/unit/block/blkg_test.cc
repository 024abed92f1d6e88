// SPDX-License-Identifier: MIT
// blkgs under blkcg_mutex: creation root -> leaf, closest-ancestor fallback, lookup and
// hint, idempotent destroy, the release chain stage by stage, disk release, concurrency.
#include "impl/block/blkg.h"

#include <gtest/gtest.h>

#include "tests/unit/block/block_fixture.h"

#include <cerrno>
#include <thread>
#include <vector>

#include "impl/kern/lockdep.h"
#include "impl/kern/report.h"

namespace blk {
namespace {

class BlkgTest : public BlockTest {};

struct World {
  cgroup_hierarchy h;
  gendisk* disk = nullptr;
  World() {
    disk = alloc_disk(8, 16, 1);
    EXPECT_EQ(add_disk(disk), 0);
  }
  ~World() {
    if (disk) disk_release(disk);
    h.flush_frees();
  }
  request_queue* q() { return disk->queue; }
  cgroup* mk(cgroup* parent, const char* name) {
    cgroup* c = nullptr;
    EXPECT_EQ(h.mkdir(parent, name, &c), 0);
    return c;
  }
  blkcg_gq* lookup(cgroup* c) {
    kern::rcu_read_lock();
    blkcg_gq* g = blkg_lookup(c->io, q());
    kern::rcu_read_unlock();
    return g;
  }
};

TEST_F(BlkgTest, AddDiskCreatesRootBlkg) {
  World w;
  blkcg_gq* root = w.q()->root_blkg.load();
  ASSERT_NE(root, nullptr);
  EXPECT_EQ(root->blkcg, w.h.root()->io);
  EXPECT_EQ(root->parent, nullptr);
  EXPECT_TRUE(root->online.load());
  EXPECT_EQ(w.lookup(w.h.root()), root);
  EXPECT_EQ(blkg_count(w.q()), 1);
  EXPECT_EQ(w.disk->name, "8:16");
  EXPECT_TRUE(disk_live(w.disk));
}

TEST_F(BlkgTest, NeverAddedDiskIsReleasable) {
  cgroup_hierarchy h;
  gendisk* d = alloc_disk(8, 32, 2);
  ASSERT_NE(d, nullptr);
  disk_release(d);
  h.flush_frees();
}

TEST_F(BlkgTest, LookupCreateBuildsEveryLevelRootToLeaf) {
  World w;
  cgroup* a = w.mk(w.h.root(), "a");
  cgroup* b = w.mk(a, "b");
  cgroup* c = w.mk(b, "c");
  EXPECT_EQ(w.lookup(c), nullptr);
  blkcg_gq* gc = blkg_lookup_create(c->io, w.q());
  ASSERT_NE(gc, nullptr);
  EXPECT_EQ(gc->blkcg, c->io);
  ASSERT_NE(gc->parent, nullptr);
  EXPECT_EQ(gc->parent->blkcg, b->io);
  EXPECT_EQ(gc->parent->parent->blkcg, a->io);
  EXPECT_EQ(gc->parent->parent->parent, w.q()->root_blkg.load());
  EXPECT_EQ(blkg_count(w.q()), 4);
  EXPECT_EQ(blkg_lookup_create(c->io, w.q()), gc);  // found, not created again
  EXPECT_EQ(blkg_count(w.q()), 4);
  // Parents first in a reverse walk: the list head is the newest (the leaf).
  {
    kern::MutexGuard m(w.q()->blkcg_mutex);
    EXPECT_EQ(w.q()->blkg_list_first, gc);
  }
  for (cgroup* x : {c, b, a}) ASSERT_EQ(w.h.rmdir(x), 0);
}

TEST_F(BlkgTest, AllocationFailureFallsBackToClosestAncestor) {
  World w;
  cgroup* a = w.mk(w.h.root(), "a");
  cgroup* b = w.mk(a, "b");
  // a's blkg is allocated first (walk goes root -> leaf), b's second: fail that one.
  kern::fault_set({.fail_site = "blkg_alloc", .fail_site_nth = 2});
  blkcg_gq* got = blkg_lookup_create(b->io, w.q());
  kern::fault_set({});
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(got->blkcg, a->io);
  EXPECT_EQ(w.lookup(b), nullptr);
  // The radix-tree insertion (GFP_NOWAIT) failing falls back the same way, with nothing
  // leaked: the half-built blkg goes through the normal release path.
  kern::fault_set({.fail_site = "blkg_tree.insert"});
  got = blkg_lookup_create(b->io, w.q());
  kern::fault_set({});
  EXPECT_EQ(got->blkcg, a->io);
  w.h.flush_frees();
  EXPECT_EQ(blkg_count(w.q()), 2);  // root + a
  EXPECT_EQ(blkg_lookup_create(b->io, w.q())->blkcg, b->io);
  ASSERT_EQ(w.h.rmdir(b), 0);
  ASSERT_EQ(w.h.rmdir(a), 0);
}

TEST_F(BlkgTest, OfflineCgroupGetsNoNewBlkg) {
  World w;
  cgroup* a = w.mk(w.h.root(), "a");
  blkcg* ba = a->io;
  css_get(ba);
  ASSERT_EQ(w.h.rmdir(a), 0);
  // Creation fails (css_tryget_online): the bio would go to the root blkg.
  EXPECT_EQ(blkg_lookup_create(ba, w.q()), w.q()->root_blkg.load());
  {
    kern::MutexGuard m(w.q()->blkcg_mutex);
    int err = 0;
    EXPECT_EQ(blkg_create(ba, w.q(), kern::GFP_NOIO, &err), nullptr);
    EXPECT_EQ(err, -ENODEV);
  }
  css_put(ba);
}

// Stages 2 and 3 of a blkg, one at a time.
TEST_F(BlkgTest, DestroyIsIdempotentAndReleaseChainRunsInOrder) {
  World w;
  cgroup* a = w.mk(w.h.root(), "a");
  cgroup* b = w.mk(a, "b");
  blkcg_gq* gb = blkg_lookup_create(b->io, w.q());
  blkcg_gq* ga = gb->parent;
  blkg_get(gb);  // like a bio in flight
  ASSERT_EQ(w.h.rmdir(b), 0);  // offline: b's blkgs destroyed
  EXPECT_FALSE(gb->hashed);
  EXPECT_FALSE(gb->online.load());
  EXPECT_EQ(w.lookup(b), nullptr);
  {
    kern::MutexGuard m(w.q()->blkcg_mutex);
    kern::SpinIrqGuard g(gb->blkcg->lock);
    blkg_destroy(gb);  // again: no effect
  }
  EXPECT_EQ(blkg_count(w.q()), 3);  // still on q->blkg_list
  blkg_put(gb);                     // 3a: last reference -> call_rcu
  EXPECT_EQ(blkg_count(w.q()), 3);
  EXPECT_EQ(kern::rcu_pending_callbacks(), 1u);
  kern::rcu_barrier();  // 3b: css put, free work queued
  EXPECT_EQ(kern::nr_pending_work(), 1u);
  EXPECT_EQ(blkg_count(w.q()), 3);
  kern::run_pending_work();  // 3c: parent put, unlink, free
  EXPECT_EQ(blkg_count(w.q()), 2);
  EXPECT_TRUE(ga->hashed);  // the parent lives on (a is online)
  ASSERT_EQ(w.h.rmdir(a), 0);
  w.h.flush_frees();
  EXPECT_EQ(blkg_count(w.q()), 1);
}

TEST_F(BlkgTest, DiskReleaseDestroysEverything) {
  World w;
  cgroup* a = w.mk(w.h.root(), "a");
  blkcg_gq* ga = blkg_lookup_create(a->io, w.q());
  ASSERT_NE(ga, nullptr);
  del_gendisk(w.disk);
  EXPECT_FALSE(disk_live(w.disk));
  EXPECT_EQ(blkg_count(w.q()), 2);  // deletion keeps blkgs; release destroys them
  disk_release(w.disk);
  w.disk = nullptr;
  w.h.flush_frees();  // blkgs freed; their queue references dropped; the queue freed
  ASSERT_EQ(w.h.rmdir(a), 0);
}

TEST_F(BlkgTest, ConcurrentLookupCreateAndRmdir) {
  World w;
  gendisk* d2 = alloc_disk(8, 48, 3);
  ASSERT_EQ(add_disk(d2), 0);
  std::vector<std::thread> ts;
  for (int i = 0; i < 3; ++i) {
    ts.emplace_back([&w, d2, i] {
      kern::TaskScope scope("io" + std::to_string(i), i);
      for (int k = 0; k < 100; ++k) {
        cgroup* c = nullptr;
        const std::string name = "c" + std::to_string(i) + "_" + std::to_string(k % 3);
        if (w.h.mkdir(w.h.root(), name, &c) != 0) continue;
        cgroup* d = nullptr;
        w.h.mkdir(c, "leaf", &d);
        for (request_queue* q : {w.q(), d2->queue}) {
          blkcg_gq* g = blkg_lookup_create(d ? d->io : c->io, q);
          EXPECT_NE(g, nullptr);
        }
        if (d) EXPECT_EQ(w.h.rmdir(d), 0);
        EXPECT_EQ(w.h.rmdir(c), 0);
      }
    });
  }
  for (auto& t : ts) t.join();
  disk_release(d2);
  w.h.flush_frees();
  EXPECT_EQ(blkg_count(w.q()), 1);
}

}  // namespace
}  // namespace blk
