// SPDX-License-Identifier: MIT
// io.max: blk-throttle's write and read (tg_set_limit, tg_print_limit), spec §5.2, on top
// of the blkg_conf helpers (blkg_conf.h, which also describes the number parsing).
#include <cerrno>
#include <string_view>

#include "impl/block/blk_throttle.h"
#include "impl/block/blkg_conf.h"
#include "impl/kern/report.h"

namespace blk {

using namespace throtl;

long tg_set_limit(blkcg* b, const std::string& input) {
  kern::might_sleep("tg_set_limit");
  blkg_conf_ctx ctx;
  ctx.input = input;
  int ret = blkg_conf_open_bdev(&ctx);
  if (ret) return ret;
  gendisk* disk = ctx.disk;
  request_queue* q = disk->queue;
  if (!blk_throtl_activated(q)) ret = blk_throtl_init(disk);
  if (!ret) ret = blkg_conf_prep(b, blkcg_policy_throtl(), &ctx);
  if (ret) {
    blkg_conf_close_bdev(&ctx);
    return ret;
  }
  throtl_grp* tg = blkg_to_tg(ctx.blkg);
  throtl_data* td = tg->td;
  const kern::irqflags_t f = td->lock.lock_irqsave();
  tg_update_carryover(tg);  // before parsing: even a rejected write re-bases the counters
  uint64_t v[4] = {tg->bps[0].load(std::memory_order_relaxed),
                   tg->bps[1].load(std::memory_order_relaxed),
                   tg->iops[0].load(std::memory_order_relaxed),
                   tg->iops[1].load(std::memory_order_relaxed)};
  size_t pos = ctx.body;
  const std::string& s = ctx.input;
  for (;;) {
    // "%26s"
    while (pos < s.size() && conf_is_space(s[pos])) ++pos;
    if (pos >= s.size()) break;
    size_t end = pos;
    while (end < s.size() && !conf_is_space(s[end]) && end - pos < 26) ++end;
    const std::string_view tok = std::string_view(s).substr(pos, end - pos);
    pos = end;
    ret = -EINVAL;
    const size_t eq = tok.find('=');
    if (eq == std::string_view::npos) break;
    const std::string_view key = tok.substr(0, eq), val = tok.substr(eq + 1);
    uint64_t x = THROTL_U64_MAX;
    size_t vp = 0;
    if (!conf_scan_u64(val, &vp, &x) && val != "max") break;
    ret = -ERANGE;
    if (x == 0) break;
    ret = -EINVAL;
    if (key == "rbps")
      v[0] = x;
    else if (key == "wbps")
      v[1] = x;
    else if (key == "riops")
      v[2] = x < THROTL_U32_MAX ? x : THROTL_U32_MAX;
    else if (key == "wiops")
      v[3] = x < THROTL_U32_MAX ? x : THROTL_U32_MAX;
    else
      break;
    ret = 0;
  }
  if (ret == 0) {
    tg->bps[0].store(v[0], std::memory_order_relaxed);
    tg->bps[1].store(v[1], std::memory_order_relaxed);
    tg->iops[0].store(static_cast<uint32_t>(v[2]), std::memory_order_relaxed);
    tg->iops[1].store(static_cast<uint32_t>(v[3]), std::memory_order_relaxed);
    tg_conf_updated(tg);
  }
  td->lock.unlock_irqrestore(f);
  q->blkcg_mutex.assert_held();  // taken by blkg_conf_prep on success
  q->blkcg_mutex.unlock();
  blkg_conf_close_bdev(&ctx);
  return ret ? ret : static_cast<long>(input.size());
}

std::string tg_print_limit(blkcg* b) {
  blkcg_policy* pol = blkcg_policy_throtl();
  std::string out;
  kern::SpinIrqGuard g(b->lock);
  for (blkcg_gq* blkg = b->blkg_list.load(std::memory_order_relaxed); blkg;
       blkg = blkg->blkcg_next.load(std::memory_order_relaxed)) {
    if (!blkcg_policy_enabled(blkg->q, pol)) continue;
    throtl_grp* tg = blkg_to_tg(blkg);
    if (tg == nullptr || blkg->parent == nullptr) continue;
    const uint64_t v[4] = {tg->bps[0].load(std::memory_order_relaxed),
                           tg->bps[1].load(std::memory_order_relaxed),
                           tg->iops[0].load(std::memory_order_relaxed),
                           tg->iops[1].load(std::memory_order_relaxed)};
    const uint64_t maxes[4] = {THROTL_U64_MAX, THROTL_U64_MAX, THROTL_U32_MAX, THROTL_U32_MAX};
    if (v[0] == maxes[0] && v[1] == maxes[1] && v[2] == maxes[2] && v[3] == maxes[3]) continue;
    static const char* const keys[4] = {"rbps", "wbps", "riops", "wiops"};
    out += blkg->q->dev_name;
    for (int i = 0; i < 4; ++i)
      out += std::string(" ") + keys[i] + "=" + (v[i] == maxes[i] ? "max" : std::to_string(v[i]));
    out += "\n";
  }
  return out;
}

}  // namespace blk
