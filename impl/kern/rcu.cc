// SPDX-License-Identifier: MIT
// RCU: the protocol and its guarantees are described in rcu.h; each atomic below names its
// partner there.
#include "impl/kern/rcu.h"

#include <mutex>
#include <optional>
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

// The grace-period counter. Only ever incremented, except by rcu_reset (a fresh world,
// where no reader or callback holds a tag).
std::atomic<uint64_t> gp_seq{0};
// One slot per possible CPU (all kMaxCpus are scanned, so set_nr_cpus never hides one).
ReaderSlot slots[kMaxCpus];
// Updaters blocked in synchronize_rcu; rcu_read_unlock notifies only when non-zero
// (guarantee 5 of rcu.h).
std::atomic<int> gp_waiters{0};
// Highest grace period known complete. release CAS in note_completed() carries the
// happens-before edge from the scan (which acquired every reader's unlock) to whoever
// later reads it with acquire and runs callbacks.
std::atomic<uint64_t> gp_completed{0};

// Callback bookkeeping. cb_mutex is the RCU runtime's own infrastructure lock: a plain
// std::mutex, never held across a seam, a wait or a callback, so it can neither deadlock
// with kernel locks nor be seen by lockdep.
std::mutex cb_mutex;

// Callbacks detached by one rcu_process_callbacks() call and not yet all returned. Lives
// on that caller's stack while linked.
struct Batch {
  uint64_t first_unfinished;  // seq of the first callback of the batch not yet returned
  Batch* next;
};

rcu_head* cb_first = nullptr;  // guarded by cb_mutex: FIFO of queued callbacks
rcu_head* cb_last = nullptr;   // guarded by cb_mutex
Batch* cb_inflight = nullptr;  // guarded by cb_mutex: batches being run
uint64_t cb_next_seq = 1;      // guarded by cb_mutex: seq of the next call_rcu
// Every callback numbered <= cb_done_upto has returned (or was dropped by rcu_reset).
// Stored (release) under cb_mutex after each change; loaded (acquire) by rcu_barrier so the
// callbacks' effects happen-before its return. notify(&cb_done_upto) follows each advance.
std::atomic<uint64_t> cb_done_upto{0};
std::atomic<uint64_t> cb_queued{0};   // total ever queued (relaxed: statistics)
std::atomic<uint64_t> cb_invoked{0};  // total ever returned or dropped (relaxed: statistics)

// Recomputes cb_done_upto; returns true if it advanced (the caller notifies after
// dropping cb_mutex).
bool update_done_locked() {
  uint64_t low = cb_next_seq;
  if (cb_first != nullptr && cb_first->seq < low) low = cb_first->seq;
  for (const Batch* b = cb_inflight; b != nullptr; b = b->next)
    if (b->first_unfinished < low) low = b->first_unfinished;
  if (low - 1 > cb_done_upto.load(std::memory_order_relaxed)) {
    cb_done_upto.store(low - 1, std::memory_order_release);
    return true;
  }
  return false;
}

// seq_cst loads: guarantee 1/2 of rcu.h need the scan ordered in S after the gp_seq
// access that chose `target`; as acquire loads of a slot's unlock store they also give
// guarantee 4.
bool slot_quiescent(const ReaderSlot& s, uint64_t target) {
  const uint64_t v = s.v.load(std::memory_order_seq_cst);
  return v == 0 || v > target;
}

bool gp_done(uint64_t target) {
  for (const ReaderSlot& s : slots)
    if (!slot_quiescent(s, target)) return false;
  return true;
}

void note_completed(uint64_t target) {
  uint64_t c = gp_completed.load(std::memory_order_relaxed);
  while (c < target && !gp_completed.compare_exchange_weak(c, target, std::memory_order_release,
                                                           std::memory_order_relaxed)) {
  }
}

// Starts a grace period: FENCE_U of rcu.h (orders the caller's unpublishing stores before
// the increment and the scan that follows), then the increment. Returns the new number.
uint64_t start_gp() {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return gp_seq.fetch_add(1, std::memory_order_seq_cst) + 1;
}

