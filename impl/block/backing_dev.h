// SPDX-License-Identifier: MIT
// Cgroup writeback, as far as blkcg sees it (kernel: mm/backing-dev.c, the cgwb part).
//
// A cgroup that writes to a disk gets a bdi_writeback (a "cgwb") for that disk. The
// kernel creates it when the cgroup first dirties a page of the disk and keeps it while
// its inodes and writeback use it (bios in flight do not hold it); this model creates it
// when the cgroup's first writeback bio (REQ_CGWB, a buffered write; direct IO has no wb)
// is submitted, on the default hierarchy only as in the kernel, and gives it no other
// user, so the kill drops its last reference. A cgwb holds, from creation until its
// release work ran:
//   - a css reference on its blkcg, and
//   - an online pin on it (blkcg_pin_online), so the blkcg's blkgs are not destroyed while
//     writeback for it may still be issued (59b57717fff8).
//
// Lifecycle:
//   1. wb_get_create: looked up on the disk's list, or allocated (GFP_NOWAIT) and linked if
//      the disk is still registered and the blkcg still online; returned referenced.
//   2. killed (its initial reference dropped, unlinked from both lists) by blkcg offline
//      (wb_blkcg_offline) or by the disk's removal (cgwb_bdi_unregister, at del_gendisk or
//      at the release of a disk that was never deleted).
//   3. the last reference queues release_work on cgwb_release_wq; the work unpins the
//      blkcg online and only then puts the css: the reference keeps the blkcg alive while
//      the unpin destroys its blkgs, whose frees may drop every other reference (the 2026
//      fix of cgwb_release_workfn; before it the put came first).
//
// Locking: cgwb_lock (a global irq-safe spinlock, the kernel's) protects both lists, the
// disk's cgwb_unregistered and the blkcg's cgwb_offline. Order: cgwb_lock is innermost but
// for the workqueue's pool lock (a kill may queue the release work).
#pragma once

#include "impl/block/blk_cgroup.h"
#include "impl/kern/list.h"
#include "impl/kern/percpu_ref.h"
#include "impl/kern/workqueue.h"

namespace blk {

struct gendisk;

struct bdi_writeback {
  blkcg* blkcg = nullptr;   // referenced and pinned until the release work
  kern::percpu_ref refcnt;  // the initial reference + one per user (lookups)
  kern::work_struct release_work;
  // On gendisk::cgwb_list and blkcg::cgwb_list, under cgwb_lock, while the wb is live; a
  // killed wb is on neither.
  kern::list_head disk_node;
  kern::list_head blkcg_node;
};

// The cgwb of (disk, b), referenced, created if needed; nullptr for the root blkcg, on
// the legacy hierarchy, once the disk or the blkcg went, or when the allocation failed
// (the kernel's writeback then uses the disk's root wb). Context: any (GFP_NOWAIT).
bdi_writeback* wb_get_create(gendisk* disk, blkcg* b);
// Context: any.
void wb_put(bdi_writeback* wb);
// Stage 2 for every cgwb of `b`; no new one is created for it afterwards. Context:
// process (blkcg_css_offline, before the offline unpin).
void wb_blkcg_offline(blkcg* b);
// Stage 2 for every cgwb of `disk`; none is created for it afterwards. Idempotent.
// Context: process.
void cgwb_bdi_unregister(gendisk* disk);
// The workqueue the release works run on (the kernel's cgwb_release_wq).
kern::workqueue_struct* cgwb_release_wq();
// Live cgwbs of `b` (under cgwb_lock): the css references and pins they hold, for the
// reference-count oracle. Context: any.
int cgwb_count(blkcg* b);

}  // namespace blk
