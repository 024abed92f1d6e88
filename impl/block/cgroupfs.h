// SPDX-License-Identifier: MIT
// The cgroupfs-style text interface: read and write cgroup files by path, returning the
// kernel's text or a negative errno, never crashing on bad input.
//
// Files (this slice): io.stat (read-only), cgroup.procs (read: one pid per line, sorted;
// write: a pid moves that task here), blkio.reset_stats (write-only, any unsigned number).
// io.max and blkio.throttle.* arrive with blk-throttle.
// Errors: no such cgroup or file -> -ENOENT; writing a read-only or reading a write-only
// file -> -EINVAL (kernfs without the op); unparsable input -> -EINVAL; writing into a
// removed cgroup -> -ENODEV. A successful write returns the number of bytes written.
// Context: process (these may sleep).
#pragma once

#include <string>

#include "impl/block/cgroup.h"

namespace blk {

// `path` is "<cgroup path>/<file>", e.g. "/a/b/io.stat" or "/io.stat".
// Context: process, may sleep.
int cgroup_file_read(cgroup_hierarchy& h, const std::string& path, std::string* out);
long cgroup_file_write(cgroup_hierarchy& h, const std::string& path, const std::string& data);

}  // namespace blk
