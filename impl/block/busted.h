// SPDX-License-Identifier: MIT
// Deliberately broken variants of impl/block (rcutorture's "busted" idea): each flag puts
// one historical bug back, so a test can show that the checker meant for that bug class
// fires. All flags are off in normal runs; a test that sets one resets it.
//
//   reset_wipes_set     blkcg_reset_stats clears whole iostat sets, back pointer included
//                       (CVE-2023-53421): the next flush dereferences NULL (ASan/UBSan).
//   flush_lock_irqs_on  the flush takes blkg_stat_lock without disabling IRQs while the
//                       release path takes it from softirq (9c39b7a905d8): lockdep's
//                       IRQ-safety check.
//   no_parent_requeue   the flush propagates into the parent but does not queue the
//                       parent's set (before 9d230c09964e): grandparents lose updates,
//                       caught by stats conservation.
//   lqueued_after_add   the updater sets a set's lqueued after llist_add (mainline's order
//                       in blk_cgroup_bio_start): a flusher on another CPU that takes the
//                       node in between clears lqueued first, the late set strands the
//                       set off-list for good; caught by conservation under controlled
//                       schedules (stat_race_test).
#pragma once

#include <atomic>

namespace blk {

struct busted_flags {
  std::atomic<bool> reset_wipes_set{false};
  std::atomic<bool> flush_lock_irqs_on{false};
  std::atomic<bool> no_parent_requeue{false};
  std::atomic<bool> lqueued_after_add{false};
};

// Context: any.
busted_flags& busted();

}  // namespace blk
