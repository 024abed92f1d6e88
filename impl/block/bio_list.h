// SPDX-License-Identifier: MIT
// struct bio_list (kernel: include/linux/bio.h): a FIFO of bios linked through bi_next.
// No lock of its own: the owner's lock protects it (a throttle qnode's td->lock, a blkg's
// async_bio_lock for its punt list, a disk's dev_lock for its request pool and for the
// bios in flight at the device).
#pragma once

namespace blk {

struct bio;

struct bio_list {
  bio* head = nullptr;
  bio* tail = nullptr;
  bool empty() const { return head == nullptr; }
  void add(bio* b);  // at the tail
  bio* pop();        // the head, unlinked; nullptr if empty
};

}  // namespace blk
