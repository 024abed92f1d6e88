// SPDX-License-Identifier: MIT
#include "impl/kern/rcu.h"

#include <mutex>
#include <string>

#include "impl/kern/cpu.h"
#include "impl/kern/lockdep.h"
#include "impl/kern/report.h"
#include "impl/kern/sched.h"
#include "impl/kern/task.h"

namespace kern {
namespace {

struct alignas(64) ReaderSlot {
  std::atomic<uint64_t> v{0};
};

std::atomic<uint64_t> gp_seq{0};
ReaderSlot slots[kMaxCpus];
// Updaters blocked in synchronize_rcu; read_unlock notifies only when non-zero (seq_cst
// Dekker pair: updater increments then re-reads slots; reader clears slot then reads this).
std::atomic<int> gp_waiters{0};

// Callback queue: the RCU runtime's own bookkeeping, a plain std::mutex that never calls
// the seam (it is infrastructure, not kernel code under test). FIFO in queueing order.
std::mutex cb_mutex;
rcu_head* cb_first = nullptr;   // guarded by cb_mutex
rcu_head* cb_last = nullptr;    // guarded by cb_mutex
std::atomic<uint64_t> cb_queued{0};   // total ever queued
std::atomic<uint64_t> cb_invoked{0};  // total ever run
std::atomic<uint64_t> gp_completed{0};  // highest grace period known complete

bool gp_done(uint64_t target) {
  for_each_possible_cpu(cpu) {
    const uint64_t s = slots[cpu].v.load(std::memory_order_acquire);
    if (s != 0 && s <= target) return false;
  }
  return true;
}

void note_completed(uint64_t target) {
  uint64_t c = gp_completed.load(std::memory_order_relaxed);
  while (c < target && !gp_completed.compare_exchange_weak(c, target, std::memory_order_release,
                                                           std::memory_order_relaxed)) {
  }
}

uint64_t start_gp() {
  // seq_cst fence: orders the caller's unpublishing stores before the slot reads (pairs
  // with the reader's fence after its slot store).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return gp_seq.fetch_add(1, std::memory_order_seq_cst) + 1;
}

}  // namespace

void rcu_read_lock() {
  Task* t = current();
  seam(SeamKind::kRcuRead, &gp_seq);
  if (t->rcu_read_depth > 0) {
    t->rcu_read_depth++;
    return;
  }
  detail::enter_atomic(t);  // claims the CPU: one reader section per CPU
  t->rcu_read_depth = 1;
  const uint64_t g = gp_seq.load(std::memory_order_seq_cst);
  slots[t->cpu].v.store(g + 1, std::memory_order_seq_cst);
  std::atomic_thread_fence(std::memory_order_seq_cst);  // pairs with start_gp()'s fence
}

void rcu_read_unlock() {
  Task* t = current();
  if (t->rcu_read_depth <= 0) {
    kreport(ReportKind::kRcu, "rcu_read_unlock-unbalanced",
            "rcu_read_unlock without rcu_read_lock by " + t->label());
    return;
  }
  if (--t->rcu_read_depth == 0) {
    // release: everything read in the section happens-before the updater's acquire load
    // of this slot, and so before its free.
    slots[t->cpu].v.store(0, std::memory_order_seq_cst);
    if (gp_waiters.load(std::memory_order_seq_cst) != 0) notify(&slots[t->cpu]);
    detail::leave_atomic(t);
  }
  seam(SeamKind::kRcuRead, &gp_seq);
}

bool rcu_read_lock_held() { return current()->rcu_read_depth > 0; }

void synchronize_rcu() {
  Task* t = current();
  if (t->rcu_read_depth > 0) {
    kreport(ReportKind::kRcu, "synchronize_rcu-in-read-section",
            "synchronize_rcu() inside an RCU read-side critical section by " + t->label() +
                ": it would wait for itself");
    return;
  }
  might_sleep("synchronize_rcu");
  const uint64_t target = start_gp();
  gp_waiters.fetch_add(1, std::memory_order_seq_cst);
  for_each_possible_cpu(cpu) {
    ReaderSlot& s = slots[cpu];
    WaitDesc d{"grace-period", &s, "rcu", cpu_state(cpu).owner.load(std::memory_order_relaxed)};
    wait_until(d, [&s, target] {
      const uint64_t v = s.v.load(std::memory_order_acquire);
      return v == 0 || v > target;
    });
  }
  gp_waiters.fetch_sub(1, std::memory_order_relaxed);
  note_completed(target);
}

void call_rcu(rcu_head* head, void (*func)(rcu_head*)) {
  seam(SeamKind::kAtomic, &cb_mutex);
  head->func = func;
  head->next = nullptr;
  head->cpu = current()->cpu;
  std::lock_guard<std::mutex> g(cb_mutex);
  head->gp = gp_seq.load(std::memory_order_seq_cst) + 1;
  if (cb_last)
    cb_last->next = head;
  else
    cb_first = head;
  cb_last = head;
  cb_queued.fetch_add(1, std::memory_order_relaxed);
}

int rcu_process_callbacks() {
  uint64_t newest;
  {
    std::lock_guard<std::mutex> g(cb_mutex);
    if (!cb_first) return 0;
    newest = cb_last->gp;
  }
  // Start (or reuse) a grace period covering the newest callback and poll it.
  if (gp_completed.load(std::memory_order_acquire) < newest) {
    uint64_t target = gp_seq.load(std::memory_order_seq_cst);
    if (target < newest) target = start_gp();
    if (gp_done(target)) note_completed(target);
  }
  const uint64_t done = gp_completed.load(std::memory_order_acquire);
  rcu_head* ready = nullptr;
  {
    std::lock_guard<std::mutex> g(cb_mutex);
    rcu_head** tail = &ready;
    while (cb_first && cb_first->gp <= done) {
      rcu_head* h = cb_first;
      cb_first = h->next;
      if (!cb_first) cb_last = nullptr;
      h->next = nullptr;
      *tail = h;
      tail = &h->next;
    }
  }
  int n = 0;
  while (ready) {
    rcu_head* h = ready;
    ready = h->next;
    seam(SeamKind::kWork, h);
    run_in_irq(h->cpu, /*hard=*/false, [h] {
      Task* t = current();
      const int held = t->nr_held;
      h->func(h);
      if (t->nr_held != held) {
        kreport(ReportKind::kLockHeld, "lock-held-across-rcu-callback",
                "RCU callback returned holding locks:\n" + held_locks_text(t));
      }
    });
    cb_invoked.fetch_add(1, std::memory_order_relaxed);
    ++n;
  }
  return n;
}

void rcu_barrier() {
  might_sleep("rcu_barrier");
  const uint64_t want = cb_queued.load(std::memory_order_relaxed);
  while (cb_invoked.load(std::memory_order_relaxed) < want) {
    synchronize_rcu();
    if (rcu_process_callbacks() == 0) seam(SeamKind::kPreempt, &cb_mutex);
  }
}

uint64_t rcu_pending_callbacks() {
  return cb_queued.load(std::memory_order_relaxed) - cb_invoked.load(std::memory_order_relaxed);
}

void rcu_reset() {
  for_each_possible_cpu(cpu) {
    if (slots[cpu].v.load(std::memory_order_relaxed) != 0) {
      kreport(ReportKind::kRcu, "rcu_reset-with-reader",
              "rcu_reset with a reader on cpu" + std::to_string(cpu));
      slots[cpu].v.store(0, std::memory_order_relaxed);
    }
  }
  std::lock_guard<std::mutex> g(cb_mutex);
  if (cb_first) {
    kreport(ReportKind::kRcu, "rcu_reset-with-callbacks",
            "rcu_reset with " + std::to_string(rcu_pending_callbacks()) +
                " callbacks pending (dropped)");
  }
  cb_first = cb_last = nullptr;
  cb_invoked.store(cb_queued.load(std::memory_order_relaxed), std::memory_order_relaxed);
}

}  // namespace kern
