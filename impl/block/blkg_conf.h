// SPDX-License-Identifier: MIT
// Per-device configuration writes ("MAJ:MIN ..." files: io.max, blkio.throttle.*), the
// kernel's blkg_conf_* helpers (block/blk-cgroup.c, spec §5.3), and the number parsing of
// the kernel's own vsscanf, which the policies' files share.
//
// Parsing follows the kernel's vsscanf, not the C library's: a number conversion skips
// leading white space, needs a digit (no sign is accepted: "-1" and "+1" are not numbers),
// reads digits as far as they go (wrapping modulo 2^64, like simple_strntoull), and
// ignores what follows ("100abc" is 100). %26s reads at most 26 non-space characters.
//
// Locking: blkg_conf_open_bdev returns holding the disk's q->rq_qos_mutex (and a disk
// reference); blkg_conf_prep returns holding q->blkcg_mutex as well. The caller releases
// in reverse: q->blkcg_mutex, then blkg_conf_close_bdev.
#pragma once

#include <string>
#include <string_view>

#include "impl/block/blkcg_policy.h"
#include "impl/block/blkg.h"

namespace blk {

bool conf_is_space(char c);
// "%llu" at s[*pos]: true and the value, *pos past the digits.
bool conf_scan_u64(std::string_view s, size_t* pos, uint64_t* v);

struct blkg_conf_ctx {
  std::string input;
  size_t body = 0;           // offset of the text after "MAJ:MIN "
  gendisk* disk = nullptr;   // with a reference, and rq_qos_mutex held, once opened
  blkcg_gq* blkg = nullptr;  // after prep, with q->blkcg_mutex held
};

// "%u:%u" then white space. 0, -EINVAL or -ENODEV (no such disk, a partition, not live).
// Context: process, may sleep.
int blkg_conf_open_bdev(blkg_conf_ctx* ctx);
// Context: process.
void blkg_conf_close_bdev(blkg_conf_ctx* ctx);
// The blkg of (b, disk), creating missing levels root -> leaf. 0 with q->blkcg_mutex
// held, or -EOPNOTSUPP / -ENODEV / -ENOMEM without it. Context: process, may sleep.
int blkg_conf_prep(blkcg* b, const blkcg_policy* pol, blkg_conf_ctx* ctx);

}  // namespace blk
