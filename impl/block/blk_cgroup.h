// SPDX-License-Identifier: MIT
// struct blkcg: the io controller's per-cgroup state (kernel: block/blk-cgroup.h).
//
// Carries the css lifecycle of a blkcg and its blkgs; policies and stats are added by the
// next slices and attach to the fields below.
//
// Fields and their protection:
//   lock        spinlock "blkcg->lock" (taken with IRQs off): this blkcg's blkg tree and
//               list, pd install/remove (blkg slice).
//   online_pin  refcount_t, starts at 1 (the base pin, dropped at offline); each online
//               child pins its parent, so blkgs are destroyed leaf to root when the last
//               pin goes (blkcg_unpin_online).
//   lhead       per-CPU llist heads of recently updated iostat sets (stats slice);
//               allocated GFP_KERNEL at css_alloc.
//   cpd         per-policy data, one slot per registered policy (policy slice).
//   blkg_list, blkg_hint  see below (blkg.h).
//   blkgs_destroyed  set by blkcg_destroy_blkgs when the last online pin went: the model's
//               record that stage 2 completed for this blkcg (checked by tests and oracle).
// The global list of blkcgs (all_blkcgs) is protected by blkcg_pol_mutex.
#pragma once

#include <vector>

#include "impl/block/cgroup.h"
#include "impl/kern/cpu.h"
#include "impl/kern/list.h"
#include "impl/kern/llist.h"
#include "impl/kern/radix_tree.h"
#include "impl/kern/lock.h"
#include "impl/kern/refcount.h"

namespace blk {

inline constexpr int BLKCG_MAX_POLS = 6;

struct blkcg_policy_data;
struct blkcg_gq;
struct bdi_writeback;

struct blkcg : cgroup_subsys_state {
  kern::spinlock_t lock{"blkcg->lock"};
  // This blkcg's blkgs (one per queue), newest first. Written under `lock` (release),
  // walked under RCU (acquire); the kernel's radix tree + hlist in one list.
  std::atomic<blkcg_gq*> blkg_list{nullptr};
  // blkgs by q->id for lookup (the kernel's blkg_tree): inserted under `lock` with nodes
  // the configuration path preloaded, else with the tree's GFP_NOWAIT mask (an insertion
  // on the IO path can fail); read under RCU.
  kern::radix_tree blkg_tree{kern::GFP_NOWAIT | kern::GFP_NOWARN, "blkg_tree.insert",
                             "blkg_tree.preload"};
  // Last blkg found by the slow path (blkg_lookup's fast path); cleared by blkg_destroy.
  std::atomic<blkcg_gq*> blkg_hint{nullptr};
  kern::refcount_t online_pin;
  kern::PerCpu<kern::llist_head>* lhead = nullptr;
  blkcg_policy_data* cpd[BLKCG_MAX_POLS] = {};
  bool blkgs_destroyed = false;  // see above; written once, under blkcg->lock
  // This blkcg's live cgroup writebacks and whether offline killed them (no new one is
  // created then); both under cgwb_lock (backing_dev.h).
  kern::list_head cgwb_list;  // bdi_writeback::blkcg_node
  bool cgwb_offline = false;
};

// Context: any.
inline blkcg* css_to_blkcg(cgroup_subsys_state* css) { return static_cast<blkcg*>(css); }
blkcg* blkcg_parent(blkcg* b);

// css callbacks of the io controller (Context: process, cgroup_mutex held by the caller).
// blkcg_css_alloc returns nullptr on allocation failure (mkdir fails with -ENOMEM).
blkcg* blkcg_css_alloc(blkcg* parent);
void blkcg_css_online(blkcg* b);
void blkcg_css_offline(blkcg* b);
void blkcg_css_free(blkcg* b);  // Context: process (a work item); may sleep.

// Online pins (kernel: blkcg_pin_online / blkcg_unpin_online). Context: process.
void blkcg_pin_online(blkcg* b);
void blkcg_unpin_online(blkcg* b);
// Stage 2 of teardown for one blkcg. Context: process; takes blkcg->lock.
void blkcg_destroy_blkgs(blkcg* b);

// The root cgroup's blkcg of the live hierarchy (the kernel's blkcg_root).
// Context: any (set once by the hierarchy's constructor, cleared by its destructor).
blkcg* blkcg_root();
void set_blkcg_root(blkcg* b);
// Whether the io controller of the live hierarchy is on the default (v2) hierarchy (the
// kernel's cgroup_subsys_on_dfl(io_cgrp_subsys)). Set by the hierarchy's constructor.
// Context: any.
bool cgroup_subsys_on_dfl();
void set_cgroup_subsys_on_dfl(bool dfl);

// Every live blkcg (blkcg_pol_mutex). For checks and the policy slice. Context: process.
std::vector<blkcg*> all_blkcgs_snapshot();
// The global policy mutex and, under it, the live blkcg list (policy registration).
// Context: any; all_blkcgs_locked() only with blkcg_pol_mutex held.
kern::mutex& blkcg_pol_mutex_ref();
std::vector<blkcg*>& all_blkcgs_locked();

}  // namespace blk
