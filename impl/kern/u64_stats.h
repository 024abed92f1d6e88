// SPDX-License-Identifier: MIT
// u64_stats_sync: a sequence count that lets readers take a consistent snapshot of a group
// of 64-bit counters that one writer at a time updates (the kernel's u64_stats_sync, as on
// a 32-bit machine, where it is a real seqcount).
//
// Contract. Writers are exclusive by construction, not by this object: a writer owns the
// CPU of per-CPU stats (preemption or IRQs off) or holds the lock of shared stats.
// u64_stats_update_begin() checks that (kPercpu if the writer is preemptible and holds no
// lock; kBug if another write section of the same sync is open; begin always lands seq on
// an odd value and end on an even one, so the parity heals after such a report instead of
// leaving readers waiting forever). Readers never block a writer; they retry while a write
// section overlaps their reads. The _irqsave variants also disable local IRQs, for stats
// that an interrupt handler updates as well.
//
// Protocol:
//   writer: seq = odd (relaxed) ; FENCE_W (release) ; counters (relaxed stores) ;
//           seq = even (release store)
//   reader: s0 = seq (acquire load), wait while odd ; counters (relaxed loads) ;
//           FENCE_R (acquire) ; s1 = seq (relaxed) ; retry if s1 != s0
//   - seq=even (release) pairs with s0 (acquire): a reader that starts after a write
//     section ended sees all of that section's counter stores.
//   - FENCE_W pairs with FENCE_R: if a reader's counter load saw a store of a write
//     section, the fences synchronise, so the section's odd seq store happens-before s1,
//     and s1 differs from s0: the reader retries. This is the half that catches a writer
//     starting in the middle of a read.
// The counters are relaxed std::atomic, which is the point of this design under TSan:
// TSan does not model standalone fences, so with plain counters it would report every
// overlapping read as a data race (the reads a seqcount discards), and with fences it
// would still not see the pairing. Relaxed atomics make each counter access race-free in
// TSan's eyes at the cost of nothing on x86 (a plain 64-bit mov), while the seq acquire/
// release pair is an edge TSan sees. Two alternatives were rejected: acquire loads and
// release stores on every counter (correct without fences, but it adds happens-before
// edges from writer to reader on every counter, which can hide real races elsewhere from
// TSan), and a read-don't-modify-write of seq in the reader (fetch_add(0), correct but it
// makes readers write the writer's cache line). Snapshot consistency itself is checked by
// the tests (torn-snapshot detection), not by TSan.
//
// In controlled mode a reader that finds a write section open blocks (wait_until) until
// the section ends, so the scheduler runs the writer instead of spinning the reader; in
// native mode it yields the thread. A reader inside the open write section of its own
// task (an interrupt on the writer's CPU reading the stats it interrupted: the reason the
// _irqsave variants exist) would wait forever; it is reported (kBug) instead, and the read
// goes ahead (its snapshot may be torn).
#pragma once

#include <atomic>
#include <cstdint>

#include "impl/kern/task.h"

namespace kern {

// One 64-bit statistic (the kernel's u64_stats_t). Written by the stats' single writer
// inside its write section, read by anyone (inside a fetch_begin/fetch_retry loop for a
// consistent group, or alone for a single value).
struct u64_stats_t {
  std::atomic<uint64_t> v{0};
  uint64_t read() const { return v.load(std::memory_order_relaxed); }
  void set(uint64_t x) { v.store(x, std::memory_order_relaxed); }
  // Single writer: a load and a store, not a read-modify-write (the kernel's local64_add
  // on the owning CPU). Two unsynchronised writers lose updates, which the stats tests and
  // the oracle's conservation checks detect.
  void add(uint64_t x) {
    v.store(v.load(std::memory_order_relaxed) + x, std::memory_order_relaxed);
  }
  void inc() { add(1); }
};

inline uint64_t u64_stats_read(const u64_stats_t* p) {
  return p->read();
}
inline void u64_stats_set(u64_stats_t* p, uint64_t x) {
  p->set(x);
}
inline void u64_stats_add(u64_stats_t* p, uint64_t x) {
  p->add(x);
}
inline void u64_stats_inc(u64_stats_t* p) {
  p->inc();
}

struct u64_stats_sync {
  std::atomic<unsigned> seq{0};
  // The task inside the write section, for reports and the wait-for graph (relaxed: only
  // ever compared with current() or printed).
  std::atomic<Task*> writer{nullptr};
};

inline void u64_stats_init(u64_stats_sync* s) {
  s->seq.store(0, std::memory_order_relaxed);
  s->writer.store(nullptr, std::memory_order_relaxed);
}

// Out of line: the writer check and the reader's slow path (waits until the open write
// section ends and returns the even seq; returns the odd seq, after a kBug report, when
// the open section belongs to the reader's own task, which could never finish it).
void u64_stats_writer_check(const u64_stats_sync& s);
unsigned u64_stats_fetch_begin_slow(const u64_stats_sync& s);

// Context: the writer owns its CPU (per-CPU stats) or holds the stats' lock.
inline void u64_stats_update_begin(u64_stats_sync& s) {
  u64_stats_writer_check(s);
  s.writer.store(current(), std::memory_order_relaxed);
  // relaxed: the writer is exclusive, so a load and a store cannot lose an update. Always
  // lands on an odd value different from before, even on a (reported) nested begin, so
  // the parity heals when the sections end.
  const unsigned seq = s.seq.load(std::memory_order_relaxed);
  s.seq.store((seq & 1) ? seq + 2 : seq + 1, std::memory_order_relaxed);
  // FENCE_W: orders the odd seq store before the counter stores; pairs with FENCE_R in
  // u64_stats_fetch_retry.
  std::atomic_thread_fence(std::memory_order_release);
}

inline void u64_stats_update_end(u64_stats_sync& s) {
  s.writer.store(nullptr, std::memory_order_relaxed);
  // release: publishes the section's counter stores; pairs with the acquire load in
  // u64_stats_fetch_begin. Always lands on an even value (see update_begin).
  s.seq.store((s.seq.load(std::memory_order_relaxed) | 1) + 1, std::memory_order_release);
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

// Starts a read; returns the sequence to pass to u64_stats_fetch_retry. Any context.
inline unsigned u64_stats_fetch_begin(const u64_stats_sync& s) {
  // acquire: pairs with u64_stats_update_end's release store.
  const unsigned seq = s.seq.load(std::memory_order_acquire);
  if ((seq & 1) == 0) return seq;
  return u64_stats_fetch_begin_slow(s);  // a write section is open: let it finish
}

// True if the counters read since u64_stats_fetch_begin may be torn: read them again.
inline bool u64_stats_fetch_retry(const u64_stats_sync& s, unsigned start) {
  // FENCE_R: orders the counter loads before the seq re-read; pairs with FENCE_W.
  std::atomic_thread_fence(std::memory_order_acquire);
  return s.seq.load(std::memory_order_relaxed) != start;
}

}  // namespace kern
