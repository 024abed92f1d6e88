// SPDX-License-Identifier: MIT
// blk-throttle lifecycle: the policy and its pd callbacks, lazy activation, cgroup
// offline, disk deletion (cancel with EIO) and disk release (spec §7.6; RFC patch 4).
#include <algorithm>
#include <cerrno>
#include <mutex>

#include "impl/block/blk_throttle.h"
#include "impl/block/busted.h"
#include "impl/kern/clock.h"
#include "impl/kern/rcu.h"
#include "impl/kern/report.h"

namespace blk {

using namespace throtl;

namespace {

void throtl_service_queue_init(throtl_service_queue* sq, throtl_grp* owner, throtl_data* td) {
  sq->owner_tg = owner;
  sq->td = td;
  throtl_pending_timer_setup(sq);
}

blkg_policy_data* throtl_pd_alloc(request_queue* q, blkcg* b, kern::gfp_t gfp) {
  throtl_grp* tg = kern::kzalloc_obj<throtl_grp>(gfp, "pd_alloc.throtl");
  if (!tg) return nullptr;
  throtl_service_queue_init(&tg->service_queue, tg, nullptr);
  for (int rw = 0; rw < 2; ++rw) {
    tg->qnode_on_self[rw].tg = tg;
    tg->qnode_on_parent[rw].tg = tg;
  }
  return tg;
}

// Links the tg under its parent's on v2 (limits apply to the whole subtree); on v1 every
// tg hangs off the td's queue (the flat legacy mode). Runs before the pd is visible; the
// parent's pd is initialised already.
void throtl_pd_init(blkg_policy_data* pd) {
  auto* tg = static_cast<throtl_grp*>(pd);
  throtl_data* td = pd->blkg->q->td.load(std::memory_order_acquire);
  tg->td = td;
  tg->service_queue.td = td;
  tg->service_queue.parent_sq = &td->service_queue;
  if (blkcg_gq* parent = pd->blkg->parent; parent && cgroup_subsys_on_dfl())
    if (throtl_grp* ptg = blkg_to_tg(parent)) tg->service_queue.parent_sq = &ptg->service_queue;
}

// A new group must not escape its ancestors' limits. Context: blkcg->lock held.
void throtl_pd_online(blkg_policy_data* pd) {
  auto* tg = static_cast<throtl_grp*>(pd);
  const kern::irqflags_t f = tg->td->lock.lock_irqsave();
  tg_update_has_rules(tg);
  tg->td->lock.unlock_irqrestore(f);
}

// No limit applies any more; bios already queued here go at once, through the parent
// (the 2026 fix: force the parent's dispatch, not this group's own empty timer).
void tg_flush_bios(throtl_grp* tg) {
  if (tg->flags & THROTL_TG_CANCELING) return;
  tg->flags |= THROTL_TG_CANCELING;
  // Only a pending tg may be re-timed: re-inserting a tg that is not on the pending list
  // would put it there without the PENDING flag.
  if (!(tg->flags & THROTL_TG_PENDING)) return;
  tg_update_disptime(tg);
  if (busted().throtl_flush_own_timer.load(std::memory_order_relaxed))
    kern::mod_timer(&tg->service_queue.pending_timer, kern::jiffies() + 1);
  else
    throtl_schedule_next_dispatch(tg->service_queue.parent_sq, true);
}

void throtl_pd_offline(blkg_policy_data* pd) {
  auto* tg = static_cast<throtl_grp*>(pd);
  const kern::irqflags_t f = tg->td->lock.lock_irqsave();
  tg_flush_bios(tg);
  tg->td->lock.unlock_irqrestore(f);
}

// blkio.reset_stats: the v1 counters.
void throtl_pd_reset_stats(blkg_policy_data* pd) {
  auto* tg = static_cast<throtl_grp*>(pd);
  for (int i = 0; i < BLKG_RWSTAT_NR; ++i) {
    tg->stat_bytes[i].store(0, std::memory_order_relaxed);
    tg->stat_ios[i].store(0, std::memory_order_relaxed);
  }
}

void throtl_tg_free_rcu(kern::rcu_head* h) {
  kern::kfree(KERN_CONTAINER_OF(h, throtl_grp, rcu));
}

// The timer may still be armed (it is capped at 8 slices): shut it down for good, then
// free after a grace period (RFC patch 4). Context: process, may sleep.
void throtl_pd_free(blkg_policy_data* pd) {
  auto* tg = static_cast<throtl_grp*>(pd);
  kern::timer_shutdown_sync(&tg->service_queue.pending_timer);
  kern::call_rcu(&tg->rcu, throtl_tg_free_rcu);
}

blkcg_policy policy_throtl{
    .name = "throtl",
    .pd_alloc_fn = throtl_pd_alloc,
    .pd_init_fn = throtl_pd_init,
    .pd_online_fn = throtl_pd_online,
    .pd_offline_fn = throtl_pd_offline,
    .pd_free_fn = throtl_pd_free,
    .pd_reset_stats_fn = throtl_pd_reset_stats,
};

// Bios queued anywhere in tg's service queue, taken off (qnode references dropped,
// counters fixed); tg leaves its parent's pending list.
void tg_take_all_bios(throtl_grp* tg, bio_list* out) {
  throtl_service_queue* sq = &tg->service_queue;
  for (int rw = 0; rw < 2; ++rw) {
    while (bio* b = throtl_pop_queued(sq, nullptr, rw)) {
      out->add(b);
      WARN_ON(tg->td->nr_queued[rw] == 0);
      tg->td->nr_queued[rw]--;
    }
  }
  throtl_dequeue_tg(tg);
}

}  // namespace

blkcg_policy* blkcg_policy_throtl() {
  static std::once_flag once;
  std::call_once(once, [] {
    const int r = blkcg_policy_register(&policy_throtl);
    BUG_ON(r != 0);
  });
  return &policy_throtl;
}

throtl_grp* blkg_to_tg(blkcg_gq* blkg) {
  return static_cast<throtl_grp*>(blkg->pd[policy_throtl.plid].load(std::memory_order_acquire));
}

bool blk_throtl_activated(request_queue* q) {
  return q->td.load(std::memory_order_acquire) != nullptr &&
         blkcg_policy_enabled(q, blkcg_policy_throtl());
}

int blk_throtl_init(gendisk* disk) {
  kern::might_sleep("blk_throtl_init");
  request_queue* q = disk->queue;
  q->rq_qos_mutex.assert_held();
  blkcg_policy* pol = blkcg_policy_throtl();
  if (q->td.load(std::memory_order_acquire) != nullptr) return 0;
  throtl_data* td = kern::kzalloc_obj<throtl_data>(kern::GFP_KERNEL, "blk_throtl_init");
  if (!td) return -ENOMEM;
  td->queue = q;
  td->throtl_slice = std::max<uint64_t>(kern::hz() / 10, 1);  // DFL_THROTL_SLICE
  kern::INIT_WORK(&td->dispatch_work, blk_throtl_dispatch_work_fn, "throtl_dispatch_work");
  throtl_service_queue_init(&td->service_queue, nullptr, td);
  // Published before activation (pd_init reads it); the bio path ignores it until the
  // policy bit is set, which happens after every blkg has its tg (bd9fd5be6bc0).
  q->td.store(td, std::memory_order_release);
  const int ret = blkcg_activate_policy(q, pol);
  if (ret) {
    q->td.store(nullptr, std::memory_order_release);
    kern::timer_shutdown_sync(&td->service_queue.pending_timer);
    kern::kfree(td);
  }
  return ret;
}

void blk_throtl_set_slice(request_queue* q, uint64_t jiffies) {
  throtl_data* td = q->td.load(std::memory_order_acquire);
  if (WARN_ON(td == nullptr || jiffies == 0)) return;
  const kern::irqflags_t f = td->lock.lock_irqsave();
  td->throtl_slice = jiffies;
  td->lock.unlock_irqrestore(f);
}

void blk_throtl_cancel_bios(gendisk* disk) {
  kern::might_sleep("blk_throtl_cancel_bios");
  request_queue* q = disk->queue;
  throtl_data* td = q->td.load(std::memory_order_acquire);
  if (td == nullptr) return;
  bio_list cancelled;
  {
    kern::MutexGuard m(q->blkcg_mutex);
    const kern::irqflags_t f = td->lock.lock_irqsave();
    // Children before parents (q->blkg_list is newest first), so a parent is emptied
    // after everything its children could still forward.
    for (blkcg_gq* blkg = q->blkg_list_first; blkg != nullptr; blkg = blkg->q_next) {
      throtl_grp* tg = blkg_to_tg(blkg);
      if (tg == nullptr) continue;
      tg->flags |= THROTL_TG_CANCELING;
      tg_take_all_bios(tg, &cancelled);
    }
    // Bios already at the top wait for the dispatch work; they are cancelled too.
    for (int rw = 0; rw < 2; ++rw)
      while (bio* b = throtl_pop_queued(&td->service_queue, nullptr, rw)) cancelled.add(b);
    td->lock.unlock_irqrestore(f);
  }
  while (bio* b = cancelled.pop()) bio_io_error(b);
}

void blk_throtl_exit(gendisk* disk) {
  kern::might_sleep("blk_throtl_exit");
  request_queue* q = disk->queue;
  throtl_data* td = q->td.load(std::memory_order_acquire);
  if (td == nullptr) return;
  if (busted().throtl_exit_checks_bit.load(std::memory_order_relaxed) &&
      !blkcg_policy_enabled(q, blkcg_policy_throtl()))
    return;  // the 2025 leak: blkg_destroy_all cleared the bit already
  if (!busted().throtl_exit_skips_tg_timers.load(std::memory_order_relaxed)) {
    // throtl_shutdown_timers: pds of destroyed blkgs are freed later, by their free work,
    // and their timers reach the td.
    kern::MutexGuard m(q->blkcg_mutex);
    for (blkcg_gq* blkg = q->blkg_list_first; blkg != nullptr; blkg = blkg->q_next)
      if (throtl_grp* tg = blkg_to_tg(blkg))
        kern::timer_shutdown_sync(&tg->service_queue.pending_timer);
  }
  kern::timer_shutdown_sync(&td->service_queue.pending_timer);
  kern::cancel_work_sync(&td->dispatch_work);
  blkcg_deactivate_policy(q, blkcg_policy_throtl());
  {
    // Nothing may be left: del_gendisk cancelled every queued bio.
    const kern::irqflags_t f = td->lock.lock_irqsave();
    WARN_ON(td->nr_queued[0] || td->nr_queued[1] || sq_queued(&td->service_queue, 0) ||
            sq_queued(&td->service_queue, 1));
    td->lock.unlock_irqrestore(f);
  }
  q->td.store(nullptr, std::memory_order_release);
  kern::kfree(td);
}

}  // namespace blk
