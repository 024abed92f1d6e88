// SPDX-License-Identifier: MIT
// refcount_t: a saturating reference counter that reports misuse instead of wrapping.
//
// Misuse is reported as kRefcount and the counter is then pinned at kRefcountSaturated
// (as the kernel does), so one bug does not cascade into a use-after-free in the model:
//   - refcount_inc() on 0: the object may already be freed ("increment on 0; use-after-free");
//   - a decrement below 0 (underflow), dec_and_test on 0;
//   - an increment reaching the saturation value.
// Ordering: increments are relaxed (a reference is only taken from an existing one);
// decrements are release and the one that reaches zero also acquires (acq_rel RMW), so the
// freeing path sees every access made under any reference. Each RMW is a seam point.
#pragma once

#include <atomic>
#include <cstdint>

#include "impl/kern/sched.h"

namespace kern {

inline constexpr int kRefcountSaturated = 0x40000000;

struct refcount_t {
  std::atomic<int> refs{0};
  const char* name = "refcount";
};

void refcount_report(const refcount_t& r, const char* what);

inline void refcount_set(refcount_t& r, int n) { r.refs.store(n, std::memory_order_relaxed); }
inline int refcount_read(const refcount_t& r) { return r.refs.load(std::memory_order_relaxed); }

inline void refcount_inc(refcount_t& r) {
  seam(SeamKind::kAtomic, &r);
  const int old = r.refs.fetch_add(1, std::memory_order_relaxed);
  if (old <= 0 || old + 1 >= kRefcountSaturated) {
    refcount_report(r, old == 0 ? "increment on 0; use-after-free" : "saturated or underflowed");
    r.refs.store(kRefcountSaturated, std::memory_order_relaxed);
  }
}

// Takes a reference unless the count is 0. Returns whether it did.
inline bool refcount_inc_not_zero(refcount_t& r) {
  seam(SeamKind::kAtomic, &r);
  int old = r.refs.load(std::memory_order_relaxed);
  do {
    if (old == 0) return false;
    if (old < 0 || old + 1 >= kRefcountSaturated) {
      refcount_report(r, "saturated or underflowed");
      r.refs.store(kRefcountSaturated, std::memory_order_relaxed);
      return true;
    }
  } while (!r.refs.compare_exchange_weak(old, old + 1, std::memory_order_relaxed));
  return true;
}

// Drops a reference; true if it was the last (the caller frees).
inline bool refcount_dec_and_test(refcount_t& r) {
  seam(SeamKind::kAtomic, &r);
  const int old = r.refs.fetch_sub(1, std::memory_order_acq_rel);
  if (old == 1) return true;
  if (old <= 0 || old >= kRefcountSaturated) {
    if (old < kRefcountSaturated)
      refcount_report(r, old == 0 ? "decrement hit 0 already (underflow; use-after-free)"
                                  : "underflow");
    r.refs.store(kRefcountSaturated, std::memory_order_relaxed);
  }
  return false;
}

// Drops a reference that must not be the last.
inline void refcount_dec(refcount_t& r) {
  if (refcount_dec_and_test(r)) refcount_report(r, "decrement hit 0; leaking memory");
}

}  // namespace kern
