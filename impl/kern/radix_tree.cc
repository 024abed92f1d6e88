// SPDX-License-Identifier: MIT
#include "impl/kern/radix_tree.h"

#include <cerrno>

namespace kern {

radix_tree::~radix_tree() {
  // Owners call destroy(); a tree dropped with nodes would leak them (the allocator's leak
  // check names the site).
}

int radix_tree::preload_nodes(preload* p, gfp_t gfp) {
  while (p->n_ < kLevels) {
    node* n = kzalloc_obj<node>(gfp, preload_site_);
    if (n == nullptr) {
      preload_end(p);
      return -ENOMEM;
    }
    p->nodes_[p->n_++] = n;
  }
  return 0;
}

void radix_tree::preload_end(preload* p) {
  while (p->n_ > 0) kfree(static_cast<node*>(p->nodes_[--p->n_]));
}

radix_tree::node* radix_tree::new_node(preload* p) {
  if (p != nullptr && p->n_ > 0) return static_cast<node*>(p->nodes_[--p->n_]);  // zeroed
  return kzalloc_obj<node>(gfp_, site_);
}

int radix_tree::insert(uint64_t index, void* item, preload* p) {
  if (index > kMaxIndex) return -EINVAL;
  node* n = root_.load(std::memory_order_relaxed);
  if (n == nullptr) {
    n = new_node(p);
    if (n == nullptr) return -ENOMEM;
    root_.store(n, std::memory_order_release);
  }
  for (int level = 0; level < kLevels - 1; ++level) {
    std::atomic<void*>& slot = n->slots[slot_of(index, level)];
    node* child = static_cast<node*>(slot.load(std::memory_order_relaxed));
    if (child == nullptr) {
      child = new_node(p);
      if (child == nullptr) return -ENOMEM;  // nodes already linked stay (empty, harmless)
      slot.store(child, std::memory_order_release);  // publish the zeroed node
    }
    n = child;
  }
  std::atomic<void*>& leaf = n->slots[slot_of(index, kLevels - 1)];
  if (leaf.load(std::memory_order_relaxed) != nullptr) return -EEXIST;
  leaf.store(item, std::memory_order_release);  // publish the (initialised) item
  return 0;
}

void* radix_tree::lookup(uint64_t index) const {
  if (index > kMaxIndex) return nullptr;
  node* n = root_.load(std::memory_order_acquire);
  for (int level = 0; n != nullptr && level < kLevels - 1; ++level)
    n = static_cast<node*>(n->slots[slot_of(index, level)].load(std::memory_order_acquire));
  return n ? n->slots[slot_of(index, kLevels - 1)].load(std::memory_order_acquire) : nullptr;
}

void* radix_tree::erase(uint64_t index) {
  if (index > kMaxIndex) return nullptr;
  node* n = root_.load(std::memory_order_relaxed);
  for (int level = 0; n != nullptr && level < kLevels - 1; ++level)
    n = static_cast<node*>(n->slots[slot_of(index, level)].load(std::memory_order_relaxed));
  if (n == nullptr) return nullptr;
  std::atomic<void*>& leaf = n->slots[slot_of(index, kLevels - 1)];
  void* old = leaf.load(std::memory_order_relaxed);
  leaf.store(nullptr, std::memory_order_release);
  return old;
}

void radix_tree::free_node(node* n, int level) {
  if (level < kLevels - 1) {
    for (auto& s : n->slots)
      if (node* c = static_cast<node*>(s.load(std::memory_order_relaxed))) free_node(c, level + 1);
  }
  kfree(n);
}

void radix_tree::destroy() {
  if (node* r = root_.exchange(nullptr, std::memory_order_acq_rel)) free_node(r, 0);
}

}  // namespace kern
