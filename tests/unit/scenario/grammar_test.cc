// SPDX-License-Identifier: MIT
// The oracle's configuration grammars (impl/oracle/model.h), written apart from the
// kernel-style parsers in impl/block, and their agreement with those parsers on the
// cases each rule is about. fuzz_iomax compares the two on every input; these pin the
// rules themselves.
#include <gtest/gtest.h>

#include <cerrno>
#include <string>

#include "impl/block/cgroupfs.h"
#include "impl/block/genhd.h"
#include "impl/kern/workqueue.h"
#include "impl/oracle/model.h"

namespace {

TEST(V1LimitGrammar, ScanfLlu) {
  auto ok = [](const std::string& in, uint64_t v) {
    const oracle::V1LimitParse p = oracle::v1_limit_parse(in);
    EXPECT_TRUE(p.dev_ok) << in;
    EXPECT_EQ(p.err, 0) << in;
    EXPECT_EQ(p.value, v) << in;
  };
  ok("8:16 1048576", 1048576);
  ok("8:16    \t7 trailing words are ignored", 7);
  ok("8:16 12abc", 12);
  ok("8:16 0", 0);                      // the caller turns 0 into "no limit"
  ok("8:16 18446744073709551616", 0);   // 2^64 wraps, as simple_strntoull does
  ok("8:16 18446744073709551617", 1);
  ok(" 8: 16 5", 5);                    // "%u:%u" skips white space before each number
  auto einval = [](const std::string& in, bool dev_ok) {
    const oracle::V1LimitParse p = oracle::v1_limit_parse(in);
    EXPECT_EQ(p.dev_ok, dev_ok) << in;
    EXPECT_EQ(p.err, EINVAL) << in;
  };
  einval("8:16 +5", true);   // %llu takes no sign
  einval("8:16 -5", true);
  einval("8:16 max", true);  // v1 has no "max"
  einval("8:16 ", true);
  einval("8:16", false);     // the device must be followed by white space
  einval("8-16 5", false);
  einval("", false);
}

// The implementation's v1 files against the grammar on the same cases, and the read-back
// rules: 0 is "no limit" (nothing printed), iops files keep the low 32 bits.
TEST(V1LimitGrammar, ImplementationAgrees) {
  blk::cgroup_hierarchy h(false);
  blk::gendisk* disk = blk::alloc_disk(8, 16, 1);
  ASSERT_EQ(blk::add_disk(disk), 0);
  blk::cgroup* a;
  ASSERT_EQ(h.mkdir(h.root(), "a", &a), 0);
  struct Case {
    const char* file;
    std::string in;
    long ret;
    std::string readback;
  } cases[] = {
      {"read_bps_device", "8:16 1048576", 12, "8:16 1048576\n"},
      {"read_bps_device", "8:16 0", 6, ""},
      {"write_bps_device", "8:16 +5", -EINVAL, ""},
      {"write_bps_device", "8:16 18446744073709551617", 25, "8:16 1\n"},
      {"read_iops_device", "8:16 4294967297", 15, "8:16 1\n"},
      {"write_iops_device", "8:16 4294967296", 15, "8:16 0\n"},  // an iops limit of 0
      {"write_iops_device", "8:17 5", -ENODEV, "8:16 0\n"},       // no such disk
  };
  for (const Case& c : cases) {
    const std::string path = std::string("/a/blkio.throttle.") + c.file;
    EXPECT_EQ(blk::cgroup_file_write(h, path, c.in), c.ret) << path << " <- " << c.in;
    std::string text;
    blk::cgroup_file_read(h, path, &text);
    EXPECT_EQ(text, c.readback) << path << " <- " << c.in;
  }
  blk::del_gendisk(disk);
  kern::run_pending_work();
  blk::disk_release(disk);
  ASSERT_EQ(h.rmdir(a), 0);
  h.flush_frees();
  kern::run_pending_work();
}

}  // namespace
