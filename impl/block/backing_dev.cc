// SPDX-License-Identifier: MIT
#include "impl/block/backing_dev.h"

#include "impl/block/cgroup.h"
#include "impl/block/genhd.h"
#include "impl/kern/alloc.h"
#include "impl/kern/container_of.h"
#include "impl/kern/lock.h"

namespace blk {
namespace {

kern::spinlock_t& cgwb_lock() {
  static kern::spinlock_t* l = new kern::spinlock_t("cgwb_lock");
  return *l;
}

// Stage 3: the sleeping part of the release. Context: process (cgwb_release_wq).
void cgwb_release_workfn(kern::work_struct* w) {
  bdi_writeback* wb = KERN_CONTAINER_OF(w, bdi_writeback, release_work);
  blkcg* b = wb->blkcg;
  // Unpin first, then put: our reference is what keeps `b` alive while the unpin
  // destroys its blkgs (their frees drop their own references meanwhile).
  blkcg_unpin_online(b);
  css_put(b);
  kern::percpu_ref_exit(&wb->refcnt);
  kern::kfree(wb);
}

// The last reference went. Context: any (where the last wb_put or the kill ran).
void cgwb_release(kern::percpu_ref* ref) {
  bdi_writeback* wb = KERN_CONTAINER_OF(ref, bdi_writeback, refcnt);
  kern::queue_work(cgwb_release_wq(), &wb->release_work);
}

// Unlink and drop the initial reference. Caller holds cgwb_lock.
void cgwb_kill(bdi_writeback* wb) {
  kern::list_del_init(&wb->disk_node);
  kern::list_del_init(&wb->blkcg_node);
  kern::percpu_ref_kill(&wb->refcnt);
}

// Kill every wb on `head` (a disk's or a blkcg's list, by `Member`). Caller holds cgwb_lock.
template <kern::list_head bdi_writeback::*Member>
void cgwb_kill_all(kern::list_head* head) {
  while (!kern::list_empty(head)) cgwb_kill(kern::list_entry<bdi_writeback, Member>(head->next));
}

// A live wb of (disk, b), referenced, or nullptr. Caller holds cgwb_lock.
bdi_writeback* cgwb_lookup(gendisk* disk, blkcg* b) {
  for (kern::list_head* n = disk->cgwb_list.next; n != &disk->cgwb_list; n = n->next) {
    bdi_writeback* wb = kern::list_entry<bdi_writeback, &bdi_writeback::disk_node>(n);
    if (wb->blkcg == b) return kern::percpu_ref_tryget(&wb->refcnt) ? wb : nullptr;
  }
  return nullptr;
}

}  // namespace

kern::workqueue_struct* cgwb_release_wq() {
  static kern::workqueue_struct* wq = kern::alloc_workqueue("cgwb_release", 0, 1);
  return wq;
}

bdi_writeback* wb_get_create(gendisk* disk, blkcg* b) {
  if (b == nullptr || b->parent == nullptr || !cgroup_subsys_on_dfl()) return nullptr;
  {
    kern::SpinIrqGuard g(cgwb_lock());
    if (bdi_writeback* wb = cgwb_lookup(disk, b)) return wb;
  }
  bdi_writeback* wb = kern::kzalloc_obj<bdi_writeback>(kern::GFP_NOWAIT, "cgwb_create");
  if (wb == nullptr) return nullptr;
  wb->blkcg = b;
  kern::percpu_ref_init(&wb->refcnt, cgwb_release, "wb->refcnt");
  kern::INIT_WORK(&wb->release_work, cgwb_release_workfn, "cgwb_release_work");
  bdi_writeback* found;
  bool linked = false;
  {
    kern::SpinIrqGuard g(cgwb_lock());
    found = cgwb_lookup(disk, b);  // another writer may have created it meanwhile
    if (found == nullptr && !disk->cgwb_unregistered && !b->cgwb_offline) {
      kern::list_add(&wb->disk_node, &disk->cgwb_list);
      kern::list_add(&wb->blkcg_node, &b->cgwb_list);
      blkcg_pin_online(b);
      css_get(b);
      kern::percpu_ref_get(&wb->refcnt);  // the caller's, beside the initial one
      linked = true;
    }
  }
  if (linked) return wb;
  kern::percpu_ref_exit(&wb->refcnt);
  kern::kfree(wb);
  return found;
}

void wb_put(bdi_writeback* wb) { kern::percpu_ref_put(&wb->refcnt); }

void wb_blkcg_offline(blkcg* b) {
  kern::SpinIrqGuard g(cgwb_lock());
  b->cgwb_offline = true;
  cgwb_kill_all<&bdi_writeback::blkcg_node>(&b->cgwb_list);
}

void cgwb_bdi_unregister(gendisk* disk) {
  kern::SpinIrqGuard g(cgwb_lock());
  disk->cgwb_unregistered = true;
  cgwb_kill_all<&bdi_writeback::disk_node>(&disk->cgwb_list);
}

int cgwb_count(blkcg* b) {
  kern::SpinIrqGuard g(cgwb_lock());
  int n = 0;
  for (kern::list_head* p = b->cgwb_list.next; p != &b->cgwb_list; p = p->next) ++n;
  return n;
}

}  // namespace blk
