// SPDX-License-Identifier: MIT
#include "impl/kern/bugbench.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace kern {
namespace {

// Set by the first caller; relaxed is enough: the flag only decides who writes the line,
// and a second line from a racing caller would be harmless (the benchmark counts files,
// not lines).
std::atomic<bool> reached{false};

}  // namespace

void bugbench_reached(const char* where) {
  if (reached.load(std::memory_order_relaxed) || reached.exchange(true, std::memory_order_relaxed))
    return;
  const char* path = std::getenv("BLKCG_BUGBENCH_REACHED");
  if (path == nullptr || *path == '\0') return;
  int fd = ::open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return;
  char line[512];
  size_t n = std::strlen(where);
  if (n > sizeof(line) - 2) n = sizeof(line) - 2;
  std::memcpy(line, where, n);
  line[n++] = '\n';
  ssize_t ignored = ::write(fd, line, n);
  (void)ignored;
  ::close(fd);
}

}  // namespace kern
