// SPDX-License-Identifier: MIT
// blkcg policies: per-cgroup data (cpd) and per-blkg data (pd) with their lifecycle
// callbacks, registration, and per-queue activation (kernel: block/blk-cgroup.c).
//
// pd lifecycle, per blkg and policy, each step exactly once and in this order:
//   alloc -> init -> online -> (offline) -> free
// init runs after the blkg is linked to its parent (a policy may read its parent's pd)
// and before the pd is visible; online marks it live (pd->online); offline runs at blkg
// destruction or policy deactivation; free runs from the blkg's free work, or at
// deactivation, and may sleep.
//
// Locking:
//   blkcg_pol_register_mutex  whole register/unregister
//   blkcg_pol_mutex           the policy table, all_blkcgs, cpd alloc/free
//   q->blkcg_mutex            activation/deactivation walks and q->blkcg_pols (RFC)
//   blkcg->lock               installing/removing blkg->pd[] (and `online`)
// Order: queue freeze -> q->blkcg_mutex -> blkcg->lock.
#pragma once

#include <bitset>

#include "impl/block/blk_cgroup.h"
#include "impl/block/genhd.h"
#include "impl/kern/alloc.h"

namespace blk {

struct blkcg_gq;

struct blkcg_policy_data {
  blkcg* blkcg = nullptr;
  int plid = 0;
  virtual ~blkcg_policy_data() = default;
};

struct blkg_policy_data {
  blkcg_gq* blkg = nullptr;
  int plid = 0;
  bool online = false;  // offline still due; under blkcg->lock
  virtual ~blkg_policy_data() = default;
};

struct blkcg_policy {
  int plid = -1;
  const char* name = "policy";
  // Must come in pairs (register returns -EINVAL otherwise).
  blkcg_policy_data* (*cpd_alloc_fn)(kern::gfp_t gfp) = nullptr;
  void (*cpd_free_fn)(blkcg_policy_data* cpd) = nullptr;
  // pd_alloc/free must exist for activation (-EINVAL otherwise, b925680cf083).
  blkg_policy_data* (*pd_alloc_fn)(request_queue* q, blkcg* b, kern::gfp_t gfp) = nullptr;
  void (*pd_init_fn)(blkg_policy_data* pd) = nullptr;
  void (*pd_online_fn)(blkg_policy_data* pd) = nullptr;
  void (*pd_offline_fn)(blkg_policy_data* pd) = nullptr;
  void (*pd_free_fn)(blkg_policy_data* pd) = nullptr;
  void (*pd_reset_stats_fn)(blkg_policy_data* pd) = nullptr;
  // Queues with this policy enabled: the module reference the kernel's elevator or
  // driver holds while its policy is active on a queue, so the module (and with it the
  // policy) cannot go before the queue lets go. Changed with the queue's bit, under
  // q->blkcg_mutex; read by unregister (which must find 0) and by whoever decides whether
  // unloading is allowed (relaxed is enough there: they serialise against activation
  // themselves). Mutable: activation takes the policy const.
  mutable std::atomic<int> nr_queues{0};
  // The policy's pds that the core allocated and has not freed yet: the module's objects,
  // which the module's code must outlive. Disk release clears a queue's policy bits while
  // blkgs it destroyed still hold their pds (the free work frees them, after every
  // reference is gone), so nr_queues can reach 0 before this does. Incremented after
  // pd_alloc_fn, decremented after pd_free_fn (release: unregister's acquire load that
  // finds 0 comes after every pd_free_fn has returned).
  mutable std::atomic<int> nr_pds{0};
};

// Context: process, may sleep. 0, -ENOSPC (no slot), -EINVAL (unpaired callbacks), -ENOMEM.
int blkcg_policy_register(blkcg_policy* pol);
// Context: process, may sleep. The policy must be deactivated on every queue
// (nr_queues == 0; a WARN and -EBUSY otherwise). Waits for the frees already on their way
// (RCU callbacks, free work), then answers -EBUSY, the policy still registered, if a pd
// remains: its blkg is pinned by a reference someone still holds (an rmdir between taking
// a blkg and destroying it under q->blkcg_mutex), and its free work would otherwise call
// the policy through an empty slot. The kernel's version returns nothing and does neither
// (busted().unregister_no_wait). 0 once unregistered.
int blkcg_policy_unregister(blkcg_policy* pol);
// Context: process, may sleep (freezes the queue). 0, -EINVAL, -ENOMEM (rolled back).
int blkcg_activate_policy(request_queue* q, const blkcg_policy* pol);
// Context: process, may sleep (freezes the queue).
void blkcg_deactivate_policy(request_queue* q, const blkcg_policy* pol);
// Clear every policy bit of a queue whose blkgs are all destroyed (blkcg_exit_disk).
void blkcg_clear_policies(request_queue* q) REQUIRES(q->blkcg_mutex);
// Context: any (a snapshot of the queue's policy bit).
bool blkcg_policy_enabled(request_queue* q, const blkcg_policy* pol);

// The registered policy in slot `plid`, or nullptr. Callers hold blkcg_pol_mutex or run
// where policies cannot change (a registered policy is never unregistered while active).
// Context: any.
const blkcg_policy* blkcg_policy_slot(int plid);

// Hooks for blkg and css creation/destruction (blkg.cc, blk_cgroup.cc). Context: process
// for all of them; online/offline run under blkcg->lock (IRQs off, must not sleep),
// free may sleep, alloc sleeps only if gfp allows it.
bool blkg_alloc_pds(blkcg_gq* blkg, request_queue* q, kern::gfp_t gfp)
    REQUIRES(q->blkcg_mutex);
void blkg_init_pds(blkcg_gq* blkg);
void blkg_online_pds(blkcg_gq* blkg);   // blkcg->lock held
void blkg_offline_pds(blkcg_gq* blkg);  // blkcg->lock held
void blkg_free_pds(blkcg_gq* blkg);     // may sleep
bool blkcg_alloc_cpds(blkcg* b);         // blkcg_pol_mutex held
void blkcg_free_cpds(blkcg* b);          // blkcg_pol_mutex held

}  // namespace blk
