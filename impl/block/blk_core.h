// SPDX-License-Identifier: MIT
// The bio path (kernel: block/blk-core.c, block/blk-merge.c) as far as blkcg needs it, and
// the punt path (REQ_CGROUP_PUNT, CONFIG_BLK_CGROUP_PUNT_BIO).
//
//   submit_bio: REQ_CGROUP_PUNT bios of a non-root blkg go to the punt path; others to
//   submit_bio_noacct: a bio to a disk that is not live completes with -EIO; otherwise
//     blk-throttle may take it (blk_throtl_bio: it comes back later through
//     submit_bio_noacct_nocheck from the dispatch work, or is failed); otherwise
//   submit_bio_noacct_nocheck: io.stat accounting (blk_cgroup_bio_start), then the device
//     stage. A bio larger than the disk's max_io_bytes is split there: the front piece
//     goes to the device, the rest goes round again through submit_bio_noacct (throttled
//     for iops only, BIO_BPS_THROTTLED; accounted as one more IO, no bytes), as the kernel's
//     bio_split_to_limits does. A loop, not recursion: a 1 GiB bio in 4 KiB pieces is fine.
//   The device: completes at once, or after disk->latency jiffies from the disk's timer
//     (blk_device_timer_fn, softirq); IO reaching a disk that is not live fails with -EIO.
//   A disk with nr_requests > 0 has a request pool in front of its device (the legacy
//     request_queue's get_request/get_request_wait and queue run): each piece takes a
//     request and waits on the disk's dispatch list until the disk's run work, on the
//     kblockd workqueue, hands the list to the device and gives the requests back. With
//     the pool empty a submitter that may sleep kicks the run work and waits for it
//     (flush_work); one that may not fails the piece with -EAGAIN (BLK_STS_AGAIN). The
//     requests go back at dispatch, not at completion as the kernel's do: the device
//     keeps the bio (its latency FIFO) without one, so waiting for a request needs only
//     kblockd to make progress and never the virtual clock. That is enough for the
//     dependency this models (kblockd's run work is the only thing that frees requests,
//     so nothing on kblockd may wait for one: bugbench #2), and it keeps a single-task
//     run, where time moves only between operations, from waiting on the clock.
//   blkcg_punt_bio_submit: a non-root bio is appended to its blkg's async list under
//     blkg->async_bio_lock and submitted later by the blkg's work item on
//     blkcg_punt_bio_wq (WQ_MEM_RECLAIM), so a writeback path never issues IO in the
//     context of a throttled cgroup; root bios are submitted at once. Each queued bio holds
//     its blkg reference, so a blkg with queued bios is never released (the release path
//     warns if it finds one).
#pragma once

#include "impl/block/bio.h"

namespace blk {

// Context (all of the submit functions): process, or softirq for a bio that needs no
// split (splitting to the device's max_io allocates with GFP_NOIO, as the kernel's
// bio_split_to_limits does, which may sleep); a device without latency completes the bio
// (runs bi_end_io) in the caller's context.
void submit_bio(bio* b);
void submit_bio_noacct(bio* b);
void submit_bio_noacct_nocheck(bio* b);
void blkcg_punt_bio_submit(bio* b);
// The per-blkg work item that submits punted bios (set up by blkg_alloc). Context:
// process (blkcg_punt_bio_wq).
void blkg_async_bio_workfn(kern::work_struct* w);
// The punt workqueue (created on first use). Context: any.
kern::workqueue_struct* blkcg_punt_bio_wq();
// The completion timer of a disk with latency. Context: softirq (timer).
void blk_device_timer_fn(kern::timer_list* t);
// kblockd (WQ_MEM_RECLAIM) and the run work of a disk with a request pool, which hands the
// queued requests to the device. Context: any / process (kblockd).
kern::workqueue_struct* kblockd_workqueue();
void blk_run_work_fn(kern::work_struct* w);

}  // namespace blk
