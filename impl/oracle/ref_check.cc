// SPDX-License-Identifier: MIT
#include "impl/oracle/ref_check.h"

#include <map>

#include "impl/block/backing_dev.h"
#include "impl/block/blkg.h"
#include "impl/kern/lock.h"
#include "impl/kern/percpu_ref.h"

namespace oracle {
namespace {

std::string blkg_name(const blk::blkcg_gq* g, const blk::gendisk* disk) {
  const blk::cgroup* cg = g->blkcg->cgroup;
  return "blkg (" + (cg ? cg->path : std::string("?")) + ", " + std::to_string(disk->major) +
         ":" + std::to_string(disk->minor) + ")";
}

// What the base reference contributes: 1 until the ref is killed.
uint64_t base(const kern::percpu_ref* r) { return kern::percpu_ref_is_dying(r) ? 0 : 1; }

}  // namespace

std::string check_refcounts(blk::cgroup_hierarchy& h, const std::vector<blk::gendisk*>& disks,
                            const std::vector<std::string>& live_paths) {
  std::map<const blk::blkcg*, uint64_t> blkgs_of;  // blkgs pinning each css
  for (blk::gendisk* disk : disks) {
    blk::request_queue* q = disk->queue;
    kern::MutexGuard m(q->blkcg_mutex);  // the list and the parent links
    std::map<const blk::blkcg_gq*, uint64_t> children;
    for (blk::blkcg_gq* g = q->blkg_list_first; g != nullptr; g = g->q_next) {
      if (g->parent) ++children[g->parent];
      ++blkgs_of[g->blkcg];
    }
    for (blk::blkcg_gq* g = q->blkg_list_first; g != nullptr; g = g->q_next) {
      const uint64_t have = kern::percpu_ref_count(&g->refcnt);
      const uint64_t base_ref = base(&g->refcnt);
      const uint64_t want = base_ref + children[g];
      if (have != want)
        return blkg_name(g, disk) + " holds " + std::to_string(have) + " reference(s), expected " +
               std::to_string(want) + " (" + std::to_string(base_ref) + " existence + " +
               std::to_string(children[g]) + " child blkg(s)) once every bio is gone";
    }
  }
  for (const std::string& path : live_paths) {
    blk::cgroup* cg = h.lookup(path);
    if (cg == nullptr || cg->io == nullptr) continue;  // the model's tree check reports it
    uint64_t nr_children = 0;
    {
      kern::MutexGuard m(h.cgroup_mutex);
      for (const blk::cgroup* c : cg->children)
        if (c->io != nullptr) ++nr_children;
    }
    const blk::blkcg* b = cg->io;
    const uint64_t have = kern::percpu_ref_count(&b->refcnt);
    const uint64_t base_ref = base(&b->refcnt);
    const uint64_t nr_blkgs = blkgs_of.count(b) ? blkgs_of[b] : 0;
    const uint64_t nr_wbs = static_cast<uint64_t>(blk::cgwb_count(cg->io));
    const uint64_t want = base_ref + nr_children + nr_blkgs + nr_wbs;
    if (have != want)
      return "css of " + path + " holds " + std::to_string(have) + " reference(s), expected " +
             std::to_string(want) + " (" + std::to_string(base_ref) + " base + " +
             std::to_string(nr_children) + " child cgroup(s) + " + std::to_string(nr_blkgs) +
             " blkg(s) + " + std::to_string(nr_wbs) + " writeback(s)) once every bio is gone";
  }
  return "";
}

}  // namespace oracle
