// SPDX-License-Identifier: MIT
// Disks and queues: struct request_queue and struct gendisk, with the blkcg hooks of their
// lifecycle (kernel: block/genhd.c, block/blk-core.c, block/blk-cgroup.c).
//
// Lifecycle, in numbered stages:
//   1. blk_alloc_queue + alloc_disk: the queue gets its blkcg_mutex, queue_lock, freeze
//      counter and empty blkg list (blkg_init_queue). A disk that is never added may be
//      released directly (stage 4 only).
//   2. add_disk: blkcg_init_disk creates the root blkg (GFP_KERNEL) and publishes
//      q->root_blkg; the disk becomes live and gets its MAJ:MIN name.
//   3. del_gendisk: the disk stops being live (new IO and config writes get -ENODEV; it
//      leaves the dev_t map); every bio the throttler holds completes with -EIO. blkgs stay.
//   4. disk release (the last disk reference, put_disk): blkcg_exit_disk = blkg_destroy_all
//      under q->blkcg_mutex (every blkg destroyed, q->root_blkg cleared, policy bits
//      cleared), then blk_throtl_exit (timers shut down, td freed), then the queue
//      reference of the disk is dropped. blkgs hold queue references, so the queue memory
//      lives until the last blkg's free work ran.
//
// The device: a bio that reaches it completes at once, or `latency` jiffies later from the
// disk's completion timer when a latency is set (FIFO: the latency is per disk). IO to a
// disk that is no longer live fails with -EIO there. With nr_requests set, a request pool
// and kblockd's run work stand in front of it (blk_core.h). del_gendisk flushes the run
// work (queued requests fail with -EIO) and the release flushes it again.
//
// Locks of a queue and what they protect:
//   blkcg_mutex  (mutex, "q->blkcg_mutex")  the RFC's topology lock: q->blkg_list, blkg
//                creation/destruction, root_blkg publication, policy activation, and the
//                free work's unlink of q_node.
//   queue_lock   (irq-safe spinlock, "q->queue_lock")  queue runtime state; since the RFC
//                not used for blkg topology.
//   q_usage_counter  (freeze counter)  excludes IO while the queue is frozen.
//   rq_qos_mutex (mutex)  serialises configuration writes (io.max) and lazy throttle
//                activation on the queue. Order: rq_qos_mutex -> freeze -> blkcg_mutex.
#pragma once

#include <atomic>
#include <string>

#include <functional>

#include "impl/block/bio_list.h"
#include "impl/kern/list.h"
#include "impl/kern/lock.h"
#include "impl/kern/refcount.h"
#include "impl/kern/timer.h"
#include "impl/kern/workqueue.h"

