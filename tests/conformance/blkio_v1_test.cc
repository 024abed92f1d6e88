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
using testing::ThrotlWorld;

class BlkioV1 : public ConformanceTest {};

TEST_F(BlkioV1, LimitFilesWriteReadAndErrors) {
  ThrotlWorld w(0, /*dfl=*/false);
  w.mkdir("/a");
  const std::string f = "/a/blkio.throttle.write_bps_device";
  EXPECT_EQ(w.write(f, "8:16 1048576\n"), 13);
  EXPECT_EQ(w.read(f), "8:16 1048576\n");
  EXPECT_EQ(w.write(f, "8:16 0"), 6);  // 0: no limit
  EXPECT_EQ(w.read(f), "");
  // iops values are stored in 32 bits: 2^32 + 5 is 5.
  const std::string fi = "/a/blkio.throttle.read_iops_device";
  EXPECT_GT(w.write(fi, "8:16 4294967301"), 0);
  EXPECT_EQ(w.read(fi), "8:16 5\n");
  EXPECT_EQ(w.write(fi, "8:16 abc"), -EINVAL);
  EXPECT_EQ(w.write(fi, "8:16"), -EINVAL);
  EXPECT_EQ(w.write(fi, "9:9 5"), -ENODEV);
  EXPECT_EQ(w.read(fi), "8:16 5\n");  // unchanged by the failures
  // The root has the files, and its limit applies (v1).
  EXPECT_GT(w.write("/blkio.throttle.read_bps_device", "8:16 4096"), 0);
  EXPECT_EQ(w.read("/blkio.throttle.read_bps_device"), "8:16 4096\n");
}

// Seconds for `count` x `bs` synchronous writes in `cg`.
double v1_dd(ThrotlWorld& w, cgroup* cg, uint64_t bs, int count) {
  Dd dd{cg, bio_op::kWrite, bs, count};
  EXPECT_TRUE(w.run(dd));
  return dd.seconds();
}

// v1 is flat: a parent's limit does not bind its child, but the root's own limit binds
// IO issued in the root.
TEST_F(BlkioV1, FlatHierarchy) {
  ThrotlWorld w(0, /*dfl=*/false);
  cgroup* p = w.mkdir("/p");
  cgroup* c = w.mkdir("/p/c");
  ASSERT_GT(w.write("/p/blkio.throttle.write_bps_device", "8:16 4096"), 0);
  EXPECT_EQ(v1_dd(w, c, 4096, 64), 0.0);  // child: not limited by its parent
  EXPECT_GT(v1_dd(w, p, 4096, 8), 6.5);   // the parent itself: 32 KiB at 4 KiB/s
  ASSERT_GT(w.write("/blkio.throttle.write_bps_device", "8:16 8192"), 0);
  EXPECT_GT(v1_dd(w, w.h.root(), 8192, 8), 6.5);  // the root is limited on v1
}

// io_service_bytes / io_serviced count every bio of a throttle-active queue, including
// groups without rules (ad7c3b41e86b); bytes once per bio, IOs per split piece; Total =
// Read + Write + Discard; the _recursive files add the descendants.
std::string serviced_after_io(bool with_bug) {
  busted().throtl_v1_stats_only_with_rules = with_bug;
  ThrotlWorld w(4096, /*dfl=*/false);
  cgroup* a = w.mkdir("/a");
  cgroup* b = w.mkdir("/a/b");
  // Activates throttling on the disk; /a itself has no rule.
  EXPECT_GT(w.write("/a/b/blkio.throttle.read_iops_device", "8:16 1000000"), 0);
  v1_dd(w, a, 8192, 2);  // 2 writes of 2 pieces each
  v1_dd(w, b, 4096, 1);
  std::string all;
  for (const char* f : {"/a/blkio.throttle.io_service_bytes", "/a/blkio.throttle.io_serviced",
                        "/a/blkio.throttle.io_service_bytes_recursive"})
    all += w.read(f);
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
