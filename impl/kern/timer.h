// SPDX-License-Identifier: MIT
// Timers on the virtual clock (clock.h): timer_list, mod_timer, del_timer(_sync),
// timer_shutdown_sync.
//
// Locking: all timer state (pending, expiry, arming order, the running set) lives in one
// timer base protected by `timer_base.lock`, an irq-safe kern::spinlock_t taken with
// irqsave. Handlers never run with it held.
//
// Lockdep: each timer has a pseudo-lock class "timer:<name>". Firing acquires it around
// the handler (in softirq); del_timer_sync and timer_shutdown_sync acquire and release it
// with IRQs off, as the kernel does. Holding a lock L that the handler also takes while
// calling del_timer_sync therefore closes the cycle L -> timer -> L: kLockOrder, the
// deadlock the kernel's annotation exists for.
//
// Checks: del_timer_sync from the timer's own handler (waits for itself) and from hardirq
// context are kTimer; a timer_list destroyed while pending or running is kTimer (in the
// kernel that timer would later fire on freed memory); it is then unlinked so the model
// itself stays memory-safe. A shut-down timer ignores re-arming (counted, not reported).
#pragma once

#include <cstddef>
#include <cstdint>

namespace kern {

struct LockClass;

struct timer_list {
  timer_list() = default;
  ~timer_list();
  timer_list(const timer_list&) = delete;
  timer_list& operator=(const timer_list&) = delete;

  void (*function)(timer_list*) = nullptr;
  const char* name = "timer";
  LockClass* dep = nullptr;
  int cpu = 0;
  // Below: guarded by timer_base.lock.
  uint64_t expires = 0;
  uint64_t arm_seq = 0;
  size_t heap_index = 0;  // its slot in the base's heap while pending
  bool pending = false;
  bool shutdown = false;
  bool setup = false;
};

// cpu < 0: the CPU of the calling task.
void timer_setup(timer_list* t, void (*fn)(timer_list*), const char* name, int cpu = -1);
// (Re)arm at absolute jiffies `expires`; returns whether it was pending.
bool mod_timer(timer_list* t, uint64_t expires);
void add_timer(timer_list* t);  // arm at t->expires
bool timer_pending(timer_list* t);
bool del_timer(timer_list* t);
bool del_timer_sync(timer_list* t);
void timer_shutdown_sync(timer_list* t);

uint64_t nr_pending_timers();
uint64_t timer_ignored_rearms();
// Fires at most one due timer (expiry <= `until`); used by advance_jiffies. Returns false
// when nothing was due.
bool timer_fire_one(uint64_t until);
// When the earliest pending timer fires (its expiry plus any injected lateness); false if
// none is pending. Lets a driver of virtual time jump to the next event. Any context.
bool timer_next_expiry(uint64_t* when);
// Fault injection: every timer fires `j` jiffies after its expiry (softirq delay, a busy
// CPU). 0 (the default) fires on time. Set while no timer runs; timers_reset clears it.
void set_timer_lateness(uint64_t j);
uint64_t timer_lateness();
// Fresh world: unlink every pending timer (reported as kTimer if any).
void timers_reset();

}  // namespace kern
