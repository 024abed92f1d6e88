// SPDX-License-Identifier: MIT
#include "impl/kern/u64_stats.h"

#include "impl/kern/report.h"

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
    kreport(ReportKind::kBug, "u64_stats-nested-writer",
            "u64_stats_update_begin inside another writer's section");
  }
}

}  // namespace kern