void unlink_batch_locked(Batch* b) {
  for (Batch** p = &cb_inflight; *p != nullptr; p = &(*p)->next) {
    if (*p == b) {
      *p = b->next;
      return;
    }
  }
}

// A batch being run by one rcu_process_callbacks() call. If the call unwinds (the
// controlled scheduler kills a parked fiber by throwing from a seam or a wait), the
// destructor unlinks the batch and puts the callbacks that did not start back at the head
// of the queue, so nothing dangles and rcu_pending_callbacks() stays truthful.
class BatchRun {
 public:
  BatchRun(rcu_head* list, uint64_t end_seq) : ready_(list), end_seq_(end_seq) {
    batch_.first_unfinished = list->seq;
    batch_.next = cb_inflight;
    cb_inflight = &batch_;  // caller holds cb_mutex
  }
  BatchRun(const BatchRun&) = delete;
  BatchRun& operator=(const BatchRun&) = delete;
  ~BatchRun() {
    if (!linked_) return;
    if (running_) cb_invoked.fetch_add(1, std::memory_order_relaxed);  // unwound inside it
    bool advanced = false;
    {
      std::lock_guard<std::mutex> g(cb_mutex);
      unlink_batch_locked(&batch_);
      if (current_ != nullptr) {  // unwound before its callback started: still queued
        current_->func = current_fn_;
        current_->next = ready_;
        ready_ = current_;
      }
      if (ready_ != nullptr) {
        rcu_head* last = ready_;
        while (last->next != nullptr) last = last->next;
        last->next = cb_first;
        if (cb_first == nullptr) cb_last = last;
        cb_first = ready_;
      }
      if (update_done_locked()) advanced = true;
    }
    if (advanced) notify(&cb_done_upto);
  }

  // Runs every callback of the batch; returns how many ran.
  int run() {
    int n = 0;
    while (ready_ != nullptr) {
      rcu_head* h = ready_;
      ready_ = h->next;
      // Read everything we need from h before running it: the callback frees it.
      const uint64_t next_seq = ready_ ? ready_->seq : end_seq_;
      const int cpu = h->cpu;
      current_ = h;
      current_fn_ = h->func;
      void (*fn)(rcu_head*) = h->func;
      h->func = nullptr;  // not queued any more: the callback may call_rcu() it again
      seam(SeamKind::kWork, h);
      run_in_irq(cpu, /*hard=*/false, [this, h, fn] {
        current_ = nullptr;  // started: from here on it counts as run
        running_ = true;
        Task* t = current();
        const int held = t->nr_held;
        fn(h);
        if (t->nr_held > held) {
          kreport(ReportKind::kLockHeld,
                  "lock-held-across-rcu-callback:" + t->held[t->nr_held - 1].cls->name,
                  "RCU callback returned holding locks:\n" + held_locks_text(t));
        }
      });
      cb_invoked.fetch_add(1, std::memory_order_relaxed);
      running_ = false;
      ++n;
      bool advanced;
      {
        std::lock_guard<std::mutex> g(cb_mutex);
        batch_.first_unfinished = next_seq;
        if (ready_ == nullptr) {
          unlink_batch_locked(&batch_);
          linked_ = false;
        }
        advanced = update_done_locked();
      }
      if (advanced) notify(&cb_done_upto);
    }
    return n;
  }

 private:
  Batch batch_{0, nullptr};
  rcu_head* ready_;              // callbacks of the batch not yet started
  rcu_head* current_ = nullptr;  // taken off ready_, callback not yet started
  bool running_ = false;         // a callback started and has not been counted yet
  void (*current_fn_)(rcu_head*) = nullptr;
  uint64_t end_seq_;  // one past the last seq of the batch
  bool linked_ = true;
};

}  // namespace