namespace blk {

struct bio;
struct blkcg_gq;
struct bdi_writeback;
struct throtl_data;

struct request_queue {
  explicit request_queue(int id_) : id(id_) {}
  const int id;  // key of blkcg->blkg_tree
  kern::mutex blkcg_mutex{"q->blkcg_mutex"};
  kern::spinlock_t queue_lock{"q->queue_lock"};
  kern::freeze_counter q_usage_counter{"q->q_usage_counter"};
  // Guarded by blkcg_mutex. New blkgs go to the head, so a reverse walk sees parents first.
  blkcg_gq* blkg_list_first GUARDED_BY(blkcg_mutex) = nullptr;
  // Published with release under blkcg_mutex; read under RCU (acquire).
  std::atomic<blkcg_gq*> root_blkg{nullptr};
  // Bit plid set: that policy is activated on this queue. Changed under blkcg_mutex
  // (release), read anywhere (acquire), like the kernel's test_bit.
  std::atomic<unsigned> blkcg_pols{0};
  // blk_get_queue / blk_put_queue: the disk holds one, every blkg holds one.
  kern::refcount_t refs;
  std::atomic<bool> dying{false};
  std::string dev_name;  // "MAJ:MIN", set at alloc_disk
  // Whole-disk IO totals (the kernel's bd_stats): the root cgroup's io.stat source.
  std::atomic<uint64_t> disk_bytes[3] = {};
  std::atomic<uint64_t> disk_ios[3] = {};
  kern::mutex rq_qos_mutex{"q->rq_qos_mutex"};
  // blk-throttle's per-queue data; set once (release) by blk_throtl_init under
  // rq_qos_mutex, cleared by blk_throtl_exit. Readers: blk_throtl_activated (acquire).
  std::atomic<throtl_data*> td{nullptr};
};

enum class disk_state : uint8_t { kAllocated, kLive, kDeleted, kReleased };

struct gendisk {
  int major = 0, minor = 0;
  std::string name;  // "MAJ:MIN"
  request_queue* queue = nullptr;
  std::atomic<disk_state> state{disk_state::kAllocated};
  // The owner's reference plus one per blkdev_get_no_open user; the last put releases.
  kern::refcount_t refs;
  // Device limits and behaviour, set by the scenario before IO starts.
  uint64_t max_io_bytes = 0;  // 0: no limit; else bios are split to this size
  uint64_t latency = 0;       // jiffies from issue to completion
  // Called for every bio the device receives (after splitting), before it completes.
  // Scenario hook: dispatch logs for checks. Set before IO starts.
  std::function<void(bio*)> on_issue;
  // Called by blk_cgroup_bio_start for every bio it accounts, before it sets
  // BIO_CGROUP_ACCT (first_piece: the bytes are counted now). Scenario hook for the model.
  std::function<void(bio*, bool first_piece)> on_account;
  // In-flight bios of a device with latency, FIFO, and the timer that completes them.
  kern::spinlock_t dev_lock{"disk->dev_lock"};
  bio_list inflight GUARDED_BY(dev_lock);
  kern::timer_list dev_timer;
  // The request pool (blk_core.h): nr_requests is set before IO starts (0: none, every
  // piece goes straight to the device). Under dev_lock: the FIFO of pieces that hold a
  // request and wait for the run work (on kblockd) to dispatch them, and its length (a
  // request is held exactly while its piece is on the list).
  unsigned nr_requests = 0;
  bio_list rq_list GUARDED_BY(dev_lock);
  unsigned nr_allocated GUARDED_BY(dev_lock) = 0;
  kern::work_struct run_work;
  // The disk's live cgroup writebacks and whether its removal killed them (no new one is
  // created then); both under cgwb_lock (backing_dev.h).
  kern::list_head cgwb_list;  // bdi_writeback::disk_node
  bool cgwb_unregistered = false;
};

// Stage 1. Returns nullptr on allocation failure. Context: process, may sleep.
gendisk* alloc_disk(int major, int minor, int queue_id);
// Stage 2. 0 or -ENOMEM (root blkg allocation). Context: process, may sleep.
int add_disk(gendisk* disk);
// Stage 3. Context: process, may sleep.
void del_gendisk(gendisk* disk);
// Stage 4: drops the owner's reference (put_disk); the last reference runs the release,
// which also works on a disk that was never added. Context: process, may sleep.
void disk_release(gendisk* disk);
void put_disk(gendisk* disk);
// The whole disk with this dev_t, with a reference (nullptr: none, or a partition, or it
// left the map at del_gendisk). Context: process.
gendisk* blkdev_get_no_open(unsigned major, unsigned minor);
// Registers partition `partno` of a live disk as dev_t (major, minor + partno), so that
// configuration writes naming it are refused (-ENODEV) as the kernel does. 0 or -EEXIST.
// Context: process.
int add_partition(gendisk* disk, int partno);

// Context: any (snapshot).
bool disk_live(const gendisk* disk);
// Queue references. Context: any.
void blk_get_queue(request_queue* q);
void blk_put_queue(request_queue* q);

}  // namespace blk
