// SPDX-License-Identifier: MIT
#include "impl/block/blk_cgroup.h"

#include "impl/block/backing_dev.h"
#include "impl/block/blkcg_policy.h"
#include "impl/block/blkg.h"

#include <algorithm>

#include "impl/kern/alloc.h"
#include "impl/kern/report.h"

namespace blk {
namespace {

// blkcg_pol_mutex: the policy table and all_blkcgs (and cpd alloc/free, policy slice).
kern::mutex& blkcg_pol_mutex() {
  static kern::mutex* m = new kern::mutex("blkcg_pol_mutex");
  return *m;
}
std::vector<blkcg*>& all_blkcgs() {  // guarded by blkcg_pol_mutex
  static std::vector<blkcg*>* v = new std::vector<blkcg*>();
  return *v;
}

}  // namespace

kern::mutex& blkcg_pol_mutex_ref() { return blkcg_pol_mutex(); }
std::vector<blkcg*>& all_blkcgs_locked() { return all_blkcgs(); }

blkcg* blkcg_parent(blkcg* b) {
  return b->parent ? css_to_blkcg(b->parent) : nullptr;
}

// Context: process, may sleep (GFP_KERNEL). Takes blkcg_pol_mutex.
blkcg* blkcg_css_alloc(blkcg* parent) {
  kern::MutexGuard g(blkcg_pol_mutex());
  blkcg* b = kern::kzalloc_obj<blkcg>(kern::GFP_KERNEL, "blkcg_css_alloc");
  if (!b) return nullptr;
  b->lhead = kern::alloc_percpu_gfp<kern::llist_head>(kern::GFP_KERNEL, "blkcg_css_alloc.lhead");
  if (!b->lhead) {
    kern::kfree(b);
    return nullptr;
  }
  if (!blkcg_alloc_cpds(b)) {
    kern::free_percpu(b->lhead);
    kern::kfree(b);
    return nullptr;
  }
  kern::refcount_set(b->online_pin, 1);
  b->online_pin.name = "blkcg->online_pin";
  b->parent = parent;
  all_blkcgs().push_back(b);
  return b;
}

// Context: process (cgroup_mutex held).
void blkcg_css_online(blkcg* b) {
  // A child pins its parent online, so offline proceeds leaf to root.
  if (blkcg* parent = blkcg_parent(b)) blkcg_pin_online(parent);
}

// Context: process (cgroup_mutex held).
void blkcg_css_offline(blkcg* b) {
  // No new cgroup writeback from here on; the existing ones drop their pins once their
  // writeback is done (their release work).
  wb_blkcg_offline(b);
  blkcg_unpin_online(b);
}

void blkcg_pin_online(blkcg* b) { kern::refcount_inc(b->online_pin); }

// Context: process. Drops a pin; when the last pin of a blkcg goes its blkgs are destroyed
// and the pin it held on its parent is dropped in turn. The parent is read BEFORE the
// destruction, which may drop the last css reference on `b` (the 2024 UAF fix).
void blkcg_unpin_online(blkcg* b) {
  while (b != nullptr) {
    if (!kern::refcount_dec_and_test(b->online_pin)) break;
    blkcg* parent = blkcg_parent(b);
    blkcg_destroy_blkgs(b);
    b = parent;
  }
}

// Context: process, may sleep. Takes blkcg->lock only to pick and pin the first blkg,
// then q->blkcg_mutex -> blkcg->lock in the normal order to destroy it (the 2026 shape:
// no trylock dance, no queue lock under blkcg->lock). `b` is not touched after the last
// blkg's put: the kernel holds blkcg->lock from its last destruction to the end of the
// walk, and that put may be what lets `b` be freed (a caller without a css reference of
// its own, such as the pre-2026 cgwb release, must not read `b` afterwards either).
void blkcg_destroy_blkgs(blkcg* b) {
  kern::might_sleep("blkcg_destroy_blkgs");
  for (;;) {
    blkcg_gq* blkg;
    {
      kern::SpinIrqGuard g(b->lock);
      blkg = b->blkg_list.load(std::memory_order_relaxed);
      if (blkg == nullptr) {
        b->blkgs_destroyed = true;
        return;
      }
      blkg_get(blkg);  // hashed: the existence reference is still there
    }
    bool last;
    {
      kern::MutexGuard m(blkg->q->blkcg_mutex);
      kern::SpinIrqGuard g(blkg->blkcg->lock);  // == b->lock
      blkg_destroy(blkg);
      last = b->blkg_list.load(std::memory_order_relaxed) == nullptr;
      if (last) b->blkgs_destroyed = true;
    }
    blkg_put(blkg);
    // cond_resched(), or for the last one the preemption point where the kernel drops
    // blkcg->lock and returns.
    kern::seam(kern::SeamKind::kPreempt, b);  // an address only: `b` is not read
    if (last) return;
  }
}

namespace {
std::atomic<blkcg*> the_root{nullptr};
}  // namespace

blkcg* blkcg_root() { return the_root.load(std::memory_order_acquire); }
void set_blkcg_root(blkcg* b) { the_root.store(b, std::memory_order_release); }

namespace {
std::atomic<bool> on_dfl{true};  // relaxed: set before any IO, by the hierarchy
}  // namespace

bool cgroup_subsys_on_dfl() { return on_dfl.load(std::memory_order_relaxed); }
void set_cgroup_subsys_on_dfl(bool dfl) { on_dfl.store(dfl, std::memory_order_relaxed); }

// Context: process (work item), may sleep.
void blkcg_css_free(blkcg* b) {
  kern::might_sleep("blkcg_css_free");
  {
    kern::MutexGuard g(blkcg_pol_mutex());
    auto& v = all_blkcgs();
    v.erase(std::remove(v.begin(), v.end(), b), v.end());
    blkcg_free_cpds(b);
  }
  b->blkg_tree.destroy();  // a grace period has passed since the last reader (css free)
  kern::free_percpu(b->lhead);
  kern::kfree(b);
}

std::vector<blkcg*> all_blkcgs_snapshot() {
  kern::MutexGuard g(blkcg_pol_mutex());
  return all_blkcgs();
}

}  // namespace blk
