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
//
// A PCT schedule draws its change points among its `steps` first decisions; one past the
// end of the run is wasted, and the default (25 per operation) overshot a two-task race's
// run by 2.7 times. The harness notes how many decisions each input's run took
// (note_steps); when the input being mutated was run, a PCT schedule made or reseeded
// from it gets that length, an eighth more (another interleaving is a little longer or
// shorter), written into the input, so it still replays on its own.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <string_view>
#include <utility>
#include <vector>

#include "impl/scenario/binary.h"
#include "impl/scenario/schedule.h"
#include "impl/scenario/text.h"

namespace fuzz {

inline uint64_t input_hash(const uint8_t* data, size_t size) {
  return scenario::fnv1a(std::string_view(reinterpret_cast<const char*>(data), size));
}

// The scheduling decisions of recent runs, by input hash: direct-mapped, fixed size (no
// allocation per run; a collision forgets the older input). One fuzzing thread only.
inline std::array<std::pair<uint64_t, uint32_t>, 1 << 14>& measured_steps() {
  static std::array<std::pair<uint64_t, uint32_t>, 1 << 14> table{};
  return table;
}

inline void note_steps(const uint8_t* data, size_t size, uint64_t steps) {
  const uint64_t h = input_hash(data, size);
  measured_steps()[h % measured_steps().size()] = {h, static_cast<uint32_t>(std::min<uint64_t>(steps, UINT32_MAX))};
}

// 0 when this input has not been run (recently).
inline uint32_t steps_of(const uint8_t* data, size_t size) {
  const uint64_t h = input_hash(data, size);
  const auto& e = measured_steps()[h % measured_steps().size()];
  return e.first == h ? e.second : 0;
}

// Writes the mutated input over data (at most max_size bytes) and returns its size; 0 when
// there is nothing to do (no schedule, fewer than two fiber tasks, or the result would not
// fit), in which case data is unchanged.
inline size_t mutate_schedule(uint8_t* data, size_t size, size_t max_size, uint64_t seed) {
  using scenario::Schedule;
  const uint32_t measured = steps_of(data, size);
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
    sc.steps = 0;
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
  if (sc.kind == Schedule::kPct && measured != 0)
    sc.steps = std::min<uint32_t>(measured + measured / 8, scenario::kMaxPctSteps);
  if (sc == before) return 0;
  const std::vector<uint8_t> out = scenario::encode_binary(s);
  if (out.size() > max_size) return 0;
  std::memcpy(data, out.data(), out.size());
  return out.size();
}

}  // namespace fuzz
