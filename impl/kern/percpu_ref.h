// SPDX-License-Identifier: MIT
// percpu_ref: the kernel's killable reference count with a release callback.
//
// Lifecycle:
//   1. percpu_ref_init(release) starts the ref live with one reference, the initial (or
//      existence) reference, owned by whoever created the object.
//   2. While live: get/put, tryget (succeeds while the count is > 0) and tryget_live
//      (succeeds while live).
//   3. percpu_ref_kill() marks the ref dead and drops the initial reference. From then on
//      tryget_live fails, while tryget and get on a still-referenced ref keep working (blkg
//      association relies on this: a dying blkg can still be tried-got).
//   4. The put that brings a dead ref to zero calls release(ref), in whatever context that
//      put runs (an IO completion in hardirq context included). release() typically frees
//      the object, possibly after a grace period.
//   5. percpu_ref_exit() after release, from release() itself, or on the error path of an
//      object that was initialised but never went live (count 1, not killed).
//
// What is emulated: the ref always behaves like a kernel percpu_ref in atomic mode. One
// 64-bit word holds a DEAD bit (bit 63) and the count (low bits), and every operation is
// one CAS loop or RMW on it. The per-CPU fast mode is not emulated, and that hides none of
// the bugs the suite looks for: the kernel switches a ref to atomic mode at kill, and what
// a caller can observe is the same in both modes - get/tryget succeed iff the count is
// positive, a tryget_live ordered after the kill fails (one racing with it may succeed),
// release runs exactly once, at the last put after the kill. The per-CPU mode adds speed,
// and a grace period inside kill: a percpu-mode kill keeps a reference across that grace
// period, so the kernel never calls release() from inside percpu_ref_kill() for such a ref,
// while here (as for a kernel ref already in atomic mode) kill releases at once when it
// drops the last reference. So code that touches the object after kill without a reference
// of its own fails here (ASan) - stricter than the kernel's common case, never laxer. One
// shared word also makes every race on the ref visible to TSan, where per-CPU counters
// would hide some.
//
// Ordering: get and the try-gets take references derived from an existing reference or an
// RCU lookup (see refcount.h); tryget/tryget_live CASes are acquire on success anyway so a
// caller that wins a reference sees what the last put published. put and kill are acq_rel:
// release orders the accesses made under the dropped reference before the decrement, and
// acquire makes the put that calls release() see all of them.
//
// Misuse (kRefcount, signature "percpu_ref:<name>:<what>"), after which the word is left
// as it was, so one bug does not turn into a double release:
//   - put that would take the count below zero (put after release, unbalanced put);
//   - put that drops the last reference of a ref that was never killed (the initial
//     reference was put by someone other than kill);
//   - get of a ref whose count is 0 (get after release: use-after-free);
//   - kill of a dead ref;
//   - exit of a ref that is still referenced (other than the init error path of 5).
#pragma once

#include <atomic>
#include <cstdint>

namespace kern {

struct percpu_ref;
using percpu_ref_func_t = void (*)(percpu_ref*);

struct percpu_ref {
  std::atomic<uint64_t> word{0};  // kPercpuRefDead | count
  percpu_ref_func_t release = nullptr;
  const char* name = "percpu_ref";  // stable name for report signatures
  bool initialized = false;         // between init and exit (set and read by the owner)
};

inline constexpr uint64_t kPercpuRefDead = uint64_t{1} << 63;

// gfp-less: the emulation allocates nothing per ref. Returns 0. Context: any.
int percpu_ref_init(percpu_ref* ref, percpu_ref_func_t release, const char* name);
// Context: any; see lifecycle stage 5.
void percpu_ref_exit(percpu_ref* ref);
// All of the following: any context, never sleep; each is a seam point (kAtomic).
void percpu_ref_get(percpu_ref* ref);
bool percpu_ref_tryget(percpu_ref* ref);
bool percpu_ref_tryget_live(percpu_ref* ref);
void percpu_ref_put(percpu_ref* ref);
void percpu_ref_kill(percpu_ref* ref);
// Snapshots. is_zero and is_dying are acquire loads (a true result is ordered after the
// last put, resp. after the kill and what the killer wrote before it); count is relaxed.
bool percpu_ref_is_zero(const percpu_ref* ref);
bool percpu_ref_is_dying(const percpu_ref* ref);
uint64_t percpu_ref_count(const percpu_ref* ref);

}  // namespace kern
