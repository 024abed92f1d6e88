// SPDX-License-Identifier: MIT
#include "impl/kern/clock.h"

#include <atomic>

#include "impl/kern/task.h"
#include "impl/kern/timer.h"

namespace kern {
namespace detail {
std::atomic<uint64_t> jiffies_now{kInitialJiffies};
std::atomic<unsigned> hz_value{1000};
}  // namespace detail

void set_hz(unsigned v) { detail::hz_value.store(v ? v : 1000, std::memory_order_relaxed); }

void advance_jiffies(uint64_t n) {
  const uint64_t target = jiffies() + n;
  while (timer_fire_one(target)) {
  }
  detail::jiffies_now.store(target, std::memory_order_release);
}

void clock_reset() { detail::jiffies_now.store(kInitialJiffies, std::memory_order_release); }

}  // namespace kern
