// SPDX-License-Identifier: MIT
// oracle::check_refcounts: exact counts on a clean tree, and a planted extra reference
// (the shape of a leaked bio or destroy-loop reference) on a blkg and on a css is named
// with both counts; putting it back makes the check pass again.
#include "impl/oracle/ref_check.h"

#include <gtest/gtest.h>

#include "tests/unit/block/block_fixture.h"

#include "impl/block/backing_dev.h"
#include "impl/block/blkg.h"
#include "impl/kern/workqueue.h"

namespace blk {
namespace {

class RefCheckTest : public BlockTest {};

struct Tree {
  cgroup_hierarchy h;
  gendisk* disk = alloc_disk(8, 16, 1);
  cgroup* a = nullptr;
  cgroup* b = nullptr;
  blkcg_gq* ga = nullptr;
  blkcg_gq* gb = nullptr;
  Tree() {
    EXPECT_EQ(add_disk(disk), 0);
    EXPECT_EQ(h.mkdir(h.root(), "a", &a), 0);
    EXPECT_EQ(h.mkdir(a, "b", &b), 0);
    gb = blkg_lookup_create(b->io, disk->queue);  // creates /a's blkg on the way
    kern::rcu_read_lock();
    ga = blkg_lookup(a->io, disk->queue);
    kern::rcu_read_unlock();
  }
  ~Tree() {
    del_gendisk(disk);
    disk_release(disk);
    if (b) h.rmdir(b);
    h.rmdir(a);
    h.flush_frees();
  }
  std::string check() { return oracle::check_refcounts(h, {disk}, {"/", "/a", "/a/b"}); }
};

TEST_F(RefCheckTest, CleanTreeHasExactCounts) {
  Tree t;
  ASSERT_NE(t.gb, nullptr);
  ASSERT_NE(t.ga, nullptr);
  EXPECT_EQ(t.check(), "");
}

TEST_F(RefCheckTest, ExtraBlkgReferenceIsNamed) {
  Tree t;
  blkg_get(t.ga);  // planted: as if a bio kept it
  EXPECT_EQ(t.check(),
            "blkg (/a, 8:16) holds 3 reference(s), expected 2 (1 existence + 1 child blkg(s)) "
            "once every bio is gone");
  blkg_put(t.ga);
  EXPECT_EQ(t.check(), "");
}

TEST_F(RefCheckTest, ExtraCssReferenceIsNamed) {
  Tree t;
  css_get(t.b->io);  // planted
  EXPECT_EQ(t.check(),
            "css of /a/b holds 3 reference(s), expected 2 (1 base + 0 child cgroup(s) + 1 "
            "blkg(s) + 0 writeback(s)) once every bio is gone");
  css_put(t.b->io);
  EXPECT_EQ(t.check(), "");
}

// A cgroup writeback holds a css reference until its release work: counted while it
// lives, and gone (with the reference) once the disk's removal killed it and the work ran.
TEST_F(RefCheckTest, CgroupWritebackIsCounted) {
  Tree t;
  bdi_writeback* wb = wb_get_create(t.disk, t.b->io);
  ASSERT_NE(wb, nullptr);
  wb_put(wb);
  EXPECT_EQ(cgwb_count(t.b->io), 1);
  EXPECT_EQ(t.check(), "");
  cgwb_bdi_unregister(t.disk);
  EXPECT_EQ(cgwb_count(t.b->io), 0);
  EXPECT_NE(t.check(), "") << "the killed wb's reference is held until its work runs";
  kern::flush_workqueue(cgwb_release_wq());
  EXPECT_EQ(t.check(), "");
}

TEST_F(RefCheckTest, DestroyedBlkgStillReferencedIsNamed) {
  Tree t;
  // A bio's reference that outlives the cgroup: after rmdir the blkg is destroyed (its
  // existence reference killed) but stays on the queue's list while referenced.
  blkg_get(t.gb);
  EXPECT_EQ(t.h.rmdir(t.b), 0);
  t.b = nullptr;  // freed once its blkg goes
  t.h.flush_frees();
  EXPECT_NE(t.check().find("blkg (/a/b, 8:16) holds 1 reference(s), expected 0"), std::string::npos)
      << t.check();
  blkg_put(t.gb);
  t.h.flush_frees();
  EXPECT_EQ(oracle::check_refcounts(t.h, {t.disk}, {"/", "/a"}), "");
}

}  // namespace
}  // namespace blk
