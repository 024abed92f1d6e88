// SPDX-License-Identifier: MIT
#include "impl/block/blkg_conf.h"

#include <cerrno>

#include "impl/block/busted.h"

namespace blk {

bool conf_is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

// "%llu" at s[*pos]: true and the value on success, *pos past the digits.
bool conf_scan_u64(std::string_view s, size_t* pos, uint64_t* v) {
  size_t i = *pos;
  while (i < s.size() && conf_is_space(s[i])) ++i;
  if (i >= s.size() || !(s[i] >= '0' && s[i] <= '9')) return false;
  uint64_t x = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9')
    x = x * 10 + static_cast<uint64_t>(s[i++] - '0');
  *v = x;
  *pos = i;
  return true;
}

// "%u:%u" then white space. 0, -EINVAL or -ENODEV; on 0 the disk is live, referenced, and
// its rq_qos_mutex held.
int blkg_conf_open_bdev(blkg_conf_ctx* ctx)
    NO_THREAD_SAFETY_ANALYSIS {  // acquires/releases on some paths only (__cond_acquires)
  size_t pos = 0;
  uint64_t major, minor;
  if (!conf_scan_u64(ctx->input, &pos, &major)) return -EINVAL;
  if (pos >= ctx->input.size() || ctx->input[pos] != ':') return -EINVAL;
  ++pos;
  if (!conf_scan_u64(ctx->input, &pos, &minor)) return -EINVAL;
  if (pos >= ctx->input.size() || !conf_is_space(ctx->input[pos])) return -EINVAL;
  while (pos < ctx->input.size() && conf_is_space(ctx->input[pos])) ++pos;
  gendisk* disk = blkdev_get_no_open(static_cast<uint32_t>(major), static_cast<uint32_t>(minor));
  if (disk == nullptr) return -ENODEV;  // no such device, or a partition
  disk->queue->rq_qos_mutex.lock();
  if (!disk_live(disk)) {
    disk->queue->rq_qos_mutex.unlock();
    put_disk(disk);
    return -ENODEV;
  }
  ctx->body = pos;
  ctx->disk = disk;
  return 0;
}

void blkg_conf_close_bdev(blkg_conf_ctx* ctx)
    NO_THREAD_SAFETY_ANALYSIS {  // acquires/releases on some paths only (__cond_acquires)
  if (!ctx->disk) return;
  ctx->disk->queue->rq_qos_mutex.unlock();
  put_disk(ctx->disk);
  ctx->disk = nullptr;
}

// Finds or creates the blkg of (b, disk), creating missing ancestors root -> leaf. Returns
// 0 with q->blkcg_mutex held, or -EOPNOTSUPP / -ENODEV / -ENOMEM without it.
int blkg_conf_prep(blkcg* b, const blkcg_policy* pol, blkg_conf_ctx* ctx)
    NO_THREAD_SAFETY_ANALYSIS {  // acquires/releases on some paths only (__cond_acquires)
  request_queue* q = ctx->disk->queue;
  q->blkcg_mutex.lock();
  int err = 0;
  // Missing blkgs are created with a blocking class: this is process context, and a
  // user's write must not fail where waiting would have succeeded (457e490f2b74).
  // busted().conf_create_nowait keeps the spinlock-era GFP_NOWAIT.
  const kern::gfp_t gfp = busted().conf_create_nowait.load(std::memory_order_relaxed)
                              ? kern::GFP_NOWAIT | kern::GFP_NOWARN
                              : kern::GFP_NOIO;
  for (;;) {
    if (!blkcg_policy_enabled(q, pol)) {
      err = -EOPNOTSUPP;
      break;
    }
    if (blkcg_gq* blkg = blkg_lookup(b, q)) {
      ctx->blkg = blkg;
      return 0;
    }
    // The highest missing level: its parent has a blkg (the root's always exists).
    blkcg* pos = b;
    for (blkcg* parent = blkcg_parent(pos); parent && !blkg_lookup(parent, q);
         parent = blkcg_parent(pos))
      pos = parent;
    // Preload the radix-tree nodes with the same blocking class (f255c19b3ab4): the
    // insertion under blkcg->lock allocates with the tree's GFP_NOWAIT otherwise, and a
    // user's write would fail where waiting would have succeeded. RFC patch 15 dropped
    // the kernel's per-CPU preload (preemption stays off until the insertion, and this
    // path sleeps under blkcg_mutex); a per-caller preload keeps the guarantee.
    // (Non-blocking gfp, busted().conf_create_nowait: no preload, pre stays empty.)
    kern::radix_tree::preload pre;
    if (kern::gfpflags_allow_blocking(gfp) && pos->blkg_tree.preload_nodes(&pre, gfp) != 0) {
      err = -ENOMEM;
      break;
    }
    blkcg_gq* blkg = blkg_create(pos, q, gfp, &err, &pre);
    pos->blkg_tree.preload_end(&pre);
    if (!blkg) break;
  }
  q->blkcg_mutex.unlock();
  return err;
}

}  // namespace blk
