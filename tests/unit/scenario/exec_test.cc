// SPDX-License-Identifier: MIT
// The executor and the oracle beside it: a readable scenario runs clean; a wrong
// expectation, a planted stats bug and a planted io.max bug are each reported; random
// decoded inputs run without any report (the fuzz_ops property, as a test).
#include <gtest/gtest.h>

#include <random>

#include "impl/block/blk_cgroup.h"
#include "impl/block/blk_testpol.h"
#include "impl/block/busted.h"
#include "impl/block/genhd.h"
#include "impl/kern/report.h"
#include "impl/scenario/binary.h"
#include "impl/scenario/exec.h"
#include "impl/scenario/text.h"

namespace scenario {
namespace {

Scenario parse(const char* text) {
  Scenario s;
  ParseError err;
  EXPECT_TRUE(parse_text(text, "test.scn", &s, &err)) << err.str();
  return s;
}

const char* const kThrottleStory = R"(# a throttled write, a stats read, a removal, a deletion
disk_alloc d0 8:16
disk_add d0
mkdir /a
mkdir /a/b
write /a/b/io.max "8:16 wbps=4096" => 14
bio b0 d0 write 8192
assoc b0 /a/b
submit b0 => pending
read /a/b/io.stat => "8:16 \n"
wait b0 => 0
read /a/b/io.stat => "8:16 rbytes=0 wbytes=8192 rios=0 wios=1 dbytes=0 dios=0\n"
read /a/io.stat => "8:16 rbytes=0 wbytes=8192 rios=0 wios=1 dbytes=0 dios=0\n"
read /io.stat => "8:16 rbytes=0 wbytes=8192 rios=0 wios=1 dbytes=0 dios=0\n"
read /a/b/io.max => "8:16 rbps=max wbps=4096 riops=max wiops=max\n"
write /a/b/io.max "8:16 wbps=0" => -ERANGE
write /io.max "8:16 wbps=1" => -ENOENT
bio b1 d0 write 65536
assoc b1 /a/b
submit b1 => pending
disk_del d0
wait b1 => -EIO
rmdir /a/b => 0
write /a/io.max "8:16 rbps=1" => -ENODEV
disk_release d0
rmdir /a => 0
)";

TEST(ScenarioExec, ThrottleStoryRunsClean) {
  kern::ReportCapture cap;
  const ExecStats st = run_scenario(parse(kThrottleStory));
  EXPECT_EQ(st.ops, 25u);
  EXPECT_EQ(st.expectations, 15u);
  EXPECT_GT(st.model_checks, 5u);
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

TEST(ScenarioExec, WrongExpectationIsReported) {
  kern::ReportCapture cap;
  run_scenario(parse("mkdir /a\nmkdir /a => 0\n"));  // the second gives -EEXIST
  ASSERT_EQ(cap.count(kern::ReportKind::kOracle), 1u) << cap.dump();
  EXPECT_NE(cap.dump().find("got -EEXIST, expected 0"), std::string::npos) << cap.dump();
}

// The model's stats conservation catches the pre-9d230c09964e flush (the parent's set
// not re-queued): the grandparent misses the leaf's IO.
TEST(ScenarioExec, ModelCatchesPlantedNoParentRequeue) {
  const char* text = R"(disk_alloc d0 8:16
disk_add d0
mkdir /a
mkdir /a/b
mkdir /a/b/c
bio b0 d0 write 4096
assoc b0 /a/b/c
submit b0
flush /a/b
read /a/io.stat
)";
  {
    kern::ReportCapture cap;
    run_scenario(parse(text));
    EXPECT_EQ(cap.size(), 0u) << cap.dump();
  }
  blk::busted().no_parent_requeue = true;
  kern::ReportCapture cap;
  run_scenario(parse(text));
  blk::busted().no_parent_requeue = false;
  EXPECT_TRUE(cap.has(kern::ReportKind::kOracle)) << cap.dump();
  EXPECT_NE(cap.dump().find("io.stat of /a"), std::string::npos) << cap.dump();
}

// The io.max grammar oracle catches a planted parser difference: v1's "0 means no limit"
// leaking into io.max would accept what the kernel rejects with ERANGE. Planted here by
// checking the model itself against a scenario that expects the kernel's answer.
TEST(ScenarioExec, ModelPredictsIoMaxErrnos) {
  kern::ReportCapture cap;
  run_scenario(parse(R"(disk_alloc d0 8:16
disk_add d0
mkdir /a
write /a/io.max "8:16" => -EINVAL
write /a/io.max "8:16 rbps=0" => -ERANGE
write /a/io.max "8:16 rbps=-1" => -EINVAL
write /a/io.max "8:16 rbps=100abc" => 16
write /a/io.max "9:9 rbps=1" => -ENODEV
write /a/io.max "8:16 rbps=1234567890123456789012345" => -EINVAL
read /a/io.max => "8:16 rbps=100 wbps=max riops=max wiops=max\n"
)"));
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

// Random inputs through the binary decoder, executed with the oracle: no report. This is
// what fuzz_ops does, for a few hundred seeds, in the gate.
TEST(ScenarioExec, RandomInputsRunClean) {
  std::mt19937_64 rng(777);
  kern::ReportCapture cap;
  for (int iter = 0; iter < 300; ++iter) {
    std::vector<uint8_t> bytes(2 + rng() % 300);
    for (auto& b : bytes) b = static_cast<uint8_t>(rng());
    bytes[0] = kBinaryVersion;
    Scenario s = decode_binary(bytes.data(), bytes.size());
    strip_expectations(&s);  // random expectations are noise; fuzzers check the oracle
    run_scenario(s);
    ASSERT_EQ(cap.size(), 0u) << "input " << iter << ":\n" << to_text(s) << "\n" << cap.dump();
  }
}

}  // namespace
}  // namespace scenario

namespace scenario {
namespace {

// The fuzz_ops finding, planted back: mainline's unregister without waiting for pending
// blkg frees is reported (a WARN where the kernel would dereference a NULL slot).
TEST(ScenarioExec, PlantedUnregisterWithoutWaitingIsReported) {
  const char* text = "disk_alloc d0 8:16\ndisk_add d0\npol_register\npol_activate d0\n"
                     "disk_release d0\npol_unregister\n";
  {
    kern::ReportCapture cap;
    run_scenario(parse(text));
    EXPECT_EQ(cap.size(), 0u) << cap.dump();
  }
  blk::busted().unregister_no_wait = true;
  kern::ReportCapture cap;
  run_scenario(parse(text));
  blk::busted().unregister_no_wait = false;
  EXPECT_TRUE(cap.has(kern::ReportKind::kWarn)) << cap.dump();
}

// The fuzz_sched finding (corpus/regressions/unregister-rmdir-pins-blkg.scn): a pd whose
// blkg an rmdir still pins when the policy goes. Unregister answers -EBUSY now; planted
// back (neither the wait nor the count), the free work meets the empty slot.
TEST(ScenarioExec, PlantedUnregisterUnderAPinnedPdIsReported) {
  const char* text =
      "schedule list\npol_register\ndisk_alloc d0 8:0\ndisk_add d0\nmkdir /a\nmkdir /a/b\n"
      "bio b0 d0 read 512\nassoc b0 /a/b\nsubmit b0\nT1: rmdir /a/b\nT2: pol_activate d0\nrun\n"
      "disk_release d0\npol_unregister => -EBUSY\npreempt T0 op=11 seam=2 T1\n"
      "preempt T1 op=9 seam=2 T2\npreempt T2 op=10 seam=14 T1\n";
  {
    kern::ReportCapture cap;
    run_scenario(parse(text));
    EXPECT_EQ(cap.size(), 0u) << cap.dump();
  }
  blk::busted().unregister_no_wait = true;
  kern::ReportCapture cap;
  run_scenario(parse(text));
  blk::busted().unregister_no_wait = false;
  EXPECT_TRUE(cap.has(kern::ReportKind::kWarn)) << cap.dump();
}

}  // namespace
}  // namespace scenario

#include <filesystem>
#include <fstream>
#include <iterator>

namespace scenario {
namespace {

// Every regression scenario that names a planted bug ("--busted=NAME" in its comments)
// replays clean as it is, and reports something with that bug planted: the reproducer
// still reproduces what it was minimized from.
TEST(ScenarioExec, RegressionsReproduceTheirPlantedBugs) {
  int checked = 0;
  for (const auto& e : std::filesystem::directory_iterator(BLKCG_SOURCE_DIR "/corpus/regressions")) {
    if (e.path().extension() != ".scn") continue;
    std::ifstream in(e.path());
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const size_t at = text.find("--busted=");
    if (at == std::string::npos) continue;
    size_t end = at + 9;
    while (end < text.size() && (std::isalnum(static_cast<unsigned char>(text[end])) || text[end] == '_')) ++end;
    const std::string flag = text.substr(at + 9, end - at - 9);
    Scenario s;
    ParseError err;
    ASSERT_TRUE(parse_text(text, e.path().string(), &s, &err)) << err.str();
    std::atomic<bool>* f = blk::busted().by_name(flag);
    ASSERT_NE(f, nullptr) << e.path() << ": " << flag;
    {
      kern::ReportCapture cap;
      run_scenario(s);
      EXPECT_EQ(cap.size(), 0u) << e.path() << "\n" << cap.dump();
    }
    f->store(true);
    {
      kern::ReportCapture cap;
      run_scenario(s);
      EXPECT_GT(cap.size(), 0u) << e.path() << " with " << flag;
    }
    f->store(false);
    ++checked;
  }
  EXPECT_GE(checked, 2);
}

}  // namespace
}  // namespace scenario

namespace scenario {
namespace {

// Replaying a scenario gives the same result, operation by operation, every time (fresh
// world per run: no state leaks from one run into the next).
TEST(ScenarioExec, ReplayIsDeterministic) {
  auto results = [](const Scenario& s) {
    std::vector<std::string> out;
    World w;
    for (size_t i = 0; i < s.ops.size(); ++i)
      out.push_back(w.exec(s.ops[i], static_cast<int>(i)).str());
    return out;
  };
  const Scenario s = parse(kThrottleStory);
  std::mt19937_64 rng(5);
  std::vector<uint8_t> bytes(400);
  for (auto& b : bytes) b = static_cast<uint8_t>(rng());
  bytes[0] = kBinaryVersion;
  Scenario r = decode_binary(bytes.data(), bytes.size());
  strip_expectations(&r);
  kern::ReportCapture cap;
  const auto first = results(s);
  const auto random_first = results(r);
  EXPECT_EQ(results(s), first);
  EXPECT_EQ(results(r), random_first);
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

}  // namespace
}  // namespace scenario

namespace scenario {
namespace {

// Quiesce's step 0: a lock of the world still held (or a queue still frozen) once every
// task has finished is reported, and the teardown, which would hang on it, is skipped.
// Planted: the test's own task keeps blkcg_pol_mutex across quiesce (in a child process:
// the skipped teardown leaves the world behind).
TEST(ScenarioExecDeathTest, LockHeldAtQuiesceIsReported) {
  const Scenario s = parse("disk_alloc d0 8:16\ndisk_add d0\nmkdir /a\npol_register\n");
  {
    kern::ReportCapture cap;
    World w;
    for (size_t i = 0; i < s.ops.size(); ++i) w.exec(s.ops[i], static_cast<int>(i));
    w.quiesce();
    EXPECT_EQ(cap.size(), 0u) << cap.dump();
  }
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        kern::set_report_mode(kern::ReportMode::kAbort);
        World w;
        for (size_t i = 0; i < s.ops.size(); ++i) w.exec(s.ops[i], static_cast<int>(i));
        blk::blkcg_pol_mutex_ref().lock();
        w.quiesce();
      },
      "lock-state-at-quiesce");
}


// The executor's other answer to a wrong outcome of that activation: no warning. Planted
// by setting the cpd-only policy's bit on the queue, so that activation returns 0 at once
// ("already enabled") without reaching the guard.
TEST(ScenarioExec, CpdOnlyActivationWithoutItsWarningIsReported) {
  const Scenario s = parse("disk_alloc d0 8:16\ndisk_add d0\npol_register cpd_only\n"
                           "pol_activate d0 cpd_only\n");
  kern::ReportCapture cap;
  {
    World w;
    for (size_t i = 0; i + 1 < s.ops.size(); ++i) w.exec(s.ops[i], static_cast<int>(i));
    blk::gendisk* g = blk::blkdev_get_no_open(8, 16);
    ASSERT_NE(g, nullptr);
    const unsigned bit = 1u << blk::testpol_cpd_only()->plid;
    g->queue->blkcg_pols.fetch_or(bit);
    EXPECT_EQ(w.exec(s.ops.back(), 3).value, 0);
    g->queue->blkcg_pols.fetch_and(~bit);
    blk::put_disk(g);
    ASSERT_EQ(cap.count(kern::ReportKind::kOracle), 1u) << cap.dump();
    EXPECT_EQ(cap.reports()[0].signature, "cpd-only-activation");
    EXPECT_NE(cap.reports()[0].text.find("op 4: "), std::string::npos) << cap.dump();
    w.quiesce();
  }
  EXPECT_EQ(cap.size(), 1u) << cap.dump();
}

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define BLKCG_EXEC_SANITIZER 1
#endif
#endif

// #37 (b925680cf083): activating a policy without pd callbacks must be refused. The
// cpd-only seed passes on main (-EINVAL and the one warning the harness expects); with
// the check planted away, the activation calls the absent pd_alloc_fn.
TEST(ScenarioExecDeathTest, ActivatingACpdOnlyPolicyWithoutTheCheckIsCaught) {
  std::ifstream in(std::string(BLKCG_SOURCE_DIR) + "/corpus/scenarios/policy-cpd-only.scn");
  ASSERT_TRUE(in);
  const Scenario s = parse(std::string(std::istreambuf_iterator<char>(in), {}).c_str());
  {
    kern::ReportCapture cap;
    run_scenario(s);
    EXPECT_EQ(cap.size(), 0u) << cap.dump();
  }
#ifdef BLKCG_EXEC_SANITIZER
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        blk::busted().activate_no_pd_fn_check = true;
        run_scenario(s);
      },
      "SEGV");
#else
  GTEST_SKIP() << "needs an ASan or TSan build to name the crash (the gate runs both)";
#endif
}

}  // namespace
}  // namespace scenario