namespace detail {
void rcu_dereference_report(const char* what) {
  kreport(ReportKind::kRcu, std::string("suspicious-rcu-usage:") + what,
          std::string("suspicious RCU usage: ") + what + " outside an RCU read-side critical " +
              "section (and not otherwise protected) by " + current()->label());
}
}  // namespace detail

void rcu_read_lock() {
  Task* t = current();
  seam(SeamKind::kRcuRead, &gp_seq);
  if (t->rcu_read_depth > 0) {
    t->rcu_read_depth++;
    return;
  }
  // Claims the CPU (waiting while another task owns it): the slot below is ours alone
  // until the outermost unlock.
  detail::enter_atomic(t);
  t->rcu_read_depth = 1;
  const uint64_t g = gp_seq.load(std::memory_order_seq_cst);
  slots[t->cpu].v.store(g + 1, std::memory_order_seq_cst);
  // FENCE_R of rcu.h: orders the slot store before the section's (acquire, not seq_cst)
  // loads; pairs with FENCE_U in start_gp() and FENCE_C in call_rcu().
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

void rcu_read_unlock() {
  Task* t = current();
  if (t->rcu_read_depth <= 0) {
    kreport(ReportKind::kRcu, "rcu_read_unlock-unbalanced",
            "rcu_read_unlock without rcu_read_lock by " + t->label());
    return;
  }
  if (--t->rcu_read_depth == 0) {
    // seq_cst store: a release (guarantee 4: pairs with the scan's acquire) and the first
    // half of the Dekker pair with gp_waiters (guarantee 5). Before leave_atomic(): the
    // next owner of this CPU finds the slot clear.
    slots[t->cpu].v.store(0, std::memory_order_seq_cst);
    if (gp_waiters.load(std::memory_order_seq_cst) != 0) notify(&slots[t->cpu]);
    detail::leave_atomic(t);
  }
  seam(SeamKind::kRcuRead, &gp_seq);
}

bool rcu_read_lock_held() {
  return current()->rcu_read_depth > 0;
}

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
  {
    // seq_cst: second half of the Dekker pair (guarantee 5); the predicate re-reads the
    // slot after this increment. The decrement is relaxed: the count is only a hint that
    // lets readers skip notify(), and a stale non-zero value costs a spurious notify. A
    // guard, because a controlled-scheduler wait may unwind (FiberKilled).
    struct Waiting {
      Waiting() { gp_waiters.fetch_add(1, std::memory_order_seq_cst); }
      ~Waiting() { gp_waiters.fetch_sub(1, std::memory_order_relaxed); }
    } waiting;
    for (ReaderSlot& s : slots) {
      if (slot_quiescent(s, target)) continue;
      const int cpu = static_cast<int>(&s - slots);
      WaitDesc d{"grace-period", &s, "rcu", cpu_state(cpu).owner.load(std::memory_order_relaxed)};
      wait_until(d, [&s, target] { return slot_quiescent(s, target); });
    }
  }
  note_completed(target);
}

void call_rcu(rcu_head* head, void (*func)(rcu_head*)) {
  seam(SeamKind::kAtomic, &cb_mutex);
  const int cpu = current()->cpu;
  // FENCE_C of rcu.h: the caller's unpublishing stores are ordered before the gp_seq
  // snapshot that chooses the tag (pairs with FENCE_R).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  std::unique_lock<std::mutex> g(cb_mutex);
  if (head->func != nullptr) {
    g.unlock();
    kreport(ReportKind::kRcu, "call_rcu-double-queue",
            "call_rcu() of an rcu_head that is already queued, by " + current()->label());
    return;  // queueing it twice would corrupt the list
  }
  head->func = func;
  head->next = nullptr;
  head->cpu = cpu;
  head->gp = gp_seq.load(std::memory_order_seq_cst) + 1;
  head->seq = cb_next_seq++;
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
  // Start (or reuse) a grace period covering the newest callback, and poll it: the scan
  // follows our seq_cst read of gp_seq >= newest, as rcu.h's completion rule requires.
  if (gp_completed.load(std::memory_order_acquire) < newest) {
    uint64_t target = gp_seq.load(std::memory_order_seq_cst);
    if (target < newest) target = start_gp();
    if (gp_done(target)) note_completed(target);
  }
  // acquire: pairs with note_completed()'s release (guarantee 4 reaches the callbacks).
  const uint64_t done = gp_completed.load(std::memory_order_acquire);
  std::optional<BatchRun> run;
  {
    std::lock_guard<std::mutex> g(cb_mutex);
    rcu_head* ready = nullptr;
    rcu_head** tail = &ready;
    uint64_t end_seq = 0;
    while (cb_first && cb_first->gp <= done) {
      rcu_head* h = cb_first;
      cb_first = h->next;
      if (!cb_first) cb_last = nullptr;
      h->next = nullptr;
      *tail = h;
      tail = &h->next;
      end_seq = h->seq + 1;
    }
    if (!ready) return 0;
    run.emplace(ready, end_seq);
  }
  return run->run();
}

