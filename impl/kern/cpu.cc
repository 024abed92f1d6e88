// SPDX-License-Identifier: MIT
#include "impl/kern/cpu.h"

#include <atomic>

#include "impl/kern/lockdep.h"
#include "impl/kern/report.h"

namespace kern {
namespace {

std::atomic<int> nr_cpus{4};
Cpu cpus[kMaxCpus];
// Tasks waiting to claim each CPU; see cpu_release() for the pairing.
std::atomic<int> cpu_waiters[kMaxCpus];

std::string cpu_name(int cpu) { return "cpu" + std::to_string(cpu); }

}  // namespace

int nr_cpu_ids() { return nr_cpus.load(std::memory_order_relaxed); }

void set_nr_cpus(int n) {
  if (n < 1) n = 1;
  if (n > kMaxCpus) n = kMaxCpus;
  nr_cpus.store(n, std::memory_order_relaxed);
}

Cpu& cpu_state(int cpu) { return cpus[cpu]; }

namespace {

// Everything but the uncontended claim, out of line (its reports and its wait have stack
// locals that would cost every claim a sanitizer frame).
[[gnu::noinline]] void cpu_claim_slow(Task* t) {
  if (t->cpu < 0 || t->cpu >= nr_cpu_ids()) {
    kreport(ReportKind::kBug, "task-on-bad-cpu", t->label() + " runs on a CPU that does not exist");
    t->cpu = 0;
  }
  Cpu& c = cpus[t->cpu];
  Task* expected = nullptr;
  // acquire: pairs with the release store in cpu_release() of the previous owner, so
  // everything that owner did to this CPU's per-CPU data is visible to us.
  if (!c.owner.compare_exchange_strong(expected, t, std::memory_order_acquire)) {
    if (expected == t) {
      kreport(ReportKind::kBug, "cpu-claim-recursive", t->label() + " claims its CPU twice");
      t->cpu_owned = 1;
      return;
    }
    std::atomic<int>& waiters = cpu_waiters[t->cpu];
    waiters.fetch_add(1, std::memory_order_seq_cst);
    for (;;) {
      WaitDesc d{"cpu", &c, "cpu", c.owner.load(std::memory_order_relaxed)};
      wait_until(d, [&c] { return c.owner.load(std::memory_order_relaxed) == nullptr; });
      expected = nullptr;
      if (c.owner.compare_exchange_strong(expected, t, std::memory_order_acquire)) break;
    }
    waiters.fetch_sub(1, std::memory_order_relaxed);
  }
  t->cpu_owned = 1;
}

}  // namespace

void cpu_claim(Task* t) {
  if (t->cpu >= 0 && t->cpu < nr_cpu_ids()) {
    Task* expected = nullptr;
    // acquire: as in cpu_claim_slow.
    if (cpus[t->cpu].owner.compare_exchange_strong(expected, t, std::memory_order_acquire)) {
      t->cpu_owned = 1;
      return;
    }
  }
  cpu_claim_slow(t);
}

void cpu_release(Task* t) {
  Cpu& c = cpus[t->cpu];
  t->cpu_owned = 0;
  // seq_cst store then seq_cst load of the waiter count: a Dekker pair with cpu_claim's
  // seq_cst increment followed by its re-read of the owner, so either we see the waiter
  // and notify, or it sees the CPU free.
  c.owner.store(nullptr, std::memory_order_seq_cst);
  if (cpu_waiters[t->cpu].load(std::memory_order_seq_cst) != 0) notify(&c);
}

void set_task_cpu(Task* t, int cpu) {
  if (t->cpu_owned) {
    kreport(ReportKind::kBug, "migrate-atomic-task",
            t->label() + " migrated to " + cpu_name(cpu) + " while not preemptible");
    return;
  }
  t->cpu = cpu;
}

int raw_smp_processor_id() { return current()->cpu; }

int smp_processor_id() {
  Task* t = current();
  if (!t->cpu_owned) {
    kreport(ReportKind::kPercpu, "smp_processor_id-in-preemptible",
            "BUG: using smp_processor_id() in preemptible code by " + t->label());
  }
  return t->cpu;
}

int get_cpu() {
  preempt_disable();
  return current()->cpu;
}

void put_cpu() { preempt_enable(); }

void check_cpu_owned(int cpu, const char* what) {
  if (cpus[cpu].owner.load(std::memory_order_relaxed) != current()) {
    kreport(ReportKind::kPercpu, std::string("percpu-not-owned:") + what,
            std::string("per-CPU access to ") + what + " of " + cpu_name(cpu) + " by " +
                current()->label() + " which does not own that CPU");
  }
}

void run_in_irq(int cpu, bool hard, function_ref<void()> fn) {
  Task* t = current();
  auto run = [&](Task* on) {
    const int held_before = on->nr_held;
    if (hard)
      hardirq_enter();
    else
      softirq_enter();
    fn();
    if (on->nr_held != held_before) {
      kreport(ReportKind::kLockHeld, "lock-held-after-irq:" + on->held[on->nr_held - 1].cls->name,
              std::string(hard ? "hardirq" : "softirq") + " handler returned holding locks:\n" +
                  held_locks_text(on));
    }
    if (hard)
      hardirq_exit();
    else
      softirq_exit();
  };
  if (t->cpu == cpu) {
    // An interrupt of the current task on its own CPU: runs nested, as on real hardware.
    run(t);
    return;
  }
  // Work aimed at another CPU runs as a separate interrupt context of that CPU: a fresh
  // task identity (own held-lock stack) that owns `cpu` for the duration.
  TransientTask irq(hard ? "hardirq" : "softirq", cpu, TaskKind::kIrqDelivery);
  irq->inline_parent = t;
  set_current(irq.get());
  run(irq.get());
  // A handler that leaked a lock leaves its context unbalanced (reported above). The
  // delivery task ends here, so give the CPU back rather than wedge it forever.
  if (irq->cpu_owned) cpu_release(irq.get());
  irq->exited = true;
  set_current(t);
}

}  // namespace kern
