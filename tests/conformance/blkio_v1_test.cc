// SPDX-License-Identifier: MIT
// cgroup v1 blk-throttle files (spec/kernel-blkcg.md §5.4; block/blk-throttle.c
// throtl_legacy_files, tg_set_conf, blkg_rwstat printing): limits by "MAJ:MIN VALUE",
// 0 removing a limit, iops truncated to 32 bits; the flat v1 hierarchy (a parent's limit
// does not bind its children, and the root can be limited); io_service_bytes and
// io_serviced for every bio of a throttle-active queue, limited or not (ad7c3b41e86b).
#include "tests/conformance/conformance_fixture.h"

namespace blk {
namespace {

using testing::Dd;

class BlkioV1 : public ConformanceTest {};

TEST_F(BlkioV1, LimitFilesWriteReadAndErrors) {
  cgroup_hierarchy h(/*dfl=*/false);
  gendisk* disk = alloc_disk(8, 16, 1);
  ASSERT_EQ(add_disk(disk), 0);
  cgroup* a;
  ASSERT_EQ(h.mkdir(h.root(), "a", &a), 0);
  std::string out;
  const std::string f = "/a/blkio.throttle.write_bps_device";
  EXPECT_EQ(cgroup_file_write(h, f, "8:16 1048576\n"), 13);
  ASSERT_EQ(cgroup_file_read(h, f, &out), 0);
  EXPECT_EQ(out, "8:16 1048576\n");
  EXPECT_EQ(cgroup_file_write(h, f, "8:16 0"), 6);  // 0: no limit
  ASSERT_EQ(cgroup_file_read(h, f, &out), 0);
  EXPECT_EQ(out, "");
  // iops values are stored in 32 bits: 2^32 + 5 is 5.
  const std::string fi = "/a/blkio.throttle.read_iops_device";
  EXPECT_GT(cgroup_file_write(h, fi, "8:16 4294967301"), 0);
  ASSERT_EQ(cgroup_file_read(h, fi, &out), 0);
  EXPECT_EQ(out, "8:16 5\n");
  EXPECT_EQ(cgroup_file_write(h, fi, "8:16 abc"), -EINVAL);
  EXPECT_EQ(cgroup_file_write(h, fi, "8:16"), -EINVAL);
  EXPECT_EQ(cgroup_file_write(h, fi, "9:9 5"), -ENODEV);
  ASSERT_EQ(cgroup_file_read(h, fi, &out), 0);
  EXPECT_EQ(out, "8:16 5\n");  // unchanged by the failures
  // The root has the files, and its limit applies (v1).
  EXPECT_GT(cgroup_file_write(h, "/blkio.throttle.read_bps_device", "8:16 4096"), 0);
  ASSERT_EQ(cgroup_file_read(h, "/blkio.throttle.read_bps_device", &out), 0);
  EXPECT_EQ(out, "8:16 4096\n");
  ASSERT_EQ(h.rmdir(a), 0);
  del_gendisk(disk);
  disk_release(disk);
  h.flush_frees();
}

// Runs a dd of `count` x `bs` writes in `cg` on a v1 world and returns seconds.
double v1_dd(cgroup_hierarchy& h, gendisk* disk, cgroup* cg, uint64_t bs, int count) {
  // ThrotlWorld's driver, without its hierarchy: the same step rule.
  Dd dd{cg, bio_op::kWrite, bs, count};
  for (;;) {
    while (dd.issued < dd.count && (dd.issued == 0 || dd.cur.done)) {
      bio* b = bio_alloc(disk, dd.op, dd.bs, 0, kern::GFP_NOIO);
      bio_associate_blkg(b, cg->io, false);
      dd.cur = testing::Io{};
      b->bi_end_io = testing::io_end;
      b->bi_private = &dd.cur;
      if (dd.issued == 0) dd.start = kern::jiffies();
      ++dd.issued;
      submit_bio(b);
    }
    if (dd.finished()) break;
    if (kern::run_pending_work() == 0) kern::advance_jiffies(1);
  }
  (void)h;
  return static_cast<double>(dd.cur.done_at - dd.start) / kern::hz();
}

// v1 is flat: a parent's limit does not bind its child, but the root's own limit binds
// IO issued in the root.
TEST_F(BlkioV1, FlatHierarchy) {
  cgroup_hierarchy h(/*dfl=*/false);
  gendisk* disk = alloc_disk(8, 16, 1);
  ASSERT_EQ(add_disk(disk), 0);
  cgroup *p, *c;
  ASSERT_EQ(h.mkdir(h.root(), "p", &p), 0);
  ASSERT_EQ(h.mkdir(p, "c", &c), 0);
  ASSERT_GT(cgroup_file_write(h, "/p/blkio.throttle.write_bps_device", "8:16 4096"), 0);
  EXPECT_EQ(v1_dd(h, disk, c, 4096, 64), 0.0);  // child: not limited by its parent
  EXPECT_GT(v1_dd(h, disk, p, 4096, 8), 6.5);   // the parent itself: 32 KiB at 4 KiB/s
  ASSERT_GT(cgroup_file_write(h, "/blkio.throttle.write_bps_device", "8:16 8192"), 0);
  EXPECT_GT(v1_dd(h, disk, h.root(), 8192, 8), 6.5);  // the root is limited on v1
  ASSERT_EQ(h.rmdir(c), 0);
  ASSERT_EQ(h.rmdir(p), 0);
  del_gendisk(disk);
  disk_release(disk);
  h.flush_frees();
}

// io_service_bytes / io_serviced count every bio of a throttle-active queue, including
// groups without rules (ad7c3b41e86b); bytes once per bio, IOs per split piece; Total =
// Read + Write + Discard; the _recursive files add the descendants.
std::string serviced_after_io(bool with_bug) {
  busted().throtl_v1_stats_only_with_rules = with_bug;
  cgroup_hierarchy h(/*dfl=*/false);
  gendisk* disk = alloc_disk(8, 16, 1);
  EXPECT_EQ(add_disk(disk), 0);
  disk->max_io_bytes = 4096;
  cgroup *a, *b;
  EXPECT_EQ(h.mkdir(h.root(), "a", &a), 0);
  EXPECT_EQ(h.mkdir(a, "b", &b), 0);
  // Activates throttling on the disk; /a itself has no rule.
  EXPECT_GT(cgroup_file_write(h, "/a/b/blkio.throttle.read_iops_device", "8:16 1000000"), 0);
  v1_dd(h, disk, a, 8192, 2);  // 2 writes of 2 pieces each
  v1_dd(h, disk, b, 4096, 1);
  std::string out, all;
  for (const char* f : {"/a/blkio.throttle.io_service_bytes", "/a/blkio.throttle.io_serviced",
                        "/a/blkio.throttle.io_service_bytes_recursive"}) {
    EXPECT_EQ(cgroup_file_read(h, f, &out), 0);
    all += out;
  }
  EXPECT_EQ(h.rmdir(b), 0);
  EXPECT_EQ(h.rmdir(a), 0);
  del_gendisk(disk);
  disk_release(disk);
  h.flush_frees();
  return all;
}

TEST_F(BlkioV1, ServicedCountsGroupsWithoutRules) {
  EXPECT_EQ(serviced_after_io(false),
            // io_service_bytes of /a: 2 x 8 KiB written, async
            "8:16 Read 0\n8:16 Write 16384\n8:16 Sync 0\n8:16 Async 16384\n8:16 Discard 0\n"
            "8:16 Total 16384\nTotal 16384\n"
            // io_serviced: 4 pieces
            "8:16 Read 0\n8:16 Write 4\n8:16 Sync 0\n8:16 Async 4\n8:16 Discard 0\n"
            "8:16 Total 4\nTotal 4\n"
            // recursive bytes: plus /a/b's 4 KiB
            "8:16 Read 0\n8:16 Write 20480\n8:16 Sync 0\n8:16 Async 20480\n8:16 Discard 0\n"
            "8:16 Total 20480\nTotal 20480\n");
}

TEST_F(BlkioV1, PlantedStatsOnlyWithRulesLosesUnlimitedGroups) {
  const std::string s = serviced_after_io(true);
  EXPECT_NE(s.find("8:16 Write 0\n"), std::string::npos) << s;
}

}  // namespace
}  // namespace blk
