// SPDX-License-Identifier: MIT
#include "impl/kern/timer.h"

#include <algorithm>
#include <atomic>
#include <string>
#include <vector>

#include "impl/kern/clock.h"
#include "impl/kern/cpu.h"
#include "impl/kern/lock.h"
#include "impl/kern/lockdep.h"
#include "impl/kern/report.h"

namespace kern {
namespace detail {
extern std::atomic<uint64_t> jiffies_now;
}

namespace {

// Firing order: earliest expiry first, then the order of arming (arm_seq is unique, so
// the order is total and every run fires the same timers in the same order).
bool fires_before(const timer_list* a, const timer_list* b) {
  return a->expires != b->expires ? a->expires < b->expires : a->arm_seq < b->arm_seq;
}

// The pending timers as a binary min-heap on fires_before, each timer knowing its slot
// (heap_index) so it can be unlinked in O(log n). The vector keeps its capacity, so arming
// a timer allocates nothing once the heap has grown: a std::set here cost one allocation
// per mod_timer, the commonest allocation of a throttled fuzz input.
class TimerHeap {
 public:
  bool empty() const { return v_.empty(); }
  size_t size() const { return v_.size(); }
  timer_list* top() const { return v_.front(); }
  void push(timer_list* t) {
    t->heap_index = v_.size();
    v_.push_back(t);
    up(t->heap_index);
  }
  void erase(timer_list* t) {
    const size_t i = t->heap_index;
    timer_list* last = v_.back();
    v_.pop_back();
    if (last == t) return;
    place(i, last);
    if (i > 0 && fires_before(last, v_[(i - 1) / 2])) up(i);
    else down(i);
  }
  template <typename F>
  void clear(F&& each) {
    for (timer_list* t : v_) each(t);
    v_.clear();
  }

