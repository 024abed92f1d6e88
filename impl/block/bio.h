// SPDX-License-Identifier: MIT
// struct bio and its blkcg association (kernel: block/bio.c, block/blk-cgroup.c), with the
// RFC's non-blocking association (patch 6) and creation-by-trylock (patches 14, 16).
//
// Every bio that reaches submission holds one blkg reference in bi_blkg (possibly on an
// ancestor, or on a destroyed-but-unreleased blkg). Association outcomes:
//   blocking (nowait = false; may sleep): existing blkg by RCU lookup + tryget-climb, else
//     take q->blkcg_mutex and create what is missing (GFP_NOIO); never fails while the disk
//     has a root blkg.
//   nowait: existing blkg by RCU lookup + tryget-climb; else, only if preemptible() and
//     mutex_trylock(q->blkcg_mutex) succeeds, create with GFP_ATOMIC; else FAIL: the old
//     bi_blkg has already been put, the bio is left unassociated, the caller must retry
//     from a blocking context or defer. Never sleeps, in any context.
// Locking: none of its own; bi_blkg belongs to the bio's owner.
#pragma once

#include <atomic>
#include <cstdint>

#include "impl/block/blkg.h"

namespace blk {

enum class bio_op : uint8_t { kRead, kWrite, kDiscard };

// bi_flags (bio state) and opf flags (request flags), kernel names.
enum : unsigned {
  BIO_BPS_THROTTLED = 1u << 0,
  BIO_TG_BPS_THROTTLED = 1u << 1,
  BIO_CGROUP_ACCT = 1u << 2,
};
enum : unsigned {
  REQ_META = 1u << 0,
  REQ_SWAP = 1u << 1,
  REQ_CGROUP_PUNT = 1u << 2,
  REQ_SYNC = 1u << 3,  // a synchronous write (reads are always sync)
  // Not a kernel flag: the model's stand-in for a bio built by cgroup writeback
  // (wbc_init_bio, a buffered write), which needs the cgroup's wb (backing_dev.h).
  REQ_CGWB = 1u << 4,
};

struct bio {
  gendisk* disk = nullptr;
  bio_op op = bio_op::kRead;
  uint64_t size = 0;       // bytes (bi_iter.bi_size)
  unsigned flags = 0;      // BIO_*
  unsigned opf = 0;        // REQ_*
  blkcg_gq* bi_blkg = nullptr;
  int status = 0;          // 0 or a negative errno at completion
  bio* bi_next = nullptr;  // list link for queues that hold bios (one queue at a time)
  // Completion (bio_endio): bi_end_io(b) if set, else bio_put. The owner's data in
  // bi_private. A split piece is chained to the bio it came from (bi_parent): the parent
  // completes only after all its pieces and itself did (bi_remaining), with the first
  // error of any of them.
  void (*bi_end_io)(bio* b) = nullptr;
  void* bi_private = nullptr;
  bio* bi_parent = nullptr;
  std::atomic<int> bi_remaining{1};
  // Set by the throttler when it queues the bio (per queue, increasing): FIFO checks.
  uint64_t bi_throtl_seq = 0;
  // Set by a device with latency: the jiffy its completion is due.
  uint64_t bi_complete_at = 0;
};

// Completes `b` (see above). Context: any.
void bio_endio(bio* b);
// Completes `b` with -EIO. Context: any.
void bio_io_error(bio* b);

// Allocates an unassociated bio. nullptr on allocation failure.
// Context: any; may sleep only if gfp allows it.
bio* bio_alloc(gendisk* disk, bio_op op, uint64_t size, unsigned opf, kern::gfp_t gfp);
// Drops the association and frees. Context: any.
void bio_put(bio* b);

// Associates with `css`'s blkg on the bio's disk (root css or nullptr: the root blkg).
// Returns false only for nowait (or when the disk has no root blkg any more).
// Context: nowait=false: process, may sleep (might_sleep); nowait=true: any.
bool bio_associate_blkg_from_css(bio* b, blkcg* css, bool nowait);
// Re-associates with the css of the current bi_blkg, or with `task_css` if none.
// Context: as bio_associate_blkg_from_css.
bool bio_associate_blkg(bio* b, blkcg* task_css, bool nowait);
// dst gets src's association (an extra reference on the same blkg).
// Context: any (never creates a blkg; nowait only matters for a src without one).
bool bio_clone_blkg_association(bio* dst, bio* src, bool nowait);
// Splits off the first `bytes` as a new bio (same association; BIO_CGROUP_ACCT and
// BIO_BPS_THROTTLED inherited) chained to `b`, which keeps the rest. nullptr on
// allocation failure or a bad size.
// Context: any; may sleep only if gfp allows it.
bio* bio_split(bio* b, uint64_t bytes, kern::gfp_t gfp);

}  // namespace blk
