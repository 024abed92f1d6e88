// SPDX-License-Identifier: MIT
// blkcg_gq ("blkg"): the state of one cgroup on one queue (kernel: block/blk-cgroup.c), in
// the variant of the 2026 RFC "blk-cgroup: protect blkgs with blkcg_mutex".
//
// Locking (RFC): q->blkcg_mutex serialises lookup-create, creation, destruction and the
// queue's blkg list; blkcg->lock (IRQs off) keeps its blkcg-local duties: the blkcg's blkg
// list (the kernel's radix tree + hlist, here one RCU list), the hint, `online`.
// Readers look blkgs up under RCU without either lock.
//
// Lifetime, in numbered stages:
//   1. create (blkg_create, blkcg_mutex held): allocate, pin the css (tryget_online),
//      link to the parent blkg (which must exist: creation walks root -> leaf) taking a
//      reference on it, insert into the blkcg's list (an insertion that can fail with
//      GFP_NOWAIT, as the radix tree's) and at the head of q->blkg_list; online.
//   2. destroy (blkg_destroy, blkcg_mutex + blkcg->lock held; idempotent): offline,
//      unhash from the blkcg, clear the hint, kill the refcount (drops the existence ref).
//      q->blkg_list keeps it until stage 3c, so destroy_all may meet destroyed blkgs.
//   3. release: (a) the last put runs blkg_release in any context: call_rcu only;
//      (b) the RCU callback drops the css reference and queues the free work;
//      (c) the free work takes q->blkcg_mutex, puts the parent, unlinks q_node, drops the
//      mutex, drops the queue reference and frees the memory.
//   Policy data and per-CPU stats attach at stage 1 and go at 3c (later slices).
//
// References: the existence ref (killed at destroy), one per child blkg (its parent ref),
// one per bio associated with it, and one per temporary user (destroy loops).
#pragma once

#include "impl/block/busted.h"

#include <atomic>

#include "impl/block/blk_cgroup.h"
#include "impl/block/blkcg_policy.h"
#include "impl/block/genhd.h"
#include "impl/kern/alloc.h"
#include "impl/kern/llist.h"
#include "impl/kern/u64_stats.h"
#include "impl/kern/percpu_ref.h"
#include "impl/kern/rcu.h"
#include "impl/kern/workqueue.h"

namespace blk {

// One set of counters: per CPU, and one global (flushed) set per blkg.
struct blkg_iostat_set {
  kern::u64_stats_sync sync;
  blkcg_gq* blkg = nullptr;        // back pointer; never cleared while the blkg lives
  kern::llist_node lnode;
  std::atomic<int> lqueued{0};     // on an llist (see blk_stat.h for the ordering)
  kern::u64_stats_t cur_bytes[3], cur_ios[3];
  kern::u64_stats_t last_bytes[3], last_ios[3];
};

struct blkcg_gq {
  request_queue* q = nullptr;
  blkcg* blkcg = nullptr;
  blkcg_gq* parent = nullptr;
  kern::percpu_ref refcnt;
  // q->blkg_list links; guarded by q->blkcg_mutex.
  blkcg_gq* q_next = nullptr;
  blkcg_gq* q_prev = nullptr;
  bool on_q_list = false;
  // blkcg->blkg_list links: `blkcg_next` is read by RCU walkers (acquire) and written
  // under blkcg->lock (release); `blkcg_prev` and `hashed` only under blkcg->lock.
  std::atomic<blkcg_gq*> blkcg_next{nullptr};
  blkcg_gq* blkcg_prev = nullptr;
  bool hashed = false;
  std::atomic<bool> online{false};
  // Policy data by plid: installed/removed under blkcg->lock (release), read under RCU or
  // the locks (acquire). Never visible half-initialised (init runs before install).
  std::atomic<blkg_policy_data*> pd[BLKCG_MAX_POLS] = {};
  kern::PerCpu<blkg_iostat_set>* iostat_cpu = nullptr;  // GFP of the creation path
  blkg_iostat_set iostat;  // flushed totals; writers hold blkg_stat_lock (or own the set)
  // The punt path (blk_core.h): bios waiting for async_bio_work, protected by
  // async_bio_lock; each holds its own reference on this blkg.
  kern::spinlock_t async_bio_lock{"blkg->async_bio_lock"};
  bio_list async_bios GUARDED_BY(async_bio_lock);
  kern::work_struct async_bio_work;
  kern::rcu_head rcu;
  kern::work_struct free_work;
};

// RCU (or q->blkcg_mutex) held. The blkg of (blkcg, q) if it exists and is hashed.
// Context: any.
blkcg_gq* blkg_lookup(blkcg* b, request_queue* q);
// Caller holds q->blkcg_mutex. Creates the blkg of (b, q); the parent's must exist.
// Context: process; sleeps only if gfp allows it.
// Returns the blkg or nullptr with *err = -ENODEV (dying queue or offline cgroup) or
// -ENOMEM. gfp: GFP_NOIO at runtime and config, GFP_KERNEL for the root, GFP_ATOMIC on the
// nowait trylock path (RFC patch 16). The radix-tree insertion into b->blkg_tree takes
// its nodes from *pre when given (preloaded by the configuration path, f255c19b3ab4),
// else allocates them with the tree's GFP_NOWAIT.
blkcg_gq* blkg_create(blkcg* b, request_queue* q, kern::gfp_t gfp, int* err,
                      kern::radix_tree::preload* pre = nullptr) REQUIRES(q->blkcg_mutex);
// Lookup, else create every missing level root -> leaf. On failure returns the closest
// existing ancestor (ultimately q->root_blkg; nullptr only when the queue has none).
// Caller holds q->blkcg_mutex. Context: process; sleeps only if gfp allows it.
blkcg_gq* blkg_lookup_create_locked(blkcg* b, request_queue* q, kern::gfp_t gfp)
    REQUIRES(q->blkcg_mutex);
// Takes RCU and q->blkcg_mutex itself. Context: process, may sleep.
blkcg_gq* blkg_lookup_create(blkcg* b, request_queue* q);
// Caller holds q->blkcg_mutex and b->lock. Idempotent. Context: process, IRQs off.
void blkg_destroy(blkcg_gq* blkg) REQUIRES(blkg->q->blkcg_mutex, blkg->blkcg->lock);
// Disk release: destroy every blkg of q, clear q->root_blkg. Context: process.
void blkg_destroy_all(request_queue* q);

// Reference helpers. Context: any (the put may start the release chain).
inline void blkg_get(blkcg_gq* blkg) { kern::percpu_ref_get(&blkg->refcnt); }
inline bool blkg_tryget(blkcg_gq* blkg) { return kern::percpu_ref_tryget(&blkg->refcnt); }
void blkg_put_racy(blkcg_gq* blkg);  // busted().blkg_put_nonatomic
inline void blkg_put(blkcg_gq* blkg) {
  if (busted().blkg_put_nonatomic.load(std::memory_order_relaxed)) [[unlikely]]
    return blkg_put_racy(blkg);
  kern::percpu_ref_put(&blkg->refcnt);
}

// Number of blkgs on q->blkg_list (destroyed-but-unfreed included). Takes blkcg_mutex.
// Context: process.
int blkg_count(request_queue* q);

}  // namespace blk
