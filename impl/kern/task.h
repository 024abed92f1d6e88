// SPDX-License-Identifier: MIT
// Task context: what the kernel keeps in preempt_count, irq flags and task_struct, per task.
//
// Every thread of control in the emulated kernel is a Task: a native thread (TaskScope), a
// fiber of the controlled scheduler, or the implicit task of a thread that never declared
// one (the gtest main thread, for instance; it runs on CPU 0). current() returns it.
//
// A task carries:
//   - preempt_count split like the kernel's: preempt_disable nesting, softirq (bh-disable and
//     serving) count, hardirq nesting;
//   - whether local IRQs are off (and local_irq_save nesting, so save/restore pairs check);
//   - RCU read-side nesting;
//   - the held-lock stack that lockdep checks (lockdep.h);
//   - a GFP scope (memalloc_noio_save/restore) that masks allocations made inside it;
//   - the virtual CPU it runs on.
//
// Per-CPU ownership (cpu.h): when a task stops being preemptible (any of the counts above
// goes from all-zero to non-zero, or IRQs go off) it takes ownership of its virtual CPU and
// keeps it until it is preemptible again. Two tasks therefore never touch one CPU's
// per-CPU data at the same time, just as two contexts of one real CPU never run at once.
// Interrupt-context work aimed at a CPU (timers, RCU callbacks, completions) runs through
// run_in_irq(), which takes ownership of that CPU the same way.
//
// Task state is only ever touched by the task itself (and by the controlled scheduler while
// the task is switched out), so it needs no locking.
#pragma once

#include <cstdint>
#include <source_location>
#include <string>

#include "impl/kern/sched.h"

namespace kern {

struct LockClass;

// One entry of a task's held-lock stack (lockdep.h owns the semantics). No member
// initializers: only entries below Task::nr_held are ever read, each written whole when
// pushed, and zeroing the 96 entries (3.8 KB) cost every task creation, interrupt
// deliveries and inline kworkers included.
struct HeldLock {
  const LockClass* cls;
  const void* instance;
  std::source_location where;
  bool read;               // shared acquisition (queue enter)
  bool trylock;
  int subclass;
  // Interrupt context of the acquisition: (hardirq << 8) | softirq_serving. Lockdep only
  // orders locks taken in the same context: an interrupt's locks do not depend on the
  // locks of the context it interrupted (they are a separate chain, as in the kernel).
  unsigned irq_ctx;
};

inline constexpr int kMaxHeldLocks = 96;  // kernel MAX_LOCK_DEPTH is 48; TSan gives up at 64

// GFP scope bits (memalloc_*_save). Applied to every allocation inside the scope.
enum GfpScope : unsigned {
  kScopeNone = 0,
  kScopeNoIo = 1u << 0,  // memalloc_noio_save: allocations must not issue IO (reclaim)
  kScopeNoFs = 1u << 1,  // memalloc_nofs_save
};

enum class TaskKind : uint8_t { kProcess, kKworker, kIrqDelivery };

struct Task {
  Task(std::string name, int cpu, TaskKind kind = TaskKind::kProcess);
  ~Task();
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;

  uint32_t id;
  std::string name;
  TaskKind kind;
  int cpu;                 // the virtual CPU this task runs on (cpu.h)

  int preempt_disable = 0; // preempt_disable() nesting
  int softirq = 0;         // local_bh_disable() nesting + softirq being served
  int softirq_serving = 0; // how many of `softirq` are "serving a softirq" (in_serving_softirq)
  int hardirq = 0;         // hardirq nesting
  bool irqs_off = false;   // local_irq_disable() state
  int rcu_read_depth = 0;
  unsigned gfp_scope = kScopeNone;

  int cpu_owned = 0;       // 1 while this task owns `cpu` (cpu.h), 0 otherwise

  int nr_held = 0;
  HeldLock held[kMaxHeldLocks];

  bool exited = false;
  void* sched_data = nullptr;  // backend-private (controlled scheduler)
  // The work item this task is executing (workqueue.cc: flush/cancel of a work from
  // inside itself). Per task, not per thread: fibers of the controlled scheduler share a
  // thread, and a work preempted on one must not be seen as running on the next.
  void* running_work = nullptr;
  // The task this one runs on top of, on the same thread (an inline kworker under its
  // flusher, an interrupt delivery under its sender). That task cannot run until this one
  // returns, so waiting for a lock it holds can never end (lock.cc reports it).
  Task* inline_parent = nullptr;
  // ExpectWarn (report.h): a WARN_ON this task fires inside this function is counted in
  // expected_warns, not reported. Per task for the same reason as running_work.
  const char* expected_warn_func = nullptr;
  int expected_warns = 0;

