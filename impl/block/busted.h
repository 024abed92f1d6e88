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
//   lqueued_no_full_barrier  no full barrier between the updater's counter stores and its
//                       lqueued load, nor between the flusher's lqueued clear and its
//                       counter loads (mainline as read): a store-load reorder leaves a
//                       set off-list with an unflushed IO (found by blkcg_torture's
//                       conservation check; stat_litmus_test on real threads).
//   blkg_insert_fail_async  a blkg whose radix insertion failed goes through the async
//                       release (the kernel's and the RFC's way): a deactivation frees its
//                       parent's pd first (testpol: parent-pd-freed-first).
//   unregister_no_wait  blkcg_policy_unregister clears the slot with blkg frees still
//                       pending (mainline as read): the free work finds no policy for a
//                       pd it must free (the kernel dereferences NULL; here a WARN).
//   free_work_unlink_unlocked  the free work unlinks the blkg from q->blkg_list after
//                       dropping blkcg_mutex (before c164c7bc9775, CVE-2023-54088), with a
//                       preemption point between reading the neighbours and writing them:
//                       an insertion or another unlink in that window corrupts the list
//                       (a lost or freed node: ASan, leak check, TSan on real threads).
//   activate_dying_blkg  blkcg_activate_policy attaches pd to a destroyed-but-unfreed blkg
//                       still on q->blkg_list (before 5e9220389920): that pd is freed
//                       online (testpol: pd_free-while-online).
//   blkg_put_nonatomic  blkg_put as a load, a preemption point and a store (the pre-2014
//                       non-atomic refcount, put from the RCU callback without the lock,
//                       #5 of the historical list): a concurrent put is lost, the blkg (and
//                       its queue) leak, or the count drops twice.
//   root_iostat_unpinned  the root's io.stat lists the queues under blkcg->lock, then fills
//                       each without a queue reference: a disk released in between frees
//                       the queue under the fill (found by fuzz_sched; ASan).
//   blkg_create_after_offline  blkg_create inserts a blkg into a blkcg that went offline
//                       after its css_tryget_online (the creation sleeps under blkcg_mutex
//                       in between): a blkg offline destruction never sees, its stats
//                       stranded (found by fuzz_sched; stats conservation).
//   blkcg_put_before_unlink  the blkg's blkcg reference is dropped in the RCU callback,
//                       while the blkg is still on q->blkg_list: a deactivation walking it
//                       locks a freed blkcg (found by blkcg_torture; TSan/ASan).
//   punt_work_no_ref    the punt path queues the blkg's async work without a reference: a
//                       running worker can free the blkg first (found by blkcg_torture).
//   rmdir_offline_before_kill  rmdir offlines (destroys blkgs) before killing the css, so
//                       a creation passing css_tryget_online races the destruction (found
//                       by blkcg_torture: a removed cgroup's io.stat going down).
//   conf_create_nowait  blkg_conf_prep creates missing blkgs with GFP_NOWAIT, as under the
//                       old queue_lock (before 457e490f2b74): a config write fails with
//                       -ENOMEM on a non-blocking allocation (the oracle's spurious-ENOMEM
//                       rule under fault injection).
//   blkg_lookup_mutex_only  blkg_lookup under q->blkcg_mutex alone reads the blkcg's hint
//                       and tree outside an RCU read section (the RFC as posted): the hint
//                       can be another queue's blkg, freed after a grace period the lookup
//                       does not hold off (found by blkcg_torture under TSan; ASan).
//   deactivate_without_blkcg_lock  a policy's pds are offlined, unpublished and freed
//                       holding q->blkcg_mutex only (before 858560b27645, CVE-2021-47379):
//                       reset_stats under blkcg->lock meets an offline or freed pd
//                       (testpol's pd_reset_stats check; ASan).
//   activate_no_pd_fn_check  blkcg_activate_policy accepts a policy without pd callbacks
//                       (before b925680cf083): activating the cpd-only test policy calls
//                       the absent pd_alloc_fn (corpus/scenarios/policy-cpd-only.scn; a
//                       SEGV under ASan/TSan).
// blk-throttle (each caught by the throtl conformance scenario named):
//   throtl_trim_no_slack      trim discards the slice it should keep (before 29cb95593430):
//                             the rate falls below the limit at HZ=100 (throtl/001).
//   throtl_no_carryover       a limit change restarts the wait from zero (before
//                             a880ae93e5b5): throtl/005 takes 5 s, not 3.
//   throtl_split_charges_bps  split pieces are charged bps again (before 111be8839817):
//                             throtl/003 takes 2 s.
//   throtl_split_no_iops      split pieces bypass the throttler (before 9f5ede3c01f9):
//                             throtl/002 takes 0 s.
//   throtl_single_queue       bps-charged bios queue behind uncharged ones (before
//                             d1ba22ab2bec): throtl/007 completes both writers at 2 s.
//   throtl_meta_fifo          REQ_META/REQ_SWAP bios wait like data (before
//                             29390bb5661d): throtl/006's metadata write waits.
//   throtl_flush_own_timer    offline arms the group's own (empty) timer instead of the
//                             parent's dispatch (2026 fix): released bios wait for the
//                             parent's stale timer.
//   throtl_parent_skips_bps   a bio forwarded from a child to its parent is marked as
//                             bps-done (the 2022 bug fixed by "blk-throttle: Fix that bps
//                             of child could exceed bps limited in parent"): the parent's
//                             bps limit stops binding bios queued in children.
//   throtl_v1_stats_only_with_rules  v1 io_service_bytes/io_serviced counted only for bios
//                             of groups with rules (before ad7c3b41e86b): unlimited groups
//                             show no IO.
//   throtl_exit_skips_tg_timers  blk_throtl_exit shuts down only the td's own timer (before
//                             the RFC's patch 4): a tg timer still armed when the td is
//                             freed fires later on it (use-after-free, ASan).
//   throtl_exit_checks_bit    blk_throtl_exit returns when the policy bit is clear, which
//                             blkg_destroy_all already cleared (the 2025 td leak).
//   advance_jiffies_stores_target  the runtime's, not the block layer's: advance_jiffies
//                             ends by storing its own target, so an advance preempted in its
//                             window sets the clock back over a later one (found by a
//                             fuzz_ops campaign): the harness's clock-went-back check.
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "impl/kern/clock.h"

