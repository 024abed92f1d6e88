// SPDX-License-Identifier: MIT
#include "impl/block/cgroupfs.h"

#include <cerrno>
#include <cstdlib>

#include "impl/block/blk_stat.h"
#include "impl/block/blk_throttle.h"

namespace blk {
namespace {

struct Target {
  std::string dir;
  std::string file;
};

Target split(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return {"", path};
  return {slash == 0 ? "/" : path.substr(0, slash), path.substr(slash + 1)};
}

// Parses an unsigned decimal with optional surrounding whitespace (kstrtoull-like).
bool parse_u64(const std::string& s, uint64_t* v) {
  size_t i = 0, n = s.size();
  while (i < n && (s[i] == ' ' || s[i] == '\t')) ++i;
  while (n > i && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\t')) --n;
  if (i == n || n - i > 20) return false;
  uint64_t x = 0;
  for (size_t k = i; k < n; ++k) {
    if (s[k] < '0' || s[k] > '9') return false;
    const uint64_t d = static_cast<uint64_t>(s[k] - '0');
    if (x > (UINT64_MAX - d) / 10) return false;
    x = x * 10 + d;
  }
  *v = x;
  return true;
}

}  // namespace

int cgroup_file_read(cgroup_hierarchy& h, const std::string& path, std::string* out) {
  const Target t = split(path);
  cgroup* cg = h.lookup(t.dir);
  if (cg == nullptr) return -ENOENT;
  if (t.file == "io.stat") {
    // cg stays linked while we print: a concurrent rmdir needs cgroup_mutex, which the
    // flush takes; pin the css across the read.
    blkcg* css = h.get_io_css(t.dir);
    if (css == nullptr) return -ENOENT;
    *out = blkcg_print_stat(h, css->cgroup);
    css_put(css);
    return 0;
  }
  if (t.file == "cgroup.procs") {
    kern::MutexGuard g(h.cgroup_mutex);
    out->clear();
    for (int pid : cg->procs) *out += std::to_string(pid) + "\n";
    return 0;
  }
  if (t.file == "blkio.reset_stats") return -EINVAL;  // write-only
  if (t.file == "io.max") {
    if (cg == h.root()) return -ENOENT;  // CFTYPE_NOT_ON_ROOT
    blkcg* css = h.get_io_css(t.dir);
    if (css == nullptr) return -ENOENT;
    *out = tg_print_limit(css);
    css_put(css);
    return 0;
  }
  return -ENOENT;
}

long cgroup_file_write(cgroup_hierarchy& h, const std::string& path, const std::string& data) {
  const Target t = split(path);
  if (t.file == "io.stat") return h.lookup(t.dir) ? -EINVAL : -ENOENT;
  if (t.file == "cgroup.procs") {
    uint64_t pid;
    if (!parse_u64(data, &pid) || pid == 0 || pid > 4194304) return -EINVAL;
    cgroup* cg = h.lookup(t.dir);
    if (cg == nullptr) return -ENOENT;
    const int r = h.attach_task(cg, static_cast<int>(pid));
    return r < 0 ? (r == -ENOENT ? -ENODEV : r) : static_cast<long>(data.size());
  }
  if (t.file == "blkio.reset_stats") {
    uint64_t v;
    if (!parse_u64(data, &v)) return -EINVAL;
    blkcg* css = h.get_io_css(t.dir);
    if (css == nullptr) return -ENOENT;
    blkcg_reset_stats(css);
    css_put(css);
    return static_cast<long>(data.size());
  }
  if (t.file == "io.max") {
    cgroup* cg = h.lookup(t.dir);
    if (cg == nullptr || cg == h.root()) return -ENOENT;
    blkcg* css = h.get_io_css(t.dir);
    if (css == nullptr) return -ENOENT;
    const long r = tg_set_limit(css, data);
    css_put(css);
    return r;
  }
  return -ENOENT;
}

}  // namespace blk
