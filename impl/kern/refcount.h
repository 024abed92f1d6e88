// SPDX-License-Identifier: MIT
// refcount_t: a saturating reference counter that reports misuse instead of wrapping.
//
// What is reported (kRefcount, signature "refcount:<name>:<what>"), after which the counter
// is pinned at kRefcountSaturated, as the kernel does, so one bug cannot cascade into a
// use-after-free inside the model (a saturated object is leaked, never freed):
//   - refcount_inc() on 0: the object may already be freed ("increment on 0;
//     use-after-free");
//   - a decrement of 0 (refcount_dec_and_test or refcount_dec on 0): underflow;
//   - refcount_dec() that reaches 0: the caller should have used dec_and_test and freed
//     ("decrement hit 0; leaking memory");
//   - an increment that reaches kRefcountSaturated (overflow).
// A saturated counter stays saturated silently: increments and decrements leave it there
// and dec_and_test never returns true again.
//
// Ordering (each RMW is a seam point, SeamKind::kAtomic, before it):
//   - increments are relaxed: a new reference is always derived from one the caller
//     already holds (or, for inc_not_zero, from an RCU-protected lookup whose
//     rcu_dereference acquire already ordered the object's initialisation);
//   - decrements are acq_rel: the release half orders every access made under the dropped
//     reference before the decrement; the acquire half makes the caller that sees the
//     count reach zero (and frees) see all of them. The kernel uses release plus an
//     acquire fence on the zero path; one acq_rel RMW is the TSan-visible equivalent.
#pragma once

#include <atomic>
#include <cstdint>

#include "impl/kern/sched.h"

namespace kern {

// The kernel's REFCOUNT_SATURATED is INT_MIN / 2; a positive value here keeps reads of a
// saturated counter obviously "huge" in reports.
inline constexpr int kRefcountSaturated = 0x40000000;

struct refcount_t {
  std::atomic<int> refs{0};
  const char* name = "refcount";  // stable name for report signatures
};

// Reports `what` for r (out of line: keeps the fast paths small).
void refcount_report(const refcount_t& r, const char* what);

// Non-atomic initialisation (no concurrent user yet). relaxed.
inline void refcount_set(refcount_t& r, int n) {
  r.refs.store(n, std::memory_order_relaxed);
}
// A snapshot for reports and tests. relaxed: nothing is read through it.
inline int refcount_read(const refcount_t& r) {
  return r.refs.load(std::memory_order_relaxed);
}

// Takes a reference; the caller must already hold one. Any context.
inline void refcount_inc(refcount_t& r) {
  seam(SeamKind::kAtomic, &r);
  const int old = r.refs.fetch_add(1, std::memory_order_relaxed);
  if (old > 0 && old + 1 < kRefcountSaturated) return;
  if (old < kRefcountSaturated)  // a saturated counter was reported when it saturated
    refcount_report(r, old == 0  ? "increment on 0; use-after-free"
                       : old < 0 ? "increment of an underflowed count"
                                 : "saturated (overflow)");
  r.refs.store(kRefcountSaturated, std::memory_order_relaxed);
}

// Takes a reference unless the count is 0 (the object is being freed). Returns whether it
// did. Any context; usually under rcu_read_lock.
inline bool refcount_inc_not_zero(refcount_t& r) {
  seam(SeamKind::kAtomic, &r);
  int old = r.refs.load(std::memory_order_relaxed);
  do {
    if (old == 0) return false;
    if (old >= kRefcountSaturated) return true;  // stays saturated
    if (old < 0 || old + 1 >= kRefcountSaturated) {
      refcount_report(r, old < 0 ? "increment of an underflowed count" : "saturated (overflow)");
      r.refs.store(kRefcountSaturated, std::memory_order_relaxed);
      return true;
    }
    // relaxed (success and failure): see "Ordering" above.
  } while (!r.refs.compare_exchange_weak(old, old + 1, std::memory_order_relaxed));
  return true;
}

// Drops a reference; returns true if it was the last one (the caller frees). Any context.
inline bool refcount_dec_and_test(refcount_t& r) {
  seam(SeamKind::kAtomic, &r);
  // acq_rel: see "Ordering" above.
  const int old = r.refs.fetch_sub(1, std::memory_order_acq_rel);
  if (old == 1) return true;
  if (old > 1 && old < kRefcountSaturated) return false;
  if (old <= 0) refcount_report(r, "decrement of 0 (underflow; use-after-free)");
  r.refs.store(kRefcountSaturated, std::memory_order_relaxed);
  return false;
}

// Drops a reference that must not be the last. Any context.
inline void refcount_dec(refcount_t& r) {
  if (refcount_dec_and_test(r)) {
    refcount_report(r, "decrement hit 0; leaking memory");
    r.refs.store(kRefcountSaturated, std::memory_order_relaxed);
  }
}

}  // namespace kern
