// SPDX-License-Identifier: MIT
// Virtual CPUs and per-CPU data.
//
// The emulated machine has nr_cpu_ids() virtual CPUs (default 4, up to kMaxCpus; set with
// set_nr_cpus() while no task runs). A task runs on one CPU (Task::cpu). CPU ownership is
// the emulation's stand-in for "this CPU is executing this context": a task owns its CPU
// while it is not preemptible (preempt/bh/irq disabled, in interrupt, or in an RCU read
// section), acquiring it on the transition into that state and releasing it on the way
// out (task.cc calls cpu_claim/cpu_release). Only the owner may touch per-CPU data through
// this_cpu_ptr(); a task that finds its CPU owned by another task waits (wait_until on the
// Cpu object), exactly as a preempted task waits for the CPU.
//
// Ownership word: Cpu::owner is an atomic Task*. Claim is a CAS nullptr->task with acquire
// ordering, release is a store nullptr with release ordering: the next owner's accesses to
// the CPU's per-CPU data happen after the previous owner's (TSan sees the pairing).
//
// per_cpu_ptr(cpu) is for cross-CPU readers that synchronise by other means (u64_stats,
// llist, locks); it does not check ownership, as in the kernel.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>

#include "impl/kern/sched.h"
#include "impl/kern/task.h"

namespace kern {

inline constexpr int kMaxCpus = 64;

int nr_cpu_ids();
void set_nr_cpus(int n);

struct alignas(64) Cpu {
  std::atomic<Task*> owner{nullptr};
};
Cpu& cpu_state(int cpu);

// Called by task.cc on atomic-context transitions of current(). Claim waits (through the
// seam) while another task owns the CPU.
void cpu_claim(Task* t);
void cpu_release(Task* t);
// Move a preemptible task to another CPU (the scheduler migrating it).
void set_task_cpu(Task* t, int cpu);

int smp_processor_id();   // current()->cpu; reports kPercpu if the caller is preemptible
int raw_smp_processor_id();

// get_cpu()/put_cpu(): preempt_disable + smp_processor_id, and preempt_enable.
int get_cpu();
void put_cpu();

#define for_each_possible_cpu(cpu) for (int cpu = 0; cpu < ::kern::nr_cpu_ids(); ++cpu)

// Interrupt-context work aimed at `cpu` (timer expiry, RCU callbacks, an IRQ completion):
// the calling task takes ownership of `cpu` (waiting while another task owns it), enters
// softirq (hard=false) or hardirq (hard=true) context on it, runs fn, and leaves, restoring
// its own CPU and context. Locks taken inside fn are seen by lockdep as interrupt-context
// usage. fn must return with its context balanced (checked: kLockHeld).
void run_in_irq(int cpu, bool hard, function_ref<void()> fn);

// Reports kPercpu unless current() owns `cpu`.
void check_cpu_owned(int cpu, const char* what);

// Per-CPU storage for one object of type T per possible CPU (cache-line separated).
// Allocated through alloc_percpu_gfp() in alloc.h so fault injection and leak accounting
// apply; the class itself only owns the storage.
template <typename T>
class PerCpu {
 public:
  PerCpu() : n_(nr_cpu_ids()), slots_(new Slot[static_cast<size_t>(n_)]) {}
  int nr() const { return n_; }
  // per_cpu_ptr(): any context; the caller synchronises.
  T* per_cpu_ptr(int cpu) { return &slots_[static_cast<size_t>(cpu)].v; }
  const T* per_cpu_ptr(int cpu) const { return &slots_[static_cast<size_t>(cpu)].v; }
  // this_cpu_ptr(): caller must be non-preemptible (it owns its CPU).
  T* this_cpu_ptr() {
    const int c = smp_processor_id();
    return per_cpu_ptr(c);
  }

 private:
  struct alignas(64) Slot {
    T v{};
  };
  int n_;
  std::unique_ptr<Slot[]> slots_;
};

}  // namespace kern
