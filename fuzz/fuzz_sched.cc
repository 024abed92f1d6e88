// SPDX-License-Identifier: MIT
// fuzz_sched: two to four tasks, each running its own operation list, interleaved by the
// controlled scheduler. The input is the binary form of a scenario (FORMAT.md) with task
// tags and a schedule: an explicit list of preemptions (each "when task A reaches its N-th
// scheduling point inside operation K, task B runs"), or a PCT or random-walk seed. So a
// mutation changes the operations, the interleaving or the fault injection alike, and
// coverage guides all three. Every run is deterministic: a crash replays from its input,
// and `blkcg-torture decode` prints it as a task-tagged scenario with its schedule.
//
// Inputs with no schedule or more than four tasks are rejected (-1: not added to the
// corpus). Every 64th input also runs twice and compares the traces: a divergence is a
// NONDETERMINISM report naming the step and seam where the runs parted.
//
// Under libFuzzer, one mutation in three changes only the schedule (sched_mutate.h); the
// others are libFuzzer's own. Each run's length is noted for that mutation (a PCT
// schedule's steps=). AFL++'s driver and the replay driver never call it.
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_common.h"
#include "fuzz/sched_mutate.h"
#include "impl/scenario/binary.h"
#include "impl/scenario/schedule.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz_init_once();
  // Local, not reused: everything the input allocates is freed before the callback
  // returns, so libFuzzer's malloc/free balance check does not run the input a second
  // time (a reused Scenario's strings and vectors grow and shrink from input to input).
  scenario::Scenario s;
  scenario::decode_binary(data, size, &s);
  if (s.sched.kind == scenario::Schedule::kNone) return -1;
  unsigned tags = 0;
  for (const scenario::Op& op : s.ops) tags |= 1u << op.task;
  if (__builtin_popcount(tags) > 4) return -1;
  scenario::strip_expectations(&s);
  static unsigned runs = 0;
  if (++runs % 64 == 0) scenario::check_determinism(s);
  else fuzz::note_steps(data, size, scenario::run_concurrent(s).run.steps);
  return 0;
}

// libFuzzer's own mutator; weak so that the replay driver, which does not provide it,
// still links.
extern "C" __attribute__((weak)) size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size,
                                          unsigned int seed) {
  if (seed % 3 == 0 || !LLVMFuzzerMutate) {
    if (const size_t n = fuzz::mutate_schedule(data, size, max_size, seed)) return n;
  }
  return LLVMFuzzerMutate ? LLVMFuzzerMutate(data, size, max_size) : size;
}
