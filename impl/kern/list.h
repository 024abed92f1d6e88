// SPDX-License-Identifier: MIT
// Intrusive circular doubly linked list, the kernel's list_head: a node embedded in its
// owner, an empty list (or an unlinked node after list_del_init) points at itself.
// No locking of its own: every list is protected by whatever protects its owner, which the
// owner documents. Plain (non-atomic) fields: never read without that lock.
#pragma once

#include "impl/kern/container_of.h"

namespace kern {

struct list_head {
  list_head* next = this;
  list_head* prev = this;
  list_head() = default;
  list_head(const list_head&) = delete;
  list_head& operator=(const list_head&) = delete;
};

inline void INIT_LIST_HEAD(list_head* h) { h->next = h->prev = h; }
inline bool list_empty(const list_head* h) { return h->next == h; }

inline void list_insert_between(list_head* n, list_head* prev, list_head* next) {
  next->prev = n;
  n->next = next;
  n->prev = prev;
  prev->next = n;
}
// Adds n after h (at the front).
inline void list_add(list_head* n, list_head* h) { list_insert_between(n, h, h->next); }
// Adds n before h (at the back).
inline void list_add_tail(list_head* n, list_head* h) { list_insert_between(n, h->prev, h); }
// Unlinks n and leaves it self-linked, so list_empty(n) tells whether it is on a list.
inline void list_del_init(list_head* n) {
  n->prev->next = n->next;
  n->next->prev = n->prev;
  INIT_LIST_HEAD(n);
}
inline void list_move_tail(list_head* n, list_head* h) {
  list_del_init(n);
  list_add_tail(n, h);
}

// The owner of an embedded node: list_entry<T, &T::member>(node).
template <typename T, list_head T::*Member>
T* list_entry(list_head* n) {
  return container_of<T, list_head, Member>(n);
}

}  // namespace kern
