// SPDX-License-Identifier: MIT
#include "impl/kern/u64_stats.h"

#include <thread>

#include "impl/kern/report.h"
#include "impl/kern/sched.h"

namespace kern {

void u64_stats_writer_check(const u64_stats_sync& s) {
  const Task* t = current();
  // A writer must exclude other writers: own its CPU (per-CPU stats) or hold a lock.
  if (!t->cpu_owned && t->nr_held == 0) {
    kreport(ReportKind::kPercpu, "u64_stats-writer-unprotected",
            "u64_stats_update_begin by " + t->label() +
                " while preemptible and holding no lock: a second writer can interleave");
  }
  if (s.seq.load(std::memory_order_relaxed) & 1) {
    // Only compared, never dereferenced: the other writer may have exited.
    const bool own = s.writer.load(std::memory_order_relaxed) == t;
    kreport(ReportKind::kBug, "u64_stats-nested-writer",
            "u64_stats_update_begin by " + t->label() + " inside " +
                (own ? "its own" : "another task's") + " open write section" +
                " (an interrupt updating stats its CPU was updating needs the _irqsave "
                "variants)");
  }
}

unsigned u64_stats_fetch_begin_slow(const u64_stats_sync& s) {
  // Our own task (or one this interrupt runs on top of) holds the section open: it cannot
  // finish while we wait.
  const Task* w = s.writer.load(std::memory_order_relaxed);
  for (const Task* t = current(); t != nullptr; t = t->inline_parent) {
    if (t == w) {
      kreport(ReportKind::kBug, "u64_stats-read-inside-own-write",
              "u64_stats_fetch_begin by " + current()->label() +
                  " inside the open write section of " + w->label() +
                  ": it would wait for itself (a writer interrupted by a reader of the "
                  "same stats needs the _irqsave variants)");
      return s.seq.load(std::memory_order_acquire);  // odd: the snapshot may be torn
    }
  }
  for (;;) {
    // acquire: as in u64_stats_fetch_begin.
    const unsigned seq = s.seq.load(std::memory_order_acquire);
    if ((seq & 1) == 0) return seq;
    if (sched().controlled()) {
      // Block so the scheduler runs the writer (predicates need no notify in controlled
      // mode). The writer is the wait-for edge of a deadlock report.
      WaitDesc d{"u64_stats", &s, "u64_stats_sync", s.writer.load(std::memory_order_relaxed)};
      wait_until(d, [&s] { return (s.seq.load(std::memory_order_relaxed) & 1) == 0; });
    } else {
      // Native: the writer runs on another thread; its section is short. update_end does
      // not notify (it is on the IO hot path), so yield rather than sleep.
      std::this_thread::yield();
    }
  }
}

}  // namespace kern
