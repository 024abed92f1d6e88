// SPDX-License-Identifier: MIT
// Reference counts at quiesce, checked from outside the implementation (issue: "deep:
// ... reference counts"). Run once every task has ended, every bio has been dropped and
// the frees have been flushed (RCU callbacks and work run), so that nothing transient
// holds a reference any more. Then each count is exactly what the object graph says
// (blkg.h "References", cgroup.h):
//
//   a blkg on a live queue's blkg list: its existence reference (unless destroyed) plus
//     one per child blkg on the list (the child's parent reference);
//   a live cgroup's io css: its base reference (unless killed) plus one per live child
//     cgroup (held from mkdir to the child's css_free) plus one per blkg of it on any of
//     the given queues (pinned at blkg_create, dropped at release), plus one per live
//     cgroup writeback of it (backing_dev.h: held from creation to its release work).
//
// A leaked get (a bio that never put its blkg, a destroy loop that kept its temporary
// reference) shows up here, at the object and with both counts, instead of as an
// anonymous leak of memory after the teardown; an extra put shows up before it becomes a
// use-after-free. Returns "" or the first mismatch; files no report (the caller does).
#pragma once

#include <string>
#include <vector>

#include "impl/block/cgroup.h"
#include "impl/block/genhd.h"

namespace oracle {

// `disks`: every disk whose queue may hold blkgs (live or deleted, not yet released).
// `live_paths`: the cgroups that exist ("/" included).
std::string check_refcounts(blk::cgroup_hierarchy& h, const std::vector<blk::gendisk*>& disks,
                            const std::vector<std::string>& live_paths);

}  // namespace oracle
