// SPDX-License-Identifier: MIT
// A transparent string hash: maps keyed by std::string looked up with a string_view or a
// literal without building a std::string (lockdep's class registry, the allocator's
// statistics; both are looked up on hot paths).
#pragma once

#include <cstddef>
#include <functional>
#include <string_view>

namespace kern {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

}  // namespace kern
