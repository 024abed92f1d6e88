// SPDX-License-Identifier: MIT
// "testpol": a blkcg policy that checks its own lifecycle, shipped so that tests, fuzzers
// and stress runs notice any misuse of the policy callbacks by the core.
//
// Checked (each violation is a kOracle report "testpol:<what>"):
//   - every pd goes alloc -> init -> online -> offline -> free, each step at most once, in
//     that order (online may be skipped: alloc -> init -> free; offline only if online);
//   - pd_init finds its parent's pd already initialised (ancestors first, 2019 fix) and
//     counts itself as a live child of it; a parent pd freed while a child pd is still
//     live is reported (c7241babf085: parent put after child pd free);
//   - no callback runs on a pd after its free (pds are really freed: ASan sees a late use);
//   - pd_reset_stats (blkio.reset_stats, a walker under blkcg->lock) only meets pds that
//     are initialised or online (858560b27645: pds offlined and freed without that lock);
//   - cpds are allocated and freed once each;
//   - a pd is allocated only for a blkcg that has the policy's cpd (pd_alloc reads it, as
//     real policies read their per-cgroup weight: 06b285bd1125).
// testpol_cpd_only() is a second policy with cpd callbacks and no pd callbacks (blk-ioprio's
// shape): registering it gives every blkcg a cpd; activating it must fail with -EINVAL and
// a warning (b925680cf083), never call the absent pd_alloc_fn.
// Counters (calls per callback, live pds/cpds) let tests assert balances. State is
// process-global; testpol_reset() starts a fresh world (every pd must be freed by then).
#pragma once

#include <cstdint>

#include "impl/block/blkcg_policy.h"

namespace blk {

struct testpol_counters {
  uint64_t pd_alloc = 0, pd_init = 0, pd_online = 0, pd_offline = 0, pd_free = 0;
  uint64_t cpd_alloc = 0, cpd_free = 0;
  uint64_t cpd_only_alloc = 0, cpd_only_free = 0;  // testpol_cpd_only()'s cpds
  uint64_t pd_reset_stats = 0;
  int64_t live_pds() const { return static_cast<int64_t>(pd_alloc - pd_free); }
  int64_t live_cpds() const { return static_cast<int64_t>(cpd_alloc - cpd_free); }
};

// The policy object, its lifecycle counters, and a reset between tests. Context: any;
// reset only while no queue has the policy active.
blkcg_policy* testpol();
blkcg_policy* testpol_cpd_only();
testpol_counters testpol_get_counters();
void testpol_reset();

}  // namespace blk