void rcu_barrier() {
  Task* t = current();
  if (t->rcu_read_depth > 0) {
    kreport(ReportKind::kRcu, "rcu_barrier-in-read-section",
            "rcu_barrier() inside an RCU read-side critical section by " + t->label() +
                ": it would wait for itself");
    return;
  }
  might_sleep("rcu_barrier");
  // From an interrupt, i.e. from inside an RCU callback (reported by might_sleep): our own
  // batch could never finish while we wait for it.
  if (t->hardirq > 0 || t->softirq_serving > 0) return;
  uint64_t want;
  {
    std::lock_guard<std::mutex> g(cb_mutex);
    want = cb_next_seq - 1;
  }
  for (;;) {
    if (cb_done_upto.load(std::memory_order_acquire) >= want) return;
    if (rcu_process_callbacks() != 0) continue;
    bool ours_queued;
    {
      std::lock_guard<std::mutex> g(cb_mutex);
      ours_queued = cb_first != nullptr && cb_first->seq <= want;
    }
    if (ours_queued) {
      // Their grace period is still running: wait for it, then process them.
      synchronize_rcu();
    } else {
      // Another task runs the rest: wait for its progress (update_done_locked + notify).
      WaitDesc d{"rcu-barrier", &cb_done_upto, "rcu", nullptr};
      wait_until(d, [want] { return cb_done_upto.load(std::memory_order_acquire) >= want; });
    }
  }
}

uint64_t rcu_pending_callbacks() {
  return cb_queued.load(std::memory_order_relaxed) - cb_invoked.load(std::memory_order_relaxed);
}

void rcu_reset() {
  for (ReaderSlot& s : slots) {
    if (s.v.load(std::memory_order_relaxed) != 0) {
      kreport(ReportKind::kRcu, "rcu_reset-with-reader",
              "rcu_reset with a reader on cpu" + std::to_string(&s - slots));
      s.v.store(0, std::memory_order_relaxed);
    }
  }
  bool advanced;
  {
    std::lock_guard<std::mutex> g(cb_mutex);
    if (cb_first || cb_inflight) {
      kreport(ReportKind::kRcu, "rcu_reset-with-callbacks",
              "rcu_reset with " + std::to_string(rcu_pending_callbacks()) +
                  " callback(s) pending (dropped without running)");
    }
    for (rcu_head* h = cb_first; h != nullptr;) {
      rcu_head* next = h->next;
      h->func = nullptr;
      h->next = nullptr;
      h = next;
    }
    cb_first = cb_last = nullptr;
    cb_inflight = nullptr;  // a batch still running unlinks nothing we care about
    cb_invoked.store(cb_queued.load(std::memory_order_relaxed), std::memory_order_relaxed);
    advanced = update_done_locked();
    // Grace periods start from zero again, so that a run does not depend on how many the
    // runs before it used (no reader and no callback holds a tag any more).
    gp_seq.store(0, std::memory_order_seq_cst);
    gp_completed.store(0, std::memory_order_release);
  }
  if (advanced) notify(&cb_done_upto);
}

}  // namespace kern
