// SPDX-License-Identifier: MIT
// The cgroupfs-style text interface: read and write cgroup files by path, returning the
// kernel's text or a negative errno, never crashing on bad input.
//
// Files, by hierarchy (cgroup_hierarchy::on_dfl):
//   both     cgroup.procs (read: one pid per line, sorted; write: a pid moves that task here)
//   v2       io.stat (read-only, every cgroup); io.max (non-root; blk-throttle)
//   v1       blkio.reset_stats (write-only, any unsigned number);
//            blkio.throttle.{read,write}_{bps,iops}_device (read/write);
//            blkio.throttle.io_service_bytes, io_serviced, and their _recursive forms
//            (read-only); all of them on the root too
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
