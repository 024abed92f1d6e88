// SPDX-License-Identifier: MIT
// Wait queues and completions, with the kernel's sleep/wake protocol.
//
// The protocol that avoids lost wakeups is the kernel's: a waiter first puts itself on the
// queue (prepare_to_wait, which clears its `woken` flag), THEN tests the condition, and only
// then sleeps (schedule_wait); a waker first makes the condition true, THEN calls wake_up,
// which sets `woken` on every queued entry. Whatever the interleaving, either the waiter sees
// the condition or the waker sees the entry. Code that tests the condition before queueing
// itself can lose the wakeup; under the controlled scheduler that shows up as a kDeadlock
// report (nobody runnable), which is how the suite catches it (tests/unit/kern/wait_test.cc).
//
// Locking: wait_queue_head::lock (irq-safe spinlock, class "wq->lock") protects the entry
// list. An entry's `woken` is an atomic: stored true (release) by wake_up under the lock,
// loaded (acquire) by the sleeping waiter's wait_until predicate without the lock; the
// pairing makes everything the waker did before wake_up visible to the woken task.
// notify(&entry) follows every store of woken (the sched.h contract).
#pragma once

#include <atomic>

#include "impl/kern/lock.h"
#include "impl/kern/sched.h"

namespace kern {

struct wait_queue_entry {
  Task* task = nullptr;
  std::atomic<bool> woken{false};
  bool queued = false;  // on a head's list; protected by that head's lock
  wait_queue_entry* prev = nullptr;
  wait_queue_entry* next = nullptr;
};

class wait_queue_head {
 public:
  explicit wait_queue_head(const char* name = "wq->lock") : lock(name) {}
  spinlock_t lock;
  wait_queue_entry* first GUARDED_BY(lock) = nullptr;
  wait_queue_entry* last GUARDED_BY(lock) = nullptr;
};

// Queue `e` on `wq` (if not already queued) and clear its woken flag. Context: process.
void prepare_to_wait(wait_queue_head& wq, wait_queue_entry& e);
// Dequeue `e`. Context: process.
void finish_wait(wait_queue_head& wq, wait_queue_entry& e);
// Sleep until `e` is woken. May sleep (might_sleep). Context: process, preemptible.
void schedule_wait(wait_queue_head& wq, wait_queue_entry& e);
// Wake every queued waiter. Any context (takes wq.lock with irqsave).
void wake_up(wait_queue_head& wq);
// True if any waiter is queued (waitqueue_active). A snapshot: stale once returned.
bool waitqueue_active(wait_queue_head& wq);

// wait_event(wq, cond): sleep until cond() is true, in the race-free order.
template <typename Cond>
void wait_event(wait_queue_head& wq, Cond cond) {
  if (cond()) return;
  wait_queue_entry e;
  for (;;) {
    prepare_to_wait(wq, e);
    if (cond()) break;
    schedule_wait(wq, e);
  }
  finish_wait(wq, e);
}

// struct completion: a counted event. complete() releases one waiter (or one future
// wait), complete_all() every present and future waiter.
class completion {
 public:
  explicit completion(const char* name = "completion") : wait(name) {}
  void complete();
  void complete_all();
  void wait_for_completion();
  bool try_wait_for_completion();
  bool completion_done();
  void reinit();

 private:
  wait_queue_head wait;
  // Protected by wait.lock; read by wait_event's condition under that lock.
  unsigned done GUARDED_BY(wait.lock) = 0;
  static constexpr unsigned kAll = ~0u / 2;
};

}  // namespace kern
