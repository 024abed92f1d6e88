// SPDX-License-Identifier: MIT
// The dd operation and its rate oracle (oracle::dd_bounds): a synchronous issuer takes its
// ideal time under a limit; random environments (HZ, slice, timer lateness, device latency
// and split size), hierarchies, limits and earlier traffic never make main leave the
// bounds; each planted throttle rate bug is reported by it.
#include <gtest/gtest.h>

#include <random>

#include "impl/block/busted.h"
#include "impl/kern/report.h"
#include "impl/scenario/exec.h"
#include "impl/scenario/text.h"

namespace scenario {
namespace {

Scenario parse(const std::string& text) {
  Scenario s;
  ParseError err;
  EXPECT_TRUE(parse_text(text, "dd.scn", &s, &err)) << err.str() << "\n" << text;
  return s;
}

class DdRate : public testing::Test {
 protected:
  void TearDown() override { blk::busted().reset(); }
};

// blktests throtl/001's first phase as one operation (1 MiB at 1 MiB/s: 1 s), in 8 KiB
// requests (dd takes at most 128).
TEST_F(DdRate, ThrottledIssuerTakesItsIdealTime) {
  kern::ReportCapture cap;
  const Scenario s = parse(R"(disk_alloc d0 8:16
disk_add d0
mkdir /a
write /a/io.max "8:16 wbps=1048576"
dd /a d0 write 8192 128
dd /a d0 read 8192 128
read /a/io.stat => "8:16 rbytes=1048576 wbytes=1048576 rios=128 wios=128 dbytes=0 dios=0\n"
)");
  World w;
  long took[2] = {};
  for (size_t i = 0; i < s.ops.size(); ++i) {
    const OpResult r = w.exec(s.ops[i], static_cast<int>(i));
    if (i == 4 || i == 5) took[i - 4] = r.value;
  }
  w.quiesce();
  EXPECT_GE(took[0], 900);  // one slice of credit at most
  EXPECT_LE(took[0], 1100);
  EXPECT_GE(took[1], 0);  // reads are not limited: the device's time only
  EXPECT_LE(took[1], 1);
  EXPECT_EQ(w.stats().rate_checks, 1u);
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

// A random environment, hierarchy, limits and earlier traffic, then dd runs. `nested`:
// both /a and /a/b limited, and every dd in /a/b.
std::string random_scenario(std::mt19937_64& rng, bool nested = false) {
  auto pick = [&rng](std::initializer_list<const char*> l) {
    return std::string(l.begin()[rng() % l.size()]);
  };
  std::string s = "hz " + pick({"100", "250", "300", "1000"}) + "\n";
  s += "disk_alloc d0 8:16" + pick({"", " slice=2", " slice=3", " slice=5", " slice=1"}) +
       pick({"", "", " latency=1", " latency=3"}) + pick({"", "", " max_io=4096", " max_io=65536"}) + "\n";
  s += "disk_add d0\nmkdir /a\nmkdir /a/b\nmkdir /c\n";
  s += "timer_late " + pick({"0", "1", "2", "3"}) + "\n";
  const char* groups[] = {"/a", "/a/b", "/c"};
  auto limit = [&] {
    return "write " + std::string(groups[rng() % 3]) + "/io.max \"8:16 wbps=" +
           pick({"max", "10", "4096", "65536", "262144", "1048576", "8388608"}) + " rbps=" +
           pick({"max", "131072", "1048576"}) + " wiops=" + pick({"max", "max", "50", "400"}) +
           " riops=" + pick({"max", "max", "100"}) + "\"\n";
  };
  for (int i = 0; i < 3; ++i) s += limit();
  if (nested) {
    s += "write /a/io.max \"8:16 wbps=" + pick({"4096", "65536", "262144", "1048576"}) +
         " rbps=" + pick({"131072", "1048576"}) + (rng() % 3 == 0 ? " wiops=50" : "") + "\"\n";
    s += "write /a/b/io.max \"8:16 wbps=" + pick({"4096", "65536", "262144", "1048576", "8388608"}) +
         " rbps=" + pick({"131072", "1048576", "8388608"}) + (rng() % 3 == 0 ? " wiops=400" : "") +
         "\"\n";
  }
  int bio = 0;
  for (int step = 0; step < 8; ++step) {
    switch (rng() % 6) {
      case 0: s += limit(); break;
      case 1: {  // an asynchronous bio, maybe metadata, maybe left in flight
        const std::string b = "b" + std::to_string(bio++);
        s += "bio " + b + " d0 " + pick({"read", "write", "write"}) + " " + pick({"4096", "65536", "1048576"}) +
             pick({"", "", "", " meta"}) + "\nassoc " + b + " " + groups[rng() % 3] + "\nsubmit " + b + "\n";
        if (rng() % 2) s += "wait " + b + "\n";
        break;
      }
      case 2: s += "advance " + pick({"1", "7", "100", "5000"}) + "\n"; break;
      default:
        s += "dd " + std::string(nested ? "/a/b" : groups[rng() % 3]) + " d0 " + pick({"read", "write", "write"}) + " " +
             pick({"1", "512", "4096", "16384", "65536", "262144"}) + " " + pick({"1", "3", "16", "64", "128"}) + "\n";
    }
  }
  return s;
}

TEST_F(DdRate, RandomEnvironmentsStayInBounds) {
  std::mt19937_64 rng(20261207);
  size_t judged = 0;
  for (int i = 0; i < 400; ++i) {
    const std::string text = random_scenario(rng, /*nested=*/i % 2 == 1);
    kern::ReportCapture cap;
    const ExecStats st = run_scenario(parse(text));
    judged += st.rate_checks;
    ASSERT_EQ(cap.size(), 0u) << "scenario " << i << ":\n" << text << cap.dump();
  }
  EXPECT_GT(judged, 400u);  // most dd runs were judged
}

struct Planted {
  const char* flag;
  const char* signature;
  std::string scenario;
};

// Each planted rate bug of busted.h that a lone issuer can see, with the issuer that
// sees it: #41's trim without slack (HZ=100 and a 20 ms slice, as in blktests issue
// #157), split pieces charged bps again, split pieces not counted against iops, and a
// parent that does not charge the bios its child forwards (bios big enough to wait in the
// child, whose limit is eight times the parent's: 1.0 s instead of 8.0 s).
// 64 KiB writes split to 4 KiB pieces at the device, under the limit between the two.
std::string split_writes_under(const char* limit) {
  return std::string("disk_alloc d0 8:16 max_io=4096\ndisk_add d0\nmkdir /a\n") +
         "write /a/io.max \"8:16 " + limit + "\"\ndd /a d0 write 65536 16\n";
}

const Planted kPlanted[] = {
    {"throtl_trim_no_slack", "throtl:dd-too-slow", R"(hz 100
disk_alloc d0 8:16 slice=2
disk_add d0
mkdir /a
write /a/io.max "8:16 wbps=1048576"
timer_late 1
dd /a d0 write 4096 128
)"},
    {"throtl_split_charges_bps", "throtl:dd-too-slow", split_writes_under("wbps=1048576")},
    {"throtl_split_no_iops", "throtl:dd-too-fast", split_writes_under("wiops=256")},
    {"throtl_parent_skips_bps", "throtl:dd-too-fast", R"(disk_alloc d0 8:16
disk_add d0
mkdir /a
mkdir /a/b
write /a/io.max "8:16 wbps=262144"
write /a/b/io.max "8:16 wbps=2097152"
dd /a/b d0 write 262144 8
)"},
};

TEST_F(DdRate, EachPlantedRateBugIsReported) {
  for (const Planted& p : kPlanted) {
    const Scenario s = parse(p.scenario);
    {
      kern::ReportCapture clean;
      run_scenario(s);
      EXPECT_EQ(clean.size(), 0u) << p.flag << " (not planted):\n" << clean.dump();
    }
    std::atomic<bool>* flag = blk::busted().by_name(p.flag);
    ASSERT_NE(flag, nullptr) << p.flag;
    flag->store(true);
    kern::ReportCapture cap;
    run_scenario(s);
    blk::busted().reset();
    bool found = false;
    for (const kern::Report& r : cap.reports()) found |= r.signature == p.signature;
    EXPECT_TRUE(found) << p.flag << ":\n" << cap.dump();
  }
}

}  // namespace
}  // namespace scenario
