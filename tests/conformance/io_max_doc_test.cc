// SPDX-License-Identifier: MIT
// Documented semantics (spec/conformance-suites.md §4): which files exist where, io.max's
// grammar, errors and read-back (Documentation/admin-guide/cgroup-v2.rst "IO Interface
// Files"; block/blk-throttle.c tg_set_limit / tg_print_limit for the exact errors), and the
// lifecycle checklist of §4.6. Tests marked [code] pin kernel behaviour rather than ABI.
#include <map>

#include "tests/conformance/conformance_fixture.h"

namespace blk {
namespace {

using testing::Dd;
using testing::ThrotlWorld;

class IoMaxDoc : public ConformanceTest {};

// §4.1: io.stat on every cgroup including the root; io.max only below the root.
TEST_F(IoMaxDoc, FilesExistWhereDocumented) {
  ThrotlWorld w;
  w.mkdir("/a");
  EXPECT_EQ(w.read("/io.stat"), "8:16 \n");  // the root's line: the disk, no IO yet
  EXPECT_EQ(w.read("/io.max"), "errno " + std::to_string(ENOENT));
  EXPECT_EQ(w.write("/io.max", "8:16 rbps=1"), -ENOENT);
  EXPECT_EQ(w.read("/a/io.max"), "");
  EXPECT_EQ(w.read("/a/io.stat"), "");  // no blkg yet: nothing printed
}

// [doc] The example of cgroup-v2.rst, and "max" removing one limit.
TEST_F(IoMaxDoc, WriteAndReadBackTheDocumentedExample) {
  ThrotlWorld w;
  w.mkdir("/a");
  const std::string first = "8:16 rbps=2097152 wiops=120";
  EXPECT_EQ(w.write("/a/io.max", first), static_cast<long>(first.size()));
  EXPECT_EQ(w.read("/a/io.max"), "8:16 rbps=2097152 wbps=max riops=max wiops=120\n");
  EXPECT_GT(w.write("/a/io.max", "8:16 wiops=max"), 0);
  EXPECT_EQ(w.read("/a/io.max"), "8:16 rbps=2097152 wbps=max riops=max wiops=max\n");
  // All four max: the line disappears.
  EXPECT_GT(w.write("/a/io.max", "8:16 rbps=max"), 0);
  EXPECT_EQ(w.read("/a/io.max"), "");
  // Keys in any order, any subset; a repeated key: the last one wins [code].
  EXPECT_GT(w.write("/a/io.max", "8:16 wiops=7 rbps=5 rbps=6\n"), 0);
  EXPECT_EQ(w.read("/a/io.max"), "8:16 rbps=6 wbps=max riops=max wiops=7\n");
}

// [code] The exact errors of tg_set_limit and blkg_conf_open_bdev.
TEST_F(IoMaxDoc, InvalidWritesReturnTheKernelsErrno) {
  ThrotlWorld w;
  w.mkdir("/a");
  ASSERT_EQ(add_partition(w.disk, 1), 0);
  gendisk* gone = alloc_disk(8, 32, 2);
  ASSERT_EQ(add_disk(gone), 0);
  del_gendisk(gone);
  const std::map<std::string, int> cases = {
      {"8:16", -EINVAL},              // no white space after MAJ:MIN
      {"8-16 rbps=1", -EINVAL},       // not %u:%u
      {"8 :16 rbps=1", -EINVAL},      // ':' must follow the major at once
      {"8:16 rbps", -EINVAL},         // no '='
      {"8:16 rbps=", -EINVAL},        // empty value
      {"8:16 rbps=abc", -EINVAL},     // neither a number nor max
      {"8:16 rbps=-1", -EINVAL},      // the kernel's %llu takes no sign
      {"8:16 rbps=+1", -EINVAL},
      {"8:16 foo=1", -EINVAL},        // unknown key
      {"8:16 =1", -EINVAL},
      {"8:16 rbps=0", -ERANGE},       // 0 is not a limit
      {"8:16 rbps=1 wbps=0", -ERANGE},
      {"8:16 rbps=1 riops", -EINVAL},
      // %26s: a 30-character token is read as two, the second has no '='.
      {"8:16 rbps=1234567890123456789012345", -EINVAL},
      {"9:9 rbps=1", -ENODEV},        // no such device
      {"8:17 rbps=1", -ENODEV},       // a partition
      {"8:32 rbps=1", -ENODEV},       // a deleted disk
  };
  for (const auto& [input, err] : cases)
    EXPECT_EQ(w.write("/a/io.max", input), err) << '"' << input << '"';
  EXPECT_EQ(w.read("/a/io.max"), "");  // nothing got through
  disk_release(gone);
}

// [code] Odd but accepted forms: trailing junk after digits, clamping, the no-op write.
TEST_F(IoMaxDoc, AcceptedEdgeForms) {
  ThrotlWorld w;
  w.mkdir("/a");
  EXPECT_EQ(w.write("/a/io.max", "8:16\n"), 5);  // a no-op write
  EXPECT_EQ(w.write("/a/io.max", " 8: 16   rbps=100abc"), 20);  // %u skips spaces; 100
  EXPECT_EQ(w.read("/a/io.max"), "8:16 rbps=100 wbps=max riops=max wiops=max\n");
  // iops above UINT_MAX clamp to UINT_MAX, which means max; U64_MAX bps means max.
  EXPECT_GT(w.write("/a/io.max", "8:16 rbps=max riops=99999999999 wbps=18446744073709551615"), 0);
  EXPECT_EQ(w.read("/a/io.max"), "");
  // Value 1 is accepted (io.low's "reject 1" patch does not apply) [code].
  EXPECT_GT(w.write("/a/io.max", "8:16 wiops=1"), 0);
  EXPECT_EQ(w.read("/a/io.max"), "8:16 rbps=max wbps=max riops=max wiops=1\n");
}

// §4.6: a rejected write changes no limit, but its side effects stay: throttling is
// active on the disk and the blkgs down to the cgroup exist (an empty io.stat line).
TEST_F(IoMaxDoc, RejectedWriteKeepsLimitsButCreatesBlkgs) {
  ThrotlWorld w;
  w.mkdir("/a");
  w.mkdir("/a/b");
  EXPECT_FALSE(blk_throtl_activated(w.disk->queue));
  EXPECT_EQ(w.write("/a/b/io.max", "8:16 rbps=0"), -ERANGE);
  EXPECT_TRUE(blk_throtl_activated(w.disk->queue));
  EXPECT_EQ(w.read("/a/b/io.max"), "");
  EXPECT_EQ(w.read("/a/b/io.stat"), "8:16 \n");
  EXPECT_EQ(w.read("/a/io.stat"), "8:16 \n");
}

// §4.3 step 4 [code]: the carry-over runs before the tokens are parsed, so even a rejected
// write re-bases the counters, without the slice restart of an accepted write: the
// credit of the time already waited is counted again. The waiting bio keeps its dispatch
// time; the next one profits from what the first dispatch's trim (which floors the
// counter at 0) leaves of the credit. Two 1 MiB writes at 512 KiB/s take 4.0 s; with a
// rejected write at 1 s, 3.9 s.
double rejected_write_at_one_second(bool reject) {
  ThrotlWorld w;
  cgroup* a = w.mkdir("/a");
  EXPECT_GT(w.set_limit("/a", "wbps=524288"), 0);
  Dd dd{a, bio_op::kWrite, 1 << 20, 2};
  w.run_until_time({&dd}, kern::jiffies() + 1000);
  if (reject) EXPECT_EQ(w.set_limit("/a", "wbps=0"), -ERANGE);
  EXPECT_TRUE(w.run(dd));
  EXPECT_EQ(w.read("/a/io.max"), "8:16 rbps=max wbps=524288 riops=max wiops=max\n");
  return dd.seconds();
}

TEST_F(IoMaxDoc, RejectedWriteStillCarriesOver) {
  const double plain = rejected_write_at_one_second(false);
  const double rejected = rejected_write_at_one_second(true);
  EXPECT_NEAR(plain, 4.0, 0.01);
  EXPECT_NEAR(rejected, 3.9, 0.01) << "the rejected write's carry-over changed nothing";
}

// §4.4 [code]: hierarchical enforcement. Parent 4 KiB/s, child 8 KiB/s, 8 KiB requests in
// the child: the parent's rate rules (Kemeng Shi, Nov 2022: the bug gave 8 KiB/s).
double child_rate_under_parent() {
  ThrotlWorld w;
  cgroup* child = (w.mkdir("/p"), w.mkdir("/p/c"));
  EXPECT_GT(w.set_limit("/p", "wbps=4096"), 0);
  EXPECT_GT(w.set_limit("/p/c", "wbps=8192"), 0);
  Dd dd{child, bio_op::kWrite, 8192, 10};
  EXPECT_TRUE(w.run(dd));
  return 10 * 8192 / dd.seconds();
}

TEST_F(IoMaxDoc, ParentLimitBindsTheChild) {
  const double rate = child_rate_under_parent();
  EXPECT_GT(rate, 4096 * 0.9);
  EXPECT_LT(rate, 4096 * 1.15);  // over 20 s one slice of burst is well inside 15 %
}

TEST_F(IoMaxDoc, PlantedParentSkipsBpsLetsTheChildExceed) {
  busted().throtl_parent_skips_bps = true;
  EXPECT_GT(child_rate_under_parent(), 4096 * 1.5) << "the child ran at its own 8 KiB/s";
}

// §4.4 [code]: a child created under a limited parent is throttled from birth
// (throtl_pd_online updates has_rules), and the root is never limited.
TEST_F(IoMaxDoc, NewChildInheritsRulesAndRootIsFree) {
  ThrotlWorld w;
  w.mkdir("/p");
  ASSERT_GT(w.set_limit("/p", "wiops=10"), 0);
  cgroup* late = w.mkdir("/p/late");
  Dd dd{late, bio_op::kWrite, 4096, 21};
  ASSERT_TRUE(w.run(dd));
  EXPECT_GE(dd.seconds(), 1.9);  // 21 IOs at 10/s: one slice of budget, then 1/100 ms
  Dd root{nullptr, bio_op::kWrite, 4096, 1000};
  ASSERT_TRUE(w.run(root));
  EXPECT_EQ(root.end - root.start, 0u);
}

// §4.2 [code]: io.stat counts a throttled bio when it is dispatched, not when queued;
// a discard is charged 512 bytes against bps but counted at its size in dbytes.
TEST_F(IoMaxDoc, ThrottledBiosReachIoStatWhenDispatched) {
  ThrotlWorld w;
  cgroup* a = w.mkdir("/a");
  ASSERT_GT(w.set_limit("/a", "wbps=1024"), 0);
  Dd first{a, bio_op::kWrite, 1024, 1}, second{a, bio_op::kWrite, 4096, 1};
  ASSERT_TRUE(w.run(first));  // one slice of budget is 102 B: it waits about 0.9 s
  EXPECT_EQ(w.read("/a/io.stat"),
            "8:16 rbytes=0 wbytes=1024 rios=0 wios=1 dbytes=0 dios=0\n");
  w.submit_one(second);
  EXPECT_FALSE(second.cur.done);
  EXPECT_EQ(w.read("/a/io.stat"),
            "8:16 rbytes=0 wbytes=1024 rios=0 wios=1 dbytes=0 dios=0\n");
  ASSERT_TRUE(w.run(second));
  EXPECT_EQ(w.read("/a/io.stat"),
            "8:16 rbytes=0 wbytes=5120 rios=0 wios=2 dbytes=0 dios=0\n");
  // 1 MiB of discard under a 1 KiB/s limit: charged as 512 bytes.
  Dd discard{a, bio_op::kDiscard, 1 << 20, 1};
  ASSERT_TRUE(w.run(discard));
  EXPECT_LT(discard.seconds(), 1.0);
  EXPECT_EQ(w.read("/a/io.stat"),
            "8:16 rbytes=0 wbytes=5120 rios=0 wios=2 dbytes=1048576 dios=1\n");
}

// §4.6 / spec §7.6: rmdir with bios queued in the group releases them at once through the
// parent, without limits (the 2026 fix forces the parent's dispatch).
double queued_then_rmdir(ThrotlWorld& w) {
  cgroup* leaf = (w.mkdir("/p"), w.mkdir("/p/leaf"));
  EXPECT_GT(w.set_limit("/p/leaf", "wbps=1024"), 0);
  Dd big{leaf, bio_op::kWrite, 1 << 20, 1};  // about 1000 s at 1 KiB/s
  const uint64_t t0 = kern::jiffies();
  w.run_until_time({&big}, t0 + 100);
  EXPECT_FALSE(big.cur.done);
  // The task leaves; the cgroup goes. Its blkg is destroyed: pd offline -> flush.
  EXPECT_EQ(w.h.rmdir(leaf), 0);
  w.made.pop_back();
  EXPECT_TRUE(w.run(big));
  EXPECT_EQ(big.cur.status, 0);
  return static_cast<double>(big.end - t0 - 100) / kern::hz();
}

TEST_F(IoMaxDoc, RmdirReleasesQueuedBiosAtOnce) {
  ThrotlWorld w;
  EXPECT_LE(queued_then_rmdir(w), 0.002);  // the parent's timer fires at the next tick
}

TEST_F(IoMaxDoc, PlantedFlushOwnTimerDelaysReleasedBios) {
  busted().throtl_flush_own_timer = true;
  ThrotlWorld w;
  // The group's own timer has no children to dispatch; the parent's stale timer (armed
  // at most 8 slices ahead) releases the bios: up to 0.8 s late.
  EXPECT_GT(queued_then_rmdir(w), 0.1);
}

// §4.6 (spec §5 R3, bug #38): activating throttling, then removing the disk, frees the
// per-disk throttle data; with the 2025 leak planted the data outlives the disk.
TEST_F(IoMaxDoc, DiskRemovalFreesThrottleData) {
  {
    ThrotlWorld w;
    w.mkdir("/a");
    ASSERT_GT(w.set_limit("/a", "rbps=1"), 0);
  }
  EXPECT_EQ(kern::alloc_live_by_type().count("blk::throtl_data"), 0u);
}

TEST_F(IoMaxDoc, PlantedExitChecksBitLeaksThrottleData) {
  busted().throtl_exit_checks_bit = true;
  throtl_data* td;
  {
    ThrotlWorld w;
    w.mkdir("/a");
    ASSERT_GT(w.set_limit("/a", "rbps=1"), 0);
    td = w.disk->queue->td.load();
  }
  EXPECT_EQ(kern::alloc_live_by_type().count("blk::throtl_data"), 1u);
  kern::kfree(td);  // clean up what the planted bug leaked (its timers never ran)
}

}  // namespace
}  // namespace blk
