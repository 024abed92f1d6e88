// SPDX-License-Identifier: MIT
#include "impl/block/genhd.h"

#include <cerrno>

#include "impl/block/blkg.h"
#include "impl/kern/alloc.h"
#include "impl/kern/report.h"

namespace blk {

void blk_get_queue(request_queue* q) { kern::refcount_inc(q->refs); }

void blk_put_queue(request_queue* q) {
  if (kern::refcount_dec_and_test(q->refs)) kern::kfree(q);
}

gendisk* alloc_disk(int major, int minor, int queue_id) {
  kern::might_sleep("alloc_disk");
  request_queue* q = kern::kzalloc_obj<request_queue>(kern::GFP_KERNEL, "blk_alloc_queue", queue_id);
  if (!q) return nullptr;
  q->refs.name = "q->refs";
  kern::refcount_set(q->refs, 1);  // the disk's reference
  gendisk* disk = kern::kzalloc_obj<gendisk>(kern::GFP_KERNEL, "alloc_disk");
  if (!disk) {
    blk_put_queue(q);
    return nullptr;
  }
  disk->major = major;
  disk->minor = minor;
  disk->name = std::to_string(major) + ":" + std::to_string(minor);
  disk->queue = q;
  q->dev_name = disk->name;
  return disk;
}

int add_disk(gendisk* disk) {
  kern::might_sleep("add_disk");
  request_queue* q = disk->queue;
  blkcg* root = blkcg_root();
  if (WARN_ON(root == nullptr)) return -ENODEV;
  {
    // blkcg_init_disk: the root blkg, GFP_KERNEL, under the topology lock.
    kern::MutexGuard m(q->blkcg_mutex);
    int err;
    blkcg_gq* blkg = blkg_create(root, q, kern::GFP_KERNEL, &err);
    if (!blkg) return err;
    q->root_blkg.store(blkg, std::memory_order_release);
  }
  disk->state.store(disk_state::kLive, std::memory_order_release);
  return 0;
}

void del_gendisk(gendisk* disk) {
  kern::might_sleep("del_gendisk");
  disk->state.store(disk_state::kDeleted, std::memory_order_release);
  disk->queue->dying.store(true, std::memory_order_release);
  // (blk_throtl_cancel_bios: throttle slice)
}

void disk_release(gendisk* disk) {
  kern::might_sleep("disk_release");
  request_queue* q = disk->queue;
  disk->state.store(disk_state::kReleased, std::memory_order_release);
  q->dying.store(true, std::memory_order_release);
  blkg_destroy_all(q);  // blkcg_exit_disk
  kern::kfree(disk);
  blk_put_queue(q);  // blkgs still waiting for their free work keep the queue alive
}

bool disk_live(const gendisk* disk) {
  return disk->state.load(std::memory_order_acquire) == disk_state::kLive;
}

}  // namespace blk
