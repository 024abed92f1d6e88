// SPDX-License-Identifier: MIT
#include "impl/block/blk_stat.h"

#include <functional>
#include <vector>

#include "impl/block/busted.h"
#include "impl/kern/cpu.h"
#include "impl/kern/report.h"

namespace blk {
namespace {

// blkg_stat_lock: serialises the parent-side updates of concurrent flushes (a cgroup
// flush and a blkg-release flush of the same blkcg). Raw spinlock, always irqsave.
kern::raw_spinlock_t& blkg_stat_lock() {
  static kern::raw_spinlock_t* l = new kern::raw_spinlock_t("blkg_stat_lock");
  return *l;
}

// The cgroup rstat lock: one flush of a subtree at a time (kernel/cgroup/rstat.c).
kern::mutex& cgroup_rstat_lock() {
  static kern::mutex* m = new kern::mutex("cgroup_rstat_lock");
  return *m;
}

int iostat_type(const bio* b) {
  switch (b->op) {
    case bio_op::kDiscard: return BLKG_IOSTAT_DISCARD;
    case bio_op::kWrite: return BLKG_IOSTAT_WRITE;
    default: return BLKG_IOSTAT_READ;
  }
}

blkg_iostat snapshot_cur(const blkg_iostat_set* s) {
  blkg_iostat v;
  unsigned seq;
  do {
    seq = kern::u64_stats_fetch_begin(s->sync);
    for (int i = 0; i < BLKG_IOSTAT_NR; ++i) {
      v.bytes[i] = s->cur_bytes[i].read();
      v.ios[i] = s->cur_ios[i].read();
    }
  } while (kern::u64_stats_fetch_retry(s->sync, seq));
  return v;
}

// blkg->iostat.cur += cur - *last; *last = cur. Caller holds blkg_stat_lock with IRQs off
// (the kernel nests an _irqsave write section here; with IRQs already off the plain one is
// the same thing, without a second IRQ save/restore per set).
void blkcg_iostat_update(blkcg_gq* blkg, const blkg_iostat& cur, kern::u64_stats_t* last_bytes,
                         kern::u64_stats_t* last_ios) {
  kern::u64_stats_update_begin(blkg->iostat.sync);
  for (int i = 0; i < BLKG_IOSTAT_NR; ++i) {
    const uint64_t db = cur.bytes[i] - last_bytes[i].read();
    const uint64_t di = cur.ios[i] - last_ios[i].read();
    blkg->iostat.cur_bytes[i].add(db);
    blkg->iostat.cur_ios[i].add(di);
    last_bytes[i].add(db);
    last_ios[i].add(di);
  }
  kern::u64_stats_update_end(blkg->iostat.sync);
}

// Queues a set whose lqueued was seen clear. lqueued is set BEFORE the llist_add: a
// flusher on another CPU can take the node the instant the add publishes it and clear
// lqueued; if the updater's "set" came after the add (the order mainline uses, kept as
// busted().lqueued_after_add), that set could land after the flusher's clear and leave the
// set marked queued while on no list — every later update of it on this CPU is then never
// flushed. With set-then-add, the set is ordered before the release CAS of the add, the
// flusher's acquire exchange reads from that CAS, so the flusher's clear is the later
// write of lqueued. The seams model the two stores as separate steps for the controlled
// scheduler (tests/unit/block/stat_race_test.cc explores the window).
void blkcg_queue_set(blkg_iostat_set* bis, kern::llist_head& head) {
  if (busted().lqueued_after_add.load(std::memory_order_relaxed)) {
    kern::llist_add(&bis->lnode, head);
    kern::seam(kern::SeamKind::kAtomic, &bis->lqueued);
    bis->lqueued.store(1, std::memory_order_release);
    return;
  }
  // relaxed: the release CAS in llist_add orders this store before the publication.
  bis->lqueued.store(1, std::memory_order_relaxed);
  kern::llist_add(&bis->lnode, head);
}

}  // namespace

busted_flags& busted() {
  static busted_flags flags;
  return flags;
}

void blk_cgroup_bio_start(bio* b) {
  request_queue* q = b->disk->queue;
  const int t = iostat_type(b);
  const bool first_piece = !(b->flags & BIO_CGROUP_ACCT);
  if (b->disk->on_account) b->disk->on_account(b, first_piece);
  // Disk totals (the root's source) count every bio.
  if (first_piece) q->disk_bytes[t].fetch_add(b->size, std::memory_order_relaxed);
  q->disk_ios[t].fetch_add(1, std::memory_order_relaxed);
  blkcg_gq* blkg = b->bi_blkg;
  if (blkg == nullptr || blkg->blkcg == blkcg_root()) {
    b->flags |= BIO_CGROUP_ACCT;
    return;
  }
  const int cpu = kern::get_cpu();
  blkg_iostat_set* bis = blkg->iostat_cpu->per_cpu_ptr(cpu);
  const kern::irqflags_t f = kern::u64_stats_update_begin_irqsave(bis->sync);
  if (first_piece) {
    b->flags |= BIO_CGROUP_ACCT;  // split pieces add ios, not bytes again
    bis->cur_bytes[t].add(b->size);
  }
  bis->cur_ios[t].inc();
  // Full barrier between the counter stores above and the lqueued load below; pairs with
  // the one between the flusher's lqueued clear and its counter loads. Store-buffering
  // shape: without both, the updater can read a stale lqueued == 1 while the flusher
  // reads the counters from before this IO, and the set is left off every list with an
  // unflushed delta (stat_litmus_test shows it on x86; mainline has no barrier here,
  // kept as busted().lqueued_no_full_barrier). With both seq_cst fences, one of them is
  // first in their total order: if it is ours, the flusher's loads see this IO; if it is
  // the flusher's, our load sees its clear and we queue the set again.
  if (!busted().lqueued_no_full_barrier.load(std::memory_order_relaxed))
    std::atomic_thread_fence(std::memory_order_seq_cst);
  // Only this CPU (which we own) queues this set; the flusher clears lqueued after it has
  // unlinked the node, so seeing 0 here means the node is free to be added.
  if (!bis->lqueued.load(std::memory_order_acquire))
    blkcg_queue_set(bis, *blkg->blkcg->lhead->per_cpu_ptr(cpu));
  kern::u64_stats_update_end_irqrestore(bis->sync, f);
  kern::put_cpu();
}

void blkcg_rstat_flush_cpu(blkcg* b, int cpu) {
  kern::rcu_read_lock();
  kern::llist_node* list = kern::llist_del_all(*b->lhead->per_cpu_ptr(cpu));
  if (list != nullptr) {
    const bool irqs_on = busted().flush_lock_irqs_on.load(std::memory_order_relaxed);
    kern::irqflags_t f = 0;
    if (irqs_on)
      blkg_stat_lock().lock();
    else
      f = blkg_stat_lock().lock_irqsave();
    kern::llist_for_each_safe(list, [cpu](kern::llist_node* n) {
      blkg_iostat_set* bisc = kern::llist_entry<blkg_iostat_set, &blkg_iostat_set::lnode>(n);
      blkcg_gq* blkg = bisc->blkg;
      blkcg_gq* parent = blkg->parent;
      // The iterator read n->next already; the release orders that read before the clear
      // (pairs with the updater's acquire load of lqueued before it re-adds the node), so
      // a re-add cannot clobber our walk (d0aac2363549 used a full barrier for this).
      bisc->lqueued.store(0, std::memory_order_release);
      // Full barrier between that clear and the counter loads below (pairs with the
      // updater's; see blk_cgroup_bio_start).
      if (!busted().lqueued_no_full_barrier.load(std::memory_order_relaxed))
        std::atomic_thread_fence(std::memory_order_seq_cst);
      if (bisc != &blkg->iostat) {
        const blkg_iostat cur = snapshot_cur(bisc);
        blkcg_iostat_update(blkg, cur, bisc->last_bytes, bisc->last_ios);
      }
      // Propagate the blkg's unpropagated total to its parent, unless that is the root.
      if (parent && parent->parent) {
        const blkg_iostat mine = snapshot_cur(&blkg->iostat);
        blkcg_iostat_update(parent, mine, blkg->iostat.last_bytes, blkg->iostat.last_ios);
        if (!busted().no_parent_requeue.load(std::memory_order_relaxed) &&
            !parent->iostat.lqueued.load(std::memory_order_acquire))
          blkcg_queue_set(&parent->iostat, *parent->blkcg->lhead->per_cpu_ptr(cpu));
      }
    });
    if (irqs_on)
      blkg_stat_lock().unlock();
    else
      blkg_stat_lock().unlock_irqrestore(f);
  }
  kern::rcu_read_unlock();
}

void cgroup_rstat_flush(cgroup_hierarchy& h, cgroup* cg) {
  kern::might_sleep("cgroup_rstat_flush");
  // Children before parents (post-order), each blkcg pinned while flushed.
  std::vector<blkcg*> order;
  {
    kern::MutexGuard g(h.cgroup_mutex);
    std::function<void(cgroup*)> walk = [&](cgroup* c) {
      for (cgroup* child : c->children) walk(child);
      if (c->io && css_tryget(c->io)) order.push_back(c->io);
    };
    walk(cg);
  }
  kern::MutexGuard r(cgroup_rstat_lock());
  for (blkcg* b : order) {
    if (b != blkcg_root())  // root stats come from the disks
      for_each_possible_cpu(cpu) blkcg_rstat_flush_cpu(b, cpu);
    css_put(b);
  }
}

void blkcg_fill_root_iostats(request_queue* q) {
  kern::rcu_read_lock();
  blkcg_gq* root = q->root_blkg.load(std::memory_order_acquire);
  if (root) {
    const kern::irqflags_t f = blkg_stat_lock().lock_irqsave();
    const kern::irqflags_t g = kern::u64_stats_update_begin_irqsave(root->iostat.sync);
    for (int i = 0; i < BLKG_IOSTAT_NR; ++i) {
      root->iostat.cur_bytes[i].set(q->disk_bytes[i].load(std::memory_order_relaxed));
      root->iostat.cur_ios[i].set(q->disk_ios[i].load(std::memory_order_relaxed));
    }
    kern::u64_stats_update_end_irqrestore(root->iostat.sync, g);
    blkg_stat_lock().unlock_irqrestore(f);
  }
  kern::rcu_read_unlock();
}

blkg_iostat blkg_iostat_read(blkcg_gq* blkg) { return snapshot_cur(&blkg->iostat); }

std::string blkcg_print_stat(cgroup_hierarchy& h, cgroup* cg) {
  blkcg* b = cg->io;
  if (b == blkcg_root()) {
    // The root's blkgs: one per disk. Fill each from its disk totals. Each queue is
    // pinned while listed (a blkg on the list holds a queue reference, so taking one
    // under b->lock is safe): without the pin, a disk released once the lock is dropped
    // frees its queue under the fill (found by fuzz_sched; the kernel walks the disks
    // with device references held).
    std::vector<request_queue*> qs;
    {
      kern::SpinIrqGuard g(b->lock);
      for (blkcg_gq* blkg = b->blkg_list.load(std::memory_order_relaxed); blkg;
           blkg = blkg->blkcg_next.load(std::memory_order_relaxed)) {
        if (!busted().root_iostat_unpinned.load(std::memory_order_relaxed)) blk_get_queue(blkg->q);
        qs.push_back(blkg->q);
      }
    }
    for (request_queue* q : qs) {
      blkcg_fill_root_iostats(q);
      if (!busted().root_iostat_unpinned.load(std::memory_order_relaxed)) blk_put_queue(q);
    }
  } else {
    cgroup_rstat_flush(h, cg);
  }
  std::string out;
  kern::SpinIrqGuard g(b->lock);  // 2026: iterate this blkcg's blkgs under blkcg->lock
  for (blkcg_gq* blkg = b->blkg_list.load(std::memory_order_relaxed); blkg;
       blkg = blkg->blkcg_next.load(std::memory_order_relaxed)) {
    if (!blkg->online.load(std::memory_order_acquire)) continue;
    const blkg_iostat s = snapshot_cur(&blkg->iostat);
    out += blkg->q->dev_name + " ";
    const uint64_t rbytes = s.bytes[BLKG_IOSTAT_READ], wbytes = s.bytes[BLKG_IOSTAT_WRITE];
    const uint64_t rios = s.ios[BLKG_IOSTAT_READ], wios = s.ios[BLKG_IOSTAT_WRITE];
    // dbytes/dios alone do not make the counters appear (kernel behaviour).
    if (rbytes || wbytes || rios || wios) {
      out += "rbytes=" + std::to_string(rbytes) + " wbytes=" + std::to_string(wbytes) +
             " rios=" + std::to_string(rios) + " wios=" + std::to_string(wios) +
             " dbytes=" + std::to_string(s.bytes[BLKG_IOSTAT_DISCARD]) +
             " dios=" + std::to_string(s.ios[BLKG_IOSTAT_DISCARD]);
    }
    out += "\n";
  }
  return out;
}

void blkcg_reset_stats(blkcg* b) {
  kern::might_sleep("blkcg_reset_stats");
  kern::MutexGuard p(blkcg_pol_mutex_ref());
  kern::SpinIrqGuard g(b->lock);
  for (blkcg_gq* blkg = b->blkg_list.load(std::memory_order_relaxed); blkg;
       blkg = blkg->blkcg_next.load(std::memory_order_relaxed)) {
    auto clear = [](blkg_iostat_set* s) {
      // Counters only: blkg, lnode and lqueued stay intact (a queued set stays queued).
      // Racy against a concurrent updater by design, as in the kernel ("if you get hit by
      // a race, retry"): plain stores, no write section (that would nest with the
      // owning CPU's and corrupt the sequence).
      for (int i = 0; i < BLKG_IOSTAT_NR; ++i) {
        s->cur_bytes[i].set(0);
        s->cur_ios[i].set(0);
        s->last_bytes[i].set(0);
        s->last_ios[i].set(0);
      }
    };
    for_each_possible_cpu(cpu) clear(blkg->iostat_cpu->per_cpu_ptr(cpu));
    clear(&blkg->iostat);
    if (busted().reset_wipes_set.load(std::memory_order_relaxed)) {
      for_each_possible_cpu(cpu) blkg->iostat_cpu->per_cpu_ptr(cpu)->blkg = nullptr;
    }
    for (int i = 0; i < BLKCG_MAX_POLS; ++i) {
      blkg_policy_data* pd = blkg->pd[i].load(std::memory_order_acquire);
      const blkcg_policy* pol = blkcg_policy_slot(i);
      if (pd && pol && pol->pd_reset_stats_fn) pol->pd_reset_stats_fn(pd);
    }
  }
}

}  // namespace blk
