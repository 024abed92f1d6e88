// SPDX-License-Identifier: MIT
// A radix tree keyed by a small integer, readable under RCU (the kernel's radix_tree as
// blkcg->blkg_tree uses it: one writer at a time under the owner's lock, lock-free readers).
//
// Shape: kLevels levels of kFanout slots; an index has kLevels * kBits bits (up to 2^18).
// Interior slots hold child nodes, leaf slots hold items. Nodes are allocated on insert
// with the tree's GFP mask at the tree's named allocation site, so an insertion can fail
// with -ENOMEM exactly where the kernel's GFP_NOWAIT insertion could. Nodes are only
// freed by destroy(), which the owner calls after a grace period (no reader can remain).
//
// Preloading (the kernel's radix_tree_preload): a writer that may sleep allocates the
// nodes an insertion can need (one per level) before it takes the writers' lock, with a
// blocking class at the tree's preload site, and hands them to insert(), which uses them
// before allocating with the tree's own mask; preload_end() frees what was not used. Per
// caller rather than per CPU: the kernel keeps preloaded nodes per CPU with preemption
// off until the insertion, which a path that sleeps in between (a mutex, as blkcg's
// configuration path under the RFC's blkcg_mutex) cannot do.
//
// Ordering: a node or item is initialised, then published with a release store; readers
// load slots with acquire (the rcu_assign_pointer / rcu_dereference pairing). erase()
// stores nullptr (release); a reader may still return the old item, which the caller's
// RCU protocol keeps alive.
#pragma once

#include <atomic>
#include <cstdint>

#include "impl/kern/alloc.h"

namespace kern {

class radix_tree {
 public:
  static constexpr int kBits = 6;
  static constexpr int kFanout = 1 << kBits;
  static constexpr int kLevels = 3;
  static constexpr uint64_t kMaxIndex = (uint64_t{1} << (kBits * kLevels)) - 1;

  // Nodes allocated ahead of one insertion (see Preloading). Owned by the caller; empty
  // after preload_end().
  class preload {
    friend class radix_tree;
    void* nodes_[kLevels] = {};
    int n_ = 0;
  };

  radix_tree(gfp_t gfp, const char* site, const char* preload_site = "radix_tree.preload")
      : gfp_(gfp), site_(site), preload_site_(preload_site) {}
  ~radix_tree();  // reports kLeak if destroy() was not called on a non-empty tree
  radix_tree(const radix_tree&) = delete;
  radix_tree& operator=(const radix_tree&) = delete;

  // Fills *p with one node per level, allocated with `gfp` at the preload site: 0, or
  // -ENOMEM with *p empty. Needs no lock; may sleep if gfp allows it.
  int preload_nodes(preload* p, gfp_t gfp);
  // Frees the nodes of *p that insert() did not use.
  void preload_end(preload* p);
  // Writer (caller serialises writers). 0, -EEXIST, -EINVAL (index too large), -ENOMEM.
  // Takes nodes from *p (if given) before allocating with the tree's mask.
  int insert(uint64_t index, void* item, preload* p = nullptr);
  // Writer. Returns the removed item or nullptr.
  void* erase(uint64_t index);
  // Reader: under RCU or the writers' lock.
  void* lookup(uint64_t index) const;
  // Frees every node. Owner only, when no reader can be inside (after a grace period).
  void destroy();

 private:
  struct node {
    std::atomic<void*> slots[kFanout];
  };
  static int slot_of(uint64_t index, int level) {
    return static_cast<int>((index >> (kBits * (kLevels - 1 - level))) & (kFanout - 1));
  }
  void free_node(node* n, int level);
  node* new_node(preload* p);

  std::atomic<node*> root_{nullptr};
  gfp_t gfp_;
  const char* site_;
  const char* preload_site_;
};

}  // namespace kern