 private:
  void place(size_t i, timer_list* t) {
    v_[i] = t;
    t->heap_index = i;
  }
  void up(size_t i) {
    timer_list* t = v_[i];
    while (i > 0 && fires_before(t, v_[(i - 1) / 2])) {
      place(i, v_[(i - 1) / 2]);
      i = (i - 1) / 2;
    }
    place(i, t);
  }
  void down(size_t i) {
    timer_list* t = v_[i];
    for (;;) {
      size_t c = 2 * i + 1;
      if (c >= v_.size()) break;
      if (c + 1 < v_.size() && fires_before(v_[c + 1], v_[c])) ++c;
      if (!fires_before(v_[c], t)) break;
      place(i, v_[c]);
      i = c;
    }
    place(i, t);
  }
  std::vector<timer_list*> v_;
};

struct Base {
  spinlock_t lock{"timer_base.lock"};
  TimerHeap queue GUARDED_BY(lock);
  uint64_t next_seq GUARDED_BY(lock) = 0;
  // Handlers in progress (the kernel's base->running_timer), one slot per concurrent
  // firing. Lock-free so del_timer_sync's wait predicate can read them: a slot is claimed
  // with an acquire CAS and cleared with a release store after the handler, which pairs
  // with the predicate's acquire load (the waiter sees everything the handler did).
  // Slots hold the pointer only as a key: a handler may free its own timer.
  static constexpr int kSlots = 64;
  std::atomic<timer_list*> running[kSlots];
  std::atomic<Task*> running_task[kSlots];
};

Base& base() {
  static Base* b = new Base();  // never destroyed: timers may outlive static destructors
  return *b;
}

std::atomic<uint64_t> nr_pending{0};
std::atomic<uint64_t> ignored_rearms{0};

void unlink_locked(Base& b, timer_list* t) REQUIRES(b.lock) {
  if (!t->pending) return;
  b.queue.erase(t);
  t->pending = false;
  nr_pending.fetch_sub(1, std::memory_order_relaxed);
}

bool is_running(Base& b, const timer_list* t) {
  for (auto& s : b.running)
    if (s.load(std::memory_order_acquire) == t) return true;
  return false;
}

bool running_on_current(Base& b, const timer_list* t) {
  for (int i = 0; i < Base::kSlots; ++i)
    if (b.running[i].load(std::memory_order_acquire) == t &&
        b.running_task[i].load(std::memory_order_relaxed) == current())
      return true;
  return false;
}

void report(timer_list* t, const char* what) {
  kreport(ReportKind::kTimer, std::string("timer:") + t->name + ":" + what,
          std::string("timer ") + t->name + ": " + what);
}

}  // namespace

timer_list::~timer_list() {
  if (!setup) return;
  Base& b = base();
  const irqflags_t f = b.lock.lock_irqsave();
  const bool pending_now = pending, running_now = is_running(b, this);
  unlink_locked(b, this);
  b.lock.unlock_irqrestore(f);
  if (pending_now) report(this, "freed while pending (it would fire on freed memory)");
  if (running_now) report(this, "freed while its handler runs");
}

void timer_setup(timer_list* t, void (*fn)(timer_list*), const char* name, int cpu) {
  t->function = fn;
  t->name = name;
  t->dep = lock_class("timer:", name, false);
  t->cpu = cpu < 0 ? current()->cpu : cpu;
  t->setup = true;
}

bool mod_timer(timer_list* t, uint64_t expires) {
  seam(SeamKind::kTimer, t);
  Base& b = base();
  const irqflags_t f = b.lock.lock_irqsave();
  const bool was = t->pending;
  if (t->shutdown) {
    b.lock.unlock_irqrestore(f);
    ignored_rearms.fetch_add(1, std::memory_order_relaxed);
    return was;
  }
  unlink_locked(b, t);
  t->expires = expires;
  t->arm_seq = b.next_seq++;
  t->pending = true;
  b.queue.push(t);
  nr_pending.fetch_add(1, std::memory_order_relaxed);
  b.lock.unlock_irqrestore(f);
  return was;
}

void add_timer(timer_list* t) { mod_timer(t, t->expires); }

bool timer_pending(timer_list* t) {
  Base& b = base();
  const irqflags_t f = b.lock.lock_irqsave();
  const bool p = t->pending;
  b.lock.unlock_irqrestore(f);
  return p;
}

bool del_timer(timer_list* t) {
  seam(SeamKind::kTimer, t);
  Base& b = base();
  const irqflags_t f = b.lock.lock_irqsave();
  const bool was = t->pending;
  unlink_locked(b, t);
  b.lock.unlock_irqrestore(f);
  return was;
}

bool del_timer_sync(timer_list* t) {
  if (in_hardirq()) report(t, "del_timer_sync from hardirq context");
  // The pseudo-lock: whoever we hold must not be taken by the handler.
  const irqflags_t fl = local_irq_save();
  lock_acquire(t->dep, t, false, false, 0, std::source_location::current());
  lock_release(t->dep, t, std::source_location::current());
  local_irq_restore(fl);

  Base& b = base();
  irqflags_t f = b.lock.lock_irqsave();
  const bool was = t->pending;
  unlink_locked(b, t);
  if (running_on_current(b, t)) {
    b.lock.unlock_irqrestore(f);
    report(t, "del_timer_sync from its own handler (waits for itself)");
    return was;
  }
  b.lock.unlock_irqrestore(f);
  WaitDesc d{"timer-handler", t, t->name, nullptr};
  wait_until(d, [&b, t] { return !is_running(b, t); });
  return was;
}

void timer_shutdown_sync(timer_list* t) {
  del_timer_sync(t);
  Base& b = base();
  const irqflags_t f = b.lock.lock_irqsave();
  t->shutdown = true;
  unlink_locked(b, t);  // a handler that re-armed meanwhile
  b.lock.unlock_irqrestore(f);
}

uint64_t nr_pending_timers() { return nr_pending.load(std::memory_order_relaxed); }
uint64_t timer_ignored_rearms() { return ignored_rearms.load(std::memory_order_relaxed); }

namespace {
// Injected lateness (set_timer_lateness): read relaxed, set between runs.
std::atomic<uint64_t> lateness{0};
}  // namespace

void set_timer_lateness(uint64_t j) { lateness.store(j, std::memory_order_relaxed); }
uint64_t timer_lateness() { return lateness.load(std::memory_order_relaxed); }

bool timer_next_expiry(uint64_t* when) {
  Base& b = base();
  const irqflags_t f = b.lock.lock_irqsave();
  const bool any = !b.queue.empty();
  if (any) *when = b.queue.top()->expires + lateness.load(std::memory_order_relaxed);
  b.lock.unlock_irqrestore(f);
  return any;
}

bool timer_fire_one(uint64_t until) {
  Base& b = base();
  const uint64_t late = lateness.load(std::memory_order_relaxed);
  irqflags_t f = b.lock.lock_irqsave();
  if (b.queue.empty() || b.queue.top()->expires + late > until) {
    b.lock.unlock_irqrestore(f);
    return false;
  }
  timer_list* t = b.queue.top();
  unlink_locked(b, t);
  detail::jiffies_raise_to(t->expires + late);
  void (*fn)(timer_list*) = t->function;
  LockClass* dep = t->dep;
  // Claim a running slot before dropping the base lock's protection of "not pending and
  // not running": a concurrent del_timer_sync sees either pending or running.
  int slot = -1;
  for (int i = 0; slot < 0; i = (i + 1) % Base::kSlots) {
    timer_list* expected = nullptr;
    if (b.running[i].compare_exchange_strong(expected, t, std::memory_order_acquire)) slot = i;
  }
  b.lock.unlock_irqrestore(f);
  run_in_irq(t->cpu, /*hard=*/false, [&] {
    b.running_task[slot].store(current(), std::memory_order_relaxed);
    lock_acquire(dep, t, false, false, 0, std::source_location::current());
    fn(t);  // may free t's container: t is only used as a key from here on
    lock_release(dep, t, std::source_location::current());
    b.running_task[slot].store(nullptr, std::memory_order_relaxed);
  });
  b.running[slot].store(nullptr, std::memory_order_release);
  notify(t);
  seam(SeamKind::kTimer, t);
  return true;
}

void timers_reset() {
  Base& b = base();
  lateness.store(0, std::memory_order_relaxed);
  const irqflags_t f = b.lock.lock_irqsave();
  const size_t n = b.queue.size();
  b.queue.clear([](timer_list* t) { t->pending = false; });
  nr_pending.store(0, std::memory_order_relaxed);
  b.lock.unlock_irqrestore(f);
  ignored_rearms.store(0, std::memory_order_relaxed);
  if (n) {
    kreport(ReportKind::kTimer, "timers_reset-with-pending",
            std::to_string(n) + " timer(s) still pending at reset");
  }
}

}  // namespace kern
