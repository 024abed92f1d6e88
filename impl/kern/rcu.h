// SPDX-License-Identifier: MIT
// RCU, our own, on C++ atomics that TSan understands (Debian's liburcu gives false reports).
//
// Model: non-preemptible RCU (CONFIG_PREEMPT_RCU=n). rcu_read_lock() makes the task atomic
// (task.h), so it owns its virtual CPU for the whole read-side critical section and at
// most one outermost section is active per CPU. Each CPU therefore has one reader slot:
// 0 when no section is active, else 1 + the grace-period number the reader saw on entry.
// Only explicit rcu_read_lock() sections are readers: unlike the consolidated kernel RCU,
// a region with preemption, bottom halves or IRQs disabled is NOT waited for, and
// rcu_dereference() outside a read section is reported (kRcu). That is stricter than the
// kernel and never hides a bug.
//
// Protocol (S = the single total order of seq_cst operations; FENCE_x are seq_cst fences):
//   reader, outermost lock:   g = gp_seq ; slot[cpu] = g + 1 ; FENCE_R ; reads...
//   reader, outermost unlock: slot[cpu] = 0 ; if (gp_waiters) notify(slot)
//   synchronize_rcu():        unpublish ; FENCE_U ; T = ++gp_seq ;
//                             for each CPU wait until slot == 0 || slot > T ; free
//   call_rcu():               unpublish ; FENCE_C ; tag T = gp_seq + 1
//   completing T:             a task that read gp_seq >= T scans every slot; if none is in
//                             (0, T], the grace period T is complete.
// Slot stores, slot scans and every gp_seq access are seq_cst.
//
// Numbered guarantees (for a reader R and an updater U that unpublished object X):
//   1. If R's slot store precedes U's scan of that slot in S, the scan sees g + 1 (or a
//      later value, written after R's section ended) and waits while it is <= T.
//   2. If the scan does not see R's slot store, the store follows the scan in S, so
//      FENCE_U/FENCE_C < (increment to T) <= scan < slot store < FENCE_R in S, and by the
//      fence-fence rule R's later loads see U's unpublishing stores: R cannot reach X.
//   3. If R's slot value is > T, R read gp_seq after the increment to T, which follows
//      FENCE_U/FENCE_C in S: as in 2, R cannot reach X.
//   4. R's unlock store of 0 (seq_cst, so a release) is read by U's scan (seq_cst, so an
//      acquire): everything R did happens-before the free. That is the edge TSan sees. The
//      fences of 2 and 3 are invisible to TSan, but they concern stores R never observes,
//      so TSan's happens-before view stays exact, and a missing grace period (no scan, no
//      edge) is a race TSan reports.
//   5. No lost wakeup: unlock stores the slot then reads gp_waiters; synchronize_rcu()
//      increments gp_waiters then re-reads the slot (all seq_cst): a Dekker pair, so either
//      the reader notifies or the updater sees the slot clear.
//
// Callbacks. call_rcu() queues a callback (one global FIFO, each numbered by a sequence
// number) tagged with the grace period it must outlive. rcu_process_callbacks() is the RCU
// softirq: it starts a grace period covering the newest callback unless one exists, polls
// it without waiting, and runs the ready callbacks in softirq context on the CPU that
// queued them (run_in_irq), reporting kLockHeld for a callback that returns holding a lock.
// Completion is published as cb_done_upto ("every callback numbered <= N has returned";
// release store under the queue mutex, acquire load in rcu_barrier), so rcu_barrier() is
// exact even while other tasks run callbacks. rcu_barrier() waits for every callback
// queued before it and runs them itself, so a single-task program needs no RCU thread;
// synchronize_rcu() in a single-task program completes at once (no slot is busy).
//
// Misuse reported (kRcu unless noted): synchronize_rcu() or rcu_barrier() inside a read
// section (it would wait for itself); unbalanced rcu_read_unlock(); rcu_dereference()
// outside a read section; call_rcu() of a head already queued; rcu_reset() with a reader
// or callbacks pending. Sleeping inside a read section is kSleepInAtomic (might_sleep in
// task.h: a reader is atomic).
//
// Costs: an outermost rcu_read_lock is one seq_cst load, one seq_cst store and one fence,
// plus task.h's CPU claim; nested lock/unlock touch only the task. A grace period scans
// kMaxCpus slots; call_rcu and each callback take the queue mutex once.
#pragma once

