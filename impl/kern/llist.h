// SPDX-License-Identifier: MIT
// Lock-less NULL-terminated singly linked list, the kernel's llist.
//
// Producers push nodes with llist_add(); consumers take the whole list at once with
// llist_del_all(), or one node with llist_del_first(). Which operations may run at the
// same time without a lock (L = the callers need a lock between them):
//
//                 llist_add   llist_del_first   llist_del_all
//   llist_add        ok            ok                ok
//   llist_del_first                L                 L
//   llist_del_all                                    ok
//
// llist_del_first needs exclusion against every other consumer because of ABA: between its
// read of first->next and its CAS, another consumer could take `first`, and a producer
// could re-add it with a different next; the CAS would then succeed with a stale next.
//
// Ordering, each with its partner:
//   1. llist_add's CAS is a release: the node's payload and its `next` (and everything the
//      producer wrote before) are published with it. llist_del_all's exchange and
//      llist_del_first's CAS are acquires. Because every write of `first` is a
//      read-modify-write, the release sequences of all earlier producers continue through
//      the later CASes, so one acquire exchange sees every taken node's contents.
//   2. The consumer owns a taken list, but a node can be re-added to some list by a
//      producer as soon as the consumer lets it (for blkcg: clears the set's `lqueued`
//      flag), and re-adding overwrites node->next. So the consumer must read next BEFORE
//      it lets go of the node: llist_for_each_safe() reads next before calling the visitor,
//      and the "let go" store must be a release (or seq_cst) store, which keeps the earlier
//      load of next before it, pairing with the producer's acquire load of the flag before
//      it re-adds the node. Without that, the load of next could be satisfied after the
//      flag clear and return the producer's new next: the walk jumps onto another list.
//      That is the kernel fix d0aac2363549 ("blk-cgroup: fix list corruption from reorder
//      of WRITE ->lqueued"), which put a full barrier before the flag clear.
//   3. llist_next() is an acquire load. Ordering 1 already makes `next` visible for a
//      taken list; acquire costs nothing on x86 and keeps walks of a node obtained some
//      other way correct.
//   4. llist_empty() is an acquire load: a caller that peeks and then reads a node it
//      obtained through llist_del_all is covered by 1 anyway; acquire only makes a peek
//      that sees a node also see that node's payload.
// Every read-modify-write of a head is a seam point (SeamKind::kAtomic), before the RMW.
#pragma once

#include <atomic>
#include <cstddef>

#include "impl/kern/container_of.h"
#include "impl/kern/sched.h"

namespace kern {

struct llist_node {
  std::atomic<llist_node*> next{nullptr};
};

struct llist_head {
  std::atomic<llist_node*> first{nullptr};
};

// True if the list has no node. A snapshot: producers may add at any time.
inline bool llist_empty(const llist_head& h) {
  return h.first.load(std::memory_order_acquire) == nullptr;  // ordering 4
}

// The node after n on a taken list. Read it before letting anyone re-add n (ordering 2).
inline llist_node* llist_next(const llist_node* n) {
  return n->next.load(std::memory_order_acquire);  // ordering 3
}

// Adds n at the head; returns true if the list was empty before (the caller that made it
// non-empty usually schedules the consumer). Any context; never sleeps.
inline bool llist_add(llist_node* n, llist_head& h) {
  seam(SeamKind::kAtomic, &h);
  llist_node* first = h.first.load(std::memory_order_relaxed);
  do {
    // relaxed: published by the release CAS below.
    n->next.store(first, std::memory_order_relaxed);
    // release on success: ordering 1, pairs with llist_del_all's / llist_del_first's
    // acquire. relaxed on failure: `first` is only a new guess, nothing is read through it.
  } while (!h.first.compare_exchange_weak(first, n, std::memory_order_release,
                                          std::memory_order_relaxed));
  return first == nullptr;
}

// Takes every node; returns the newest (the list runs newest to oldest). Any context.
inline llist_node* llist_del_all(llist_head& h) {
  seam(SeamKind::kAtomic, &h);
  return h.first.exchange(nullptr, std::memory_order_acquire);  // ordering 1
}

// Takes the newest node, or returns nullptr. Callers must exclude other consumers (table
// above).
inline llist_node* llist_del_first(llist_head& h) {
  seam(SeamKind::kAtomic, &h);
  // acquire (load and CAS failure): ordering 1 for the node we read next from.
  llist_node* first = h.first.load(std::memory_order_acquire);
  while (first != nullptr) {
    // relaxed: `first`'s next was published by the release that the acquire above saw.
    llist_node* next = first->next.load(std::memory_order_relaxed);
    if (h.first.compare_exchange_weak(first, next, std::memory_order_acquire,
                                      std::memory_order_acquire))
      break;
  }
  return first;
}

// Reverses a taken list (newest-first into oldest-first) and returns the new first node.
// The caller owns the list.
inline llist_node* llist_reverse_order(llist_node* n) {
  llist_node* rev = nullptr;
  while (n != nullptr) {
    llist_node* next = llist_next(n);
    n->next.store(rev, std::memory_order_relaxed);  // owned by the caller: no ordering
    rev = n;
    n = next;
  }
  return rev;
}

// Visits a taken list, tolerating the visitor re-adding (or freeing) the current node:
// next is read before the visit (ordering 2). visit(llist_node*).
template <typename Fn>
void llist_for_each_safe(llist_node* n, Fn&& visit) {
  while (n != nullptr) {
    llist_node* next = llist_next(n);
    visit(n);
    n = next;
  }
}

// container_of for llist users: the T that embeds node n as member Member.
template <typename T, llist_node T::*Member>
T* llist_entry(llist_node* n) {
  return container_of<T, llist_node, Member>(n);
}

// llist_for_each_safe over the entries: visit(T*).
template <typename T, llist_node T::*Member, typename Fn>
void llist_for_each_entry_safe(llist_node* n, Fn&& visit) {
  llist_for_each_safe(n, [&visit](llist_node* node) { visit(llist_entry<T, Member>(node)); });
}

}  // namespace kern
