// SPDX-License-Identifier: MIT
// The path-based text interface: kernel text and errnos, bad input never crashes.
#include "impl/block/cgroupfs.h"

#include <gtest/gtest.h>

#include "tests/unit/block/block_fixture.h"

#include <cerrno>

#include "impl/block/blk_stat.h"
#include "impl/kern/lockdep.h"
#include "impl/kern/report.h"

namespace blk {
namespace {

class CgroupfsTest : public BlockTest {};

TEST_F(CgroupfsTest, ReadWriteByPath) {
  cgroup_hierarchy h;
  gendisk* d = alloc_disk(8, 16, 1);
  ASSERT_EQ(add_disk(d), 0);
  cgroup* a;
  ASSERT_EQ(h.mkdir(h.root(), "a", &a), 0);
  std::string out;
  EXPECT_EQ(cgroup_file_read(h, "/a/io.stat", &out), 0);
  EXPECT_EQ(out, "");
  EXPECT_EQ(cgroup_file_write(h, "/a/cgroup.procs", "42\n"), 3);
  EXPECT_EQ(cgroup_file_write(h, "/a/cgroup.procs", "7"), 1);
  EXPECT_EQ(cgroup_file_read(h, "/a/cgroup.procs", &out), 0);
  EXPECT_EQ(out, "7\n42\n");
  bio* bi = bio_alloc(d, bio_op::kRead, 4096, 0, kern::GFP_NOIO);
  ASSERT_TRUE(bio_associate_blkg(bi, h.task_cgroup(42)->io, false));
  blk_cgroup_bio_start(bi);
  bio_put(bi);
  EXPECT_EQ(cgroup_file_read(h, "/a/io.stat", &out), 0);
  EXPECT_EQ(out, "8:16 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n");
  EXPECT_EQ(cgroup_file_read(h, "/io.stat", &out), 0);
  EXPECT_EQ(out, "8:16 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n");
  // blkio.reset_stats is a v1 file: absent here; the reset itself still clears io.stat.
  EXPECT_EQ(cgroup_file_write(h, "/a/blkio.reset_stats", "1"), -ENOENT);
  blkcg_reset_stats(a->io);
  EXPECT_EQ(cgroup_file_read(h, "/a/io.stat", &out), 0);
  EXPECT_EQ(out, "8:16 \n");
  // Move the tasks out so the cgroup can go.
  EXPECT_EQ(cgroup_file_write(h, "/cgroup.procs", "42"), 2);
  EXPECT_EQ(cgroup_file_write(h, "/cgroup.procs", "7"), 1);
  ASSERT_EQ(h.rmdir(a), 0);
  disk_release(d);
  h.flush_frees();
}

TEST_F(CgroupfsTest, ErrnosForBadPathsAndInput) {
  cgroup_hierarchy h;
  cgroup* a;
  ASSERT_EQ(h.mkdir(h.root(), "a", &a), 0);
  std::string out;
  EXPECT_EQ(cgroup_file_read(h, "/nope/io.stat", &out), -ENOENT);
  EXPECT_EQ(cgroup_file_read(h, "/a/io.nope", &out), -ENOENT);
  EXPECT_EQ(cgroup_file_read(h, "/a/blkio.reset_stats", &out), -ENOENT);  // v1 only
  EXPECT_EQ(cgroup_file_write(h, "/a/io.stat", "x"), -EINVAL);
  EXPECT_EQ(cgroup_file_write(h, "/nope/io.stat", "x"), -ENOENT);
  for (const char* bad : {"", "abc", "-1", "0", "12x", "99999999999999999999999", "4194305"})
    EXPECT_EQ(cgroup_file_write(h, "/a/cgroup.procs", bad), -EINVAL) << bad;

  EXPECT_EQ(cgroup_file_write(h, "relative/io.stat", "1"), -ENOENT);
  ASSERT_EQ(h.rmdir(a), 0);
  h.flush_frees();
}

// The legacy hierarchy has its own files: blkio.*, no io.stat or io.max.
TEST_F(CgroupfsTest, LegacyHierarchyFiles) {
  cgroup_hierarchy h(/*dfl=*/false);
  cgroup* a;
  ASSERT_EQ(h.mkdir(h.root(), "a", &a), 0);
  std::string out;
  EXPECT_EQ(cgroup_file_read(h, "/a/io.stat", &out), -ENOENT);
  EXPECT_EQ(cgroup_file_write(h, "/a/io.max", "8:16 rbps=1"), -ENOENT);
  EXPECT_EQ(cgroup_file_write(h, "/a/blkio.reset_stats", "1"), 1);
  EXPECT_EQ(cgroup_file_read(h, "/a/blkio.reset_stats", &out), -EINVAL);  // write-only
  EXPECT_EQ(cgroup_file_write(h, "/a/blkio.reset_stats", "reset"), -EINVAL);
  EXPECT_EQ(cgroup_file_read(h, "/blkio.throttle.read_bps_device", &out), 0);  // on root too
  EXPECT_EQ(out, "");
  EXPECT_EQ(cgroup_file_write(h, "/a/blkio.throttle.io_serviced", "1"), -EINVAL);
  ASSERT_EQ(h.rmdir(a), 0);
  h.flush_frees();
}

}  // namespace
}  // namespace blk
