// SPDX-License-Identifier: MIT
#include "impl/block/blk_core.h"

#include <cerrno>
#include <cstddef>

#include "impl/block/blk_stat.h"

namespace blk {

kern::workqueue_struct* blkcg_punt_bio_wq() {
  static kern::workqueue_struct* wq =
      kern::alloc_workqueue("blkcg_punt_bio", kern::WQ_MEM_RECLAIM, 0);
  return wq;
}

void bio_endio(bio* b) { bio_put(b); }

void submit_bio_noacct_nocheck(bio* b) {
  blk_cgroup_bio_start(b);
  bio_endio(b);  // the zero-latency device
}

void submit_bio_noacct(bio* b) {
  if (!disk_live(b->disk)) {
    b->status = -EIO;
    bio_endio(b);
    return;
  }
  submit_bio_noacct_nocheck(b);
}

void submit_bio(bio* b) {
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
  {
    kern::SpinIrqGuard g(blkg->async_bio_lock);
    b->bi_next = nullptr;
    if (blkg->async_last)
      blkg->async_last->bi_next = b;
    else
      blkg->async_first = b;
    blkg->async_last = b;
  }
  kern::queue_work(blkcg_punt_bio_wq(), &blkg->async_bio_work);
}

// Context: process (blkcg_punt_bio_wq). Takes the whole list, then submits without
// touching the blkg again: the last submission may drop its last reference.
void blkg_async_bio_workfn(kern::work_struct* w) {
  auto* blkg = reinterpret_cast<blkcg_gq*>(reinterpret_cast<char*>(w) -
                                           offsetof(blkcg_gq, async_bio_work));
  bio* list;
  {
    kern::SpinIrqGuard g(blkg->async_bio_lock);
    list = blkg->async_first;
    blkg->async_first = blkg->async_last = nullptr;
  }
  while (list != nullptr) {
    bio* next = list->bi_next;
    list->bi_next = nullptr;
    submit_bio_noacct(list);
    list = next;
  }
}

}  // namespace blk
