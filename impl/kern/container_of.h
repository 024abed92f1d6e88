// SPDX-License-Identifier: MIT
// container_of: the object that embeds a member, from a pointer to the member. Works for
// any type (offsetof is only defined for standard-layout ones, and most kernel objects
// here are not: they hold atomics, locks, std::function). list_entry and llist_entry are
// this with a fixed member type.
#pragma once

#include <cstddef>

namespace kern {

template <typename T, typename M, M T::*Member>
T* container_of(M* p) {
  const auto off = reinterpret_cast<std::size_t>(&(static_cast<T*>(nullptr)->*Member));
  return reinterpret_cast<T*>(reinterpret_cast<char*>(p) - off);
}

}  // namespace kern

// container_of(ptr, Type, member), the kernel's spelling.
#define KERN_CONTAINER_OF(ptr, T, member) \
  (::kern::container_of<T, decltype(T::member), &T::member>(ptr))
