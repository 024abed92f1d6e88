// SPDX-License-Identifier: MIT
// A lockdep-style checker of our own (TSan's deadlock detector breaks past 64 held locks).
//
// Lock classes. Every lock instance belongs to a class named at its initialisation
// ("q->queue_lock", "blkcg->lock"); all instances with one name share a class, as all
// instances initialised at one spin_lock_init() site share one in the kernel. Classes are
// interned once (lock_class()); a class is never freed.
//
// What is checked on every acquisition by the current task:
//   1. Order. For every lock A already held, the edge A -> B (B = the new lock's class) is
//      added to a global dependency graph; if B already reaches A, that is a cycle and a
//      possible deadlock: kLockOrder, printing the chain that created each edge of the
//      cycle (the held locks with their acquisition sites at the time) and the current one.
//      Recursion on one class (B held, B taken again) is also reported, except for nested
//      acquisitions declared with a subclass (lock_nested) or for read acquisitions.
//      Trylocks add no edges (they cannot deadlock) but are pushed on the held stack.
//   2. IRQ safety. Per class, usage bits record: used in hardirq, used in softirq, taken in
//      process context with hardirqs enabled, taken with softirqs (bh) enabled. A class that
//      is both used in hardirq and taken with hardirqs on (or softirq vs bh on) can deadlock
//      against its own interrupt: kIrqSafety, naming both usages and where they were seen.
//   3. Held stack. Releasing a lock the task does not hold is kBadUnlock; more than
//      kMaxHeldLocks held is kBug.
// Sleeping in atomic context is checked by might_sleep() (task.h) and relies on the held
// stack only for its message.
//
// Pseudo-locks. Things that are not locks but deadlock like them are classes too: a work
// item's execution (flush_work under a lock the work takes), a queue freeze (the IO path
// entering a frozen queue), a timer's callback (del_timer_sync under a lock the handler
// takes). They use lock_acquire/lock_release directly with a LockClass.
//
// Cost: an acquisition does one held-stack push and, per held lock, one relaxed load of a
// bit in the class-pair matrix; only a new edge takes the graph mutex. Set
// lockdep_set_enabled(false) to measure primitives without it (bench/).
#pragma once

#include <atomic>
#include <cstdint>
#include <source_location>
#include <string>

#include "impl/kern/task.h"

namespace kern {

inline constexpr uint32_t kMaxLockClasses = 1024;

struct LockClass {
  uint32_t id;
  std::string name;
  bool sleeping;                      // mutex-like: acquiring may sleep
  std::atomic<uint32_t> usage{0};     // LockUsage bits
  // Where each usage bit was first seen (for reports); written once under the graph mutex.
  std::source_location usage_site[4];
  TaskTag usage_task[4];
};

enum LockUsage : uint32_t {
  kUsedInHardirq = 1u << 0,
  kUsedInSoftirq = 1u << 1,
  kEnabledHardirq = 1u << 2,  // acquired in process context with hardirqs on
  kEnabledSoftirq = 1u << 3,  // acquired in process context with softirqs (bh) on
};

// Interns the class `name`. `sleeping` must agree with earlier calls for the same name.
LockClass* lock_class(const char* name, bool sleeping = false);
// The class "<prefix><name>" (a timer's, a work item's), without allocating a string for
// the lookup: these are interned on every timer_setup and INIT_WORK.
LockClass* lock_class(const char* prefix, const char* name, bool sleeping);

void lockdep_set_enabled(bool on);
bool lockdep_enabled();

// Forget every edge and usage bit (fresh world per fuzz input). Classes stay interned.
void lockdep_reset();

// Record an acquisition/release by current(). `subclass` > 0 permits nesting one class
// (lock_nested); `read` marks a shared acquisition (recursive read is allowed).
void lock_acquire(LockClass* cls, const void* instance, bool trylock, bool read, int subclass,
                  std::source_location where);
void lock_release(LockClass* cls, const void* instance, std::source_location where);

// True if current() holds `instance`.
bool lock_is_held(const void* instance);

// lockdep_assert_held(): reports kBug when current() does not hold the lock. Works on any
// lock type of lock.h (they expose `dep_instance()`).
void lockdep_assert_held_instance(const void* instance, const char* name,
                                  std::source_location where);
#define lockdep_assert_held(l)                                             \
  ::kern::lockdep_assert_held_instance((l).dep_instance(), (l).dep_name(), \
                                       std::source_location::current())

// For reports: the held-lock stack of a task, one lock per line.
std::string held_locks_text(const Task* t);

// Statistics (bench and tests).
uint64_t lockdep_nr_edges();

}  // namespace kern
