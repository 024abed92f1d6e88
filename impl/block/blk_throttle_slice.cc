// SPDX-License-Identifier: MIT
// blk-throttle budget arithmetic: slices, the bps and iops checks, charging, trimming,
// carry-over on limit changes (kernel-blkcg spec §7.2, §7.3, §7.5). Every function here
// runs with td->lock held.
#include <algorithm>

#include "impl/block/blk_throttle.h"
#include "impl/block/busted.h"
#include "impl/kern/clock.h"
#include "impl/kern/report.h"

namespace blk {
namespace throtl {
namespace {

uint64_t roundup(uint64_t x, uint64_t m) { return (x + m - 1) / m * m; }
uint64_t rounddown(uint64_t x, uint64_t m) { return x / m * m; }

// bps discard counts 512 bytes (throtl_bio_data_size); io.stat counts its real size.
uint64_t bio_data_size(const bio* b) {
  if (b->op == bio_op::kDiscard) return 512;
  // Planted (busted): a split remainder is charged the size of its next piece again.
  if ((b->flags & BIO_BPS_THROTTLED) && b->disk->max_io_bytes &&
      busted().throtl_split_charges_bps.load(std::memory_order_relaxed))
    return std::min(b->size, b->disk->max_io_bytes);
  return b->size;
}

// Extends the slice to cover `end` (rounded up to a slice multiple); never shortens it.
void throtl_extend_slice(throtl_grp* tg, int rw, uint64_t end) {
  const uint64_t e = roundup(end, slice_len(tg));
  if (kern::time_after(e, tg->slice_end[rw])) tg->slice_end[rw] = e;
}

// Before a check: a fresh slice if the old one is over and nothing waits in this
// direction, else keep the slice open for at least one more slice length.
void tg_update_slice(throtl_grp* tg, int rw) {
  if (throtl_slice_used(tg, rw) && sq_queued(&tg->service_queue, rw) == 0)
    throtl_start_new_slice(tg, rw, true);
  else
    throtl_extend_slice(tg, rw, kern::jiffies() + slice_len(tg));
}

// Jiffies until `b` fits the bps budget (0: it fits now).
uint64_t tg_within_bps_limit(throtl_grp* tg, bio* b, uint64_t bps) {
  const int rw = rw_of(b);
  const uint64_t elapsed = kern::jiffies() - tg->slice_start[rw];
  const uint64_t rnd = roundup(elapsed == 0 ? slice_len(tg) : elapsed, slice_len(tg));
  const uint64_t allowed = calculate_bytes_allowed(bps, rnd);
  const __int128 want = static_cast<__int128>(tg->bytes_disp[rw]) + bio_data_size(b);
  if (allowed == THROTL_U64_MAX || (allowed > 0 && want <= static_cast<__int128>(allowed)))
    return 0;
  const __int128 extra = want - static_cast<__int128>(allowed);
  __int128 wait = extra * kern::hz() / bps;
  if (wait < 1) wait = 1;
  // Plus the rounding slack the budget above was computed with.
  return static_cast<uint64_t>(std::min<__int128>(wait, UINT32_MAX)) + (rnd - elapsed);
}

// Jiffies until one more IO fits the iops budget (0: now). Never a zero wait when over
// (the 2019 busy-loop fix): at least HZ/iops + 1.
uint64_t tg_within_iops_limit(throtl_grp* tg, bio* b, uint32_t iops) {
  const int rw = rw_of(b);
  const uint64_t elapsed = kern::jiffies() - tg->slice_start[rw];
  const uint64_t rnd = roundup(elapsed + 1, slice_len(tg));
  const int64_t allowed = static_cast<int64_t>(calculate_io_allowed(iops, rnd));
  if (allowed > 0 && tg->io_disp[rw] + 1 <= allowed) return 0;
  return std::max<uint64_t>(rnd - elapsed, kern::hz() / iops + 1);
}

}  // namespace

// limit * elapsed / HZ, saturating (the kernel: mul_u64_u64_div_u64 behind an ilog2
// overflow guard). 64-bit arithmetic when the product fits, 128-bit otherwise.
uint64_t calculate_bytes_allowed(uint64_t bps, uint64_t elapsed) {
  uint64_t prod;
  if (!__builtin_mul_overflow(bps, elapsed, &prod)) return prod / kern::hz();
  const unsigned __int128 v = static_cast<unsigned __int128>(bps) * elapsed / kern::hz();
  return v >= THROTL_U64_MAX ? THROTL_U64_MAX : static_cast<uint64_t>(v);
}

uint64_t calculate_io_allowed(uint32_t iops, uint64_t elapsed) {
  uint64_t prod;
  uint64_t v;
  if (!__builtin_mul_overflow(static_cast<uint64_t>(iops), elapsed, &prod))
    v = prod / kern::hz();
  else
    v = static_cast<uint64_t>(
        std::min<unsigned __int128>(static_cast<unsigned __int128>(iops) * elapsed / kern::hz(),
                                    THROTL_U32_MAX));
  return v >= THROTL_U32_MAX ? THROTL_U32_MAX : v;
}

// The root tg is never limited on v2 (and has no io.max); v1 may limit the root.
uint64_t tg_bps_limit(throtl_grp* tg, int rw) {
  if (tg->blkg->parent == nullptr && cgroup_subsys_on_dfl()) return THROTL_U64_MAX;
  return tg->bps[rw].load(std::memory_order_relaxed);
}

uint32_t tg_iops_limit(throtl_grp* tg, int rw) {
  if (tg->blkg->parent == nullptr && cgroup_subsys_on_dfl()) return THROTL_U32_MAX;
  return tg->iops[rw].load(std::memory_order_relaxed);
}

void throtl_start_new_slice(throtl_grp* tg, int rw, bool clear) {
  if (clear) {
    tg->bytes_disp[rw] = 0;
    tg->io_disp[rw] = 0;
  }
  tg->slice_start[rw] = kern::jiffies();
  tg->slice_end[rw] = kern::jiffies() + slice_len(tg);
}

bool throtl_slice_used(throtl_grp* tg, int rw) {
  const uint64_t now = kern::jiffies();
  return !(kern::time_after_eq(now, tg->slice_start[rw]) &&
           kern::time_after_eq(tg->slice_end[rw], now));
}

// After a bio passed this level: drop whole consumed slices from the budget, keeping one
// slice of slack for rounding and timer lateness (29cb95593430), once two have passed.
void throtl_trim_slice(throtl_grp* tg, int rw) {
  const uint64_t bps = tg_bps_limit(tg, rw);
  const uint32_t iops = tg_iops_limit(tg, rw);
  // No limit in this direction: nothing to trim. (The kernel goes on to move slice_end
  // and returns before touching the counters; a slice of an unlimited direction is never
  // read before tg_conf_updated restarts it.)
  if (bps == THROTL_U64_MAX && iops == THROTL_U32_MAX) return;
  WARN_ON(kern::time_before(tg->slice_end[rw], tg->slice_start[rw]));
  if (throtl_slice_used(tg, rw)) return;
  // A bio went: a slice end pushed far out by an old low limit comes back in.
  tg->slice_end[rw] = roundup(kern::jiffies() + slice_len(tg), slice_len(tg));
  uint64_t elapsed = rounddown(kern::jiffies() - tg->slice_start[rw], slice_len(tg));
  if (elapsed < 2 * slice_len(tg)) return;
  if (!busted().throtl_trim_no_slack.load(std::memory_order_relaxed)) elapsed -= slice_len(tg);
  const bool trim_bytes = bps != THROTL_U64_MAX;
  const bool trim_ios = iops != THROTL_U32_MAX;
  const uint64_t bytes_trim = trim_bytes ? calculate_bytes_allowed(bps, elapsed) : 0;
  const uint64_t io_trim = trim_ios ? calculate_io_allowed(iops, elapsed) : 0;
  if (bytes_trim == 0 && io_trim == 0) return;
  if (trim_bytes) {
    const __int128 v = static_cast<__int128>(tg->bytes_disp[rw]) - bytes_trim;
    tg->bytes_disp[rw] = v > 0 ? static_cast<int64_t>(v) : 0;
  }
  if (trim_ios) {
    const __int128 v = static_cast<__int128>(tg->io_disp[rw]) - io_trim;
    tg->io_disp[rw] = v > 0 ? static_cast<int64_t>(v) : 0;
  }
  tg->slice_start[rw] += elapsed;
}

// A child forwards a bio into a parent whose slice expired: a new parent slice, starting
// no earlier than the child's, so bandwidth the child waited for is not lost.
void start_parent_slice_with_credit(throtl_grp* child, throtl_grp* parent, int rw) {
  if (!throtl_slice_used(parent, rw)) return;
  parent->bytes_disp[rw] = 0;
  parent->io_disp[rw] = 0;
  if (kern::time_after(child->slice_start[rw], parent->slice_start[rw]))
    parent->slice_start[rw] = child->slice_start[rw];
  parent->slice_end[rw] = kern::jiffies() + slice_len(parent);
}

uint64_t tg_dispatch_bps_time(throtl_grp* tg, bio* b) {
  const int rw = rw_of(b);
  const uint64_t bps = tg_bps_limit(tg, rw);
  const bool split_recharged = busted().throtl_split_charges_bps.load(std::memory_order_relaxed);
  if (bps == THROTL_U64_MAX || (tg->flags & THROTL_TG_CANCELING) ||
      (!split_recharged && (b->flags & BIO_BPS_THROTTLED)) || (b->flags & BIO_TG_BPS_THROTTLED))
    return 0;
  tg_update_slice(tg, rw);
  const uint64_t wait = tg_within_bps_limit(tg, b, bps);
  throtl_extend_slice(tg, rw, kern::jiffies() + wait);
  return wait;
}

uint64_t tg_dispatch_iops_time(throtl_grp* tg, bio* b) {
  const int rw = rw_of(b);
  const uint32_t iops = tg_iops_limit(tg, rw);
  if (iops == THROTL_U32_MAX || (tg->flags & THROTL_TG_CANCELING)) return 0;
  tg_update_slice(tg, rw);
  const uint64_t wait = tg_within_iops_limit(tg, b, iops);
  throtl_extend_slice(tg, rw, kern::jiffies() + wait);
  return wait;
}

// bps first; a bio within bps is charged at once (it moves to the iops list), then iops.
uint64_t tg_dispatch_time(throtl_grp* tg, bio* b) {
  const uint64_t wait = tg_dispatch_bps_time(tg, b);
  if (wait != 0) return wait;
  throtl_charge_bps_bio(tg, b);
  return tg_dispatch_iops_time(tg, b);
}

void throtl_charge_bps_bio(throtl_grp* tg, bio* b) {
  const bool split_recharged = busted().throtl_split_charges_bps.load(std::memory_order_relaxed);
  if ((split_recharged || !(b->flags & BIO_BPS_THROTTLED)) && !(b->flags & BIO_TG_BPS_THROTTLED)) {
    b->flags |= BIO_TG_BPS_THROTTLED;
    tg->bytes_disp[rw_of(b)] += static_cast<int64_t>(bio_data_size(b));
  }
}

void throtl_charge_iops_bio(throtl_grp* tg, bio* b) {
  b->flags &= ~BIO_TG_BPS_THROTTLED;
  tg->io_disp[rw_of(b)]++;
}

void tg_update_has_rules(throtl_grp* tg) {
  throtl_grp* parent = tg->service_queue.parent_sq ? tg->service_queue.parent_sq->owner_tg
                                                   : nullptr;
  for (int rw = 0; rw < 2; ++rw) {
    const bool iops = (parent && parent->has_rules_iops[rw].load(std::memory_order_relaxed)) ||
                      tg_iops_limit(tg, rw) != THROTL_U32_MAX;
    const bool bps = (parent && parent->has_rules_bps[rw].load(std::memory_order_relaxed)) ||
                     tg_bps_limit(tg, rw) != THROTL_U64_MAX;
    tg->has_rules_iops[rw].store(iops, std::memory_order_relaxed);
    tg->has_rules_bps[rw].store(bps, std::memory_order_relaxed);
  }
}

}  // namespace throtl

using namespace throtl;

// Before new limits are stored: with bios waiting, what the old limit allowed since the
// slice started and was not used becomes credit (negative dispatch), and a debt stays a
// debt; with nothing waiting the counters restart from zero. An old limit of max carries
// nothing.
void tg_update_carryover(throtl_grp* tg) {
  const uint64_t now = kern::jiffies();
  for (int rw = 0; rw < 2; ++rw) {
    if (sq_queued(&tg->service_queue, rw) == 0 ||
        busted().throtl_no_carryover.load(std::memory_order_relaxed)) {
      tg->bytes_disp[rw] = 0;
      tg->io_disp[rw] = 0;
      continue;
    }
    const uint64_t elapsed = now - tg->slice_start[rw];
    int64_t bytes = 0, ios = 0;
    const uint64_t bps = tg_bps_limit(tg, rw);
    const uint32_t iops = tg_iops_limit(tg, rw);
    if (bps != THROTL_U64_MAX) {
      const uint64_t allowed = calculate_bytes_allowed(bps, elapsed);
      if (allowed > 0)
        bytes = static_cast<int64_t>(std::min<__int128>(
            static_cast<__int128>(allowed) - tg->bytes_disp[rw], INT64_MAX));
    }
    if (iops != THROTL_U32_MAX) {
      const uint64_t allowed = calculate_io_allowed(iops, elapsed);
      if (allowed > 0) ios = static_cast<int64_t>(allowed) - tg->io_disp[rw];
    }
    tg->bytes_disp[rw] = -bytes;
    tg->io_disp[rw] = -ios;
  }
}

}  // namespace blk