namespace blk {

struct busted_flags {
  std::atomic<bool> reset_wipes_set{false};
  std::atomic<bool> flush_lock_irqs_on{false};
  std::atomic<bool> no_parent_requeue{false};
  std::atomic<bool> lqueued_after_add{false};
  std::atomic<bool> lqueued_no_full_barrier{false};
  std::atomic<bool> unregister_no_wait{false};
  std::atomic<bool> blkg_insert_fail_async{false};
  std::atomic<bool> free_work_unlink_unlocked{false};
  std::atomic<bool> activate_dying_blkg{false};
  std::atomic<bool> blkg_put_nonatomic{false};
  std::atomic<bool> root_iostat_unpinned{false};
  std::atomic<bool> blkg_create_after_offline{false};
  std::atomic<bool> blkcg_put_before_unlink{false};
  std::atomic<bool> punt_work_no_ref{false};
  std::atomic<bool> rmdir_offline_before_kill{false};
  std::atomic<bool> conf_create_nowait{false};
  std::atomic<bool> deactivate_without_blkcg_lock{false};
  std::atomic<bool> blkg_lookup_mutex_only{false};
  std::atomic<bool> activate_no_pd_fn_check{false};
  std::atomic<bool> throtl_trim_no_slack{false};
  std::atomic<bool> throtl_no_carryover{false};
  std::atomic<bool> throtl_split_charges_bps{false};
  std::atomic<bool> throtl_split_no_iops{false};
  std::atomic<bool> throtl_single_queue{false};
  std::atomic<bool> throtl_meta_fifo{false};
  std::atomic<bool> throtl_flush_own_timer{false};
  std::atomic<bool> throtl_exit_checks_bit{false};
  std::atomic<bool> throtl_parent_skips_bps{false};
  std::atomic<bool> throtl_v1_stats_only_with_rules{false};
  std::atomic<bool> throtl_exit_skips_tg_timers{false};
  struct named_flag {
    const char* name;
    std::atomic<bool>* flag;
  };
  // Every flag with its name (tools and scenario runs plant a bug with --busted=NAME).
  std::vector<named_flag> all() {
    return {
        {"reset_wipes_set", &reset_wipes_set},
        {"flush_lock_irqs_on", &flush_lock_irqs_on},
        {"no_parent_requeue", &no_parent_requeue},
        {"lqueued_after_add", &lqueued_after_add},
        {"lqueued_no_full_barrier", &lqueued_no_full_barrier},
        {"throtl_trim_no_slack", &throtl_trim_no_slack},
        {"throtl_no_carryover", &throtl_no_carryover},
        {"throtl_split_charges_bps", &throtl_split_charges_bps},
        {"throtl_split_no_iops", &throtl_split_no_iops},
        {"throtl_single_queue", &throtl_single_queue},
        {"throtl_meta_fifo", &throtl_meta_fifo},
        {"throtl_flush_own_timer", &throtl_flush_own_timer},
        {"throtl_exit_checks_bit", &throtl_exit_checks_bit},
        {"throtl_parent_skips_bps", &throtl_parent_skips_bps},
        {"throtl_v1_stats_only_with_rules", &throtl_v1_stats_only_with_rules},
        {"throtl_exit_skips_tg_timers", &throtl_exit_skips_tg_timers},
        {"unregister_no_wait", &unregister_no_wait},
        {"blkg_insert_fail_async", &blkg_insert_fail_async},
        {"free_work_unlink_unlocked", &free_work_unlink_unlocked},
        {"activate_dying_blkg", &activate_dying_blkg},
        {"blkg_put_nonatomic", &blkg_put_nonatomic},
        {"root_iostat_unpinned", &root_iostat_unpinned},
        {"blkg_create_after_offline", &blkg_create_after_offline},
        {"blkcg_put_before_unlink", &blkcg_put_before_unlink},
        {"punt_work_no_ref", &punt_work_no_ref},
        {"rmdir_offline_before_kill", &rmdir_offline_before_kill},
        {"conf_create_nowait", &conf_create_nowait},
        {"deactivate_without_blkcg_lock", &deactivate_without_blkcg_lock},
        {"blkg_lookup_mutex_only", &blkg_lookup_mutex_only},
        {"activate_no_pd_fn_check", &activate_no_pd_fn_check},
        {"advance_jiffies_stores_target", &kern::detail::advance_stores_target},
    };
  }
  std::atomic<bool>* by_name(const std::string& name) {
    for (const named_flag& t : all())
      if (name == t.name) return t.flag;
    return nullptr;
  }
  // Every flag off again.
  void reset() {
    for (const named_flag& t : all()) t.flag->store(false, std::memory_order_relaxed);
  }
};

// Context: any.
busted_flags& busted();

}  // namespace blk
