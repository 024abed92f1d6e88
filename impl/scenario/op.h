// SPDX-License-Identifier: MIT
// The operation language: what a scenario is, independent of its two encodings (text.h,
// binary.h; both described in FORMAT.md). A scenario is a list of operations; each names
// the task that runs it (0 unless tagged), its arguments, and an optional expectation of
// its result.
//
// Objects are referred to by name: cgroups by path ("/a/b"), disks by handle ("d0"), bios
// by handle ("b3"). A handle is bound by the operation that creates the object (disk_alloc,
// bio, clone, split) and refers to it afterwards; using a handle that is not bound, or a
// bio that was already submitted, is a no-op with result -EBADF (never a crash: fuzzers
// produce such scenarios all the time).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace scenario {

enum class OpKind : uint8_t {
  kMkdir,         // mkdir PATH
  kRmdir,         // rmdir PATH
  kAttach,        // attach PID PATH             (writes PID to PATH/cgroup.procs)
  kDiskAlloc,     // disk_alloc D MAJ:MIN [max_io=N] [latency=N] [slice=N] [nr_requests=N]
  kDiskAdd,       // disk_add D
  kDiskDel,       // disk_del D
  kDiskRelease,   // disk_release D
  kPartition,     // partition D N
  kWrite,         // write PATH/FILE "DATA"
  kRead,          // read PATH/FILE
  kBio,           // bio B D read|write|discard SIZE [meta] [swap] [sync] [punt] [wb]
  kAssoc,         // assoc B PATH [nowait] [ctx=process|atomic|softirq]
  kClone,         // clone B2 B1 [nowait]
  kSplit,         // split B2 B1 BYTES
  kSubmit,        // submit B
  kComplete,      // complete B [ERRNO]           (bio_endio of a bio never submitted)
  kWait,          // wait B [max=JIFFIES]         (advance until B completes)
  kFlush,         // flush PATH                   (cgroup_rstat_flush)
  kPolRegister,   // pol_register [cpd_only]      (the test policy, or the cpd-only one)
  kPolUnregister, // pol_unregister [cpd_only]
  kPolActivate,   // pol_activate D [cpd_only]
  kPolDeactivate, // pol_deactivate D [cpd_only]
  kAdvance,       // advance JIFFIES
  kRun,           // run                          (pending work items)
  kFaultNth,      // fault_nth N
  kFaultSite,     // fault_site NAME [N]
  kFaultProb,     // fault_prob PERMILLE SEED
  kFaultOff,      // fault_off
  kLegacy,        // legacy_hierarchy             (first op only: a cgroup v1 world)
  kHz,            // hz N                         (first op, or second after legacy_hierarchy)
  kTimerLate,     // timer_late N                 (timers fire N jiffies late from now on)
  kDd,            // dd PATH D read|write SIZE COUNT  (a synchronous issuer; elapsed jiffies)
  kCount
};

enum class BioOp : uint8_t { kRead, kWrite, kDiscard };
enum class Ctx : uint8_t { kProcess, kAtomic, kSoftirq };

// bio flags in the text form
enum : unsigned { kFlagMeta = 1, kFlagSwap = 2, kFlagSync = 4, kFlagPunt = 8, kFlagWb = 16 };

// An expectation of the operation's result ("=> ..." in text).
struct Expect {
  enum Kind : uint8_t { kNone, kErrno, kValue, kText, kDone, kPending } kind = kNone;
  int64_t value = 0;  // kErrno: the negative errno; kValue: the number
  std::string text;   // kText
  bool operator==(const Expect&) const = default;
};

struct Op {
  OpKind kind = OpKind::kRun;
  int task = 0;
  std::string path;   // cgroup path (mkdir, rmdir, attach, assoc, flush) or file path
  std::string data;   // write data; fault site name
  int a = -1, b = -1; // handles: disk or bio (a: the one bound or acted on, b: the source)
  uint64_t n = 0;     // size, bytes, pid, jiffies, N, permille
  uint64_t m = 0;     // second number: major (disk_alloc), seed (fault_prob), site N
  uint64_t latency = 0, max_io = 0;  // disk_alloc options
  uint64_t slice = 0;                 // disk_alloc: the throttle slice in jiffies (0: HZ/10)
  uint64_t nr_requests = 0;           // disk_alloc: the request pool (0: none)
  BioOp bio_op = BioOp::kRead;
  unsigned flags = 0;  // kFlag*
  bool nowait = false;
  bool cpd_only = false;  // pol_*: the cpd-only test policy instead of testpol
  Ctx ctx = Ctx::kProcess;
  Expect expect;
  bool operator==(const Op&) const = default;
};

// How the tasks of a concurrent scenario interleave (FORMAT.md, "Schedules"). A scenario
// with a schedule runs its prologue (the operations before the first line tagged with a
// task other than T0) alone, then each task's remaining operations on its own fiber under
// the controlled scheduler; one without runs every operation in order on one task (tags
// are kept).
//
// The default policy (kList with no entries): the running task keeps running until it
// blocks or ends, then the next runnable task after it (by task order) runs. A Preempt
// entry changes one decision: when task `task`, inside the operation at index `op` of the
// scenario, reaches its `seam`-th scheduling point (1-based, counted within that op), task
// `to` runs next (if it is runnable then; else the entry does nothing). kPct and kWalk
// pick every decision from a seeded PCT or random-walk source instead; running such a
// schedule once records the equivalent explicit list.
struct Preempt {
  int task = 0, op = 0, seam = 1, to = 0;
  bool operator==(const Preempt&) const = default;
};
struct Schedule {
  enum Kind : uint8_t { kNone, kList, kPct, kWalk } kind = kNone;
  uint64_t seed = 0;
  int depth = 1;  // kPct: the bug depth (number of priority change points + 1)
  std::vector<Preempt> preempts;  // kList only
  // kPct: how many scheduling decisions the run is expected to take, the range PCT draws
  // its change points from; 0: 25 per operation (at least 100). A change point past the
  // end of the run is wasted, so fuzz_sched's schedule mutation writes here the length it
  // measured for the same operations (fuzz/sched_mutate.h).
  uint32_t steps = 0;
  bool operator==(const Schedule&) const = default;
};

struct Scenario {
  std::vector<Op> ops;
  Schedule sched;
  bool operator==(const Scenario&) const = default;
};

// Paths, file names and fault-site names use [A-Za-z0-9/._-] only, without "//" (both
// forms enforce it: "//b" and "/b" would be one path in the binary form).
bool name_ok(const std::string& s);
inline constexpr int kMaxTask = 7;
inline bool is_pol_op(OpKind k) {
  return k == OpKind::kPolRegister || k == OpKind::kPolUnregister || k == OpKind::kPolActivate ||
         k == OpKind::kPolDeactivate;
}  // task tags T0..T7

inline constexpr int kMaxPctDepth = 8;
inline constexpr uint32_t kMaxPctSteps = 100000;  // a PCT schedule's steps=

// Drops every expectation (fuzzers: random expectations are noise; the oracle still runs).
inline void strip_expectations(Scenario* s) {
  for (Op& op : s->ops) op.expect = {};
}

// The text name of each kind ("mkdir", ...); nullptr for kCount.
const char* op_name(OpKind k);
// Errno names understood in expectations and printed by to_text: "EINVAL" <-> 22.
const char* errno_name(int err);  // nullptr if not one of ours
int errno_from_name(const std::string& name);  // 0 if unknown

}  // namespace scenario
