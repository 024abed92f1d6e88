// SPDX-License-Identifier: MIT
// The bio path and the punt path: punted bios wait on their blkg's work item, are
// accounted when it runs, keep the blkg alive meanwhile; bios to a deleted disk get -EIO.
#include "impl/block/blk_core.h"

#include <gtest/gtest.h>

#include "tests/unit/block/block_fixture.h"

#include <cerrno>

#include "impl/block/blk_stat.h"
#include "impl/kern/lockdep.h"
#include "impl/kern/report.h"

namespace blk {
namespace {

class PuntTest : public BlockTest {};

TEST_F(PuntTest, PuntedBiosRunFromTheBlkgWork) {
  cgroup_hierarchy h;
  gendisk* d = alloc_disk(8, 0, 1);
  ASSERT_EQ(add_disk(d), 0);
  cgroup* a;
  ASSERT_EQ(h.mkdir(h.root(), "a", &a), 0);
  for (int i = 0; i < 3; ++i) {
    bio* b = bio_alloc(d, bio_op::kWrite, 4096, REQ_CGROUP_PUNT, kern::GFP_NOIO);
    ASSERT_TRUE(bio_associate_blkg(b, a->io, false));
    submit_bio(b);
  }
  EXPECT_EQ(blkcg_print_stat(h, a), "8:0 \n");  // queued, not submitted yet
  ASSERT_EQ(h.rmdir(a), 0);                     // the queued bios keep the blkg alive
  EXPECT_GE(kern::run_pending_work(), 1);
  // Root punts are submitted at once.
  bio* r = bio_alloc(d, bio_op::kRead, 512, REQ_CGROUP_PUNT, kern::GFP_NOIO);
  ASSERT_TRUE(bio_associate_blkg(r, h.root()->io, false));
  submit_bio(r);
  std::string root_stat = blkcg_print_stat(h, h.root());
  EXPECT_EQ(root_stat, "8:0 rbytes=512 wbytes=12288 rios=1 wios=3 dbytes=0 dios=0\n");
  disk_release(d);
  h.flush_frees();
}

TEST_F(PuntTest, BioToDeletedDiskCompletesWithEio) {
  cgroup_hierarchy h;
  gendisk* d = alloc_disk(8, 0, 1);
  ASSERT_EQ(add_disk(d), 0);
  del_gendisk(d);
  bio* b = bio_alloc(d, bio_op::kRead, 512, 0, kern::GFP_NOIO);
  ASSERT_TRUE(bio_associate_blkg(b, h.root()->io, false));
  EXPECT_FALSE(disk_live(d));
  submit_bio_noacct(b);  // completed with -EIO (and freed): never reaches the device
  EXPECT_EQ(d->queue->disk_ios[BLKG_IOSTAT_READ].load(), 0u);
  disk_release(d);
  h.flush_frees();
}

}  // namespace
}  // namespace blk
