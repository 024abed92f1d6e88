// SPDX-License-Identifier: MIT
#include "impl/kern/workqueue.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "impl/kern/cpu.h"
#include "impl/kern/lock.h"
#include "impl/kern/lockdep.h"
#include "impl/kern/report.h"
#include "impl/kern/sched.h"
#include "impl/kern/task.h"

namespace kern {

struct workqueue_struct {
  std::string name;
  unsigned flags = 0;
  int max_active = 1;
  LockClass* dep = nullptr;
  // Guarded by pool.lock:
  work_struct* first = nullptr;
  work_struct* last = nullptr;
  // Written under pool.lock, read unlocked by wait predicates (release/acquire).
  std::atomic<int> queued{0};
  std::atomic<int> active{0};
};

namespace {

struct Pool {
  spinlock_t lock{"wq_pool.lock"};
  std::vector<workqueue_struct*> wqs GUARDED_BY(lock);
  std::atomic<uint64_t> nr_queued{0};
  std::atomic<bool> stopping{false};
  // Bumped (release) after every queueing and every completed item, then notify(&pool):
  // every workqueue wait is on the pool object and re-checks when progress moved, so a
  // waiter never misses the moment its item became runnable inline or finished.
  std::atomic<uint64_t> progress{0};
  std::vector<std::thread> workers;  // touched only by start/stop_workers (one caller)
  std::atomic<int> nr_workers{0};
  // Items being executed (the kernel's busy hash): claimed at pick time under the lock,
  // cleared with a release store after the function returns; wait predicates scan them
  // with acquire loads. The pointer is only a key: the item may be freed by then.
  static constexpr int kSlots = 64;
  std::atomic<work_struct*> run_slot[kSlots];
};

bool is_running(Pool& p, const work_struct* w) {
  for (auto& s : p.run_slot)
    if (s.load(std::memory_order_acquire) == w) return true;
  return false;
}

Pool& pool() {
  static Pool* p = new Pool();
  return *p;
}

void report(work_struct* w, const char* what) {
  kreport(ReportKind::kWork, std::string("work:") + w->name + ":" + what,
          std::string("work ") + w->name + ": " + what);
}

struct Picked {
  work_struct* w = nullptr;
  workqueue_struct* wq = nullptr;
  int slot = -1;
};

// Pops the next runnable item (FIFO per queue; ordered queues one at a time).
Picked pick_locked(Pool& p, workqueue_struct* only) REQUIRES(p.lock) {
  for (workqueue_struct* wq : p.wqs) {
    if (only && wq != only) continue;
    if (!wq->first) continue;
    if (wq->active.load(std::memory_order_relaxed) >= wq->max_active) continue;
    work_struct* w = wq->first;
    int slot = -1;
    for (int i = 0; i < Pool::kSlots && slot < 0; ++i) {
      work_struct* expected = nullptr;
      if (p.run_slot[i].compare_exchange_strong(expected, w, std::memory_order_acq_rel))
        slot = i;
    }
    if (slot < 0) return {};  // too many concurrent items: try later
    wq->first = w->next;
    if (!wq->first) wq->last = nullptr;
    w->next = nullptr;
    w->pending.store(false, std::memory_order_release);
    wq->queued.fetch_sub(1, std::memory_order_release);
    wq->active.fetch_add(1, std::memory_order_release);
    p.nr_queued.fetch_sub(1, std::memory_order_release);
    return {w, wq, slot};
  }
  return {};
}

// Runs a picked item on the calling thread (under the current kworker identity).
void process_one_work(Pool& p, const Picked& pk) {
  work_struct* w = pk.w;
  workqueue_struct* wq = pk.wq;
  seam(SeamKind::kWork, w);
  Task* t = current();
  const int held = t->nr_held;
  void* saved = t->running_work;
  t->running_work = w;
  void (*fn)(work_struct*) = w->func;
  LockClass* wdep = w->dep;
  lock_acquire(wq->dep, wq, false, false, 0, std::source_location::current());
  lock_acquire(wdep, w, false, false, 0, std::source_location::current());
  fn(w);  // may free w: only used as a key below until we retake the pool lock
  lock_release(wdep, w, std::source_location::current());
  lock_release(wq->dep, wq, std::source_location::current());
  t->running_work = saved;
  if (t->nr_held != held || !preemptible()) {
    kreport(ReportKind::kLockHeld, std::string("work-returned-atomic:") + wdep->name,
            std::string("work ") + wdep->name + " returned holding locks or in atomic context:\n" +
                t->describe());
  }
  const irqflags_t f = p.lock.lock_irqsave();
  wq->active.fetch_sub(1, std::memory_order_release);
  p.run_slot[pk.slot].store(nullptr, std::memory_order_release);  // w may be freed: key only
  p.lock.unlock_irqrestore(f);
  p.progress.fetch_add(1, std::memory_order_release);
  notify(&p);
  seam(SeamKind::kWork, w);
}

// Runs one item inline under a kworker identity. Returns false if nothing was runnable.
bool run_one_inline(Pool& p, workqueue_struct* only, work_struct* want) {
  Picked pk;
  {
    const irqflags_t f = p.lock.lock_irqsave();
    if (want) {
      // Runs the head of want's queue: want itself, or what precedes it (FIFO).
      workqueue_struct* wq = want->wq;
      if (want->pending.load(std::memory_order_relaxed) && wq) pk = pick_locked(p, wq);
    } else {
      pk = pick_locked(p, only);
    }
    p.lock.unlock_irqrestore(f);
  }
  if (!pk.w) return false;
  Task* caller = current();
  TransientTask kworker("kworker/inline", caller->cpu, TaskKind::kKworker);
  kworker->inline_parent = caller;
  set_current(kworker.get());
  process_one_work(p, pk);
  check_task_exit(kworker.get());
  set_current(caller);
  return true;
}

bool can_run_inline() {
  // Only a preemptible process-context caller may run work itself; an atomic caller has
  // already been reported by might_sleep and must not wedge its CPU.
  return pool().nr_workers.load(std::memory_order_relaxed) == 0 && preemptible();
}

// A work item that waits for another one may also run it itself, worker threads or not.
// The kernel's pool is concurrency-managed: when a worker sleeps, another one (or the
// queue's rescuer) takes the next item. Ours has a fixed number of threads, all of which
// could be waiting for an item that no thread is left to run (the throttle's dispatch and
// the punt work, on two workers, both waiting for a disk's run work); lending the waiting
// worker stands for the worker the kernel would have woken. The rules stay those of the
// queue (an ordered queue's item still waits for its predecessor).
bool can_run_inline_for_flush() {
  return can_run_inline() || (current()->running_work != nullptr && preemptible());
}

void worker_main(int idx) {
  TaskScope ts("kworker/" + std::to_string(idx), idx % nr_cpu_ids(), TaskKind::kKworker);
  Pool& p = pool();
  for (;;) {
    WaitDesc d{"work-idle", &p, "wq_pool", nullptr};
    wait_until(d, [&p] {
      return p.nr_queued.load(std::memory_order_acquire) > 0 ||
             p.stopping.load(std::memory_order_acquire);
    });
    if (p.stopping.load(std::memory_order_acquire)) return;
    Picked pk;
    {
      const irqflags_t f = p.lock.lock_irqsave();
      pk = pick_locked(p, nullptr);
      p.lock.unlock_irqrestore(f);
    }
    if (pk.w) process_one_work(p, pk);
    else seam(SeamKind::kPreempt, &p);
  }
}

}  // namespace

void INIT_WORK(work_struct* w, void (*fn)(work_struct*), const char* name) {
  w->func = fn;
  w->name = name;
  w->dep = lock_class("work:", name, false);
  w->wq = nullptr;
  w->pending.store(false, std::memory_order_relaxed);
  w->next = nullptr;
}

workqueue_struct* alloc_workqueue(const char* name, unsigned flags, int max_active) {
  auto* wq = new workqueue_struct();
  wq->name = name;
  wq->flags = flags;
  wq->max_active = (flags & WQ_ORDERED) ? 1 : (max_active > 0 ? max_active : 256);
  wq->dep = lock_class("wq:", name, false);
  Pool& p = pool();
  const irqflags_t f = p.lock.lock_irqsave();
  p.wqs.push_back(wq);
  p.lock.unlock_irqrestore(f);
  return wq;
}

workqueue_struct* alloc_ordered_workqueue(const char* name, unsigned flags) {
  return alloc_workqueue(name, flags | WQ_ORDERED, 1);
}

void destroy_workqueue(workqueue_struct* wq) {
  flush_workqueue(wq);
  Pool& p = pool();
  const irqflags_t f = p.lock.lock_irqsave();
  for (size_t i = 0; i < p.wqs.size(); ++i)
    if (p.wqs[i] == wq) p.wqs.erase(p.wqs.begin() + static_cast<long>(i));
  p.lock.unlock_irqrestore(f);
  delete wq;
}

workqueue_struct* system_wq() {
  static workqueue_struct* wq = alloc_workqueue("events", 0, 256);
  return wq;
}

const char* workqueue_name(const workqueue_struct* wq) { return wq->name.c_str(); }
unsigned workqueue_flags(const workqueue_struct* wq) { return wq->flags; }

bool queue_work(workqueue_struct* wq, work_struct* w) {
  seam(SeamKind::kWork, w);
  Pool& p = pool();
  const irqflags_t f = p.lock.lock_irqsave();
  if (w->pending.load(std::memory_order_relaxed)) {
    p.lock.unlock_irqrestore(f);
    return false;
  }
  w->pending.store(true, std::memory_order_relaxed);
  w->wq = wq;
  w->next = nullptr;
  if (wq->last)
    wq->last->next = w;
  else
    wq->first = w;
  wq->last = w;
  wq->queued.fetch_add(1, std::memory_order_release);
  p.nr_queued.fetch_add(1, std::memory_order_release);
  p.lock.unlock_irqrestore(f);
  p.progress.fetch_add(1, std::memory_order_release);
  notify(&p);
  return true;
}

bool work_pending(work_struct* w) {
  Pool& p = pool();
  const irqflags_t f = p.lock.lock_irqsave();
  const bool r = w->pending.load(std::memory_order_relaxed);
  p.lock.unlock_irqrestore(f);
  return r;
}

work_struct* current_work() { return static_cast<work_struct*>(current()->running_work); }

// The common start of every wait for a work item: it must not be the running item itself,
// the caller may sleep, and lockdep sees the wait as taking the work's pseudo-lock.
// Returns false (reported) for a wait from inside the work.
bool begin_wait_for_work(work_struct* w, const char* what) {
  if (current()->running_work == w) {
    report(w, (std::string(what) + " from the work itself (waits for itself)").c_str());
    return false;
  }
  might_sleep(what);
  lock_acquire(w->dep, w, false, false, 0, std::source_location::current());
  lock_release(w->dep, w, std::source_location::current());
  return true;
}

namespace {

// A flush of an item of an ordered queue, or of a queue with a rescuer, waits for that
// queue's one guaranteed execution context (the rescuer is all that runs under memory
// pressure): lockdep sees it as taking the queue's pseudo-lock, so a flush from an item
// of the same queue is recursion (the kernel's start_flush_work does the same).
void annotate_flush_dependency(workqueue_struct* wq) {
  if (wq->max_active != 1 && !(wq->flags & WQ_MEM_RECLAIM)) return;
  lock_acquire(wq->dep, wq, false, false, 0, std::source_location::current());
  lock_release(wq->dep, wq, std::source_location::current());
}

}  // namespace

void might_flush_work(work_struct* w, workqueue_struct* wq) {
  might_sleep("might_flush_work");
  lock_acquire(w->dep, w, false, false, 0, std::source_location::current());
  lock_release(w->dep, w, std::source_location::current());
  annotate_flush_dependency(wq);
}

bool flush_work(work_struct* w) {
  if (!begin_wait_for_work(w, "flush_work")) return false;
  Pool& p = pool();
  bool waited = false;
  for (;;) {
    bool busy;
    workqueue_struct* on;  // where it is pending or running, when busy
    {
      const irqflags_t f = p.lock.lock_irqsave();
      busy = w->pending.load(std::memory_order_relaxed) || is_running(p, w);
      on = w->wq;
      p.lock.unlock_irqrestore(f);
    }
    if (!busy) return waited;
    if (!waited) annotate_flush_dependency(on);  // once, as the kernel's start_flush_work
    waited = true;
    // Without worker threads, run it (or what precedes it on an ordered queue) ourselves.
    const uint64_t seen = p.progress.load(std::memory_order_acquire);
    if (can_run_inline_for_flush() && run_one_inline(p, nullptr, w)) continue;
    WaitDesc d{"flush_work", &p, w->name, nullptr};
    wait_until(d, [&p, w, seen] {
      return p.progress.load(std::memory_order_acquire) != seen ||
             (!w->pending.load(std::memory_order_acquire) && !is_running(p, w));
    });
  }
}

bool cancel_work_sync(work_struct* w) {
  if (!begin_wait_for_work(w, "cancel_work_sync")) return false;
  Pool& p = pool();
  bool was_pending = false;
  {
    const irqflags_t f = p.lock.lock_irqsave();
    if (w->pending.load(std::memory_order_relaxed)) {
      workqueue_struct* wq = w->wq;
      work_struct** pp = &wq->first;
      work_struct* prev = nullptr;
      while (*pp && *pp != w) {
        prev = *pp;
        pp = &(*pp)->next;
      }
      if (*pp == w) {
        *pp = w->next;
        if (wq->last == w) wq->last = prev;
        w->next = nullptr;
        wq->queued.fetch_sub(1, std::memory_order_release);
        p.nr_queued.fetch_sub(1, std::memory_order_release);
      }
      w->pending.store(false, std::memory_order_release);
      was_pending = true;
    }
    p.lock.unlock_irqrestore(f);
  }
  WaitDesc d{"cancel_work_sync", &p, w->name, nullptr};
  wait_until(d, [&p, w] { return !is_running(p, w); });
  return was_pending;
}

void flush_workqueue(workqueue_struct* wq) {
  might_sleep("flush_workqueue");
  lock_acquire(wq->dep, wq, false, false, 0, std::source_location::current());
  lock_release(wq->dep, wq, std::source_location::current());
  Pool& p = pool();
  for (;;) {
    bool busy;
    {
      const irqflags_t f = p.lock.lock_irqsave();
      busy = wq->first != nullptr || wq->active.load(std::memory_order_relaxed) > 0;
      p.lock.unlock_irqrestore(f);
    }
    if (!busy) return;
    const uint64_t seen = p.progress.load(std::memory_order_acquire);
    if (can_run_inline() && run_one_inline(p, wq, nullptr)) continue;
    WaitDesc d{"flush_workqueue", &p, wq->name.c_str(), nullptr};
    wait_until(d, [&p, wq, seen] {
      return p.progress.load(std::memory_order_acquire) != seen ||
             (wq->queued.load(std::memory_order_acquire) == 0 &&
              wq->active.load(std::memory_order_acquire) == 0);
    });
  }
}

void flush_all_workqueues() {
  Pool& p = pool();
  std::vector<workqueue_struct*> wqs;
  {
    const irqflags_t f = p.lock.lock_irqsave();
    wqs = p.wqs;  // a snapshot: flushing takes the lock again
    p.lock.unlock_irqrestore(f);
  }
  for (workqueue_struct* wq : wqs) flush_workqueue(wq);
}

int run_pending_work() {
  Pool& p = pool();
  int n = 0;
  while (run_one_inline(p, nullptr, nullptr)) ++n;
  return n;
}

void start_workers(int n) {
  Pool& p = pool();
  p.stopping.store(false, std::memory_order_release);
  p.nr_workers.store(n, std::memory_order_relaxed);
  for (int i = 0; i < n; ++i) p.workers.emplace_back(worker_main, i);
}

void stop_workers() {
  Pool& p = pool();
  p.stopping.store(true, std::memory_order_release);
  notify(&p);
  for (auto& t : p.workers) t.join();
  p.workers.clear();
  p.nr_workers.store(0, std::memory_order_relaxed);
  p.stopping.store(false, std::memory_order_release);
}

uint64_t nr_pending_work() { return pool().nr_queued.load(std::memory_order_acquire); }

void workqueues_reset() {
  Pool& p = pool();
  uint64_t dropped = 0;
  const irqflags_t f = p.lock.lock_irqsave();
  for (workqueue_struct* wq : p.wqs) {
    for (work_struct* w = wq->first; w;) {
      work_struct* next = w->next;
      w->pending.store(false, std::memory_order_relaxed);
      w->next = nullptr;
      ++dropped;
      w = next;
    }
    wq->first = wq->last = nullptr;
    wq->queued.store(0, std::memory_order_release);
  }
  p.nr_queued.store(0, std::memory_order_release);
  p.lock.unlock_irqrestore(f);
  if (dropped) {
    kreport(ReportKind::kWork, "workqueues_reset-with-pending",
            std::to_string(dropped) + " work item(s) still queued at reset");
  }
}

}  // namespace kern
