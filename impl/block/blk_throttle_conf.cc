// SPDX-License-Identifier: MIT
// io.max: the per-device configuration helpers (blkg_conf_open_bdev, blkg_conf_prep) and
// blk-throttle's write and read (tg_set_limit, tg_print_limit), spec §5.2/§5.3.
//
// Parsing follows the kernel's own vsscanf, not the C library's: a number conversion skips
// leading white space, needs a digit (no sign is accepted: "-1" and "+1" are not numbers),
// reads digits as far as they go (wrapping modulo 2^64, like simple_strntoull), and
// ignores what follows ("100abc" is 100). %26s reads at most 26 non-space characters, so a
// longer token is read as two.
#include <cerrno>
#include <cstring>

#include "impl/block/blk_throttle.h"
#include "impl/block/blkg.h"
#include "impl/kern/report.h"

namespace blk {
namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// "%llu" at s[*pos]: true and the value on success, *pos past the digits.
bool scan_u64(const std::string& s, size_t* pos, uint64_t* v) {
  size_t i = *pos;
  while (i < s.size() && is_space(s[i])) ++i;
  if (i >= s.size() || !is_digit(s[i])) return false;
  uint64_t x = 0;
  while (i < s.size() && is_digit(s[i])) x = x * 10 + static_cast<uint64_t>(s[i++] - '0');
  *v = x;
  *pos = i;
  return true;
}

struct blkg_conf_ctx {
  std::string input;
  size_t body = 0;           // offset of the text after "MAJ:MIN "
  gendisk* disk = nullptr;   // with a reference, and rq_qos_mutex held, once opened
  blkcg_gq* blkg = nullptr;  // after prep, with q->blkcg_mutex held
};

// "%u:%u" then white space. 0, -EINVAL or -ENODEV; on 0 the disk is live, referenced, and
// its rq_qos_mutex held.
int blkg_conf_open_bdev(blkg_conf_ctx* ctx) {
  size_t pos = 0;
  uint64_t major, minor;
  if (!scan_u64(ctx->input, &pos, &major)) return -EINVAL;
  if (pos >= ctx->input.size() || ctx->input[pos] != ':') return -EINVAL;
  ++pos;
  if (!scan_u64(ctx->input, &pos, &minor)) return -EINVAL;
  if (pos >= ctx->input.size() || !is_space(ctx->input[pos])) return -EINVAL;
  while (pos < ctx->input.size() && is_space(ctx->input[pos])) ++pos;
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

void blkg_conf_close_bdev(blkg_conf_ctx* ctx) {
  if (!ctx->disk) return;
  ctx->disk->queue->rq_qos_mutex.unlock();
  put_disk(ctx->disk);
  ctx->disk = nullptr;
}

// Finds or creates the blkg of (b, disk), creating missing ancestors root -> leaf. Returns
// 0 with q->blkcg_mutex held, or -EOPNOTSUPP / -ENODEV / -ENOMEM without it.
int blkg_conf_prep(blkcg* b, const blkcg_policy* pol, blkg_conf_ctx* ctx) {
  request_queue* q = ctx->disk->queue;
  q->blkcg_mutex.lock();
  int err = 0;
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
    if (!blkg_create(pos, q, kern::GFP_NOIO, &err)) break;
  }
  q->blkcg_mutex.unlock();
  return err;
}

}  // namespace

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
    while (pos < s.size() && is_space(s[pos])) ++pos;
    if (pos >= s.size()) break;
    size_t end = pos;
    while (end < s.size() && !is_space(s[end]) && end - pos < 26) ++end;
    const std::string tok = s.substr(pos, end - pos);
    pos = end;
    ret = -EINVAL;
    const size_t eq = tok.find('=');
    if (eq == std::string::npos) break;
    const std::string key = tok.substr(0, eq), val = tok.substr(eq + 1);
    uint64_t x = THROTL_U64_MAX;
    size_t vp = 0;
    if (!scan_u64(val, &vp, &x) && val != "max") break;
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
