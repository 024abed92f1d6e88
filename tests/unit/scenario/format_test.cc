// SPDX-License-Identifier: MIT
// The two encodings of the operation language: the text parser's errors name file, line
// and reason; text and binary convert both ways without loss; arbitrary bytes decode
// without crashing, and what they decode to survives a round trip.
#include <gtest/gtest.h>

#include <random>

#include "impl/scenario/binary.h"
#include "impl/scenario/text.h"

namespace scenario {
namespace {

const char* const kSample = R"(# every operation kind, with expectations
hz 250
disk_alloc d0 8:16 max_io=4096 latency=2 slice=5
disk_add d0 => 0
partition d0 1
mkdir /a
mkdir /a/b => 0
attach 42 /a/b
write /a/io.max "8:16 wbps=1048576 riops=max\n" => 30
read /a/io.max => "8:16 rbps=max wbps=1048576 riops=max wiops=max\n"
bio b0 d0 write 8192 meta sync
assoc b0 /a/b nowait ctx=softirq => 0
clone b1 b0 nowait
split b2 b1 4096
submit b2
complete b1 -EIO
submit b0 => pending
wait b0 max=5000 => 0
flush /a
read /a/io.stat
pol_register
pol_activate d0
pol_deactivate d0
pol_unregister
pol_register cpd_only => 0
pol_activate d0 cpd_only => -EINVAL
T3: advance 100
run
fault_nth 7
fault_site pd_alloc.throtl 2
fault_prob 10 99
fault_off
timer_late 1 => 0
dd /a/b d0 write 4096 16
dd /a d0 read 512 1 => 0
write /a/io.max "8:16 rbps=0" => -ERANGE
rmdir /a/b => -EBUSY
disk_del d0
disk_release d0
legacy_hierarchy
)";

TEST(ScenarioFormat, TextRoundTrip) {
  Scenario s;
  ParseError err;
  ASSERT_TRUE(parse_text(kSample, "sample.scn", &s, &err)) << err.str();
  EXPECT_EQ(s.ops.size(), 39u);
  const std::string text = to_text(s);
  Scenario again;
  ASSERT_TRUE(parse_text(text, "printed", &again, &err)) << err.str() << "\n" << text;
  EXPECT_EQ(again, s);
  EXPECT_EQ(to_text(again), text);
  // Every kind appears in the sample.
  std::vector<bool> seen(static_cast<size_t>(OpKind::kCount));
  for (const Op& op : s.ops) seen[static_cast<size_t>(op.kind)] = true;
  for (size_t k = 0; k < seen.size(); ++k) EXPECT_TRUE(seen[k]) << op_name(static_cast<OpKind>(k));
}

TEST(ScenarioFormat, TextToBinaryAndBack) {
  Scenario s;
  ParseError err;
  ASSERT_TRUE(parse_text(kSample, "sample.scn", &s, &err)) << err.str();
  const std::vector<uint8_t> bin = encode_binary(s);
  const Scenario back = decode_binary(bin.data(), bin.size());
  EXPECT_EQ(to_text(back), to_text(s));
  EXPECT_EQ(back, s);
  EXPECT_EQ(encode_binary(back), bin);
}

TEST(ScenarioFormat, ParseErrorsNameFileLineAndReason) {
  const struct {
    const char* text;
    int line;
    const char* reason_part;
  } cases[] = {
      {"mkdir /a\nfrobnicate /b\n", 2, "unknown operation 'frobnicate'"},
      {"\n\nmkdir a\n", 3, "must start with '/'"},
      {"write /a/io.max \"unterminated\n", 1, "unterminated string"},
      {"disk_alloc d0 8-16\n", 1, "bad MAJ:MIN"},
      {"bio b0 d0 sideways 4096\n", 1, "bad direction"},
      {"T9: run\n", 1, "bad task tag"},
      {"mkdir /a => maybe\n", 1, "bad result"},
      {"assoc b0 /a ctx=hardirq\n", 1, "unknown option"},
      {"complete b0 -EINVAL\n", 1, "bad errno"},
      {"read /a/\n", 1, "must name a file"},
      {"advance\n", 1, "missing jiffies"},
      {"mkdir /a b\n", 1, "unknown option 'b'"},
      {"mkdir /a => 0 0\n", 1, "unexpected text after the result"},
  };
  for (const auto& c : cases) {
    Scenario s;
    ParseError err;
    EXPECT_FALSE(parse_text(c.text, "bad.scn", &s, &err)) << c.text;
    EXPECT_EQ(err.file, "bad.scn");
    EXPECT_EQ(err.line, c.line) << c.text;
    EXPECT_NE(err.reason.find(c.reason_part), std::string::npos) << err.str();
  }
}

// In the binary form a path is joined from a directory and a leaf; a literal directory
// ending in '/' must not join into a path the text form rejects ("//"): the op is dropped,
// as every other invalid op, and what remains prints as text that parses.
void expect_second_dropped(const Op& first, const Op& second) {
  Scenario s;
  s.ops = {first, second};
  const std::vector<uint8_t> bin = encode_binary(s);
  const Scenario back = decode_binary(bin.data(), bin.size());
  ASSERT_EQ(back.ops.size(), 1u) << to_text(back);
  EXPECT_EQ(back.ops[0], first);
  Scenario parsed;
  ParseError err;
  EXPECT_TRUE(parse_text(to_text(back), "decoded", &parsed, &err)) << err.str();
}

// A file path (found by AFL++; regression in corpus/regressions/fuzz_ops).
TEST(ScenarioFormat, BinaryFilePathObeysTextRule) {
  Op mk;
  mk.kind = OpKind::kMkdir;
  mk.path = "/a";
  Op w;
  w.kind = OpKind::kWrite;
  w.path = "/a//cgroup.procs";  // encodes as the literal directory "/a/" + cgroup.procs
  w.data = "2\n";
  expect_second_dropped(mk, w);
}

// A child cgroup of a bound path ending in '/' (found by fuzz_scenario's binary mode).
TEST(ScenarioFormat, BinaryChildPathObeysTextRule) {
  Op parent;
  parent.kind = OpKind::kMkdir;
  parent.path = "/pp/";
  Op child = parent;
  child.path = "/pp//c3";
  expect_second_dropped(parent, child);
}

// Arbitrary bytes: never a crash; the decoded scenario prints, parses back, and encodes
// to bytes that decode to it again.
TEST(ScenarioFormat, RandomBytesDecodeAndRoundTrip) {
  std::mt19937_64 rng(12345);
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<uint8_t> bytes(1 + rng() % 200);
    for (auto& b : bytes) b = static_cast<uint8_t>(rng());
    bytes[0] = kBinaryVersion;
    const Scenario s = decode_binary(bytes.data(), bytes.size());
    const std::string text = to_text(s);
    Scenario parsed;
    ParseError err;
    ASSERT_TRUE(parse_text(text, "decoded", &parsed, &err)) << err.str() << "\n" << text;
    ASSERT_EQ(to_text(parsed), text);
    ASSERT_EQ(parsed, s) << text;
    const std::vector<uint8_t> bin = encode_binary(s);
    const Scenario again = decode_binary(bin.data(), bin.size());
    ASSERT_EQ(to_text(again), text);
    ASSERT_EQ(again, s) << text;
  }
}

TEST(ScenarioFormat, UnknownVersionIsEmpty) {
  const uint8_t bytes[] = {7, 1, 2, 3};
  EXPECT_TRUE(decode_binary(bytes, sizeof(bytes)).ops.empty());
  EXPECT_TRUE(decode_binary(nullptr, 0).ops.empty());
}

}  // namespace
}  // namespace scenario
