// SPDX-License-Identifier: MIT
// Virtual time (DESIGN principle 4): jiffies advance only through advance_jiffies(), never
// with the wall clock, so throttling arithmetic is exact and every run reproducible.
//
// advance_jiffies(n) fires every timer that expires within the window, in expiry order
// (ties in arming order), each in softirq context on the timer's CPU, with jiffies set to
// that timer's expiry while it runs; at the end jiffies is the target. A handler that
// re-arms a timer inside the window sees it fire in the same call.
// jiffies is an atomic read with acquire ordering, written (release) only by the advancer.
// It never goes back: tasks may advance concurrently (a scenario's `advance` in two tasks,
// or one task's wait moving time while another advances it), and each raises jiffies to
// its own target only if that is later than the clock already is.
#pragma once

#include <atomic>
#include <cstdint>

namespace kern {

namespace detail {
// Written only by advance_jiffies (release); read with acquire so a reader that sees a new
// time also sees what the handlers fired at that time did. Inline readers: hot paths
// (blk-throttle) read the clock several times per bio.
extern std::atomic<uint64_t> jiffies_now;
extern std::atomic<unsigned> hz_value;  // relaxed: set only between runs
// Sets jiffies to `t` unless it already is at or after `t` (wrap-aware, as time_after).
void jiffies_raise_to(uint64_t t);
// Planted bug (impl/block/busted.h lists it, as advance_jiffies_stores_target): the old
// store of the target at the end of advance_jiffies. Off except in tests that plant it.
extern std::atomic<bool> advance_stores_target;
}  // namespace detail
inline uint64_t jiffies() { return detail::jiffies_now.load(std::memory_order_acquire); }
inline unsigned hz() { return detail::hz_value.load(std::memory_order_relaxed); }
void set_hz(unsigned hz);  // default 1000; call while no timer is pending

inline uint64_t msecs_to_jiffies(uint64_t ms) { return (ms * hz() + 999) / 1000; }
inline uint64_t jiffies_to_msecs(uint64_t j) { return j * 1000 / hz(); }
inline uint64_t jiffies_to_usecs(uint64_t j) { return j * 1000000 / hz(); }
inline bool time_after(uint64_t a, uint64_t b) { return static_cast<int64_t>(b - a) < 0; }
inline bool time_before(uint64_t a, uint64_t b) { return time_after(b, a); }
inline bool time_after_eq(uint64_t a, uint64_t b) { return static_cast<int64_t>(a - b) >= 0; }

// Moves time forward by n jiffies, firing due timers (see above). Process context.
void advance_jiffies(uint64_t n);
// Fresh world: jiffies back to its initial value (timers must have been reset first).
void clock_reset();

// The initial value of jiffies (non-zero, like the kernel's INITIAL_JIFFIES, so code that
// treats 0 as "unset" is exercised).
inline constexpr uint64_t kInitialJiffies = 1000000;

}  // namespace kern
