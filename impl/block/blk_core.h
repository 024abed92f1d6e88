// SPDX-License-Identifier: MIT
// The bio path (kernel: block/blk-core.c) as far as blkcg needs it, and the punt path
// (REQ_CGROUP_PUNT, CONFIG_BLK_CGROUP_PUNT_BIO).
//
//   submit_bio_noacct: a bio to a disk that is not live completes with -EIO; otherwise
//     (blk-throttle hooks in here with issue 4) it goes on to
//   submit_bio_noacct_nocheck: io.stat accounting (blk_cgroup_bio_start) and the device,
//     which completes at once (a zero-latency device).
//   bio_endio: the completion: bi_end_io if set, else bio_put. Any context.
//   blkcg_punt_bio_submit: a non-root bio is appended to its blkg's async list under
//     blkg->async_bio_lock and submitted later by the blkg's work item on
//     blkcg_punt_bio_wq (WQ_MEM_RECLAIM), so a writeback path never issues IO in the
//     context of a throttled cgroup; root bios are submitted at once. Each queued bio holds
//     its blkg reference, so a blkg with queued bios is never released (the release path
//     warns if it finds one).
#pragma once

#include "impl/block/bio.h"

namespace blk {

void submit_bio_noacct(bio* b);
void submit_bio_noacct_nocheck(bio* b);
void bio_endio(bio* b);
// Submits `b`, punting it to its blkg's work item when it carries REQ_CGROUP_PUNT.
void submit_bio(bio* b);
void blkcg_punt_bio_submit(bio* b);
// The per-blkg work item that submits punted bios (set up by blkg_alloc).
void blkg_async_bio_workfn(kern::work_struct* w);
// The punt workqueue (created on first use).
kern::workqueue_struct* blkcg_punt_bio_wq();

}  // namespace blk
