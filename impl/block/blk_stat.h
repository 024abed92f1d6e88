// SPDX-License-Identifier: MIT
// Per-CPU blkg iostat, the lock-less llist of updated sets, and the rstat flush that folds
// them into each blkg and up the hierarchy (kernel: blk_cgroup_bio_start,
// __blkcg_rstat_flush; seed 000's design as it stands in 2026).
//
// Update side (blk_cgroup_bio_start, the submitting CPU with preemption disabled): add the
// bio to this CPU's set of its blkg (bytes once per original bio via BIO_CGROUP_ACCT, ios
// per split piece) inside the set's u64_stats write section, then a full barrier, and if
// the set is not queued (`lqueued` false) set lqueued and then llist_add it to this CPU's
// list of the blkg's blkcg (set first: mainline's add-then-set can strand a set, see
// blkcg_queue_set; the barrier pairs with the flusher's, see blk_cgroup_bio_start).
// Root cgroup IO is not counted here: the root's io.stat comes from disk stats.
//
// Flush side (__blkcg_rstat_flush(blkcg, cpu), any context): under RCU take the whole list
// (llist_del_all), then under the global raw spinlock blkg_stat_lock (irqsave) for each
// set: it was already unlinked (next read by the safe iterator) — clear lqueued with a
// release store, which orders that read before the clear (pairs with the acquire load of
// lqueued in the updater that re-queues it: d0aac2363549), then a full barrier before
// reading the counters (store-buffering with the updater); fold cur - last into the blkg's global
// iostat; then move the blkg's unpropagated global delta into its parent (unless the
// parent is the root blkg) and queue the parent's global set on the PARENT blkcg's list
// for this CPU (9d230c09964e), so the grandparent is updated when the parent is flushed —
// within the same pass, since the subtree flush runs children before parents.
//
// Lifetime: no reference is held for being queued. blkg_release flushes its blkcg's lists
// for every possible CPU before call_rcu (0ab5ee5a1bad), so no set is freed while on a
// list, and a flusher that detached a list under RCU is covered by the grace period.
#pragma once

#include <string>

#include "impl/block/bio.h"

namespace blk {

enum blkg_iostat_type { BLKG_IOSTAT_READ, BLKG_IOSTAT_WRITE, BLKG_IOSTAT_DISCARD, BLKG_IOSTAT_NR };

struct blkg_iostat {  // a plain snapshot
  uint64_t bytes[BLKG_IOSTAT_NR] = {};
  uint64_t ios[BLKG_IOSTAT_NR] = {};
};

// Submission accounting (after throttling). Context: process or any, preemptible or not.
void blk_cgroup_bio_start(bio* b);
// Flush one blkcg's list for one CPU. Context: any.
void blkcg_rstat_flush_cpu(blkcg* b, int cpu);
// Flush `cg` and every descendant, children first (cgroup_rstat_flush). Context: process.
void cgroup_rstat_flush(cgroup_hierarchy& h, cgroup* cg);
// Root io.stat source: the disk's totals copied into its root blkg. Context: any.
void blkcg_fill_root_iostats(request_queue* q);
// The flushed global counters of a blkg. Context: any (RCU or a blkg reference).
blkg_iostat blkg_iostat_read(blkcg_gq* blkg);
// io.stat text of `cg`, exactly as the kernel prints it. Context: process.
std::string blkcg_print_stat(cgroup_hierarchy& h, cgroup* cg);
// v1 blkio.reset_stats: clears counters only (never the set's back pointer, llist node or
// lqueued: CVE-2023-53421, CVE-2024-38663). Context: process.
void blkcg_reset_stats(blkcg* b);

}  // namespace blk
