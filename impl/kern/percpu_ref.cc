// SPDX-License-Identifier: MIT
#include "impl/kern/percpu_ref.h"

#include <string>

#include "impl/kern/report.h"
#include "impl/kern/sched.h"

namespace kern {
namespace {

constexpr uint64_t kCountMask = kPercpuRefDead - 1;

void misuse(const percpu_ref* ref, const char* what) {
  kreport(ReportKind::kRefcount, std::string("percpu_ref:") + ref->name + ":" + what,
          std::string("percpu_ref ") + ref->name + ": " + what);
}

}  // namespace

int percpu_ref_init(percpu_ref* ref, percpu_ref_func_t release, const char* name) {
  ref->release = release;
  ref->name = name;
  ref->initialized = true;
  ref->word.store(1, std::memory_order_relaxed);
  return 0;
}

void percpu_ref_exit(percpu_ref* ref) {
  const uint64_t w = ref->word.load(std::memory_order_acquire);
  if (ref->initialized && (w & kCountMask) != 0) misuse(ref, "exit with references held");
  ref->initialized = false;
}

void percpu_ref_get(percpu_ref* ref) {
  seam(SeamKind::kAtomic, ref);
  const uint64_t old = ref->word.fetch_add(1, std::memory_order_relaxed);
  if ((old & kCountMask) == 0) misuse(ref, "get on a released ref (use-after-free)");
}

bool percpu_ref_tryget(percpu_ref* ref) {
  seam(SeamKind::kAtomic, ref);
  uint64_t w = ref->word.load(std::memory_order_relaxed);
  do {
    if ((w & kCountMask) == 0) return false;
  } while (!ref->word.compare_exchange_weak(w, w + 1, std::memory_order_acquire,
                                            std::memory_order_relaxed));
  return true;
}

bool percpu_ref_tryget_live(percpu_ref* ref) {
  seam(SeamKind::kAtomic, ref);
  uint64_t w = ref->word.load(std::memory_order_relaxed);
  do {
    if ((w & kPercpuRefDead) || (w & kCountMask) == 0) return false;
  } while (!ref->word.compare_exchange_weak(w, w + 1, std::memory_order_acquire,
                                            std::memory_order_relaxed));
  return true;
}

void percpu_ref_put(percpu_ref* ref) {
  seam(SeamKind::kAtomic, ref);
  const uint64_t old = ref->word.fetch_sub(1, std::memory_order_acq_rel);
  const uint64_t count = old & kCountMask;
  if (count == 0) {
    ref->word.fetch_add(1, std::memory_order_relaxed);  // undo; keep the word sane
    misuse(ref, "put underflow");
    return;
  }
  if (count == 1) {
    if (!(old & kPercpuRefDead)) {
      misuse(ref, "last reference dropped before kill");
      return;
    }
    if (ref->release) ref->release(ref);
  }
}

void percpu_ref_kill(percpu_ref* ref) {
  seam(SeamKind::kAtomic, ref);
  const uint64_t old = ref->word.fetch_or(kPercpuRefDead, std::memory_order_acq_rel);
  if (old & kPercpuRefDead) {
    misuse(ref, "kill of a dead ref");
    return;
  }
  percpu_ref_put(ref);  // drop the initial reference
}

bool percpu_ref_is_zero(const percpu_ref* ref) {
  return (ref->word.load(std::memory_order_acquire) & kCountMask) == 0;
}

bool percpu_ref_is_dying(const percpu_ref* ref) {
  return ref->word.load(std::memory_order_acquire) & kPercpuRefDead;
}

uint64_t percpu_ref_count(const percpu_ref* ref) {
  return ref->word.load(std::memory_order_relaxed) & kCountMask;
}

}  // namespace kern
