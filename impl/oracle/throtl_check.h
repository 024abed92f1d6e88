// SPDX-License-Identifier: MIT
// blk-throttle invariants, checked from outside the implementation (spec §7, §9; issue:
// "Throttle invariants in impl/oracle").
//
//   throtl_check_structure: a snapshot under q->blkcg_mutex and td->lock. Per service
//     queue and direction: the qnodes on the list are non-empty and belong there (the
//     owner's own qnode or a child's qnode_on_parent), the bios on them are counted
//     exactly by nr_queued_bps / nr_queued_iops, every bio on an iops list is bps-charged,
//     no bio sits on two lists; bios submitted to a group leave its own qnode in FIFO
//     order (their throttler sequence numbers increase along each list); the pending list
//     is ordered by disptime, holds exactly nr_pending tgs, each PENDING with this queue
//     as parent; a tg with queued bios is pending and a pending tg has some; td->nr_queued
//     equals the bios queued in all groups. With `timing` (between operations only, when
//     no timer function or dispatch is half-way): a queue with pending groups has its
//     timer armed no later than its first group may dispatch (or now, if that has passed).
//     Returns "" or the first violation, and files a kOracle report for it.
//   RateLog / rate_check: bytes dispatched by a group with a fixed limit, in any window
//     [t1, t2], never exceed limit x (t2 - t1) plus an allowance. The allowance is two
//     slices' worth plus one bio: one slice of budget granted at once when a slice starts,
//     and one more because trimming keeps a slice (29cb95593430) so a group that was
//     under its rate can use that slice's unused budget in one go.
//   throtl_check_drained: nothing is held by the throttler any more (every throttled bio
//     was dispatched or failed).
//   dd_bounds: how long a synchronous issuer (COUNT bios of SIZE bytes from one cgroup,
//     each submitted when the one before completed, alone on the disk) may take, from the
//     limits on its path. Ideal: the largest of bytes / bps and IOs / iops over the
//     groups on the path (IOs count the pieces a split to the device's max_io makes).
//     Faster than ideal by more than four slices plus one bio's worth means a group passed
//     more than its limit (the budget a group may hold: a trim keeps one slice of slack
//     behind and rounds the slice's end up to two slices ahead, and the allowance is
//     rounded up to whole slices); judged with one limited group on the path only (a
//     parent's slice may start with its child's credit). Slower than ideal by more than the
//     device's own time (latency plus timer lateness per bio), two slices, one bio and
//     one timer's lateness per limited group, and an eighth of the ideal, means budget
//     was lost: the rate of a saturated group fell below its limit (29cb95593430). The
//     slack covers timers less than a slice late; with later ones, or an iops limit on the
//     path (each trim rounds a fraction of an IO away), only the lower bound is kept
//     (max = UINT64_MAX).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "impl/block/blk_throttle.h"

namespace oracle {

std::string throtl_check_structure(blk::request_queue* q, bool timing = false);

struct RateLog {
  struct Entry {
    uint64_t jiffies;
    uint64_t bytes;
  };
  std::vector<Entry> entries;  // in time order
  void add(uint64_t jiffies, uint64_t bytes) { entries.push_back({jiffies, bytes}); }
};

// "" or a description of the worst window. bps: the limit; slice: in jiffies.
std::string rate_check(const RateLog& log, uint64_t bps, uint64_t slice, unsigned hz,
                       uint64_t max_bio_bytes);
// The excess of the worst window over limit x window, in bytes (for tests and reports).
int64_t rate_worst_excess(const RateLog& log, uint64_t bps, unsigned hz, uint64_t* t1,
                          uint64_t* t2);

std::string throtl_check_drained(blk::request_queue* q);

// Nothing is queued in the throttler of q (no td counts as idle).
bool throtl_idle(blk::request_queue* q);

struct DdLevel {   // the limits of one group on the issuer's path, for its direction
  uint64_t bps = UINT64_MAX;   // UINT64_MAX: none
  uint64_t iops = UINT32_MAX;  // UINT32_MAX: none
};
struct DdRun {
  unsigned hz = 1000;
  uint64_t slice = 100;     // jiffies
  uint64_t latency = 0;     // the device's completion latency, jiffies
  uint64_t lateness = 0;    // timer lateness, jiffies
  uint64_t size = 0;        // bytes per bio
  uint64_t count = 0;       // bios
  uint64_t pieces = 1;      // per bio, after the split to max_io
  uint64_t debt_bytes = 0;  // the largest bio the disk saw before (a debt it may leave)
};
struct DdBounds {
  bool limited = false;  // some group on the path has a limit for the direction
  uint64_t ideal = 0, min = 0, max = 0;  // jiffies
};
DdBounds dd_bounds(const std::vector<DdLevel>& path, const DdRun& run);

}  // namespace oracle
