// SPDX-License-Identifier: MIT
// --name=value flags of the torture programs. Strict: the whole value must parse and lie
// in range, so a typo (--cpus=4x, --seconds=) fails the run with exit code 2 instead of
// running something else.
#pragma once

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace stress {

// The value of `arg` if it is `name=VALUE`, else nullptr.
inline const char* flag_value(const char* arg, const char* name) {
  const size_t n = std::strlen(name);
  if (std::strncmp(arg, name, n) == 0 && arg[n] == '=') return arg + n + 1;
  return nullptr;
}

inline bool parse_int(const char* v, long lo, long hi, int* out) {
  char* end = nullptr;
  errno = 0;
  const long x = std::strtol(v, &end, 0);
  if (errno || end == v || *end != '\0' || x < lo || x > hi) return false;
  *out = static_cast<int>(x);
  return true;
}

inline bool parse_uint(const char* v, unsigned long hi, unsigned* out) {
  char* end = nullptr;
  errno = 0;
  const unsigned long x = std::strtoul(v, &end, 0);
  if (errno || end == v || *end != '\0' || x > hi) return false;
  *out = static_cast<unsigned>(x);
  return true;
}

inline bool parse_ulong(const char* v, unsigned long* out) {
  char* end = nullptr;
  errno = 0;
  const unsigned long x = std::strtoul(v, &end, 0);
  if (errno || end == v || *end != '\0') return false;
  *out = x;
  return true;
}

// A positive number of seconds.
inline bool parse_seconds(const char* v, double* out) {
  char* end = nullptr;
  const double x = std::strtod(v, &end);
  if (end == v || *end != '\0' || !(x > 0)) return false;
  *out = x;
  return true;
}

}  // namespace stress
