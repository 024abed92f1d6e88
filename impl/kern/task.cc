// SPDX-License-Identifier: MIT
#include "impl/kern/task.h"

#include <atomic>
#include <memory>
#include <new>
#include <vector>

#include "impl/kern/cpu.h"
#include "impl/kern/lockdep.h"
#include "impl/kern/report.h"
#include "impl/kern/sched.h"

namespace kern {
namespace detail {

// The task of this thread: set by TaskScope or a backend; null means the implicit task.
thread_local Task* tls_current = nullptr;

Task* implicit_task() {
  // One per native thread that never declared a task (e.g. the gtest main thread).
  thread_local std::unique_ptr<Task> t;
  if (!t) t = std::make_unique<Task>("thread", 0);
  return t.get();
}

}  // namespace detail

using detail::tls_current;

namespace {

std::atomic<uint32_t> next_task_id{1};


// A task is "atomic" (owns its CPU) when any of these is non-zero.
bool atomic_ctx(const Task* t) {
  return t->preempt_disable > 0 || t->softirq > 0 || t->hardirq > 0 || t->irqs_off ||
         t->rcu_read_depth > 0;
}

}  // namespace

namespace detail {
// Call before making `t` atomic: claims the CPU if it is not yet owned by t.
void enter_atomic(Task* t) {
  if (!atomic_ctx(t)) cpu_claim(t);
}
// Call after a transition that may have made `t` preemptible again.
void leave_atomic(Task* t) {
  if (!atomic_ctx(t) && t->cpu_owned) {
    cpu_release(t);
    seam(SeamKind::kPreempt, t);
  }
}
}  // namespace detail

using detail::enter_atomic;
using detail::leave_atomic;

Task::Task(std::string n, int c, TaskKind k)
    : id(next_task_id.fetch_add(1, std::memory_order_relaxed)), name(std::move(n)), kind(k),
      cpu(c) {}

Task::~Task() = default;

namespace {
// Per thread: the tasks TransientTask handed out and got back (owned here).
std::vector<std::unique_ptr<Task>>& transient_free() {
  thread_local std::vector<std::unique_ptr<Task>> free;
  return free;
}
}  // namespace

TransientTask::TransientTask(const char* name, int cpu, TaskKind kind) {
  auto& free = transient_free();
  if (free.empty()) {
    t_ = new Task(name, cpu, kind);
    return;
  }
  t_ = free.back().release();
  free.pop_back();
  // Made anew in place: every field back to its initial value, and a new id.
  t_->~Task();
  new (t_) Task(name, cpu, kind);
}

TransientTask::~TransientTask() { transient_free().emplace_back(t_); }

static std::string format_label(uint32_t id, const std::string& name, int cpu) {
  return "T" + std::to_string(id) + "(" + name + "/cpu" + std::to_string(cpu) + ")";
}

std::string Task::label() const { return format_label(id, name, cpu); }
std::string TaskTag::str() const { return format_label(id, name, cpu); }

std::string Task::describe() const {
  std::string s = label() + " preempt=" + std::to_string(preempt_disable) +
                  " softirq=" + std::to_string(softirq) + " hardirq=" + std::to_string(hardirq) +
                  " irqs_off=" + (irqs_off ? "1" : "0") + " rcu=" + std::to_string(rcu_read_depth);
  if (nr_held > 0) s += " held:\n" + held_locks_text(this);
  return s;
}

void set_current(Task* t) { tls_current = t; }

TaskScope::TaskScope(std::string name, int cpu, TaskKind kind)
    : task_(std::move(name), cpu, kind), saved_(tls_current) {
  tls_current = &task_;
}

TaskScope::~TaskScope() {
  check_task_exit(&task_);
  tls_current = saved_;
}

void check_task_exit(Task* t) {
  if (t->exited) return;
  t->exited = true;
  if (t->nr_held > 0) {
    kreport(ReportKind::kLockHeld, "lock-held-at-exit:" + t->held[0].cls->name,
            t->label() + " exits holding " + std::to_string(t->nr_held) + " lock(s):\n" +
                held_locks_text(t));
  }
  if (atomic_ctx(t) || t->cpu_owned) {
    kreport(ReportKind::kBug, "unbalanced-context-at-exit",
            t->label() + " exits in atomic context: " + t->describe());
    if (t->cpu_owned) cpu_release(t);
  }
}

bool in_atomic() { return atomic_ctx(current()); }
bool preemptible() { return !atomic_ctx(current()); }
bool irqs_disabled() {
  const Task* t = current();
  return t->irqs_off || t->hardirq > 0;
}
bool in_interrupt() {
  const Task* t = current();
  return t->hardirq > 0 || t->softirq > 0;
}
bool in_hardirq() { return current()->hardirq > 0; }
bool in_serving_softirq() { return current()->softirq_serving > 0; }
bool in_task() {
  const Task* t = current();
  return t->hardirq == 0 && t->softirq_serving == 0;
}

void might_sleep_slow(const char* what, std::source_location where) {
  Task* t = current();
  const char* reason = nullptr;
  if (t->hardirq > 0)
    reason = "in hardirq context";
  else if (t->softirq_serving > 0)
    reason = "in softirq context";
  else if (t->irqs_off)
    reason = "with IRQs disabled";
  else if (t->preempt_disable > 0)
    reason = "with preemption disabled (spinlock held?)";
  else if (t->softirq > 0)
    reason = "with bottom halves disabled";
  else if (t->rcu_read_depth > 0)
    reason = "inside an RCU read-side critical section";
  if (reason != nullptr) {
    std::string sig = std::string("sleep-in-atomic:") + what + ":" + reason;
    if (t->nr_held > 0) sig += ":" + t->held[t->nr_held - 1].cls->name;
    kreport(ReportKind::kSleepInAtomic, std::move(sig),
            std::string("BUG: sleeping function called from invalid context: ") + what + " " +
                reason + " at " + where.file_name() + ":" + std::to_string(where.line()) +
                " in " + where.function_name());
    return;
  }
  seam(SeamKind::kPreempt, t);
}

void preempt_disable() {
  Task* t = current();
  enter_atomic(t);
  t->preempt_disable++;
}

void preempt_enable() {
  Task* t = current();
  if (t->preempt_disable <= 0) {
    kreport(ReportKind::kBug, "preempt_enable-underflow", "preempt_enable without preempt_disable");
    return;
  }
  t->preempt_disable--;
  leave_atomic(t);
}

void local_bh_disable() {
  Task* t = current();
  enter_atomic(t);
  t->softirq++;
}

void local_bh_enable() {
  Task* t = current();
  if (t->softirq - t->softirq_serving <= 0) {
    kreport(ReportKind::kBug, "local_bh_enable-underflow", "local_bh_enable without disable");
    return;
  }
  t->softirq--;
  leave_atomic(t);
}

void local_irq_disable() {
  Task* t = current();
  enter_atomic(t);
  t->irqs_off = true;
}

void local_irq_enable() {
  Task* t = current();
  if (t->hardirq > 0) {
    kreport(ReportKind::kBug, "local_irq_enable-in-hardirq", "local_irq_enable in hardirq");
    return;
  }
  t->irqs_off = false;
  leave_atomic(t);
}

irqflags_t local_irq_save() {
  Task* t = current();
  const irqflags_t was_off = t->irqs_off ? 1 : 0;
  enter_atomic(t);
  t->irqs_off = true;
  return was_off;
}

void local_irq_restore(irqflags_t flags) {
  Task* t = current();
  t->irqs_off = flags != 0;
  leave_atomic(t);
}

unsigned memalloc_noio_save() {
  Task* t = current();
  const unsigned saved = t->gfp_scope;
  t->gfp_scope |= kScopeNoIo;
  return saved;
}

void memalloc_noio_restore(unsigned saved) { current()->gfp_scope = saved; }

void hardirq_enter() {
  Task* t = current();
  enter_atomic(t);
  t->hardirq++;
}

void hardirq_exit() {
  Task* t = current();
  t->hardirq--;
  leave_atomic(t);
}

void softirq_enter() {
  Task* t = current();
  enter_atomic(t);
  t->softirq++;
  t->softirq_serving++;
}

void softirq_exit() {
  Task* t = current();
  t->softirq_serving--;
  t->softirq--;
  leave_atomic(t);
}

}  // namespace kern
