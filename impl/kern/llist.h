// SPDX-License-Identifier: MIT
// Lock-less NULL-terminated singly linked list (the kernel's llist).
//
// Many producers may llist_add() concurrently; consumers take the whole list at once with
// llist_del_all() (any number of them) or, with a single consumer, one entry with
// llist_del_first(). Ordering:
//   - llist_add publishes the node with a release CAS on head->first; llist_del_all takes
//     the list with an acquire exchange. Everything a producer wrote before llist_add (the
//     node's payload, its "queued" flag) is visible to the consumer that takes the node.
//   - A consumer that iterates a taken list must read node->next BEFORE it lets anyone
//     re-add the node (for blkcg: before clearing the set's `lqueued` flag), because a
//     producer that sees the flag clear re-adds the node and overwrites next. llist_next()
//     is an acquire load and the safe iterator reads next before visiting; the flag clear
//     that follows must be a release store (the d0aac2363549 fix in the kernel used a full
//     barrier for the same reason).
// Every RMW on a head is a seam point.
#pragma once

#include <atomic>

#include "impl/kern/sched.h"

namespace kern {

struct llist_node {
  std::atomic<llist_node*> next{nullptr};
};

struct llist_head {
  std::atomic<llist_node*> first{nullptr};
};

inline bool llist_empty(const llist_head& h) {
  return h.first.load(std::memory_order_acquire) == nullptr;
}

inline llist_node* llist_next(const llist_node* n) {
  return n->next.load(std::memory_order_acquire);
}

// Adds `n`; returns true if the list was empty before.
inline bool llist_add(llist_node* n, llist_head& h) {
  seam(SeamKind::kAtomic, &h);
  llist_node* first = h.first.load(std::memory_order_relaxed);
  do {
    n->next.store(first, std::memory_order_relaxed);
    // release: publishes n->next and the caller's writes to the node; pairs with the
    // acquire exchange in llist_del_all / acquire CAS in llist_del_first.
  } while (!h.first.compare_exchange_weak(first, n, std::memory_order_release,
                                          std::memory_order_relaxed));
  return first == nullptr;
}

// Takes every node (newest first).
inline llist_node* llist_del_all(llist_head& h) {
  seam(SeamKind::kAtomic, &h);
  return h.first.exchange(nullptr, std::memory_order_acquire);
}

// Takes the newest node. Only one consumer may use this at a time (the kernel's rule:
// concurrent del_first callers race on a node being re-added, the ABA problem).
inline llist_node* llist_del_first(llist_head& h) {
  seam(SeamKind::kAtomic, &h);
  llist_node* first = h.first.load(std::memory_order_acquire);
  while (first != nullptr) {
    llist_node* next = first->next.load(std::memory_order_relaxed);
    if (h.first.compare_exchange_weak(first, next, std::memory_order_acquire,
                                      std::memory_order_acquire))
      break;
  }
  return first;
}

// Iterate a taken list, tolerating the visitor re-adding the current node elsewhere (or
// to the same list): next is read before the visit.
template <typename Fn>
void llist_for_each_safe(llist_node* n, Fn&& visit) {
  while (n != nullptr) {
    llist_node* next = llist_next(n);
    visit(n);
    n = next;
  }
}

// container_of for llist users.
template <typename T, llist_node T::*Member>
T* llist_entry(llist_node* n) {
  const auto offset = reinterpret_cast<size_t>(&(static_cast<T*>(nullptr)->*Member));
  return reinterpret_cast<T*>(reinterpret_cast<char*>(n) - offset);
}

}  // namespace kern
