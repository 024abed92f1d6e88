// SPDX-License-Identifier: MIT
#include "impl/block/blk_core.h"

#include "impl/block/busted.h"

#include <cerrno>
#include <cstddef>

#include "impl/block/backing_dev.h"
#include "impl/block/blk_stat.h"
#include "impl/block/blk_throttle.h"
#include "impl/kern/clock.h"
#include "impl/kern/task.h"
#include "impl/kern/workqueue.h"

namespace blk {
namespace {

// The device receives `b`: it completes now, or joins the in-flight FIFO of a device with
// latency.
void blk_device_start(bio* b) {
  gendisk* disk = b->disk;
  if (!disk_live(disk)) {  // the disk went away while the request waited for dispatch
    bio_io_error(b);
    return;
  }
  if (disk->on_issue) disk->on_issue(b);
  if (disk->latency == 0) {
    bio_endio(b);
    return;
  }
  b->bi_complete_at = kern::jiffies() + disk->latency;
  bool arm;
  {
    kern::SpinIrqGuard g(disk->dev_lock);
    arm = disk->inflight.empty();
    disk->inflight.add(b);
  }
  if (arm) kern::mod_timer(&disk->dev_timer, b->bi_complete_at);
}

// Takes one of the disk's nr_requests for `b` and queues it for dispatch by the run work;
// returns false when there is none and the caller must wait (or fail the bio).
bool blk_try_get_request(gendisk* disk, bio* b) {
  {
    kern::SpinIrqGuard g(disk->dev_lock);
    if (disk->nr_allocated >= disk->nr_requests) return false;
    ++disk->nr_allocated;
    disk->rq_list.add(b);
  }
  kern::queue_work(kblockd_workqueue(), &disk->run_work);  // blk_run_queue_async
  return true;
}

// get_request_wait: a request for `b`, waiting for one while the pool is empty. The
// requests of the pool are given back only by the run work on kblockd, so the wait is a
// flush of that work; lockdep is told of it on every call (might_flush_work), so that a
// caller which must never wait for kblockd (an item of kblockd itself: bugbench #2) is
// reported whether or not the pool happens to be empty in that run.
void blk_get_request(bio* b) {
  gendisk* disk = b->disk;
  const bool can_sleep = kern::preemptible();
  if (can_sleep) kern::might_flush_work(&disk->run_work, kblockd_workqueue());
  while (!blk_try_get_request(disk, b)) {
    if (!can_sleep) {  // atomic submitter, empty pool: BLK_STS_AGAIN
      std::atomic_ref<int>(b->status).store(-EAGAIN, std::memory_order_relaxed);
      bio_endio(b);
      return;
    }
    kern::queue_work(kblockd_workqueue(), &disk->run_work);  // kick the queue, then wait
    kern::flush_work(&disk->run_work);
  }
}

// The device stage of one piece: straight to the device, or through the request pool.
void blk_device_issue(bio* b) {
  if (!disk_live(b->disk)) {  // blk_queue_enter on a dying queue
    bio_io_error(b);
    return;
  }
  if (b->disk->nr_requests == 0) {
    blk_device_start(b);
    return;
  }
  blk_get_request(b);
}

// From accounting on: split to the device's limit, issue the front, loop with the rest.
void submit_accounted(bio* b, bool throttle_first) {
  for (;;) {
    if (throttle_first) {
      if (!disk_live(b->disk)) {
        bio_io_error(b);
        return;
      }
      if (blk_throtl_bio(b)) return;
    }
    throttle_first = true;
    blk_cgroup_bio_start(b);
    const uint64_t max = b->disk->max_io_bytes;
    if (max == 0 || b->size <= max) {
      blk_device_issue(b);
      return;
    }
    bio* front = bio_split(b, max, kern::GFP_NOIO);
    if (front == nullptr) {  // no memory for the split: fail the whole bio
      bio_io_error(b);
      return;
    }
    blk_device_issue(front);
  }
}

}  // namespace

kern::workqueue_struct* blkcg_punt_bio_wq() {
  static kern::workqueue_struct* wq =
      kern::alloc_workqueue("blkcg_punt_bio", kern::WQ_MEM_RECLAIM, 0);
  return wq;
}

kern::workqueue_struct* kblockd_workqueue() {
  static kern::workqueue_struct* wq = kern::alloc_workqueue("kblockd", kern::WQ_MEM_RECLAIM, 0);
  return wq;
}

// Context: process (kblockd). Hands every queued request to the device and gives the
// requests back to the pool; a disk that stopped being live fails them (-EIO).
void blk_run_work_fn(kern::work_struct* w) {
  gendisk* disk = KERN_CONTAINER_OF(w, gendisk, run_work);
  bio_list list;
  {
    kern::SpinIrqGuard g(disk->dev_lock);
    list = disk->rq_list;  // every allocated request is on it
    disk->rq_list = bio_list{};
    disk->nr_allocated = 0;
  }
  while (bio* b = list.pop()) blk_device_start(b);
}

void blk_device_timer_fn(kern::timer_list* t) {
  gendisk* disk = KERN_CONTAINER_OF(t, gendisk, dev_timer);
  const uint64_t now = kern::jiffies();
  bio_list done;  // completed outside dev_lock: an end_io may submit again
  uint64_t next = 0;
  {
    kern::SpinIrqGuard g(disk->dev_lock);
    // FIFO with one latency per disk: completion times are in list order.
    while (!disk->inflight.empty() && !kern::time_after(disk->inflight.head->bi_complete_at, now))
      done.add(disk->inflight.pop());
    if (!disk->inflight.empty()) next = disk->inflight.head->bi_complete_at;
  }
  if (next) kern::mod_timer(&disk->dev_timer, next);
  while (bio* b = done.pop()) bio_endio(b);
}

void submit_bio_noacct_nocheck(bio* b) { submit_accounted(b, false); }

void submit_bio_noacct(bio* b) { submit_accounted(b, true); }

void submit_bio(bio* b) {
  // Buffered writes come through the cgroup's writeback (the kernel: a dirtied inode
  // attaches to the cgroup's wb); here the wb comes into being with the cgroup's first
  // such write. Direct IO has no wb.
  if ((b->opf & REQ_CGWB) && b->op == bio_op::kWrite && b->bi_blkg != nullptr) {
    if (bdi_writeback* wb = wb_get_create(b->disk, b->bi_blkg->blkcg)) wb_put(wb);
  }
  if ((b->opf & REQ_CGROUP_PUNT) && b->bi_blkg != nullptr) {
    blkcg_punt_bio_submit(b);
    return;
  }
  submit_bio_noacct(b);
}

void blkcg_punt_bio_submit(bio* b) {
  blkcg_gq* blkg = b->bi_blkg;
  if (blkg->parent == nullptr) {  // the root blkg: nothing to protect against
    submit_bio_noacct(b);
    return;
  }
  // The queued work holds a blkg reference, taken before the bio is visible on the list:
  // once it is, a worker already running can submit and complete it and drop the bio's
  // reference, the blkg's last (found by blkcg_torture, twice: first without any
  // reference, then with one taken after the list insertion; busted: punt_work_no_ref).
  const bool ref = !busted().punt_work_no_ref.load(std::memory_order_relaxed);
  if (ref) blkg_get(blkg);
  {
    kern::SpinIrqGuard g(blkg->async_bio_lock);
    blkg->async_bios.add(b);
  }
  if (!kern::queue_work(blkcg_punt_bio_wq(), &blkg->async_bio_work) && ref) blkg_put(blkg);
}

// Context: process (blkcg_punt_bio_wq). Takes the whole list, then submits; the reference
// taken when the work was queued keeps the blkg until the end.
void blkg_async_bio_workfn(kern::work_struct* w) {
  blkcg_gq* blkg = KERN_CONTAINER_OF(w, blkcg_gq, async_bio_work);
  bio_list list;
  {
    kern::SpinIrqGuard g(blkg->async_bio_lock);
    list = blkg->async_bios;
    blkg->async_bios = bio_list{};
  }
  while (bio* b = list.pop()) submit_bio_noacct(b);
  if (!busted().punt_work_no_ref.load(std::memory_order_relaxed)) blkg_put(blkg);  // queueing's
}

}  // namespace blk
