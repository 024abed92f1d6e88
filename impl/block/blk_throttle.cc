// SPDX-License-Identifier: MIT
// blk-throttle: queues, pending lists, the submission hook, timers and dispatch (spec §7.1,
// §7.3, §7.4). The arithmetic is in blk_throttle_slice.cc, the lifecycle (policy, init,
// cancel, exit) in blk_throttle_life.cc. Locking: blk_throttle.h.
#include "impl/block/blk_throttle.h"

#include <algorithm>
#include <cstddef>
#include <vector>

#include "impl/block/blk_core.h"
#include "impl/block/busted.h"
#include "impl/kern/clock.h"
#include "impl/kern/rcu.h"
#include "impl/kern/report.h"

namespace blk {

namespace throtl {
namespace {

throtl_qnode* qnode_of(kern::list_head* n) {
  return kern::list_entry<throtl_qnode, &throtl_qnode::node>(n);
}
throtl_grp* pending_tg(kern::list_head* n) {
  return kern::list_entry<throtl_grp, &throtl_grp::pending_node>(n);
}

// Queues `b` on `qn` in `sq`: bios already charged for bps (here or at the top) go to
// the iops list. A qnode that becomes non-empty joins the round robin and pins its tg.
void throtl_qnode_add_bio(bio* b, throtl_qnode* qn, throtl_service_queue* sq) {
  const int rw = rw_of(b);
  const bool single = busted().throtl_single_queue.load(std::memory_order_relaxed);
  if (!single && (b->flags & (BIO_TG_BPS_THROTTLED | BIO_BPS_THROTTLED))) {
    qn->bios_iops.add(b);
    sq->nr_queued_iops[rw]++;
  } else {
    qn->bios_bps.add(b);
    sq->nr_queued_bps[rw]++;
  }
  if (kern::list_empty(&qn->node)) {
    kern::list_add_tail(&qn->node, &sq->queued[rw]);
    blkg_get(qn->tg->blkg);
  }
}

// Pops the next bio of the first qnode (iops list first) and rotates the qnodes. An emptied
// qnode leaves the list; its tg reference goes to *tg_to_put (put it after the bio moved
// on), or is dropped here when tg_to_put is nullptr.
bio* pop_queued(throtl_service_queue* sq, throtl_grp** tg_to_put, int rw) {
  kern::list_head* queued = &sq->queued[rw];
  if (kern::list_empty(queued)) return nullptr;
  throtl_qnode* qn = qnode_of(queued->next);
  bio* b = qn->bios_iops.pop();
  if (b) {
    sq->nr_queued_iops[rw]--;
  } else {
    b = qn->bios_bps.pop();
    if (b) sq->nr_queued_bps[rw]--;
  }
  if (qn->bios_bps.empty() && qn->bios_iops.empty()) {
    kern::list_del_init(&qn->node);
    if (tg_to_put)
      *tg_to_put = qn->tg;
    else
      blkg_put(qn->tg->blkg);
  } else {
    kern::list_move_tail(&qn->node, queued);
  }
  return b;
}

// Inserts tg into its parent's pending list by disptime, after entries with equal times.
void tg_service_queue_add(throtl_grp* tg) {
  throtl_service_queue* psq = tg->service_queue.parent_sq;
  kern::list_head* pos = psq->pending.next;
  while (pos != &psq->pending && !kern::time_after(pending_tg(pos)->disptime, tg->disptime))
    pos = pos->next;
  kern::list_add_tail(&tg->pending_node, pos);  // before the first later one
}

void throtl_enqueue_tg(throtl_grp* tg) {
  if (tg->flags & THROTL_TG_PENDING) return;
  tg_service_queue_add(tg);
  tg->flags |= THROTL_TG_PENDING;
  tg->service_queue.parent_sq->nr_pending++;
}

void dequeue_tg(throtl_grp* tg) {
  if (!(tg->flags & THROTL_TG_PENDING)) return;
  kern::list_del_init(&tg->pending_node);
  tg->service_queue.parent_sq->nr_pending--;
  tg->flags &= ~THROTL_TG_PENDING;
}

// Queues `b` at `tg` (on the qnode of the child it came from, or tg's own), noting when
// that can move tg's dispatch time earlier.
void throtl_add_bio_tg(bio* b, throtl_qnode* qn, throtl_grp* tg) {
  throtl_service_queue* sq = &tg->service_queue;
  const int rw = rw_of(b);
  if (!qn) qn = &tg->qnode_on_self[rw];
  if (sq_queued(sq, rw) == 0) tg->flags |= THROTL_TG_WAS_EMPTY;
  throtl_qnode_add_bio(b, qn, sq);
  // The iops list is served first: a bio that became the head of the direction can be
  // due earlier than the old head was.
  if (b == peek_queued(&sq->queued[rw])) tg->flags |= THROTL_TG_IOPS_WAS_EMPTY;
  throtl_enqueue_tg(tg);
}

void throtl_schedule_pending_timer(throtl_service_queue* sq, uint64_t expires) {
  // Never more than 8 slices ahead, so a raised limit is noticed.
  const uint64_t max_expire = kern::jiffies() + 8 * sq->td->throtl_slice;
  if (kern::time_after(expires, max_expire)) expires = max_expire;
  kern::mod_timer(&sq->pending_timer, expires);
}

// Moves one bio of `tg` in direction rw one level up (or to the td's dispatch list).
void tg_dispatch_one_bio(throtl_grp* tg, int rw) {
  throtl_service_queue* sq = &tg->service_queue;
  throtl_service_queue* parent_sq = sq->parent_sq;
  throtl_grp* parent_tg = parent_sq->owner_tg;
  throtl_grp* tg_to_put = nullptr;
  bio* b = pop_queued(sq, &tg_to_put, rw);
  throtl_charge_iops_bio(tg, b);
  if (parent_tg) {
    if (busted().throtl_parent_skips_bps.load(std::memory_order_relaxed))
      b->flags |= BIO_BPS_THROTTLED;
    throtl_add_bio_tg(b, &tg->qnode_on_parent[rw], parent_tg);
    start_parent_slice_with_credit(tg, parent_tg, rw);
  } else {
    b->flags |= BIO_BPS_THROTTLED;
    throtl_qnode_add_bio(b, &tg->qnode_on_parent[rw], parent_sq);
    WARN_ON(tg->td->nr_queued[rw] == 0);
    tg->td->nr_queued[rw]--;
  }
  throtl_trim_slice(tg, rw);
  if (tg_to_put) blkg_put(tg_to_put->blkg);  // after the bio holds its qnode elsewhere
}

// One tg's share of a round: up to 6 reads and 2 writes that are due.
int throtl_dispatch_tg(throtl_grp* tg) {
  throtl_service_queue* sq = &tg->service_queue;
  const int max_reads = THROTL_GRP_QUANTUM * 3 / 4;
  const int max_writes = THROTL_GRP_QUANTUM - max_reads;
  int nr_reads = 0, nr_writes = 0;
  bio* b;
  while ((b = peek_queued(&sq->queued[0])) && tg_dispatch_time(tg, b) == 0) {
    tg_dispatch_one_bio(tg, 0);
    if (++nr_reads >= max_reads) break;
  }
  while ((b = peek_queued(&sq->queued[1])) && tg_dispatch_time(tg, b) == 0) {
    tg_dispatch_one_bio(tg, 1);
    if (++nr_writes >= max_writes) break;
  }
  return nr_reads + nr_writes;
}

int throtl_select_dispatch(throtl_service_queue* parent_sq) {
  int nr_disp = 0;
  while (parent_sq->nr_pending != 0) {
    throtl_grp* tg = pending_tg(parent_sq->pending.next);
    if (kern::time_before(kern::jiffies(), tg->disptime)) break;
    nr_disp += throtl_dispatch_tg(tg);
    throtl_service_queue* sq = &tg->service_queue;
    if (sq_queued(sq, 0) || sq_queued(sq, 1))
      tg_update_disptime(tg);
    else
      dequeue_tg(tg);
    if (nr_disp >= THROTL_QUANTUM) break;
  }
  return nr_disp;
}

// The pending timer of a service queue: dispatch its due children one level up, then
// propagate (arm or continue at the parent) or, at the top, kick the dispatch work.
// Context: softirq (timer). Takes td->lock; never touches a td whose disk is going away
// (root_blkg cleared), and blk_throtl_exit shuts every timer down before freeing the td.
void throtl_pending_timer_fn(kern::timer_list* t) {
  throtl_service_queue* sq = KERN_CONTAINER_OF(t, throtl_service_queue, pending_timer);
  throtl_data* td = sq->td;
  request_queue* q = td->queue;
  kern::irqflags_t f = td->lock.lock_irqsave();
  if (q->root_blkg.load(std::memory_order_acquire) == nullptr) {
    td->lock.unlock_irqrestore(f);
    return;
  }
  for (;;) {
    throtl_grp* tg = sq->owner_tg;
    throtl_service_queue* parent_sq = sq->parent_sq;
    bool dispatched = false;
    for (;;) {
      if (throtl_select_dispatch(sq) != 0) dispatched = true;
      if (throtl_schedule_next_dispatch(sq, false)) break;
      // The window is still open: let others in, then go on.
      td->lock.unlock_irqrestore(f);
      f = td->lock.lock_irqsave();
    }
    if (!dispatched) break;
    if (parent_sq) {
      if (tg->flags & (THROTL_TG_WAS_EMPTY | THROTL_TG_IOPS_WAS_EMPTY)) {
        tg_update_disptime(tg);
        if (!throtl_schedule_next_dispatch(parent_sq, false)) {
          sq = parent_sq;  // the parent's window is open too: dispatch there now
          continue;
        }
      }
    } else {
      kern::queue_work(kthrotld_workqueue(), &td->dispatch_work);
    }
    break;
  }
  td->lock.unlock_irqrestore(f);
}

}  // namespace

bio* throtl_pop_queued(throtl_service_queue* sq, throtl_grp** tg_to_put, int rw) {
  return pop_queued(sq, tg_to_put, rw);
}

void throtl_dequeue_tg(throtl_grp* tg) { dequeue_tg(tg); }

unsigned sq_queued(const throtl_service_queue* sq, int rw) {
  return sq->nr_queued_bps[rw] + sq->nr_queued_iops[rw];
}

bio* peek_queued(kern::list_head* queued) {
  if (kern::list_empty(queued)) return nullptr;
  throtl_qnode* qn = qnode_of(queued->next);
  bio* b = qn->bios_iops.head;
  return b ? b : qn->bios_bps.head;
}

void tg_update_disptime(throtl_grp* tg) {
  throtl_service_queue* sq = &tg->service_queue;
  uint64_t read_wait = UINT64_MAX, write_wait = UINT64_MAX;
  if (bio* b = peek_queued(&sq->queued[0])) read_wait = tg_dispatch_time(tg, b);
  if (bio* b = peek_queued(&sq->queued[1])) write_wait = tg_dispatch_time(tg, b);
  const uint64_t min_wait = std::min(read_wait, write_wait);
  const bool pending = tg->flags & THROTL_TG_PENDING;
  if (pending) kern::list_del_init(&tg->pending_node);
  tg->disptime = kern::jiffies() + (min_wait == UINT64_MAX ? 0 : min_wait);
  if (pending) tg_service_queue_add(tg);
  tg->flags &= ~(THROTL_TG_WAS_EMPTY | THROTL_TG_IOPS_WAS_EMPTY);
}

// Arms sq's timer for its earliest child (always when forced, else only if that time is
// in the future). Returns false when the caller should dispatch right away instead.
bool throtl_schedule_next_dispatch(throtl_service_queue* sq, bool force) {
  if (sq->nr_pending == 0) return true;
  sq->first_pending_disptime = pending_tg(sq->pending.next)->disptime;
  if (force || kern::time_after(sq->first_pending_disptime, kern::jiffies())) {
    throtl_schedule_pending_timer(sq, sq->first_pending_disptime);
    return true;
  }
  return false;
}

void throtl_pending_timer_setup(throtl_service_queue* sq) {
  kern::timer_setup(&sq->pending_timer, throtl_pending_timer_fn, "throtl_pending_timer");
}

// Takes every bio of the top level under td->lock, then submits them without it (no
// second pass through the throttler). Context: process (kthrotld).
void blk_throtl_dispatch_work_fn(kern::work_struct* w) {
  throtl_data* td = KERN_CONTAINER_OF(w, throtl_data, dispatch_work);
  bio_list list;
  const kern::irqflags_t f = td->lock.lock_irqsave();
  for (int rw = 0; rw < 2; ++rw)
    while (bio* b = throtl_pop_queued(&td->service_queue, nullptr, rw)) list.add(b);
  td->lock.unlock_irqrestore(f);
  while (bio* b = list.pop()) submit_bio_noacct_nocheck(b);
}

}  // namespace throtl

using namespace throtl;

kern::workqueue_struct* kthrotld_workqueue() {
  static kern::workqueue_struct* wq = kern::alloc_workqueue("kthrotld", kern::WQ_MEM_RECLAIM, 0);
  return wq;
}

// Applies new limits: has_rules of the subtree, both slices restarted (keeping carried
// counters), a pending tg re-timed and its parent's timer forced.
void tg_conf_updated(throtl_grp* tg) {
  // has_rules of tg's subtree (blkg_for_each_descendant_pre). Recomputing every tg of the
  // queue in creation order (parents first: q->blkg_list walked back from its tail) gives
  // the same result, since a tg outside the subtree computes what it already has.
  request_queue* q = tg->td->queue;
  q->blkcg_mutex.assert_held();
  blkcg_gq* last = q->blkg_list_first;
  while (last != nullptr && last->q_next != nullptr) last = last->q_next;
  for (blkcg_gq* g = last; g != nullptr; g = g->q_prev)
    if (throtl_grp* t = blkg_to_tg(g)) tg_update_has_rules(t);
  throtl_start_new_slice(tg, 0, false);
  throtl_start_new_slice(tg, 1, false);
  if (tg->flags & THROTL_TG_PENDING) {
    tg_update_disptime(tg);
    throtl_schedule_next_dispatch(tg->service_queue.parent_sq, true);
  }
}

// blk_should_throtl + __blk_throtl_bio.
bool blk_throtl_bio(bio* b) {
  request_queue* q = b->disk->queue;
  if (!blk_throtl_activated(q) || b->bi_blkg == nullptr) return false;
  throtl_grp* tg = blkg_to_tg(b->bi_blkg);
  // A blkg that was already dying when throttling was activated has no tg: nothing to
  // apply (its bios were associated before the limits existed).
  if (tg == nullptr) return false;
  const int rw = rw_of(b);
  // v1 counts every bio of a throttle-active queue, limited or not (ad7c3b41e86b): bytes
  // once per original bio, IOs per piece.
  if (!cgroup_subsys_on_dfl() &&
      !busted().throtl_v1_stats_only_with_rules.load(std::memory_order_relaxed))
    throtl_stat_v1(tg, b);
  const bool split_bypass = busted().throtl_split_no_iops.load(std::memory_order_relaxed) &&
                            (b->flags & BIO_BPS_THROTTLED);
  if (split_bypass) return false;
  const bool bps_done = (b->flags & BIO_BPS_THROTTLED) &&
                        !busted().throtl_split_charges_bps.load(std::memory_order_relaxed);
  if (!tg->has_rules_iops[rw].load(std::memory_order_relaxed) &&
      (!tg->has_rules_bps[rw].load(std::memory_order_relaxed) || bps_done))
    return false;

  if (!cgroup_subsys_on_dfl() &&
      busted().throtl_v1_stats_only_with_rules.load(std::memory_order_relaxed))
    throtl_stat_v1(tg, b);  // the pre-2022 place: only groups with rules are counted
  throtl_data* td = tg->td;
  bool throttled = false;
  // No RCU read section (the kernel takes one): every tg on the way up is pinned, the
  // bio's by its blkg reference and each parent by its child blkg's parent reference.
  const kern::irqflags_t f = td->lock.lock_irqsave();
  throtl_service_queue* sq = &tg->service_queue;
  throtl_qnode* qn = nullptr;
  for (;;) {
    if (tg_within_limit(tg, b, rw)) {
      throtl_charge_iops_bio(tg, b);
      // Trim even when nothing queues, or a later low limit would count all of this.
      throtl_trim_slice(tg, rw);
    } else if ((b->opf & (REQ_META | REQ_SWAP)) &&
               !busted().throtl_meta_fifo.load(std::memory_order_relaxed)) {
      // bio_issue_as_root_blkg: charged, passed; later bios repay the debt.
      throtl_charge_bps_bio(tg, b);
      throtl_charge_iops_bio(tg, b);
    } else {
      break;  // over the limit: queue here
    }
    qn = &tg->qnode_on_parent[rw];
    sq = sq->parent_sq;
    tg = sq->owner_tg;
    if (tg == nullptr) {
      b->flags |= BIO_BPS_THROTTLED;
      goto out;
    }
  }
  td->nr_queued[rw]++;
  b->bi_throtl_seq = ++td->queue_seq;  // FIFO checks (oracle): queueing order
  throtl_add_bio_tg(b, qn, tg);
  throttled = true;
  // tg was empty in this direction, or b became its head: re-time tg, force the parent's
  // timer (b is likely due at once if tg's time is not in the future).
  if (tg->flags & (THROTL_TG_WAS_EMPTY | THROTL_TG_IOPS_WAS_EMPTY)) {
    tg_update_disptime(tg);
    throtl_schedule_next_dispatch(tg->service_queue.parent_sq, true);
  }
out:
  td->lock.unlock_irqrestore(f);
  return throttled;
}

namespace throtl {

void throtl_stat_v1(throtl_grp* tg, bio* b) {
  const int dir = b->op == bio_op::kDiscard ? BLKG_RWSTAT_DISCARD
                  : b->op == bio_op::kWrite  ? BLKG_RWSTAT_WRITE
                                             : BLKG_RWSTAT_READ;
  const bool sync = b->op == bio_op::kRead || (b->opf & REQ_SYNC);  // op_is_sync
  const int kind = sync ? BLKG_RWSTAT_SYNC : BLKG_RWSTAT_ASYNC;
  if (!(b->flags & BIO_CGROUP_ACCT)) {
    b->flags |= BIO_CGROUP_ACCT;
    tg->stat_bytes[dir].fetch_add(b->size, std::memory_order_relaxed);
    tg->stat_bytes[kind].fetch_add(b->size, std::memory_order_relaxed);
  }
  tg->stat_ios[dir].fetch_add(1, std::memory_order_relaxed);
  tg->stat_ios[kind].fetch_add(1, std::memory_order_relaxed);
}

// FIFO: a bio must queue if others wait in its direction. A split piece only competes
// with the iops list. A bio arriving to an empty bps list that fits bps is charged now
// (so it can sit on the iops list).
bool tg_within_limit(throtl_grp* tg, bio* b, int rw) {
  throtl_service_queue* sq = &tg->service_queue;
  const bool recharge = busted().throtl_split_charges_bps.load(std::memory_order_relaxed);
  if ((b->flags & BIO_BPS_THROTTLED) && !recharge) {
    // With one shared queue (busted) a piece would have to wait behind everything.
    const unsigned ahead = busted().throtl_single_queue.load(std::memory_order_relaxed)
                               ? sq_queued(sq, rw)
                               : sq->nr_queued_iops[rw];
    return ahead == 0 && tg_dispatch_iops_time(tg, b) == 0;
  }
  if (sq_queued(sq, rw) != 0) {
    if (sq->nr_queued_bps[rw] == 0 && tg_dispatch_bps_time(tg, b) == 0)
      throtl_charge_bps_bio(tg, b);
    return false;
  }
  return tg_dispatch_time(tg, b) == 0;
}

}  // namespace throtl

}  // namespace blk
