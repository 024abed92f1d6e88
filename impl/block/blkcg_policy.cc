// SPDX-License-Identifier: MIT
#include "impl/block/blkcg_policy.h"

#include <cerrno>

#include "impl/block/blkg.h"
#include "impl/block/busted.h"
#include "impl/kern/rcu.h"
#include "impl/kern/workqueue.h"
#include "impl/kern/report.h"

namespace blk {
namespace {

kern::mutex& blkcg_pol_register_mutex() {
  static kern::mutex* m = new kern::mutex("blkcg_pol_register_mutex");
  return *m;
}

// The policy table; guarded by blkcg_pol_mutex (blk_cgroup.cc owns the mutex).
blkcg_policy* policies[BLKCG_MAX_POLS];

// Walk q->blkg_list oldest first (parents before children: new blkgs go to the head).
template <typename Fn>
void for_each_blkg_parents_first(request_queue* q, Fn fn) REQUIRES(q->blkcg_mutex) {
  blkcg_gq* tail = q->blkg_list_first;
  while (tail && tail->q_next) tail = tail->q_next;
  for (blkcg_gq* g = tail; g != nullptr; g = g->q_prev) fn(g);
}

// Walk q->blkg_list newest first (children before parents): the teardown order, so a
// child's pd is always freed before its parent's.
template <typename Fn>
void for_each_blkg_children_first(request_queue* q, Fn fn) REQUIRES(q->blkcg_mutex) {
  for (blkcg_gq* g = q->blkg_list_first; g != nullptr; g = g->q_next) fn(g);
}

// Every pd the core frees goes through here (nr_pds, blkcg_policy.h).
void pd_free(const blkcg_policy* pol, blkg_policy_data* pd) {
  pol->pd_free_fn(pd);
  pol->nr_pds.fetch_sub(1, std::memory_order_release);
}

// Offline (under blkcg->lock) then free (outside it: pd_free may sleep) the policy's pd
// of one blkg — the RFC's blkg_free_policy_data. Caller holds q->blkcg_mutex.
// busted().deactivate_without_blkcg_lock: the offline and unpublish without blkcg->lock
// (before 858560b27645, CVE-2021-47379), so a walker under that lock (reset_stats) can
// meet the pd offline or freed.
void blkg_free_policy_data(blkcg_gq* blkg, const blkcg_policy* pol) NO_THREAD_SAFETY_ANALYSIS {
  const bool locked = !busted().deactivate_without_blkcg_lock.load(std::memory_order_relaxed);
  kern::irqflags_t f{};
  if (locked) f = blkg->blkcg->lock.lock_irqsave();
  blkg_policy_data* pd = blkg->pd[pol->plid].load(std::memory_order_relaxed);
  // Between reading the slot and clearing it another CPU may run: whoever else frees a
  // pd must hold a lock that excludes this (q->blkcg_mutex: the free work, f1c006f1c685).
  kern::seam(kern::SeamKind::kPreempt, blkg);
  if (pd) {
    if (pd->online) {
      if (pol->pd_offline_fn) pol->pd_offline_fn(pd);
      pd->online = false;
    }
    blkg->pd[pol->plid].store(nullptr, std::memory_order_release);
  }
  if (locked) blkg->blkcg->lock.unlock_irqrestore(f);
  if (pd) pd_free(pol, pd);
}

}  // namespace

const blkcg_policy* blkcg_policy_slot(int plid) { return policies[plid]; }

bool blkcg_policy_enabled(request_queue* q, const blkcg_policy* pol) {
  return pol->plid >= 0 &&
         (q->blkcg_pols.load(std::memory_order_acquire) >> pol->plid & 1u);
}

int blkcg_policy_register(blkcg_policy* pol) {
  kern::might_sleep("blkcg_policy_register");
  if ((pol->cpd_alloc_fn == nullptr) != (pol->cpd_free_fn == nullptr)) return -EINVAL;
  if ((pol->pd_alloc_fn == nullptr) != (pol->pd_free_fn == nullptr)) return -EINVAL;
  kern::MutexGuard reg(blkcg_pol_register_mutex());
  kern::MutexGuard g(blkcg_pol_mutex_ref());
  int plid = -1;
  for (int i = 0; i < BLKCG_MAX_POLS && plid < 0; ++i)
    if (policies[i] == nullptr) plid = i;
  if (plid < 0) return -ENOSPC;
  pol->plid = plid;
  policies[plid] = pol;
  // No pd of an unregistered policy is ever freed through it (busted unregister_no_wait
  // leaks the ones whose free work found the slot empty): count afresh.
  pol->nr_pds.store(0, std::memory_order_relaxed);
  // cpds for every existing blkcg (a blkcg created later gets them at css_alloc).
  if (pol->cpd_alloc_fn) {
    std::vector<blkcg*> done;
    for (blkcg* b : all_blkcgs_locked()) {
      blkcg_policy_data* cpd = pol->cpd_alloc_fn(kern::GFP_KERNEL);
      if (!cpd) {
        for (blkcg* u : done) {
          pol->cpd_free_fn(u->cpd[plid]);
          u->cpd[plid] = nullptr;
        }
        policies[plid] = nullptr;
        pol->plid = -1;
        return -ENOMEM;
      }
      cpd->blkcg = b;
      cpd->plid = plid;
      b->cpd[plid] = cpd;
      done.push_back(b);
    }
  }
  return 0;
}

int blkcg_policy_unregister(blkcg_policy* pol) {
  kern::might_sleep("blkcg_policy_unregister");
  const bool wait = !busted().unregister_no_wait.load(std::memory_order_relaxed);
  // blkgs destroyed with this policy's pds (a released disk clears the policy bits, so no
  // deactivation frees them) are freed later by their release chain: RCU callback, then
  // the free work, which calls the policy's pd_free_fn through the slot. Wait for those
  // before the slot goes. The kernel's unregister does not wait (fuzz_ops found the
  // window: a policy unregistered between a disk's release and its blkgs' frees leaves
  // the free work a NULL slot); busted().unregister_no_wait keeps that behaviour.
  if (wait) {
    do {  // a free puts its parent, whose release may queue another round
      kern::rcu_barrier();
      kern::flush_workqueue(kern::system_wq());
    } while (kern::rcu_pending_callbacks() != 0);
  }
  kern::MutexGuard reg(blkcg_pol_register_mutex());
  kern::MutexGuard g(blkcg_pol_mutex_ref());
  if (WARN_ON(pol->plid < 0 || policies[pol->plid] != pol)) return -EINVAL;
  // Still active on a queue: its blkgs' pds would be freed through an empty slot.
  if (WARN_ON(pol->nr_queues.load(std::memory_order_relaxed) != 0)) return -EBUSY;
  // Destroyed blkgs whose pds nobody frees until a reference held elsewhere goes (found
  // by fuzz_sched: an rmdir holding a blkg of a disk being released, waiting for
  // q->blkcg_mutex). No new pd can appear: no queue has the policy any more.
  if (wait && pol->nr_pds.load(std::memory_order_acquire) != 0) return -EBUSY;
  if (pol->cpd_free_fn) {
    for (blkcg* b : all_blkcgs_locked()) {
      if (b->cpd[pol->plid]) {
        pol->cpd_free_fn(b->cpd[pol->plid]);
        b->cpd[pol->plid] = nullptr;
      }
    }
  }
  policies[pol->plid] = nullptr;
  pol->plid = -1;
  return 0;
}

int blkcg_activate_policy(request_queue* q, const blkcg_policy* pol) {
  kern::might_sleep("blkcg_activate_policy");
  if (blkcg_policy_enabled(q, pol)) return 0;
  // A policy without pd callbacks (cpd only) is never activated (b925680cf083).
  if (!busted().activate_no_pd_fn_check.load(std::memory_order_relaxed) &&
      WARN_ON(pol->pd_alloc_fn == nullptr || pol->pd_free_fn == nullptr))
    return -EINVAL;
  q->q_usage_counter.freeze();
  int ret = 0;
  {
    kern::MutexGuard m(q->blkcg_mutex);
    for_each_blkg_parents_first(q, [&](blkcg_gq* blkg) NO_THREAD_SAFETY_ANALYSIS {
      if (ret != 0) return;
      if (blkg->pd[pol->plid].load(std::memory_order_relaxed)) return;
      // dying: offline would never run (5e9220389920)
      if (!blkg->hashed && !busted().activate_dying_blkg.load(std::memory_order_relaxed)) return;
      // RFC patch 16: allocate with GFP_NOIO directly, no pinned-blkg retry dance.
      blkg_policy_data* pd = pol->pd_alloc_fn(q, blkg->blkcg, kern::GFP_NOIO);
      if (!pd) {
        ret = -ENOMEM;
        return;
      }
      pol->nr_pds.fetch_add(1, std::memory_order_relaxed);
      kern::SpinIrqGuard g(blkg->blkcg->lock);
      pd->blkg = blkg;
      pd->plid = pol->plid;
      if (pol->pd_init_fn) pol->pd_init_fn(pd);
      blkg->pd[pol->plid].store(pd, std::memory_order_release);
      if (pol->pd_online_fn) pol->pd_online_fn(pd);
      pd->online = true;
    });
    if (ret == 0) {
      const unsigned was = q->blkcg_pols.fetch_or(1u << pol->plid, std::memory_order_release);
      if (!(was >> pol->plid & 1u)) pol->nr_queues.fetch_add(1, std::memory_order_relaxed);
    } else {
      // Roll back everything this activation installed (under blkcg_mutex: the free work
      // cannot race us, 5313d4d41739).
      for_each_blkg_children_first(q, [&](blkcg_gq* blkg) { blkg_free_policy_data(blkg, pol); });
    }
  }
  q->q_usage_counter.unfreeze();
  return ret;
}

void blkcg_deactivate_policy(request_queue* q, const blkcg_policy* pol) {
  kern::might_sleep("blkcg_deactivate_policy");
  if (!blkcg_policy_enabled(q, pol)) return;
  q->q_usage_counter.freeze();
  {
    kern::MutexGuard m(q->blkcg_mutex);
    const unsigned was = q->blkcg_pols.fetch_and(~(1u << pol->plid), std::memory_order_release);
    if (was >> pol->plid & 1u) pol->nr_queues.fetch_sub(1, std::memory_order_relaxed);
    for_each_blkg_children_first(q, [&](blkcg_gq* blkg) { blkg_free_policy_data(blkg, pol); });
  }
  q->q_usage_counter.unfreeze();
}

void blkcg_clear_policies(request_queue* q) {
  const unsigned pols = q->blkcg_pols.exchange(0, std::memory_order_acq_rel);
  for (int i = 0; i < BLKCG_MAX_POLS; ++i)
    if (pols >> i & 1u) policies[i]->nr_queues.fetch_sub(1, std::memory_order_relaxed);
}

bool blkg_alloc_pds(blkcg_gq* blkg, request_queue* q, kern::gfp_t gfp) {
  const unsigned pols = q->blkcg_pols.load(std::memory_order_acquire);
  for (int i = 0; i < BLKCG_MAX_POLS; ++i) {
    if (!(pols >> i & 1u)) continue;
    const blkcg_policy* pol = policies[i];
    blkg_policy_data* pd = pol->pd_alloc_fn(q, blkg->blkcg, gfp);
    if (!pd) {
      for (int j = 0; j < i; ++j) {
        if (blkg_policy_data* p = blkg->pd[j].load(std::memory_order_relaxed)) {
          pd_free(policies[j], p);
          blkg->pd[j].store(nullptr, std::memory_order_relaxed);
        }
      }
      return false;
    }
    pol->nr_pds.fetch_add(1, std::memory_order_relaxed);
    pd->blkg = blkg;
    pd->plid = i;
    blkg->pd[i].store(pd, std::memory_order_relaxed);  // unpublished blkg: no reader yet
  }
  return true;
}

void blkg_init_pds(blkcg_gq* blkg) {
  for (int i = 0; i < BLKCG_MAX_POLS; ++i)
    if (blkg_policy_data* pd = blkg->pd[i].load(std::memory_order_relaxed))
      if (policies[i]->pd_init_fn) policies[i]->pd_init_fn(pd);
}

void blkg_online_pds(blkcg_gq* blkg) {
  for (int i = 0; i < BLKCG_MAX_POLS; ++i) {
    if (blkg_policy_data* pd = blkg->pd[i].load(std::memory_order_relaxed)) {
      if (policies[i]->pd_online_fn) policies[i]->pd_online_fn(pd);
      pd->online = true;
    }
  }
}

void blkg_offline_pds(blkcg_gq* blkg) {
  for (int i = 0; i < BLKCG_MAX_POLS; ++i) {
    blkg_policy_data* pd = blkg->pd[i].load(std::memory_order_relaxed);
    if (pd && pd->online) {
      if (policies[i]->pd_offline_fn) policies[i]->pd_offline_fn(pd);
      pd->online = false;
    }
  }
}

void blkg_free_pds(blkcg_gq* blkg) {
  for (int i = 0; i < BLKCG_MAX_POLS; ++i) {
    if (blkg_policy_data* pd = blkg->pd[i].exchange(nullptr, std::memory_order_acq_rel)) {
      if (WARN_ON(policies[i] == nullptr)) continue;
      pd_free(policies[i], pd);
    }
  }
}

bool blkcg_alloc_cpds(blkcg* b) {
  for (int i = 0; i < BLKCG_MAX_POLS; ++i) {
    blkcg_policy* pol = policies[i];
    if (!pol || !pol->cpd_alloc_fn) continue;
    blkcg_policy_data* cpd = pol->cpd_alloc_fn(kern::GFP_KERNEL);
    if (!cpd) {
      blkcg_free_cpds(b);
      return false;
    }
    cpd->blkcg = b;
    cpd->plid = i;
    b->cpd[i] = cpd;
  }
  return true;
}

void blkcg_free_cpds(blkcg* b) {
  for (int i = 0; i < BLKCG_MAX_POLS; ++i) {
    if (b->cpd[i]) {
      policies[i]->cpd_free_fn(b->cpd[i]);
      b->cpd[i] = nullptr;
    }
  }
}

}  // namespace blk
