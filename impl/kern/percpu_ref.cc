// SPDX-License-Identifier: MIT
// percpu_ref in permanent atomic mode; the design and its limits are in percpu_ref.h.
#include "impl/kern/percpu_ref.h"

#include <string>

#include "impl/kern/report.h"
#include "impl/kern/sched.h"

namespace kern {
namespace {

constexpr uint64_t kCountMask = kPercpuRefDead - 1;

void misuse(const percpu_ref* ref, const char* what) {
  // A misuse is often a put on freed (maybe reused, maybe zeroed) memory: the name may be
  // gone, and the reporter must not be the one to crash.
  const char* name = ref->name != nullptr ? ref->name : "(no name: freed?)";
  kreport(ReportKind::kRefcount, std::string("percpu_ref:") + name + ":" + what,
          std::string("percpu_ref ") + name + ": " + what);
}

// Adds one reference unless the word fails `ok`; returns whether it did. acquire on
// success (see percpu_ref.h), relaxed on failure (the value is only a new guess).
template <typename Ok>
bool get_if(percpu_ref* ref, Ok ok) {
  uint64_t w = ref->word.load(std::memory_order_relaxed);
  do {
    if (!ok(w)) return false;
  } while (!ref->word.compare_exchange_weak(w, w + 1, std::memory_order_acquire,
                                            std::memory_order_relaxed));
  return true;
}

}  // namespace

int percpu_ref_init(percpu_ref* ref, percpu_ref_func_t release, const char* name) {
  ref->release = release;
  ref->name = name;
  ref->initialized = true;
  // relaxed: the ref is not shared yet; whoever publishes the object orders this.
  ref->word.store(1, std::memory_order_relaxed);
  return 0;
}

void percpu_ref_exit(percpu_ref* ref) {
  // acquire: when called after the release, orders us after the last put.
  const uint64_t w = ref->word.load(std::memory_order_acquire);
  const uint64_t count = w & kCountMask;
  // Stage 5 of percpu_ref.h: after release (0), or never-live (1, not killed).
  if (ref->initialized && count != 0 && !(count == 1 && !(w & kPercpuRefDead)))
    misuse(ref, "exit with references held");
  ref->initialized = false;
}

void percpu_ref_get(percpu_ref* ref) {
  seam(SeamKind::kAtomic, ref);
  if (!get_if(ref, [](uint64_t w) { return (w & kCountMask) != 0; }))
    misuse(ref, "get on a released ref (use-after-free)");
}

bool percpu_ref_tryget(percpu_ref* ref) {
  seam(SeamKind::kAtomic, ref);
  return get_if(ref, [](uint64_t w) { return (w & kCountMask) != 0; });
}

bool percpu_ref_tryget_live(percpu_ref* ref) {
  seam(SeamKind::kAtomic, ref);
  // A CAS that succeeds is ordered before kill's fetch_or in the word's modification
  // order; one after it sees DEAD and fails: "tryget_live fails after kill".
  return get_if(ref, [](uint64_t w) { return !(w & kPercpuRefDead) && (w & kCountMask) != 0; });
}

void percpu_ref_put(percpu_ref* ref) {
  seam(SeamKind::kAtomic, ref);
  uint64_t w = ref->word.load(std::memory_order_relaxed);
  for (;;) {
    const uint64_t count = w & kCountMask;
    if (count == 0) {
      misuse(ref, "put underflow (put after release?)");
      return;
    }
    if (count == 1 && !(w & kPercpuRefDead)) {
      misuse(ref, "last reference dropped before kill");
      return;
    }
    // acq_rel on success: see percpu_ref.h "Ordering"; relaxed on failure.
    if (ref->word.compare_exchange_weak(w, w - 1, std::memory_order_acq_rel,
                                        std::memory_order_relaxed))
      break;
  }
  if ((w & kCountMask) == 1 && ref->release) ref->release(ref);  // dead: checked above
}

void percpu_ref_kill(percpu_ref* ref) {
  seam(SeamKind::kAtomic, ref);
  // acq_rel: the killer's earlier writes (e.g. the object unhashed) are ordered before
  // DEAD, so a tryget_live that fails may rely on them; acquire pairs with earlier puts.
  const uint64_t old = ref->word.fetch_or(kPercpuRefDead, std::memory_order_acq_rel);
  if (old & kPercpuRefDead) {
    misuse(ref, "kill of a dead ref");
    return;
  }
  percpu_ref_put(ref);  // drop the initial reference
}

bool percpu_ref_is_zero(const percpu_ref* ref) {
  // acquire: a caller that sees zero is ordered after the last put (and release()).
  return (ref->word.load(std::memory_order_acquire) & kCountMask) == 0;
}

bool percpu_ref_is_dying(const percpu_ref* ref) {
  // acquire: a caller that sees DEAD also sees what the killer wrote before kill.
  return (ref->word.load(std::memory_order_acquire) & kPercpuRefDead) != 0;
}

uint64_t percpu_ref_count(const percpu_ref* ref) {
  return ref->word.load(std::memory_order_relaxed) & kCountMask;
}

}  // namespace kern
