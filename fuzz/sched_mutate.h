// SPDX-License-Identifier: MIT
// A schedule-only mutation for fuzz_sched: keep the operations, change the interleaving.
//
// Byte-level mutation rarely changes a schedule without also breaking the operations
// around it, and a race needs the right operations and the right interleaving together:
// once the corpus holds the operations, what is left to search is the schedule. So a
// share of fuzz_sched's mutations decode the input, change only its schedule, and encode
// it again (the operations come back as they were decoded):
//
//   - a PCT or random-walk schedule gets a new seed (a PCT one sometimes a new depth), or
//     becomes an explicit list with one preemption;
//   - an explicit list gains a preemption (a task with operations after the prologue, one
//     of its operations, a seam from 1 to 256 drawn log-uniformly, another such task),
//     loses one, has one moved (its seam or its target), or becomes PCT or a random walk.
//
// Preemptions are only ever placed where they can fire: inside an operation of the task
// they name, after the prologue, towards another task that runs on a fiber.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "impl/scenario/binary.h"
#include "impl/scenario/schedule.h"

namespace fuzz {

// Writes the mutated input over data (at most max_size bytes) and returns its size; 0 when
// there is nothing to do (no schedule, fewer than two fiber tasks, or the result would not
// fit), in which case data is unchanged.
inline size_t mutate_schedule(uint8_t* data, size_t size, size_t max_size, uint64_t seed) {
  using scenario::Schedule;
  scenario::Scenario s = scenario::decode_binary(data, size);
  if (s.sched.kind == Schedule::kNone) return 0;
  const std::vector<int> tasks = scenario::fiber_tasks(s);
  if (tasks.size() < 2) return 0;
  // Operation indices per fiber task, after the prologue (the prologue runs alone).
  std::vector<std::vector<int>> ops_of(scenario::kMaxTask + 1);
  for (size_t i = scenario::prologue_end(s); i < s.ops.size(); ++i) ops_of[s.ops[i].task].push_back(static_cast<int>(i));

  std::mt19937_64 rng(seed);
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  auto seam = [&] { return 1 + static_cast<int>(rng() % (uint64_t{1} << pick(9))); };
  auto other_task = [&](int t) {
    int to;
    do to = tasks[pick(tasks.size())]; while (to == t);
    return to;
  };
  auto new_preempt = [&] {
    scenario::Preempt p;
    p.task = tasks[pick(tasks.size())];
    const std::vector<int>& mine = ops_of[p.task];
    p.op = mine[pick(mine.size())];
    p.seam = seam();
    p.to = other_task(p.task);
    return p;
  };
  auto random_source = [&](Schedule& sc) {
    sc.preempts.clear();
    sc.kind = pick(2) ? Schedule::kPct : Schedule::kWalk;
    sc.seed = rng();
    sc.depth = sc.kind == Schedule::kPct ? 1 + static_cast<int>(pick(scenario::kMaxPctDepth)) : 1;
  };

  Schedule& sc = s.sched;
  const Schedule before = sc;
  if (sc.kind != Schedule::kList) {
    if (pick(4) != 0) {
      sc.seed = rng();
      if (sc.kind == Schedule::kPct && pick(4) == 0)
        sc.depth = 1 + static_cast<int>(pick(scenario::kMaxPctDepth));
    } else {
      sc = {Schedule::kList, 0, 1, {new_preempt()}};
    }
  } else {
    switch (sc.preempts.empty() ? 0 : pick(4)) {
      case 0: sc.preempts.push_back(new_preempt()); break;
      case 1: sc.preempts.erase(sc.preempts.begin() + static_cast<std::ptrdiff_t>(pick(sc.preempts.size()))); break;
      case 2: {
        scenario::Preempt& p = sc.preempts[pick(sc.preempts.size())];
        if (pick(2)) {
          const int step = 1 + static_cast<int>(pick(8));
          p.seam = pick(2) || p.seam <= step ? p.seam + step : p.seam - step;
        } else if (tasks.size() > 2 && p.task >= 0 && p.task <= scenario::kMaxTask) {
          p.to = other_task(p.task);
        } else {
          p.seam = seam();
        }
        break;
      }
      default: random_source(sc); break;
    }
  }
  if (sc == before) return 0;
  const std::vector<uint8_t> out = scenario::encode_binary(s);
  if (out.size() > max_size) return 0;
  std::memcpy(data, out.data(), out.size());
  return out.size();
}

}  // namespace fuzz
