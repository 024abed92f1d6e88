// SPDX-License-Identifier: MIT
// blk-throttle: per-cgroup bps/iops limits (io.max) on a queue (kernel: block/blk-throttle.c
// in its 2025-2026 form, with the RFC's patch 4: throttle state under its own td->lock).
//
// Objects. A queue gets a throtl_data (q->td) on the first io.max write to its disk (lazy
// activation); every blkg of that queue then has a throtl_grp as its policy data. Each tg
// and the td own a throtl_service_queue: per direction a list of qnodes with queued bios,
// the pending list of child tgs ordered by dispatch time, and a pending timer. A bio over
// the limit at some level waits on that level's tg (in the qnode of the child it came from,
// or the tg's own qnode); the tg sits in its parent's pending list; the parent's timer
// moves bios one level up when their time comes; bios that reach the td's service queue
// are submitted by the td's dispatch work (kthrotld, WQ_MEM_RECLAIM).
//
// Differences from the kernel, on purpose: the pending tree is a list sorted by disptime
// (ties after equals: the rb-tree's order), since a queue has few pending groups; cgroup
// v2 only (hierarchical limits; the v1 flat mode and blkio.throttle.* files are not here).
//
// Locking (RFC patch 4):
//   td->lock  (spinlock_t, always irqsave: the pending timers take it in softirq) protects
//             every service queue of the td (qnode lists, nr_queued_*, pending lists,
//             nr_pending, first_pending_disptime), every tg's flags, disptime, slices,
//             dispatched counters, limits and has_rules, and td->nr_queued. Limits and
//             has_rules are also read without it on the submission fast path
//             (blk_should_throtl), so they are relaxed atomics written under the lock.
//   Order: q->rq_qos_mutex -> freeze -> q->blkcg_mutex -> blkcg->lock -> td->lock.
//   A qnode on a list holds a reference on its tg's blkg; a queued bio holds its own.
// Lifetime (RFC): a tg's timer is shut down (timer_shutdown_sync) in pd_free before the tg
// goes; blk_throtl_exit shuts down every tg timer still around and the td's own before it
// frees the td, because pds of destroyed blkgs are freed later by their free work and their
// timers reach the td. A timer that finds q->root_blkg cleared (disk going away) does
// nothing.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "impl/block/bio.h"
#include "impl/block/bio_list.h"
#include "impl/block/blkcg_policy.h"
#include "impl/kern/clock.h"
#include "impl/kern/list.h"
#include "impl/kern/rcu.h"
#include "impl/kern/timer.h"
#include "impl/kern/workqueue.h"

