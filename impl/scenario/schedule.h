// SPDX-License-Identifier: MIT
// Concurrent scenarios: each task's operations on its own fiber under the controlled
// scheduler (impl/kern/sched_controlled.h), the interleaving decided by the scenario's
// Schedule (op.h), the oracle beside it as in the sequential executor (exec.h).
//
// Where a decision is made: the scheduler asks at every seam (lock acquire/release, atomic
// RMW, RCU boundary, allocation, timer, work, preemption point). ScheduleSource counts, per
// task, the seams reached inside the operation it is running, which is what a Preempt entry
// names; a decision that differs from the default policy is a preemption. Running a
// kPct/kWalk schedule records every such decision, so any run, however it was found,
// becomes an explicit list of preemptions that replays it exactly and that a minimizer can
// shrink entry by entry.
//
// Determinism: the world is reset per run and nothing else feeds the scheduler, so one
// scenario gives one trace. check_determinism() runs it twice and reports the first step
// where the traces differ (kNondeterminism, with the seam kind and the task's operation).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "impl/kern/sched_controlled.h"
#include "impl/scenario/exec.h"
#include "impl/scenario/op.h"

namespace scenario {

// Per fiber: its task tag, the index (in the scenario) of the op it runs, and the seams it
// reached inside that op. Written by the fibers and the source; one runs at a time.
struct FiberState {
  int tag = 0;
  int op = -1;
  int seams = 0;
};

class ScheduleSource final : public kern::DecisionSource {
 public:
  // fibers: one per task, in fiber order. record: when set, called with every decision
  // that differs from the default policy, as a Preempt, the moment it is made (so a run
  // that crashes has already told its schedule up to the crash).
  ScheduleSource(const Schedule& sched, size_t nr_ops, std::vector<FiberState>* fibers,
                 std::function<void(const Preempt&)> record);
  void begin(int nr_tasks) override;
  int choose(const std::vector<int>& runnable, int cur, kern::SeamKind kind,
             uint32_t step) override;
  uint64_t preemptions() const { return preemptions_; }
  // Where each decision was made: the task tag, its op and seam count (record_trace runs).
  std::vector<Preempt>* where = nullptr;

 private:
  const Schedule& sched_;
  size_t nr_ops_;
  std::vector<FiberState>* fibers_;
  std::function<void(const Preempt&)> record_;
  std::unique_ptr<kern::DecisionSource> inner_;  // kPct / kWalk
  // kList: the preemptions ordered by (task, op, seam), stably (the first listed wins
  // when two name the same seam), so a seam finds its own by binary search instead of a
  // scan of the whole list: choose runs at every seam of every task.
  std::vector<const Preempt*> by_seam_;
  int last_ = -1;  // the fiber that ran last (the one that reached this seam)
  uint64_t preemptions_ = 0;
};

struct ConcurrentRun {
  ExecStats stats;
  kern::RunResult run;
  std::vector<Preempt> schedule;  // the run as an explicit list of preemptions
  std::vector<Preempt> where;     // with record_trace: per decision, who stood where (.to unused)
  int tasks = 0;
};

// The end of the prologue: the index of the first operation tagged with another task than
// T0 (s.ops.size() if none). The operations before it run alone, first.
size_t prologue_end(const Scenario& s);

// The task tags that run on fibers, ascending: those with operations after the prologue.
// A preemption naming any other task never fires.
std::vector<int> fiber_tasks(const Scenario& s);

// Runs `s` with its schedule (kNone counts as kList) in a fresh world: one fiber per task
// tag of fiber_tasks(s), then the deep checks and teardown outside the fibers.
// Violations go to the report sink.
// on_preempt: as ScheduleSource's record.
ConcurrentRun run_concurrent(const Scenario& s, bool record_trace = false,
                             const std::function<void(const Preempt&)>& on_preempt = nullptr);

// Runs `s` twice; false (and a kNondeterminism report naming the first divergent step) if
// the traces differ.
bool check_determinism(const Scenario& s);

}  // namespace scenario
