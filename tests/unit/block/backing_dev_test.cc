// SPDX-License-Identifier: MIT
// Cgroup writeback (backing_dev.h): which bios create a cgwb, what it pins, that blkcg
// offline and disk removal kill it, and that the blkcg's blkgs are destroyed only once its
// release work ran (59b57717fff8), with the css reference held through that destruction.
#include "impl/block/backing_dev.h"

#include <gtest/gtest.h>

#include "tests/unit/block/block_fixture.h"

#include "impl/block/bio.h"
#include "impl/block/blk_core.h"
#include "impl/block/blkg.h"
#include "impl/kern/workqueue.h"

namespace blk {
namespace {

class CgwbTest : public BlockTest {};

struct World {
  cgroup_hierarchy h;
  gendisk* disk = nullptr;
  cgroup *a = nullptr, *b = nullptr;
  explicit World(bool dfl = true) : h(dfl) {
    disk = alloc_disk(8, 0, 1);
    EXPECT_EQ(add_disk(disk), 0);
    EXPECT_EQ(h.mkdir(h.root(), "a", &a), 0);
    EXPECT_EQ(h.mkdir(a, "b", &b), 0);
  }
  ~World() {
    for (const char* path : {"/a/b", "/a"})
      if (cgroup* x = h.lookup(path)) h.rmdir(x);
    if (disk) {
      del_gendisk(disk);
      disk_release(disk);
    }
    h.flush_frees();
  }
  // A write from `cg`, submitted and completed (the device completes at once).
  void write(cgroup* cg, unsigned opf, bio_op op = bio_op::kWrite) {
    bio* bi = bio_alloc(disk, op, 4096, opf, kern::GFP_NOIO);
    ASSERT_TRUE(bio_associate_blkg(bi, cg->io, false));
    submit_bio(bi);
  }
};

TEST_F(CgwbTest, OnlyWritebackWritesOfNonRootCgroupsCreateOne) {
  World w;
  w.write(w.b, 0);  // direct IO
  w.write(w.b, REQ_CGWB, bio_op::kRead);
  w.write(w.h.root(), REQ_CGWB);
  EXPECT_EQ(cgwb_count(w.b->io), 0);
  EXPECT_EQ(cgwb_count(w.h.root()->io), 0);
  w.write(w.b, REQ_CGWB);
  w.write(w.b, REQ_CGWB);  // the same wb again
  EXPECT_EQ(cgwb_count(w.b->io), 1);
  EXPECT_EQ(cgwb_count(w.a->io), 0);
  EXPECT_EQ(kern::refcount_read(w.b->io->online_pin), 2);  // base + the wb
}

TEST_F(CgwbTest, LegacyHierarchyHasNone) {
  World w(/*dfl=*/false);
  w.write(w.b, REQ_CGWB);
  EXPECT_EQ(cgwb_count(w.b->io), 0);
}

// rmdir kills the wb, but the blkgs stay until its release work ran; the work unpins and
// then puts, so the css outlives the destruction even when the frees run meanwhile.
TEST_F(CgwbTest, BlkgsOfARemovedCgroupGoWithTheReleaseWork) {
  World w;
  w.write(w.b, REQ_CGWB);
  blkcg* b = w.b->io;
  css_get(b);  // the test's own, to look at it after rmdir
  ASSERT_EQ(w.h.rmdir(w.b), 0);
  EXPECT_EQ(cgwb_count(b), 0);
  EXPECT_FALSE(b->blkgs_destroyed) << "the wb's pin holds them";
  EXPECT_EQ(kern::refcount_read(b->online_pin), 1);
  EXPECT_EQ(wb_get_create(w.disk, b), nullptr) << "no wb for an offline blkcg";
  kern::flush_workqueue(cgwb_release_wq());
  EXPECT_TRUE(b->blkgs_destroyed);
  EXPECT_EQ(kern::refcount_read(b->online_pin), 0);
  css_put(b);
}

TEST_F(CgwbTest, DiskRemovalKillsThemAndNoneIsCreatedAfter) {
  World w;
  w.write(w.b, REQ_CGWB);
  w.write(w.a, REQ_CGWB);
  EXPECT_EQ(cgwb_count(w.a->io), 1);
  del_gendisk(w.disk);
  EXPECT_EQ(cgwb_count(w.a->io), 0);
  EXPECT_EQ(cgwb_count(w.b->io), 0);
  EXPECT_EQ(wb_get_create(w.disk, w.b->io), nullptr);
  kern::flush_workqueue(cgwb_release_wq());
  EXPECT_EQ(kern::refcount_read(w.b->io->online_pin), 1);  // back to the base pin
  EXPECT_FALSE(w.b->io->blkgs_destroyed) << "online: the disk's release destroys them";
  disk_release(w.disk);
  w.disk = nullptr;
}

// Creation needs memory from a non-sleeping allocation: failure means no wb (the kernel
// falls back to the disk's root wb), never an error for the write.
TEST_F(CgwbTest, AllocationFailureMeansNoWb) {
  World w;
  kern::fault_set({.fail_site = "cgwb_create"});
  w.write(w.b, REQ_CGWB);
  kern::fault_set({});
  EXPECT_EQ(cgwb_count(w.b->io), 0);
  EXPECT_EQ(kern::refcount_read(w.b->io->online_pin), 1);
}

}  // namespace
}  // namespace blk