namespace blk {

inline constexpr uint64_t THROTL_U64_MAX = UINT64_MAX;
inline constexpr uint32_t THROTL_U32_MAX = UINT32_MAX;
inline constexpr int THROTL_GRP_QUANTUM = 8;  // bios per tg per round (6 reads, 2 writes)
inline constexpr int THROTL_QUANTUM = 32;     // bios per service queue per round

enum blkg_rwstat_type {
  BLKG_RWSTAT_READ,
  BLKG_RWSTAT_WRITE,
  BLKG_RWSTAT_SYNC,
  BLKG_RWSTAT_ASYNC,
  BLKG_RWSTAT_DISCARD,
  BLKG_RWSTAT_NR,
};

enum : unsigned {
  THROTL_TG_PENDING = 1u << 0,         // on the parent's pending list
  THROTL_TG_WAS_EMPTY = 1u << 1,       // a bio arrived in an empty direction
  THROTL_TG_IOPS_WAS_EMPTY = 1u << 2,  // a bio became the head of an empty iops list
  THROTL_TG_CANCELING = 1u << 3,       // offline or disk deleted: no limit applies
};

struct throtl_grp;
struct throtl_data;

struct throtl_qnode {
  kern::list_head node;  // in a service queue's queued[rw] while it holds bios
  bio_list bios_bps;     // not yet charged for bps at the current level
  bio_list bios_iops;    // bps charged (or bps done at the top): served first
  throtl_grp* tg = nullptr;  // whose blkg the qnode pins while queued
};

struct throtl_service_queue {
  throtl_service_queue* parent_sq = nullptr;  // nullptr for the td's top-level queue
  kern::list_head queued[2];                  // qnodes, round robin
  unsigned nr_queued_bps[2] = {};
  unsigned nr_queued_iops[2] = {};
  kern::list_head pending;  // child tgs by disptime (tg->pending_node)
  unsigned nr_pending = 0;
  uint64_t first_pending_disptime = 0;
  kern::timer_list pending_timer;
  throtl_grp* owner_tg = nullptr;  // nullptr for the td's queue
  throtl_data* td = nullptr;
};

struct throtl_grp : blkg_policy_data {
  kern::list_head pending_node;  // in parent_sq->pending while THROTL_TG_PENDING
  throtl_data* td = nullptr;
  throtl_service_queue service_queue;
  throtl_qnode qnode_on_self[2];
  throtl_qnode qnode_on_parent[2];
  uint64_t disptime = 0;
  unsigned flags = 0;
  // Limits (THROTL_U64_MAX / THROTL_U32_MAX: none) and derived has_rules; written under
  // td->lock, read locklessly by blk_should_throtl (relaxed: a racing bio takes either
  // the old or the new configuration, as in the kernel).
  std::atomic<uint64_t> bps[2] = {THROTL_U64_MAX, THROTL_U64_MAX};
  std::atomic<uint32_t> iops[2] = {THROTL_U32_MAX, THROTL_U32_MAX};
  std::atomic<bool> has_rules_bps[2] = {};
  std::atomic<bool> has_rules_iops[2] = {};
  // Dispatch accounting of the current slice (signed: carry-over may make them negative).
  int64_t bytes_disp[2] = {};
  int64_t io_disp[2] = {};
  uint64_t slice_start[2] = {};
  uint64_t slice_end[2] = {};
  // v1 statistics (blkio.throttle.io_service_bytes / io_serviced), per BLKG_RWSTAT_*:
  // updated locklessly on the submission path (relaxed atomics, like the kernel's per-CPU
  // counters: a reader gets a recent value, not a snapshot).
  std::atomic<uint64_t> stat_bytes[5] = {};
  std::atomic<uint64_t> stat_ios[5] = {};
  kern::rcu_head rcu;  // pd_free frees after a grace period
};

struct throtl_data {
  kern::spinlock_t lock{"td->lock"};
  // Slice length in jiffies: DFL_THROTL_SLICE (HZ/10) since 2025; older kernels used
  // HZ/50 on non-rotational queues. Fixed at init (blk_throtl_set_slice for scenarios).
  uint64_t throtl_slice = 0;
  throtl_service_queue service_queue;  // top level: bios ready for dispatch_work
  request_queue* queue = nullptr;
  unsigned nr_queued[2] = {};  // bios waiting anywhere below the top level
  uint64_t queue_seq = 0;      // numbers bios as they queue (bi_throtl_seq)
  kern::work_struct dispatch_work;
};

// The policy (registered on first use; never unregistered). Context: process the first
// time (registration may sleep), any after.
blkcg_policy* blkcg_policy_throtl();
// The tg of a blkg, or nullptr (throttle never activated on its queue, or the blkg was
// dying at activation). Only after blkcg_policy_throtl() ran once. Context: any.
throtl_grp* blkg_to_tg(blkcg_gq* blkg);
// The kthrotld workqueue (WQ_MEM_RECLAIM), created on first use. Context: any.
kern::workqueue_struct* kthrotld_workqueue();

// Throttle active on q: q->td set and the policy bit on (bd9fd5be6bc0: the bit, set only
// after every blkg has its tg, is what makes the tgs safe to use). Context: any.
bool blk_throtl_activated(request_queue* q);
// Sets the slice length of an activated queue (scenarios reproducing older kernels' 20 ms
// slice). Context: process, before IO starts.
void blk_throtl_set_slice(request_queue* q, uint64_t jiffies);
// Lazy activation (first io.max write). 0, -ENOMEM. Context: process, may sleep; caller
// holds q->rq_qos_mutex.
int blk_throtl_init(gendisk* disk);
// Disk deletion: every bio still held by the throttler completes with -EIO. Context:
// process, may sleep.
void blk_throtl_cancel_bios(gendisk* disk);
// Disk release, after blkg_destroy_all: shut down every timer that can reach the td, stop
// the dispatch work, free the td. Context: process, may sleep.
void blk_throtl_exit(gendisk* disk);

// The submission hook: true if the throttler took the bio (it will be submitted later by
// the dispatch work, or failed); false: go on and issue it. Context: any (never sleeps).
bool blk_throtl_bio(bio* b);

// io.max write for cgroup `b` (never the root: the caller refuses that): returns the
// number of bytes written or -EINVAL, -ERANGE, -ENODEV, -ENOMEM, -EOPNOTSUPP, exactly as
// the kernel (spec §5.2). Context: process, may sleep.
long tg_set_limit(blkcg* b, const std::string& input);
// io.max read: one line per device with a limit. Context: process.
std::string tg_print_limit(blkcg* b);
// cgroup v1 files (blk_throttle_v1.cc). which: 0 read_bps, 1 write_bps, 2 read_iops,
// 3 write_iops. Write "MAJ:MIN VALUE" (0: no limit); -EINVAL, -ENODEV, -ENOMEM.
// Context: process, may sleep.
long tg_set_conf(blkcg* b, const std::string& input, int which);
std::string tg_print_conf(blkcg* b, int which);
// blkio.throttle.io_service_bytes / io_serviced (recursive: the cgroup's subtree).
std::string tg_print_rwstat(blkcg* b, bool bytes, bool recursive);

// Limit updates (io.max). Caller holds td->lock.
void tg_update_carryover(throtl_grp* tg);
void tg_conf_updated(throtl_grp* tg);

// Internals shared by blk_throttle*.cc (callers hold td->lock).
namespace throtl {
inline int rw_of(const bio* b) { return b->op == bio_op::kRead ? 0 : 1; }
uint64_t tg_bps_limit(throtl_grp* tg, int rw);
uint32_t tg_iops_limit(throtl_grp* tg, int rw);
unsigned sq_queued(const throtl_service_queue* sq, int rw);
bio* peek_queued(kern::list_head* queued);
void tg_update_has_rules(throtl_grp* tg);
void throtl_start_new_slice(throtl_grp* tg, int rw, bool clear);
bool throtl_slice_used(throtl_grp* tg, int rw);
void throtl_trim_slice(throtl_grp* tg, int rw);
void start_parent_slice_with_credit(throtl_grp* child, throtl_grp* parent, int rw);
uint64_t tg_dispatch_bps_time(throtl_grp* tg, bio* b);
uint64_t tg_dispatch_iops_time(throtl_grp* tg, bio* b);
uint64_t tg_dispatch_time(throtl_grp* tg, bio* b);
bool tg_within_limit(throtl_grp* tg, bio* b, int rw);
// v1 statistics of one bio (blk_should_throtl on the legacy hierarchy).
void throtl_stat_v1(throtl_grp* tg, bio* b);
// Pops the next bio of sq in direction rw (see blk_throttle.cc); tg_to_put nullptr: an
// emptied qnode's blkg reference is dropped at once.
bio* throtl_pop_queued(throtl_service_queue* sq, throtl_grp** tg_to_put, int rw);
void throtl_dequeue_tg(throtl_grp* tg);
void throtl_pending_timer_setup(throtl_service_queue* sq);
void blk_throtl_dispatch_work_fn(kern::work_struct* w);
void throtl_charge_bps_bio(throtl_grp* tg, bio* b);
void throtl_charge_iops_bio(throtl_grp* tg, bio* b);
void tg_update_disptime(throtl_grp* tg);
bool throtl_schedule_next_dispatch(throtl_service_queue* sq, bool force);
// Saturating budget arithmetic: bytes / ios allowed in `elapsed` jiffies.
uint64_t calculate_bytes_allowed(uint64_t bps, uint64_t elapsed);
uint64_t calculate_io_allowed(uint32_t iops, uint64_t elapsed);
inline uint64_t slice_len(const throtl_grp* tg) { return tg->td->throtl_slice; }
}  // namespace throtl

}  // namespace blk
