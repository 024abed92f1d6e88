// SPDX-License-Identifier: MIT
// blk-throttle's cgroup v1 files (spec §5.4): blkio.throttle.{read,write}_{bps,iops}_device
// (tg_set_conf / tg_print_conf_u64 / tg_print_conf_uint) and the statistics
// blkio.throttle.io_service_bytes / io_serviced and their _recursive forms (the blkg_rwstat
// printer: five lines per device, "Total" = Read + Write + Discard per device, and a final
// "Total" over the devices).
#include <cerrno>
#include <vector>

#include "impl/block/blk_throttle.h"
#include "impl/block/blkg_conf.h"

namespace blk {
namespace {

uint64_t conf_value(throtl_grp* tg, int which) {
  switch (which) {
    case 0: return tg->bps[0].load(std::memory_order_relaxed);
    case 1: return tg->bps[1].load(std::memory_order_relaxed);
    case 2: return tg->iops[0].load(std::memory_order_relaxed);
    default: return tg->iops[1].load(std::memory_order_relaxed);
  }
}

// The blkgs of `b` on queues where throttling is active, each with a reference, in the
// blkcg's list order (taken under blkcg->lock, used after it).
std::vector<blkcg_gq*> throttled_blkgs(blkcg* b) {
  std::vector<blkcg_gq*> out;
  kern::SpinIrqGuard g(b->lock);
  for (blkcg_gq* blkg = b->blkg_list.load(std::memory_order_relaxed); blkg;
       blkg = blkg->blkcg_next.load(std::memory_order_relaxed)) {
    if (!blkcg_policy_enabled(blkg->q, blkcg_policy_throtl()) || blkg_to_tg(blkg) == nullptr)
      continue;
    if (blkg_tryget(blkg)) out.push_back(blkg);
  }
  return out;
}

struct rwstat_sample {
  uint64_t cnt[BLKG_RWSTAT_NR] = {};
};

void add_sample(rwstat_sample* s, throtl_grp* tg, bool bytes) {
  for (int i = 0; i < BLKG_RWSTAT_NR; ++i)
    s->cnt[i] += (bytes ? tg->stat_bytes[i] : tg->stat_ios[i]).load(std::memory_order_relaxed);
}

// blkg_rwstat_recursive_sum: blkg and its online descendants on the same queue.
rwstat_sample recursive_sum(blkcg_gq* blkg, bool bytes) {
  rwstat_sample s;
  request_queue* q = blkg->q;
  kern::MutexGuard m(q->blkcg_mutex);
  for (blkcg_gq* g = q->blkg_list_first; g != nullptr; g = g->q_next) {
    bool below = false;
    for (blkcg_gq* a = g; a && !below; a = a->parent) below = a == blkg;
    if (!below || !g->online.load(std::memory_order_acquire)) continue;
    if (throtl_grp* tg = blkg_to_tg(g)) add_sample(&s, tg, bytes);
  }
  return s;
}

}  // namespace

long tg_set_conf(blkcg* b, const std::string& input, int which) {
  kern::might_sleep("tg_set_conf");
  blkg_conf_ctx ctx;
  ctx.input = input;
  int ret = blkg_conf_open_bdev(&ctx);
  if (ret) return ret;
  request_queue* q = ctx.disk->queue;
  if (!blk_throtl_activated(q)) ret = blk_throtl_init(ctx.disk);
  if (!ret) ret = blkg_conf_prep(b, blkcg_policy_throtl(), &ctx);
  if (ret) {
    blkg_conf_close_bdev(&ctx);
    return ret;
  }
  size_t pos = ctx.body;
  uint64_t v;
  ret = -EINVAL;
  if (conf_scan_u64(ctx.input, &pos, &v)) {
    if (v == 0) v = THROTL_U64_MAX;  // 0 removes the limit
    throtl_grp* tg = blkg_to_tg(ctx.blkg);
    const kern::irqflags_t f = tg->td->lock.lock_irqsave();
    tg_update_carryover(tg);  // v1: after parsing (io.max does it before)
    if (which < 2)
      tg->bps[which].store(v, std::memory_order_relaxed);
    else  // stored into an unsigned int: truncated, and U64_MAX becomes UINT_MAX (max)
      tg->iops[which - 2].store(static_cast<uint32_t>(v), std::memory_order_relaxed);
    tg_conf_updated(tg);
    tg->td->lock.unlock_irqrestore(f);
    ret = 0;
  }
  q->blkcg_mutex.assert_held();  // taken by blkg_conf_prep on success
  q->blkcg_mutex.unlock();
  blkg_conf_close_bdev(&ctx);
  return ret ? ret : static_cast<long>(input.size());
}

std::string tg_print_conf(blkcg* b, int which) {
  std::string out;
  for (blkcg_gq* blkg : throttled_blkgs(b)) {
    const uint64_t v = conf_value(blkg_to_tg(blkg), which);
    const uint64_t none = which < 2 ? THROTL_U64_MAX : THROTL_U32_MAX;
    if (v != none) out += blkg->q->dev_name + " " + std::to_string(v) + "\n";
    blkg_put(blkg);
  }
  return out;
}

std::string tg_print_rwstat(blkcg* b, bool bytes, bool recursive) {
  static const char* const names[BLKG_RWSTAT_NR] = {"Read", "Write", "Sync", "Async",
                                                    "Discard"};
  std::string out;
  uint64_t total = 0;
  for (blkcg_gq* blkg : throttled_blkgs(b)) {
    rwstat_sample s;
    if (recursive)
      s = recursive_sum(blkg, bytes);
    else
      add_sample(&s, blkg_to_tg(blkg), bytes);
    const std::string& dev = blkg->q->dev_name;
    for (int i = 0; i < BLKG_RWSTAT_NR; ++i)
      out += dev + " " + names[i] + " " + std::to_string(s.cnt[i]) + "\n";
    const uint64_t t =
        s.cnt[BLKG_RWSTAT_READ] + s.cnt[BLKG_RWSTAT_WRITE] + s.cnt[BLKG_RWSTAT_DISCARD];
    out += dev + " Total " + std::to_string(t) + "\n";
    total += t;
    blkg_put(blkg);
  }
  out += "Total " + std::to_string(total) + "\n";
  return out;
}

}  // namespace blk