  // "T3(kworker/0)" style name for reports.
  std::string label() const;

  // One line: context counts and held locks, for reports.
  std::string describe() const;
};

// A task's label kept as its parts, to render only when a report prints it: lockdep records
// the task of every new edge and usage bit, and formatting the text each time was a large
// part of its cost in a fresh fuzz world. `set` reuses the name's buffer.
struct TaskTag {
  uint32_t id = 0;
  int cpu = 0;
  std::string name;

  void set(const Task* t) {
    id = t->id;
    cpu = t->cpu;
    name.assign(t->name);
  }
  std::string str() const;  // as Task::label()
};

namespace detail {
extern thread_local Task* tls_current;
Task* implicit_task();
}  // namespace detail

// The task running on this thread (or fiber). Never null.
inline Task* current() {
  Task* t = detail::tls_current;
  return t ? t : detail::implicit_task();
}
// Backends only: make `t` current on this thread (nullptr reverts to the implicit task).
void set_current(Task* t);

namespace detail {
// Atomic-context bookkeeping for primitives outside task.cc that change a context count
// (RCU): call enter_atomic() before making `t` non-preemptible (claims its CPU, may wait)
// and leave_atomic() after a change that may have made it preemptible again.
void enter_atomic(Task* t);
void leave_atomic(Task* t);
}  // namespace detail

// Registers the calling native thread as task `name` on virtual CPU `cpu` for the scope.
// At scope exit reports any lock still held (kLockHeld) or a non-zero context count.
class TaskScope {
 public:
  TaskScope(std::string name, int cpu, TaskKind kind = TaskKind::kProcess);
  ~TaskScope();
  TaskScope(const TaskScope&) = delete;
  TaskScope& operator=(const TaskScope&) = delete;
  Task& task() { return task_; }

 private:
  Task task_;
  Task* saved_;
};

// A short-lived task identity (an interrupt delivery on another CPU, an inline kworker),
// taken from a per-thread free list rather than made on the stack: a Task is 4 KB, and on
// the stack it was an 8 KB ASan frame (poisoned and unpoisoned each time) for every
// delivery. Each one is a fresh task: a new id, zero context counts, no locks. Fibers of
// one thread may hold several at once, in any order.
class TransientTask {
 public:
  TransientTask(const char* name, int cpu, TaskKind kind);
  ~TransientTask();
  TransientTask(const TransientTask&) = delete;
  TransientTask& operator=(const TransientTask&) = delete;
  Task* get() const { return t_; }
  Task* operator->() const { return t_; }

 private:
  Task* t_;
};

// Checks a task leaving: no locks held, balanced context. Reports kLockHeld / kBug.
void check_task_exit(Task* t);

// ---- Context queries (all about current()) ----

// in_atomic(): preemption disabled by any means (preempt_disable, bh, irq, or RCU read in a
// non-preemptible-RCU kernel; we count RCU readers as atomic, as CONFIG_PREEMPT_RCU=n does).
bool in_atomic();
bool preemptible();
bool irqs_disabled();
bool in_interrupt();     // hardirq or softirq (serving or bh-disabled)
bool in_hardirq();
bool in_serving_softirq();
bool in_task();          // process context

// might_sleep(): reports kSleepInAtomic if the current context may not sleep, naming the
// reason (spinlock held, RCU read section, IRQs off, interrupt context). `what` names the
// operation that may sleep ("mutex_lock", "kmalloc(GFP_KERNEL)", ...).
void might_sleep_slow(const char* what, std::source_location where);
inline void might_sleep(const char* what = "might_sleep",
                        std::source_location where = std::source_location::current()) {
  const Task* t = current();
  // Fast path: fully preemptible process context.
  if (t->preempt_disable == 0 && t->softirq == 0 && t->hardirq == 0 && !t->irqs_off &&
      t->rcu_read_depth == 0) {
    seam(SeamKind::kPreempt, t);  // a possible sleep is a possible preemption point
    return;
  }
  might_sleep_slow(what, where);
}

// ---- Context transitions (all on current()) ----
void preempt_disable();
void preempt_enable();
void local_bh_disable();
void local_bh_enable();
void local_irq_disable();
void local_irq_enable();
using irqflags_t = unsigned long;
irqflags_t local_irq_save();
void local_irq_restore(irqflags_t flags);

// memalloc_noio scope, as memalloc_noio_save/restore.
unsigned memalloc_noio_save();
void memalloc_noio_restore(unsigned saved);

// Enter/leave interrupt context on the current task (used by run_in_irq and the timer and
// RCU callback runners). Hardirq implies IRQs off for the duration.
void hardirq_enter();
void hardirq_exit();
void softirq_enter();
void softirq_exit();

}  // namespace kern
