// SPDX-License-Identifier: MIT
#include "impl/block/genhd.h"

#include <cerrno>
#include <map>
#include <utility>

#include "impl/block/backing_dev.h"
#include "impl/block/bio.h"
#include "impl/block/blk_core.h"
#include "impl/block/blk_throttle.h"
#include "impl/block/blkg.h"
#include "impl/kern/alloc.h"
#include "impl/kern/lockdep.h"
#include "impl/kern/report.h"
#include "impl/kern/task.h"

namespace blk {
namespace {

struct bdev_entry {
  gendisk* disk;
  bool partition;
};

// The dev_t map (the kernel's bdev inode hash). bdev_map_lock protects the map; a lookup
// takes its disk reference under it (inc_not_zero: a disk in its release is not found).
kern::mutex& bdev_map_lock() {
  static kern::mutex* m = new kern::mutex("bdev_map_lock");
  return *m;
}
std::map<std::pair<unsigned, unsigned>, bdev_entry>& bdev_map() {
  static auto* m = new std::map<std::pair<unsigned, unsigned>, bdev_entry>();
  return *m;
}

void bdev_unmap(gendisk* disk) {
  kern::MutexGuard g(bdev_map_lock());
  for (auto it = bdev_map().begin(); it != bdev_map().end();) {
    if (it->second.disk == disk)
      it = bdev_map().erase(it);
    else
      ++it;
  }
}

// The last reference: stage 4.
void disk_release_final(gendisk* disk) {
  kern::might_sleep("disk_release");
  request_queue* q = disk->queue;
  bdev_unmap(disk);
  disk->state.store(disk_state::kReleased, std::memory_order_release);
  q->dying.store(true, std::memory_order_release);
  blk_throtl_cancel_bios(disk);  // a no-op after del_gendisk; a never-deleted disk needs it
  cgwb_bdi_unregister(disk);     // the same
  blkg_destroy_all(q);  // blkcg_exit_disk
  blk_throtl_exit(disk);
  kern::flush_work(&disk->run_work);  // a disk released without del_gendisk
  kern::timer_shutdown_sync(&disk->dev_timer);
  {
    kern::SpinIrqGuard g(disk->dev_lock);
    WARN_ON(!disk->inflight.empty());  // the device still holds bios
    WARN_ON(!disk->rq_list.empty() || disk->nr_allocated != 0);  // or requests
  }
  kern::kfree(disk);
  blk_put_queue(q);  // blkgs still waiting for their free work keep the queue alive
}

}  // namespace

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
  disk->refs.name = "disk->refs";
  kern::refcount_set(disk->refs, 1);  // the owner's
  kern::timer_setup(&disk->dev_timer, blk_device_timer_fn, "disk->dev_timer");
  kern::INIT_WORK(&disk->run_work, blk_run_work_fn, "blk_run_work");
  q->dev_name = disk->name;
  // Reclaim writes dirty pages back through the block layer, and a writeback bio may
  // create its cgroup's blkg under q->blkcg_mutex: fs_reclaim -> q->blkcg_mutex. Primed
  // here for lockdep (bookkeeping only, nothing is locked), so an allocation that may
  // enter FS reclaim while holding blkcg_mutex (GFP_KERNEL instead of GFP_NOIO; the
  // 2011 per-CPU stats deadlock, 5d726c4dbeed's frozen-queue one) is reported as a
  // lock-order cycle whether or not reclaim happens in that run.
  kern::fs_reclaim_acquire();
  kern::lock_acquire(q->blkcg_mutex.cls(), q->blkcg_mutex.dep_instance(), false, false, 0,
                     std::source_location::current());
  kern::lock_release(q->blkcg_mutex.cls(), q->blkcg_mutex.dep_instance(),
                     std::source_location::current());
  kern::fs_reclaim_release();
  return disk;
}

int add_disk(gendisk* disk) {
  kern::might_sleep("add_disk");
  request_queue* q = disk->queue;
  blkcg* root = blkcg_root();
  if (WARN_ON(root == nullptr)) return -ENODEV;
  {
    // blkcg_init_disk: the root blkg, under the topology lock. The RFC (patch 16) asks
    // for GFP_KERNEL here; but writeback, which runs from reclaim, creates blkgs under
    // blkcg_mutex too (fs_reclaim -> q->blkcg_mutex), and lockdep keys on the class, not
    // the queue: a GFP_KERNEL allocation under any queue's blkcg_mutex is a reported
    // cycle, although this queue is not live yet. A noio scope (GFP_NOIO in effect) keeps
    // the RFC's call and is what the kernel would need; reported on the RFC.
    kern::MutexGuard m(q->blkcg_mutex);
    int err;
    const unsigned noio = kern::memalloc_noio_save();
    blkcg_gq* blkg = blkg_create(root, q, kern::GFP_KERNEL, &err);
    kern::memalloc_noio_restore(noio);
    if (!blkg) return err;
    q->root_blkg.store(blkg, std::memory_order_release);
  }
  {
    kern::MutexGuard g(bdev_map_lock());
    bdev_map()[{static_cast<unsigned>(disk->major), static_cast<unsigned>(disk->minor)}] = {
        disk, false};
  }
  disk->state.store(disk_state::kLive, std::memory_order_release);
  return 0;
}

int add_partition(gendisk* disk, int partno) {
  kern::MutexGuard g(bdev_map_lock());
  const std::pair<unsigned, unsigned> dev{static_cast<unsigned>(disk->major),
                                          static_cast<unsigned>(disk->minor + partno)};
  if (partno <= 0 || bdev_map().count(dev)) return -EEXIST;
  bdev_map()[dev] = {disk, true};
  return 0;
}

gendisk* blkdev_get_no_open(unsigned major, unsigned minor) {
  kern::MutexGuard g(bdev_map_lock());
  auto it = bdev_map().find({major, minor});
  if (it == bdev_map().end() || it->second.partition) return nullptr;
  gendisk* disk = it->second.disk;
  return kern::refcount_inc_not_zero(disk->refs) ? disk : nullptr;
}

void del_gendisk(gendisk* disk) {
  kern::might_sleep("del_gendisk");
  disk->state.store(disk_state::kDeleted, std::memory_order_release);
  disk->queue->dying.store(true, std::memory_order_release);
  bdev_unmap(disk);
  // Serialise with a configuration write in progress (it re-checks disk_live under the
  // mutex), then fail every bio the throttler still holds.
  { kern::MutexGuard g(disk->queue->rq_qos_mutex); }
  blk_throtl_cancel_bios(disk);
  kern::flush_work(&disk->run_work);  // requests waiting for dispatch fail with -EIO
  cgwb_bdi_unregister(disk);  // bdi_unregister
}

void put_disk(gendisk* disk) {
  if (kern::refcount_dec_and_test(disk->refs)) disk_release_final(disk);
}

void disk_release(gendisk* disk) { put_disk(disk); }

bool disk_live(const gendisk* disk) {
  return disk->state.load(std::memory_order_acquire) == disk_state::kLive;
}

}  // namespace blk
