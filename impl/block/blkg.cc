// SPDX-License-Identifier: MIT
#include "impl/block/blkg.h"

#include "impl/block/busted.h"

#include <cerrno>
#include <cstddef>

#include "impl/block/blk_core.h"
#include "impl/block/blk_stat.h"
#include "impl/kern/report.h"

namespace blk {
namespace {

blkcg_gq* blkg_of_work(kern::work_struct* w) {
  return reinterpret_cast<blkcg_gq*>(reinterpret_cast<char*>(w) - offsetof(blkcg_gq, free_work));
}
blkcg_gq* blkg_of_rcu(kern::rcu_head* h) {
  return reinterpret_cast<blkcg_gq*>(reinterpret_cast<char*>(h) - offsetof(blkcg_gq, rcu));
}
blkcg_gq* blkg_of_ref(kern::percpu_ref* r) {
  return reinterpret_cast<blkcg_gq*>(reinterpret_cast<char*>(r) - offsetof(blkcg_gq, refcnt));
}

// Takes blkg off q->blkg_list. Caller holds q->blkcg_mutex (except in the busted variant).
void blkg_unlink_q_node(blkcg_gq* blkg, request_queue* q) NO_THREAD_SAFETY_ANALYSIS {
  blkcg_gq* prev = blkg->q_prev;
  blkcg_gq* next = blkg->q_next;
  if (busted().free_work_unlink_unlocked.load(std::memory_order_relaxed))
    kern::seam(kern::SeamKind::kPreempt, blkg);
  if (prev)
    prev->q_next = next;
  else
    q->blkg_list_first = next;
  if (next) next->q_prev = prev;
  blkg->on_q_list = false;
}

// Stage 3c. Context: process (system_wq), may sleep.
void blkg_free_workfn(kern::work_struct* w) {
  blkcg_gq* blkg = blkg_of_work(w);
  request_queue* q = blkg->q;
  {
    kern::MutexGuard m(q->blkcg_mutex);
    blkg_free_pds(blkg);  // may sleep; before the parent goes (c7241babf085)
    if (blkg->parent) blkg_put(blkg->parent);  // after this blkg's pd frees (c7241babf085)
    // Unlink q_node last, under blkcg_mutex (RFC): destroy_all walks this list under it.
    if (blkg->on_q_list && !busted().free_work_unlink_unlocked.load(std::memory_order_relaxed))
      blkg_unlink_q_node(blkg, q);
  }
  if (blkg->on_q_list) {
    // busted().free_work_unlink_unlocked: the unlink outside the lock (before
    // c164c7bc9775); the preemption point stands for any instruction between the reads
    // and the writes, where another CPU may change the list.
    kern::seam(kern::SeamKind::kPreempt, q);
    blkg_unlink_q_node(blkg, q);
  }
  blk_put_queue(q);
  blkcg* b = blkg->blkcg;
  kern::free_percpu(blkg->iostat_cpu);
  kern::percpu_ref_exit(&blkg->refcnt);
  kern::kfree(blkg);
  if (!busted().blkcg_put_before_unlink.load(std::memory_order_relaxed)) css_put(b);
}

// Stage 3b. Context: RCU callback (softirq): nothing that sleeps.
void blkg_release_rcu(kern::rcu_head* h) NO_THREAD_SAFETY_ANALYSIS {
  blkcg_gq* blkg = blkg_of_rcu(h);
  // Punted bios hold references: none can be queued once the last one is gone.
  WARN_ON(!blkg->async_bios.empty());
  // The blkcg reference goes at the end of the free work, once the blkg is off
  // q->blkg_list: until then a policy deactivation walking that list (under blkcg_mutex,
  // which the free work may be waiting for) takes blkg->blkcg->lock. Putting it here
  // freed the blkcg under that walk (found by blkcg_torture; busted:
  // blkcg_put_before_unlink).
  if (busted().blkcg_put_before_unlink.load(std::memory_order_relaxed)) css_put(blkg->blkcg);
  kern::INIT_WORK(&blkg->free_work, blkg_free_workfn, "blkg_free_work");
  kern::queue_work(kern::system_wq(), &blkg->free_work);
}

// Stage 3a: the last reference. Context: any (bio completion puts run in IRQ context).
void blkg_release(kern::percpu_ref* ref) {
  blkcg_gq* blkg = blkg_of_ref(ref);
  // Flush every CPU's list of this blkcg first: a set of this blkg may be queued, and a
  // flusher that already detached a list may still walk it; the grace period below
  // covers that flusher (0ab5ee5a1bad).
  for_each_possible_cpu(cpu) blkcg_rstat_flush_cpu(blkg->blkcg, cpu);
  kern::call_rcu(&blkg->rcu, blkg_release_rcu);
}

// Allocation of a blkg with `gfp` (every allocation point is a fault-injection site).
blkcg_gq* blkg_alloc(blkcg* b, request_queue* q, kern::gfp_t gfp) REQUIRES(q->blkcg_mutex) {
  blkcg_gq* blkg = kern::kzalloc_obj<blkcg_gq>(gfp, "blkg_alloc");
  if (!blkg) return nullptr;
  // percpu_ref_init allocates per-CPU counters in the kernel: model that failure point.
  if (!kern::alloc_decide(gfp, "blkg_alloc.refcnt")) {
    kern::kfree(blkg);
    return nullptr;
  }
  kern::percpu_ref_init(&blkg->refcnt, blkg_release, "blkg->refcnt");
  blkg->q = q;
  blkg->blkcg = b;
  // Per-CPU stats with the caller's class: the IO path never allocates per-CPU memory
  // with a blocking class (the 2011 deadlock, seeds 002/003).
  blkg->iostat_cpu = kern::alloc_percpu_gfp<blkg_iostat_set>(gfp, "blkg_alloc.iostat_cpu");
  if (!blkg->iostat_cpu) {
    kern::kfree(blkg);
    return nullptr;
  }
  for_each_possible_cpu(cpu) blkg->iostat_cpu->per_cpu_ptr(cpu)->blkg = blkg;
  blkg->iostat.blkg = blkg;
  kern::INIT_WORK(&blkg->async_bio_work, blkg_async_bio_workfn, "blkg_async_bio_work");
  if (!blkg_alloc_pds(blkg, q, gfp)) {  // each enabled policy's pd_alloc_fn
    kern::free_percpu(blkg->iostat_cpu);
    kern::kfree(blkg);
    return nullptr;
  }
  blk_get_queue(q);
  return blkg;
}

// Undo blkg_alloc for a blkg that was never published. Context: process.
void blkg_free_unpublished(blkcg_gq* blkg) {
  kern::percpu_ref_exit(&blkg->refcnt);  // never live: only the initial reference
  blkg_free_pds(blkg);
  kern::free_percpu(blkg->iostat_cpu);
  blk_put_queue(blkg->q);
  kern::kfree(blkg);
}

}  // namespace

// busted().blkg_put_nonatomic: the count read, a preemption point, the count written (the
// pre-2014 int refcount put from the RCU callback without queue_lock). The last reference
// (or what a stale read takes for it) still goes through the real put, which decides.
void blkg_put_racy(blkcg_gq* blkg) {
  std::atomic<uint64_t>& word = blkg->refcnt.word;
  const uint64_t w = word.load(std::memory_order_acquire);
  kern::seam(kern::SeamKind::kAtomic, &blkg->refcnt);
  if ((w & (kern::kPercpuRefDead - 1)) <= 1) {
    kern::percpu_ref_put(&blkg->refcnt);
    return;
  }
  word.store(w - 1, std::memory_order_release);
}

blkcg_gq* blkg_lookup(blkcg* b, request_queue* q) {
  if (!kern::rcu_read_lock_held() && !kern::lock_is_held(&q->blkcg_mutex)) {
    kern::kreport(kern::ReportKind::kRcu, "blkg_lookup-unprotected",
                  "blkg_lookup without RCU or q->blkcg_mutex");
  }
  if (b == blkcg_root()) return q->root_blkg.load(std::memory_order_acquire);
  // q->blkcg_mutex keeps q's blkgs alive, not the hint (possibly another queue's blkg) nor
  // the tree's nodes: both are freed after a grace period, and the mutex, unlike the
  // queue_lock spinlock it replaced, is not an RCU reader. So a caller that is not a
  // reader gets a read section for the walk (only then: a nested rcu_read_lock would add
  // two seams to every lookup and move every recorded schedule).
  // Found by blkcg_torture under TSan; busted: blkg_lookup_mutex_only.
  const bool mutex_only = busted().blkg_lookup_mutex_only.load(std::memory_order_relaxed);
  const bool own_rcu = !mutex_only && !kern::rcu_read_lock_held();
  if (own_rcu) kern::rcu_read_lock();
  blkcg_gq* hint = b->blkg_hint.load(std::memory_order_acquire);
  // The busted variant's window: the hint loaded, its grace period not waited for.
  if (mutex_only && hint && !kern::rcu_read_lock_held())
    kern::seam(kern::SeamKind::kPreempt, hint);
  blkcg_gq* g = hint;
  if (!hint || hint->q != q) {
    g = static_cast<blkcg_gq*>(b->blkg_tree.lookup(static_cast<uint64_t>(q->id)));
    if (g && g->q != q) g = nullptr;
  }
  if (own_rcu) kern::rcu_read_unlock();
  return g;
}

blkcg_gq* blkg_create(blkcg* b, request_queue* q, kern::gfp_t gfp, int* err,
                      kern::radix_tree::preload* pre) {
  lockdep_assert_held(q->blkcg_mutex);
  if (q->dying.load(std::memory_order_acquire) || !css_tryget_online(b)) {
    *err = -ENODEV;
    return nullptr;
  }
  blkcg_gq* blkg = blkg_alloc(b, q, gfp);
  if (!blkg) {
    css_put(b);
    *err = -ENOMEM;
    return nullptr;
  }
  if (blkcg* pb = blkcg_parent(b)) {
    kern::rcu_read_lock();  // RFC: the parent lookup stays under RCU
    blkcg_gq* parent = blkg_lookup(pb, q);
    kern::rcu_read_unlock();
    if (WARN_ON(parent == nullptr)) {
      blkg_free_unpublished(blkg);
      css_put(b);
      *err = -ENODEV;
      return nullptr;
    }
    blkg_get(parent);
    blkg->parent = parent;
  }
  blkg_init_pds(blkg);  // after the parent link, before anyone can see the blkg
  bool inserted;
  bool offline = false;
  {
    kern::SpinIrqGuard g(b->lock);
    // The blkcg may have gone offline since css_tryget_online above: we sleep in between
    // (allocations under blkcg_mutex), and unlike the queue_lock it replaced, that mutex
    // does not hold off the grace period before css offline. Its blkgs are then already
    // destroyed, and a blkg inserted now would never be (its stats stranded in a removed
    // cgroup, a pd never offlined). Found by fuzz_sched; busted: blkg_create_after_offline.
    // Dying (killed by rmdir, which then offlines) counts too: offline may be walking
    // the list right now. Our own reference from above keeps the put from being the last.
    if (!busted().blkg_create_after_offline.load(std::memory_order_relaxed)) {
      const bool live = !b->blkgs_destroyed && css_tryget_online(b);
      if (live) css_put(b);
      offline = !live;
    }
    // Radix-tree nodes come from the caller's preload, else from GFP_NOWAIT (the tree's
    // mask): without a preload the insertion can fail even here.
    inserted = !offline && b->blkg_tree.insert(static_cast<uint64_t>(q->id), blkg, pre) == 0;
    if (inserted) {
      blkcg_gq* first = b->blkg_list.load(std::memory_order_relaxed);
      blkg->blkcg_next.store(first, std::memory_order_relaxed);
      blkg->blkcg_prev = nullptr;
      if (first) first->blkcg_prev = blkg;
      b->blkg_list.store(blkg, std::memory_order_release);  // publish (RCU)
      blkg->hashed = true;
      blkg->q_next = q->blkg_list_first;
      blkg->q_prev = nullptr;
      if (q->blkg_list_first) q->blkg_list_first->q_prev = blkg;
      q->blkg_list_first = blkg;
      blkg->on_q_list = true;
      blkg_online_pds(blkg);
      blkg->online.store(true, std::memory_order_release);
    }
  }
  if (!inserted) {
    // Fully initialised but never published: undo it now, under blkcg_mutex. The kernel
    // (and the RFC) put it through the usual asynchronous release instead; its pds are
    // then freed by a free work that a policy deactivation on this queue does not wait
    // for, so a policy's pd_free_fn can run on a child after its parent's pd was freed
    // (fuzz_ops found this with the test policy once GFP_NOWAIT radix nodes failed;
    // busted().blkg_insert_fail_async keeps the kernel's way).
    if (busted().blkg_insert_fail_async.load(std::memory_order_relaxed)) {
      kern::percpu_ref_kill(&blkg->refcnt);
    } else {
      if (blkg->parent) blkg_put(blkg->parent);
      blkg_free_unpublished(blkg);
      css_put(b);
    }
    *err = offline ? -ENODEV : -ENOMEM;
    return nullptr;
  }
  *err = 0;
  return blkg;
}

blkcg_gq* blkg_lookup_create_locked(blkcg* b, request_queue* q, kern::gfp_t gfp) {
  lockdep_assert_held(q->blkcg_mutex);
  kern::rcu_read_lock();
  blkcg_gq* blkg = blkg_lookup(b, q);
  kern::rcu_read_unlock();
  if (blkg) {
      b->blkg_hint.store(blkg, std::memory_order_release);
    return blkg;
  }
  // A queue without a root blkg (never added, or released) gets no blkg: the kernel's
  // walk stops at the root, whose blkg only add_disk creates (fuzz_ops found this model
  // creating a second root blkg for a disk that was never added).
  if (q->root_blkg.load(std::memory_order_acquire) == nullptr) return nullptr;
  // Create walking down from the highest missing ancestor so every blkg finds its parent;
  // on failure fall back to the closest existing ancestor.
  for (;;) {
    blkcg* pos = b;
    blkcg_gq* closest = q->root_blkg.load(std::memory_order_acquire);
    kern::rcu_read_lock();
    for (blkcg* parent = blkcg_parent(b); parent != nullptr; parent = blkcg_parent(parent)) {
      if (blkcg_gq* found = blkg_lookup(parent, q)) {
        closest = found;
        break;
      }
      pos = parent;
    }
    kern::rcu_read_unlock();
    int err;
    blkg = blkg_create(pos, q, gfp, &err);
    if (!blkg) return closest;
    if (pos == b) return blkg;
  }
}

blkcg_gq* blkg_lookup_create(blkcg* b, request_queue* q) {
  kern::rcu_read_lock();
  blkcg_gq* blkg = blkg_lookup(b, q);
  kern::rcu_read_unlock();
  if (blkg) return blkg;
  kern::might_sleep("blkg_lookup_create");
  kern::MutexGuard m(q->blkcg_mutex);
  return blkg_lookup_create_locked(b, q, kern::GFP_NOIO);
}

void blkg_destroy(blkcg_gq* blkg) {
  blkcg* b = blkg->blkcg;
  lockdep_assert_held(blkg->q->blkcg_mutex);
  lockdep_assert_held(b->lock);
  if (!blkg->hashed) return;  // idempotent
  blkg_offline_pds(blkg);
  blkg->online.store(false, std::memory_order_release);
  blkcg_gq* next = blkg->blkcg_next.load(std::memory_order_relaxed);
  if (blkg->blkcg_prev)
    blkg->blkcg_prev->blkcg_next.store(next, std::memory_order_release);
  else
    b->blkg_list.store(next, std::memory_order_release);
  if (next) next->blkcg_prev = blkg->blkcg_prev;
  // blkg->blkcg_next stays intact: an RCU walker standing on blkg can continue.
  b->blkg_tree.erase(static_cast<uint64_t>(blkg->q->id));
  blkg->hashed = false;
  if (b->blkg_hint.load(std::memory_order_relaxed) == blkg)
    b->blkg_hint.store(nullptr, std::memory_order_release);
  kern::percpu_ref_kill(&blkg->refcnt);  // drops the existence reference
}

void blkg_destroy_all(request_queue* q) {
  kern::might_sleep("blkg_destroy_all");
  kern::MutexGuard m(q->blkcg_mutex);
  int batch = 0;
  for (blkcg_gq* blkg = q->blkg_list_first; blkg != nullptr; blkg = blkg->q_next) {
    if (!blkg->hashed) continue;  // destroyed earlier, waiting for its free work
    kern::SpinIrqGuard g(blkg->blkcg->lock);
    blkg->q->blkcg_mutex.assert_held();  // blkg->q == q
    blkg_destroy(blkg);
    if (++batch % 64 == 0) kern::seam(kern::SeamKind::kPreempt, q);  // cond_resched()
  }
  // Offline is done and frees are scheduled: no policy is active on this queue any more.
  blkcg_clear_policies(q);
  q->root_blkg.store(nullptr, std::memory_order_release);
}

int blkg_count(request_queue* q) {
  kern::MutexGuard m(q->blkcg_mutex);
  int n = 0;
  for (blkcg_gq* g = q->blkg_list_first; g != nullptr; g = g->q_next) ++n;
  return n;
}

}  // namespace blk
