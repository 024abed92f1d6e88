// SPDX-License-Identifier: MIT
#include "impl/kern/clock.h"

#include <atomic>

#include "impl/kern/task.h"
#include "impl/kern/timer.h"

namespace kern {
namespace detail {
std::atomic<uint64_t> jiffies_now{kInitialJiffies};
std::atomic<unsigned> hz_value{1000};
std::atomic<bool> advance_stores_target{false};
}  // namespace detail

void detail::jiffies_raise_to(uint64_t t) {
  // A CAS loop, not a store: an advancer that was preempted inside its window (in a timer
  // handler) and resumes after another one moved the clock further would otherwise set
  // it back to its own, earlier target; timers armed meanwhile then lay further in the
  // future than their delay (fuzz_ops found a bio that never completed this way). Release
  // on success, as the plain store was; a failed CAS reads the newer value (relaxed: the
  // loop only compares it).
  uint64_t cur = jiffies_now.load(std::memory_order_relaxed);
  while (static_cast<int64_t>(cur - t) < 0 &&
         !jiffies_now.compare_exchange_weak(cur, t, std::memory_order_release,
                                            std::memory_order_relaxed)) {
  }
}

void set_hz(unsigned v) { detail::hz_value.store(v ? v : 1000, std::memory_order_relaxed); }

void advance_jiffies(uint64_t n) {
  const uint64_t target = jiffies() + n;
  while (timer_fire_one(target)) {
  }
  if (detail::advance_stores_target.load(std::memory_order_relaxed)) [[unlikely]]
    detail::jiffies_now.store(target, std::memory_order_release);
  else
    detail::jiffies_raise_to(target);
}

void clock_reset() { detail::jiffies_now.store(kInitialJiffies, std::memory_order_release); }

}  // namespace kern
