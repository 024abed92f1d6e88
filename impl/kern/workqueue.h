// SPDX-License-Identifier: MIT
// Workqueues: deferred process-context execution (queue_work, flush_work,
// cancel_work_sync, flush_workqueue, ordered and WQ_MEM_RECLAIM queues).
//
// Execution. Work items run in process context under a kworker task identity, either
//   - on worker threads started with start_workers(n) (native multi-threaded runs), which
//     sleep through wait_until() when idle; or
//   - on demand: run_pending_work() runs everything queued, and a waiter that needs a work
//     item done (flush_work, cancel_work_sync, flush_workqueue, destroy_workqueue) runs it
//     itself when no worker thread exists. That keeps single-task programs (every fuzz
//     input) deterministic and free of thread creation. The inline run switches the
//     thread's current() to a fresh kworker Task, so the work never inherits the waiter's
//     held locks or context.
// Ordered workqueues run at most one item at a time, in queueing order.
//
// Locking: one pool lock, "wq_pool.lock" (irq-safe kern::spinlock_t, irqsave: queue_work is
// legal from any context) protects every queue, every work's pending/running state and the
// active counts. nr_queued (atomic) mirrors the number of queued items for the workers'
// wait predicate; it is written under the pool lock and read with acquire.
//
// Lockdep pseudo-locks, as in the kernel: a class per workqueue ("wq:<name>") and per work
// item ("work:<name>"). Running an item holds both around the callback; flush_work holds
// the work's, flush_workqueue the queue's. Flushing while holding a lock that the work
// takes is a kLockOrder cycle. Flushing or cancel_sync-ing a work from inside itself is
// kWork. A work that returns holding a lock or in atomic context is kLockHeld.
#pragma once

#include <atomic>
#include <cstdint>

namespace kern {

struct LockClass;
struct workqueue_struct;

struct work_struct {
  void (*func)(work_struct*) = nullptr;
  const char* name = "work";
  LockClass* dep = nullptr;
  // Written under wq_pool.lock; an atomic so wait predicates can read it unlocked
  // (release store when cleared at pick time, acquire load in the predicate).
  std::atomic<bool> pending{false};
  // Guarded by wq_pool.lock.
  workqueue_struct* wq = nullptr;  // where it is (or was last) queued
  work_struct* next = nullptr;     // queue link
  // Whether it is running is recorded in the pool, not here: a work function may free
  // its own work_struct (blkg_free_workfn does), so nothing touches it after it returns.
};

void INIT_WORK(work_struct* w, void (*fn)(work_struct*), const char* name);

enum WqFlags : unsigned {
  WQ_UNBOUND = 1u << 0,
  WQ_MEM_RECLAIM = 1u << 1,  // has a rescuer: may be used on the memory-reclaim path
  WQ_ORDERED = 1u << 2,
};

workqueue_struct* alloc_workqueue(const char* name, unsigned flags, int max_active);
workqueue_struct* alloc_ordered_workqueue(const char* name, unsigned flags);
void destroy_workqueue(workqueue_struct* wq);
workqueue_struct* system_wq();
const char* workqueue_name(const workqueue_struct* wq);
unsigned workqueue_flags(const workqueue_struct* wq);

bool queue_work(workqueue_struct* wq, work_struct* w);
inline bool schedule_work(work_struct* w) { return queue_work(system_wq(), w); }
bool work_pending(work_struct* w);
// Waits until w is neither pending nor running. Lockdep sees the work's pseudo-lock taken,
// and its queue's when the queue is ordered or has a rescuer (WQ_MEM_RECLAIM): one item of
// such a queue flushing another is reported as recursion, since the queue may have a
// single execution context left (the kernel's start_flush_work).
bool flush_work(work_struct* w);
// The lockdep side of flush_work(w) for w on wq, without waiting: for a path that waits
// for w only sometimes (a request pool that is rarely empty), so the dependency is checked
// on every pass and not only when the wait happens, as the kernel's might_alloc annotates
// reclaim. Context: process; may sleep.
void might_flush_work(work_struct* w, workqueue_struct* wq);
bool cancel_work_sync(work_struct* w);
void flush_workqueue(workqueue_struct* wq);
// flush_workqueue of every queue that exists now: on return nothing queued before the call
// is queued or running (a harness's quiesce point: queued items are not the only ones in
// flight, a running one may still be about to complete bios). Context: process.
void flush_all_workqueues();
work_struct* current_work();

// Runs queued work on the calling thread until none is runnable; returns how many ran.
int run_pending_work();
void start_workers(int n);
void stop_workers();
uint64_t nr_pending_work();
// Fresh world: drops queued items (reported as kWork if any). Workers must be stopped.
void workqueues_reset();

}  // namespace kern
