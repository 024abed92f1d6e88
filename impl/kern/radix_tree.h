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

  radix_tree(gfp_t gfp, const char* site) : gfp_(gfp), site_(site) {}
  ~radix_tree();  // reports kLeak if destroy() was not called on a non-empty tree
  radix_tree(const radix_tree&) = delete;
  radix_tree& operator=(const radix_tree&) = delete;

  // Writer (caller serialises writers). 0, -EEXIST, -EINVAL (index too large), -ENOMEM.
  int insert(uint64_t index, void* item);
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

  std::atomic<node*> root_{nullptr};
  gfp_t gfp_;
  const char* site_;
};

}  // namespace kern