#include <atomic>
#include <cstdint>

namespace kern {

// Embedded in the object an RCU callback frees. Default-constructed (or zeroed) before
// its first call_rcu(); the runtime owns every field while the head is queued.
struct rcu_head {
  rcu_head* next = nullptr;
  void (*func)(rcu_head*) = nullptr;  // non-null exactly while queued
  uint64_t gp = 0;                    // grace period this callback must outlive
  uint64_t seq = 0;                   // position in the callback FIFO (rcu_barrier)
  int cpu = 0;                        // CPU that queued it: the callback runs there
};

// Read side. Context: any; the outermost lock claims the CPU (task.h).
void rcu_read_lock();
void rcu_read_unlock();
bool rcu_read_lock_held();

// A read-side critical section for a scope.
class RcuReadGuard {
 public:
  RcuReadGuard() { rcu_read_lock(); }
  ~RcuReadGuard() { rcu_read_unlock(); }
  RcuReadGuard(const RcuReadGuard&) = delete;
  RcuReadGuard& operator=(const RcuReadGuard&) = delete;
};

namespace detail {
void rcu_dereference_report(const char* what);
}  // namespace detail

// Loads an RCU-protected pointer for dereferencing. Context: inside rcu_read_lock().
template <typename T>
T* rcu_dereference(const std::atomic<T*>& p) {
  if (!rcu_read_lock_held()) detail::rcu_dereference_report("rcu_dereference");
  // acquire: pairs with rcu_assign_pointer's release store, so the pointee's
  // initialisation is visible (the kernel relies on the address dependency instead,
  // which C++ cannot express).
  return p.load(std::memory_order_acquire);
}

// rcu_dereference() for a caller protected either by RCU or by `protected_by` (the
// lockdep-style condition, e.g. lock_is_held(&q->queue_lock)).
template <typename T>
T* rcu_dereference_check(const std::atomic<T*>& p, bool protected_by) {
  if (!protected_by && !rcu_read_lock_held())
    detail::rcu_dereference_report("rcu_dereference_check");
  return p.load(std::memory_order_acquire);  // as rcu_dereference
}

// Update side: the caller holds the update lock (`held` says so) and the pointer cannot
// change under it. relaxed: that lock orders this load against every update.
template <typename T>
T* rcu_dereference_protected(const std::atomic<T*>& p, bool held) {
  if (!held) detail::rcu_dereference_report("rcu_dereference_protected");
  return p.load(std::memory_order_relaxed);
}

// The pointer value only, never dereferenced (NULL tests). Any context. relaxed: nothing
// is read through it.
template <typename T>
T* rcu_access_pointer(const std::atomic<T*>& p) {
  return p.load(std::memory_order_relaxed);
}

// Publishes v. Any context; the caller serialises updaters.
template <typename T>
void rcu_assign_pointer(std::atomic<T*>& p, T* v) {
  // release: publishes *v's initialisation; pairs with rcu_dereference's acquire load.
  p.store(v, std::memory_order_release);
}

// Waits until every read section that started before the call has ended.
// Context: process, may sleep. Inside a read section: kRcu, and returns at once.
void synchronize_rcu();

// Queues func(head) to run after a grace period, in softirq context on this CPU.
// Context: any; never sleeps.
void call_rcu(rcu_head* head, void (*func)(rcu_head*));

// The RCU softirq: runs every callback whose grace period has completed; returns how many
// ran. Never waits for readers. A callback queued on another CPU runs as an interrupt of
// that CPU, which waits (like any interrupt delivery) while another task owns that CPU:
// call it from preemptible context holding no spinlock. Context: process.
int rcu_process_callbacks();

// Waits until every callback queued before the call has returned, running them itself.
// Context: process, may sleep. Inside a read section (kRcu) or from an interrupt such as
// an RCU callback (kSleepInAtomic): reported, returns at once (it would wait for itself).
void rcu_barrier();

// Callbacks queued and not yet returned (teardown asserts 0).
uint64_t rcu_pending_callbacks();

// Fresh world (fuzz inputs, tests). Runs nothing and waits for nothing: a reader slot
// still set is reported (kRcu) and cleared; pending callbacks are reported (kRcu) and
// dropped WITHOUT running (their objects leak, which LSan reports as well). Drain with
// rcu_barrier() first. Call while no task runs RCU code.
void rcu_reset();

}  // namespace kern
