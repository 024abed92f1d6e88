// SPDX-License-Identifier: MIT
// u64_stats_sync: a sequence counter that lets readers take a consistent snapshot of a
// group of 64-bit counters written by one writer at a time.
//
// Writer (exclusive: it owns the CPU of per-CPU stats, or holds the lock of shared ones):
//   seq odd (relaxed) ; release fence ; counters (relaxed stores) ; seq even (release).
// Reader: seq (acquire), retry while odd ; counters (relaxed loads) ; acquire fence ;
//   seq again (relaxed) ; retry if it moved.
// The fences pair writer-begin with reader-end and writer-end with reader-begin, as in the
// kernel's seqcount. Every counter is a relaxed std::atomic, so TSan (which ignores fences)
// sees no data race on the counters themselves; the sequence protocol is what gives
// snapshot consistency, and tests check it with torn-read detection.
//
// The writer check: u64_stats_update_begin() reports kPercpu/kBug-style misuse through
// WARN_ON if the writer is preemptible and holds no lock (a second writer could interleave).
#pragma once

#include <atomic>
#include <cstdint>

#include "impl/kern/task.h"

namespace kern {

// One 64-bit statistic (the kernel's u64_stats_t).
struct u64_stats_t {
  std::atomic<uint64_t> v{0};
  uint64_t read() const { return v.load(std::memory_order_relaxed); }
  void set(uint64_t x) { v.store(x, std::memory_order_relaxed); }
  // Single writer: a load + store, not an RMW (the kernel's local64_add on one CPU).
  void add(uint64_t x) { v.store(v.load(std::memory_order_relaxed) + x, std::memory_order_relaxed); }
  void inc() { add(1); }
};

struct u64_stats_sync {
  std::atomic<unsigned> seq{0};
};

void u64_stats_writer_check(const u64_stats_sync& s);

inline void u64_stats_update_begin(u64_stats_sync& s) {
  u64_stats_writer_check(s);
  s.seq.store(s.seq.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);  // pairs with the reader's acquire fence
}

inline void u64_stats_update_end(u64_stats_sync& s) {
  // release: pairs with the acquire load in u64_stats_fetch_begin.
  s.seq.store(s.seq.load(std::memory_order_relaxed) + 1, std::memory_order_release);
}

inline irqflags_t u64_stats_update_begin_irqsave(u64_stats_sync& s) {
  const irqflags_t f = local_irq_save();
  u64_stats_update_begin(s);
  return f;
}

inline void u64_stats_update_end_irqrestore(u64_stats_sync& s, irqflags_t f) {
  u64_stats_update_end(s);
  local_irq_restore(f);
}

inline unsigned u64_stats_fetch_begin(const u64_stats_sync& s) {
  for (;;) {
    const unsigned seq = s.seq.load(std::memory_order_acquire);
    if ((seq & 1) == 0) return seq;
    seam(SeamKind::kAtomic, &s);  // a writer is mid-update: let it run
  }
}

inline bool u64_stats_fetch_retry(const u64_stats_sync& s, unsigned start) {
  std::atomic_thread_fence(std::memory_order_acquire);  // pairs with the writer's release fence
  return s.seq.load(std::memory_order_relaxed) != start;
}

}  // namespace kern
