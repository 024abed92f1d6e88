// SPDX-License-Identifier: MIT
// The controlled scheduler (DESIGN principle 1, controlled mode): every task is a fiber on
// the calling thread, exactly one runs at a time, and at every seam point a DecisionSource
// picks who runs next. A race becomes a deterministic, replayable input.
//
// Guarantees:
//   - Determinism: with the same task bodies and the same decisions, a run produces the
//     same trace (one entry per decision: step, seam kind, chosen task, runnable set).
//     Replay(trace) follows a trace and reports kNondeterminism at the first step where
//     the program no longer offers the recorded choice (or stops at another seam kind).
//   - Blocking: wait_until() parks the fiber with its WaitDesc and predicate; a parked
//     fiber is runnable again exactly when its predicate holds (predicates are evaluated by
//     the scheduler between steps, while no task runs, so they need no synchronisation).
//     notify() is therefore a no-op here.
//   - Deadlock: when nothing is runnable and a non-daemon task is parked, kDeadlock is
//     reported with the wait-for graph (one line per parked task: what it waits for, who
//     holds it, its held locks). The run then unwinds every parked fiber (a FiberKilled
//     exception thrown from its wait) so their destructors run, and returns deadlock=true.
//     Daemon tasks (TaskKind::kKworker) idling in a wait do not count as deadlocked.
//   - No threads are created: fibers run on the caller's thread with stacks from a pool
//     reused across runs (mmap'd, guard page below), so a fuzzer can run millions of inputs.
//     Switches are _setjmp/_longjmp after a one-time setcontext entry (no syscalls), with
//     ASan and TSan fiber annotations.
//   - current() follows the fiber: the scheduler saves and restores the thread's current
//     task pointer at every switch, so a fiber that runs interrupt work or an inline
//     kworker under another Task identity keeps it across preemptions.
// Costs: a decision at a seam where the same task keeps running costs one source call;
// a switch is two register save/restores (bench/sched_bench.cc measures switches/s).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "impl/kern/sched.h"
#include "impl/kern/task.h"

namespace kern {

struct TraceStep {
  uint32_t step;
  SeamKind kind;
  uint8_t chosen;    // task index
  uint8_t from;      // task that reached the seam (0xff: none, it blocked or finished)
  uint32_t runnable; // bitmask of runnable task indices
  bool operator==(const TraceStep&) const = default;
};

// Picks the next task. `runnable` is non-empty and sorted; `cur` is the index of the task
// that reached the seam if it may continue, else -1.
class DecisionSource {
 public:
  virtual ~DecisionSource() = default;
  virtual int choose(const std::vector<int>& runnable, int cur, SeamKind kind, uint32_t step) = 0;
  // Called once per run before the first decision with the number of tasks.
  virtual void begin(int nr_tasks) {}
};

// Fuzzer bytes: each decision consumes one byte, choice = byte % |runnable|. When the bytes
// run out: round robin (next runnable after cur), so spinning code still progresses.
class ByteSource final : public DecisionSource {
 public:
  ByteSource(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  int choose(const std::vector<int>& runnable, int cur, SeamKind kind, uint32_t step) override;
  size_t consumed() const { return pos_; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// A seeded uniform random walk over runnable tasks.
class RandomWalk final : public DecisionSource {
 public:
  explicit RandomWalk(uint64_t seed) : s_(seed * 0x9E3779B97F4A7C15ull + 1) {}
  int choose(const std::vector<int>& runnable, int cur, SeamKind kind, uint32_t step) override;

 private:
  uint64_t s_;
};

// PCT (probabilistic concurrency testing): random distinct priorities, depth-1 change
// points among the first `steps` decisions; always run the highest-priority runnable task,
// and at a change point demote the running task below every initial priority. Finds any
// bug of depth d with probability >= 1/(n * k^(d-1)).
class PctSource final : public DecisionSource {
 public:
  PctSource(uint64_t seed, int depth, uint32_t steps) : s_(seed * 0xD1B54A32D192ED03ull + 7),
                                                         depth_(depth), steps_(steps) {}
  void begin(int nr_tasks) override;
  int choose(const std::vector<int>& runnable, int cur, SeamKind kind, uint32_t step) override;

 private:
  uint64_t next();
  uint64_t s_;
  int depth_;
  uint32_t steps_;
  std::vector<int> prio_;
  std::vector<uint32_t> change_points_;
};

// Follows a recorded trace; reports kNondeterminism at the first divergence (then keeps
// going round robin).
class ReplaySource final : public DecisionSource {
 public:
  explicit ReplaySource(std::vector<TraceStep> trace) : trace_(std::move(trace)) {}
  int choose(const std::vector<int>& runnable, int cur, SeamKind kind, uint32_t step) override;
  bool diverged() const { return diverged_; }

 private:
  std::vector<TraceStep> trace_;
  bool diverged_ = false;
};

struct TaskSpec {
  std::string name;
  int cpu = 0;
  std::function<void()> fn;
  TaskKind kind = TaskKind::kProcess;  // kKworker: a daemon that may idle forever
};

struct RunResult {
  bool deadlock = false;
  bool step_limit = false;
  uint64_t steps = 0;
  uint64_t preemptions = 0;  // switches away from a task that could have continued
  uint64_t switches = 0;
  std::vector<TraceStep> trace;
};

struct ControlledOptions {
  // A run is reported (kDeadlock, "controlled-step-limit") and unwound once it has taken
  // max_steps_without_progress scheduling decisions since jiffies last changed (a
  // livelock), or max_steps in all (a run too long to finish).
  uint64_t max_steps_without_progress = 2'000'000;
  uint64_t max_steps = 20'000'000;
  bool record_trace = true;
};

// Runs the tasks to completion (or deadlock) under the controlled scheduler. Installs the
// controlled backend for the duration. Not reentrant; one run per thread at a time.
RunResult run_controlled(const std::vector<TaskSpec>& tasks, DecisionSource& source,
                         const ControlledOptions& opt = {});

// Runs the same task bodies on real threads (each with a TaskScope) and joins them.
RunResult run_native(const std::vector<TaskSpec>& tasks);

// Thrown inside a parked fiber to unwind it after a deadlock. Never escapes a run.
struct FiberKilled {};

}  // namespace kern
