// SPDX-License-Identifier: MIT
// RCU, our own, on C++ atomics that TSan understands (Debian's liburcu gives false reports).
//
// Model: non-preemptible RCU. A read-side critical section makes the task atomic, so it
// owns its CPU for the duration (task.h), and at most one reader section is active per
// virtual CPU. Each CPU has a reader slot: 0 when idle, else 1 + the grace-period number
// the reader saw on entry.
//
//   reader:  g = gp_seq (seq_cst) ; slot[cpu] = g + 1 (seq_cst) ; seq_cst fence ; reads...
//            ; slot[cpu] = 0 (release)
//   updater: unpublish (rcu_assign_pointer / list removal, release) ; seq_cst fence ;
//            target = ++gp_seq ; for each CPU wait until slot == 0 or slot > target ; free
//
// Guarantees: (1) a reader that entered before the grace period started is waited for:
// its slot holds a number <= target. (2) a reader the updater does not wait for (it read
// slot == 0) executed its slot store after the updater's fence, so by the fence pairing
// (store-buffering with fences on both sides) its later loads see the unpublished state and
// cannot reach the old object. (3) The release store of 0 at read-unlock pairs with the
// updater's acquire load of the slot, so everything the reader did happens-before the free:
// that is the edge TSan sees. Fences are invisible to TSan, but (2) involves no shared
// object, so TSan's view stays exact.
//
// call_rcu() queues a callback tagged with the grace period it must outlive (gp_seq + 1 at
// queueing). rcu_process_callbacks() (the RCU softirq) starts a grace period if callbacks
// wait, polls whether it has completed without blocking, and runs ready callbacks in
// softirq context on the CPU that queued them (run_in_irq), checking each returns with no
// lock held. synchronize_rcu() blocks (a possible sleep); rcu_barrier() waits until every
// callback queued before it has run, processing them itself so that a single-task program
// makes progress.
#pragma once

#include <atomic>
#include <cstdint>

namespace kern {

struct rcu_head {
  rcu_head* next = nullptr;
  void (*func)(rcu_head*) = nullptr;
  uint64_t gp = 0;   // grace period this callback must outlive
  int cpu = 0;       // CPU that queued it: the callback runs there
};

void rcu_read_lock();
void rcu_read_unlock();
bool rcu_read_lock_held();

template <typename T>
T* rcu_dereference(const std::atomic<T*>& p) {
  // acquire: pairs with rcu_assign_pointer's release store (the kernel's address
  // dependency, which C++ cannot express portably).
  return p.load(std::memory_order_acquire);
}

template <typename T>
void rcu_assign_pointer(std::atomic<T*>& p, T* v) {
  p.store(v, std::memory_order_release);  // publishes *v's initialisation
}

void synchronize_rcu();
void call_rcu(rcu_head* head, void (*func)(rcu_head*));
// Runs every callback whose grace period has completed; returns how many ran. Never blocks.
int rcu_process_callbacks();
void rcu_barrier();

uint64_t rcu_pending_callbacks();
// Fresh world: requires no reader and no pending callback (reported as kRcu otherwise;
// pending callbacks are then dropped without running).
void rcu_reset();

}  // namespace kern
