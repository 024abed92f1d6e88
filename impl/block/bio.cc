// SPDX-License-Identifier: MIT
#include "impl/block/bio.h"
#include "impl/block/bio_list.h"

#include <cerrno>

#include "impl/kern/report.h"

namespace blk {
namespace {

// Take a reference on `blkg` or, if it is dying with no references left, on the closest
// ancestor that still has one. Caller holds RCU or q->blkcg_mutex.
blkcg_gq* blkg_tryget_closest(blkcg_gq* blkg) {
  while (blkg != nullptr && !blkg_tryget(blkg)) blkg = blkg->parent;
  return blkg;
}

void set_blkg(bio* b, blkcg_gq* blkg) { b->bi_blkg = blkg; }

}  // namespace

bio* bio_alloc(gendisk* disk, bio_op op, uint64_t size, unsigned opf, kern::gfp_t gfp) {
  bio* b = kern::kzalloc_obj<bio>(gfp, "bio_alloc");
  if (!b) return nullptr;
  b->disk = disk;
  b->op = op;
  b->size = size;
  b->opf = opf;
  return b;
}

void bio_put(bio* b) {
  if (b->bi_blkg) blkg_put(b->bi_blkg);
  kern::kfree(b);
}

bool bio_associate_blkg_from_css(bio* b, blkcg* css, bool nowait) {
  if (!nowait) kern::might_sleep("bio_associate_blkg");
  if (b->bi_blkg) {
    blkg_put(b->bi_blkg);
    b->bi_blkg = nullptr;
  }
  request_queue* q = b->disk->queue;
  if (css == nullptr || css == blkcg_root()) {
    kern::rcu_read_lock();
    blkcg_gq* root = q->root_blkg.load(std::memory_order_acquire);
    if (root) blkg_get(root);
    kern::rcu_read_unlock();
    set_blkg(b, root);
    return root != nullptr;
  }
  // Fast path: an existing blkg, under RCU, no lock.
  kern::rcu_read_lock();
  blkcg_gq* blkg = blkg_lookup(css, q);
  if (blkg) blkg = blkg_tryget_closest(blkg);
  kern::rcu_read_unlock();
  if (blkg) {
    set_blkg(b, blkg);
    return true;
  }
  // Slow path: create what is missing under the topology mutex.
  if (!nowait) {
    kern::MutexGuard m(q->blkcg_mutex);
    blkg = blkg_tryget_closest(blkg_lookup_create_locked(css, q, kern::GFP_NOIO));
  } else if (kern::preemptible() && q->blkcg_mutex.trylock()) {
    // RFC: opportunistic creation, allocations with GFP_ATOMIC (we may not sleep).
    blkg = blkg_tryget_closest(blkg_lookup_create_locked(css, q, kern::GFP_ATOMIC));
    q->blkcg_mutex.unlock();
  } else {
    return false;  // atomic context or contended: the caller retries or defers
  }
  set_blkg(b, blkg);
  return blkg != nullptr;
}

bool bio_associate_blkg(bio* b, blkcg* task_css, bool nowait) {
  blkcg* css = b->bi_blkg ? b->bi_blkg->blkcg : task_css;
  return bio_associate_blkg_from_css(b, css, nowait);
}

bool bio_clone_blkg_association(bio* dst, bio* src, bool nowait) {
  if (dst->bi_blkg) {
    blkg_put(dst->bi_blkg);
    dst->bi_blkg = nullptr;
  }
  if (src->bi_blkg) {
    blkg_get(src->bi_blkg);  // src holds a reference: a plain get is safe
    dst->bi_blkg = src->bi_blkg;
    return true;
  }
  return true;  // nothing to clone
}

bio* bio_split(bio* b, uint64_t bytes, kern::gfp_t gfp) {
  if (bytes == 0 || bytes >= b->size) return nullptr;
  bio* split = bio_alloc(b->disk, b->op, bytes, b->opf, gfp);
  if (!split) return nullptr;
  split->flags = b->flags & (BIO_CGROUP_ACCT | BIO_BPS_THROTTLED);
  bio_clone_blkg_association(split, b, true);
  b->size -= bytes;
  // bio_chain: the piece completes into `b`.
  split->bi_parent = b;
  b->bi_remaining.fetch_add(1, std::memory_order_relaxed);  // b is still owned by the caller
  return split;
}

void bio_endio(bio* b) {
  while (b != nullptr) {
    // acq_rel: the last completer sees every other piece's status write.
    if (b->bi_remaining.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    bio* parent = b->bi_parent;
    if (parent != nullptr) {
      if (std::atomic_ref<int>(b->status).load(std::memory_order_relaxed) != 0) {
        int zero = 0;  // keep the first error (the kernel's bio_chain_endio)
        std::atomic_ref<int>(parent->status)
            .compare_exchange_strong(zero, std::atomic_ref<int>(b->status).load(
                                               std::memory_order_relaxed));
      }
      bio_put(b);
      b = parent;  // iterate instead of recursing over long chains
      continue;
    }
    if (b->bi_end_io != nullptr)
      b->bi_end_io(b);
    else
      bio_put(b);
    return;
  }
}

void bio_list::add(bio* b) {
  b->bi_next = nullptr;
  if (tail)
    tail->bi_next = b;
  else
    head = b;
  tail = b;
}

bio* bio_list::pop() {
  bio* b = head;
  if (b) {
    head = b->bi_next;
    if (!head) tail = nullptr;
    b->bi_next = nullptr;
  }
  return b;
}

void bio_io_error(bio* b) {
  // A chained piece may be setting b's status from another context at the same moment.
  std::atomic_ref<int>(b->status).store(-EIO, std::memory_order_relaxed);
  bio_endio(b);
}

}  // namespace blk
