// SPDX-License-Identifier: MIT
// The executor: runs a scenario against impl/ in a fresh world, with the oracle beside it.
//
// A World owns one cgroup v2 hierarchy, the disks and bios the scenario binds, and the
// reference model (impl/oracle/model.h). Constructing it resets every global of the kernel
// runtime (allocator and fault injection, lockdep, clock, test policy), so runs do not
// depend on each other (AFL++ stability; fuzz inputs replay bit for bit). Operations run
// on the calling thread, in order; task tags are kept but do not change that here (the
// controlled scheduler interleaves tagged tasks, in the schedule fuzzer).
//
// After every operation (cheap): the result against the line's expectation and the
// model's prediction, no lock held, the throttle structure of every live queue. At the end
// (deep, in ~World or quiesce()): every disk deleted (throttled bios fail with EIO) and
// drained, every bio completed, io.stat of every cgroup against the model, then everything
// released and removed: no leaked object, no pending timer or work. A violation is a
// kOracle report (signature "expect:<op> <path> got <result>", "model:<op>", ...)
// through the report sink: a crash
// when fuzzing, a recorded report in tests.
//
// Bounds, so that no input runs away: advance and wait move at most 1,000,000 jiffies per
// operation, bios are at most 4 MiB, a max_io below 4096 counts as 4096 (so a bio has at
// most 1024 pieces), a world holds at most 64 disks and 4096 bios.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "impl/scenario/op.h"

namespace scenario {

struct OpResult {
  bool is_text = false;
  long value = 0;    // 0 / bytes / -errno
  std::string text;  // read
  std::string str() const;
};

struct ExecStats {
  size_t ops = 0;
  size_t expectations = 0;
  size_t model_checks = 0;
  size_t rate_checks = 0;  // dd runs judged against the limits on their path
};

class World {
 public:
  // dfl=false: the legacy (v1) hierarchy (blkio.* files, flat throttling; no io.stat or
  // io.max, so the model checks only the tree).
  // concurrent: operations of several tasks may interleave (schedule.h); see Impl::conc.
  explicit World(bool dfl = true, bool concurrent = false);
  ~World();  // runs quiesce() if it has not run
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  OpResult exec(const Op& op, int index);
  // The deep checks and the full teardown. Idempotent.
  void quiesce();
  const ExecStats& stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> p_;
};

// Runs a whole scenario in a fresh world (then quiesces); a v1 world when its first
// operation is legacy_hierarchy; with a schedule, the tasks concurrently (schedule.h). Returns the stats; violations go to the report sink.
ExecStats run_scenario(const Scenario& s);

}  // namespace scenario
