// SPDX-License-Identifier: MIT
// fuzz_sched's schedule-only mutation: the operations survive, the schedule changes, and
// every preemption it places can fire.
#include "fuzz/sched_mutate.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <optional>
#include <set>
#include <string>

#include "impl/scenario/text.h"

namespace fuzz {
namespace {

using scenario::Schedule;
using scenario::Scenario;

Scenario load(const std::string& rel) {
  std::ifstream in(std::string(BLKCG_SOURCE_DIR) + "/" + rel);
  EXPECT_TRUE(in) << rel;
  Scenario s;
  scenario::ParseError err;
  EXPECT_TRUE(scenario::parse_text(
      std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()), rel, &s, &err))
      << err.str();
  return s;
}

// One schedule mutation of the encoded input `in` with `seed`; nullopt when it did nothing.
std::optional<Scenario> mutate_once(const std::vector<uint8_t>& in, int seed) {
  std::vector<uint8_t> buf(in);
  buf.resize(in.size() + 256);
  const size_t size = mutate_schedule(buf.data(), in.size(), buf.size(), static_cast<uint64_t>(seed));
  if (size == 0) return std::nullopt;
  return scenario::decode_binary(buf.data(), size);
}

// Mutates `s` `n` times from its own encoding, checking each result; returns the kinds seen.
std::set<int> mutate_many(const Scenario& s, int n) {
  const std::vector<uint8_t> in = scenario::encode_binary(s);
  const std::vector<int> tasks = scenario::fiber_tasks(s);
  const size_t prologue = scenario::prologue_end(s);
  std::set<int> kinds;
  int changed = 0;
  for (int i = 0; i < n; ++i) {
    const std::optional<Scenario> mutated = mutate_once(in, i);
    if (!mutated) continue;
    ++changed;
    const Scenario& out = *mutated;
    EXPECT_EQ(out.ops, s.ops) << "seed " << i;
    EXPECT_NE(out.sched, s.sched) << "seed " << i;
    kinds.insert(out.sched.kind);
    for (const scenario::Preempt& p : out.sched.preempts) {
      // Only where it can fire: an operation of the named task after the prologue, towards
      // another fiber task (entries the input already had are kept as they were).
      bool old = false;
      for (const scenario::Preempt& q : s.sched.preempts) old |= q.task == p.task && q.op == p.op;
      if (old) continue;
      const bool in_range = p.op >= static_cast<int>(prologue) && p.op < static_cast<int>(s.ops.size());
      EXPECT_TRUE(in_range) << "op " << p.op;
      if (in_range) EXPECT_EQ(s.ops[static_cast<size_t>(p.op)].task, p.task);
      EXPECT_NE(p.to, p.task);
      EXPECT_NE(std::find(tasks.begin(), tasks.end(), p.to), tasks.end());
      EXPECT_GE(p.seam, 1);
      EXPECT_LE(p.seam, 256);
    }
  }
  EXPECT_GT(changed, n * 9 / 10);
  return kinds;
}

TEST(SchedMutate, PctSeedKeepsTheOperationsAndReachesEveryKind) {
  const Scenario s = load("corpus/scenarios/sched-destroy-free.scn");
  ASSERT_EQ(s.sched.kind, Schedule::kPct);
  const std::set<int> kinds = mutate_many(s, 400);
  EXPECT_TRUE(kinds.count(Schedule::kPct));
  EXPECT_TRUE(kinds.count(Schedule::kList));
}

TEST(SchedMutate, ExplicitListGrowsShrinksAndMoves) {
  Scenario s = load("corpus/regressions/concurrent-advance-rewinds-clock.scn");
  ASSERT_EQ(s.sched.kind, Schedule::kList);
  ASSERT_FALSE(s.sched.preempts.empty());
  const std::set<int> kinds = mutate_many(s, 400);
  EXPECT_TRUE(kinds.count(Schedule::kList));
  EXPECT_TRUE(kinds.count(Schedule::kPct));
  EXPECT_TRUE(kinds.count(Schedule::kWalk));
  // Sizes: added, removed and moved entries all occur.
  const std::vector<uint8_t> in = scenario::encode_binary(s);
  std::set<long> deltas;
  for (int i = 0; i < 200; ++i) {
    const std::optional<Scenario> out = mutate_once(in, i);
    if (out && out->sched.kind == Schedule::kList)
      deltas.insert(static_cast<long>(out->sched.preempts.size()) -
                    static_cast<long>(s.sched.preempts.size()));
  }
  EXPECT_TRUE(deltas.count(1) && deltas.count(-1) && deltas.count(0));
}

// A PCT schedule made from an input that has run spans that run's length (and an eighth),
// written into the input; one made from an input never run keeps the default (0).
TEST(SchedMutate, PctStepsComeFromTheMeasuredRun) {
  const Scenario s = load("corpus/scenarios/sched-free-deactivate.scn");
  ASSERT_EQ(s.sched.kind, Schedule::kPct);
  const std::vector<uint8_t> in = scenario::encode_binary(s);
  auto pct_steps = [&in] {
    std::set<uint32_t> seen;
    for (int i = 0; i < 200; ++i) {
      const std::optional<Scenario> out = mutate_once(in, i);
      if (out && out->sched.kind == Schedule::kPct) seen.insert(out->sched.steps);
    }
    return seen;
  };
  measured_steps().fill({});
  EXPECT_EQ(pct_steps(), std::set<uint32_t>{0});
  const uint64_t steps = scenario::run_concurrent(s).run.steps;
  ASSERT_GT(steps, 20u);
  note_steps(in.data(), in.size(), steps);
  EXPECT_EQ(pct_steps(), std::set<uint32_t>{static_cast<uint32_t>(steps + steps / 8)});
  // Far below the default's 25 per operation: the point of measuring.
  EXPECT_LT(steps + steps / 8, 25 * s.ops.size());
  measured_steps().fill({});
}

TEST(SchedMutate, NothingToDoLeavesTheInputAlone) {
  Scenario s = load("corpus/scenarios/sched-destroy-free.scn");
  s.sched = {};  // no schedule: fuzz_sched rejects such inputs anyway
  std::vector<uint8_t> in = scenario::encode_binary(s);
  const std::vector<uint8_t> copy = in;
  EXPECT_EQ(mutate_schedule(in.data(), in.size(), in.size(), 1), 0u);
  EXPECT_EQ(in, copy);
  // A result that would not fit is not written.
  Scenario t = load("corpus/scenarios/sched-destroy-free.scn");
  t.sched = {Schedule::kList, 0, 1, {}};
  std::vector<uint8_t> tight = scenario::encode_binary(t);
  const std::vector<uint8_t> before = tight;
  EXPECT_EQ(mutate_schedule(tight.data(), tight.size(), tight.size(), 7), 0u);  // adds: grows
  EXPECT_EQ(tight, before);
}

}  // namespace
}  // namespace fuzz
