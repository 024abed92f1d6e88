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
//   3. del_gendisk: the disk stops being live (new IO and config writes get -ENODEV);
//      throttled bios are cancelled (throttle slice). blkgs stay.
//   4. disk release (the last disk reference): blkcg_exit_disk = blkg_destroy_all under
//      q->blkcg_mutex (every blkg destroyed, q->root_blkg cleared, policy bits cleared),
//      then the queue reference of the disk is dropped. blkgs hold queue references, so the
//      queue memory lives until the last blkg's free work ran.
//
// Locks of a queue and what they protect:
//   blkcg_mutex  (mutex, "q->blkcg_mutex")  the RFC's topology lock: q->blkg_list, blkg
//                creation/destruction, root_blkg publication, policy activation, and the
//                free work's unlink of q_node.
//   queue_lock   (irq-safe spinlock, "q->queue_lock")  queue runtime state; since the RFC
//                not used for blkg topology.
//   q_usage_counter  (freeze counter)  excludes IO while the queue is frozen.
#pragma once

#include <atomic>
#include <string>

#include "impl/kern/lock.h"
#include "impl/kern/refcount.h"

namespace blk {

struct blkcg_gq;

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
};

enum class disk_state : uint8_t { kAllocated, kLive, kDeleted, kReleased };

struct gendisk {
  int major = 0, minor = 0;
  std::string name;  // "MAJ:MIN"
  request_queue* queue = nullptr;
  std::atomic<disk_state> state{disk_state::kAllocated};
};

// Stage 1. Returns nullptr on allocation failure. Context: process, may sleep.
gendisk* alloc_disk(int major, int minor, int queue_id);
// Stage 2. 0 or -ENOMEM (root blkg allocation). Context: process, may sleep.
int add_disk(gendisk* disk);
// Stage 3. Context: process, may sleep.
void del_gendisk(gendisk* disk);
// Stage 4; also valid on a disk that was never added. Frees the disk. Context: process.
void disk_release(gendisk* disk);

// Context: any (snapshot).
bool disk_live(const gendisk* disk);
// Queue references. Context: any.
void blk_get_queue(request_queue* q);
void blk_put_queue(request_queue* q);

}  // namespace blk
