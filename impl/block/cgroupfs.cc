// SPDX-License-Identifier: MIT
#include "impl/block/cgroupfs.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>

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

// The v1 limit files: index into tg_set_conf / tg_print_conf.
int v1_conf_index(const std::string& f) {
  static const char* const names[] = {
      "blkio.throttle.read_bps_device", "blkio.throttle.write_bps_device",
      "blkio.throttle.read_iops_device", "blkio.throttle.write_iops_device"};
  for (int i = 0; i < 4; ++i)
    if (f == names[i]) return i;
  return -1;
}

enum class Kind { kNone, kProcs, kIoStat, kIoMax, kReset, kV1Conf, kV1Stat };

// Which file `f` is in a cgroup of hierarchy h (root or not); kNone if absent there.
Kind file_kind(cgroup_hierarchy& h, const std::string& f, bool is_root) {
  if (f == "cgroup.procs") return Kind::kProcs;
  if (h.on_dfl()) {
    if (f == "io.stat") return Kind::kIoStat;
    if (f == "io.max" && !is_root) return Kind::kIoMax;  // CFTYPE_NOT_ON_ROOT
    return Kind::kNone;
  }
  if (f == "blkio.reset_stats") return Kind::kReset;
  if (v1_conf_index(f) >= 0) return Kind::kV1Conf;
  if (f.rfind("blkio.throttle.io_serv", 0) == 0) {
    for (const char* s : {"blkio.throttle.io_service_bytes", "blkio.throttle.io_serviced",
                          "blkio.throttle.io_service_bytes_recursive",
                          "blkio.throttle.io_serviced_recursive"})
      if (f == s) return Kind::kV1Stat;
  }
  return Kind::kNone;
}

}  // namespace

int cgroup_file_read(cgroup_hierarchy& h, const std::string& path, std::string* out) {
  const Target t = split(path);
  cgroup* cg = h.lookup(t.dir);
  if (cg == nullptr) return -ENOENT;
  const Kind k = file_kind(h, t.file, cg == h.root());
  if (k == Kind::kNone) return -ENOENT;
  // (cg is only compared from here on: a concurrent rmdir may free it once lookup() let
  // go of cgroup_mutex; what needs the cgroup looks it up again under the mutex or pins it.)
  if (k == Kind::kProcs) return h.read_procs(t.dir, out);
  if (k == Kind::kReset) return -EINVAL;  // write-only
  // cg stays linked while we print: a concurrent rmdir needs cgroup_mutex, which the
  // flush takes; pin the css across the read.
  blkcg* css = h.get_io_css(t.dir);
  if (css == nullptr) return -ENOENT;
  switch (k) {
    case Kind::kIoStat: *out = blkcg_print_stat(h, css->cgroup); break;
    case Kind::kIoMax: *out = tg_print_limit(css); break;
    case Kind::kV1Conf: *out = tg_print_conf(css, v1_conf_index(t.file)); break;
    default:
      *out = tg_print_rwstat(css, t.file.find("bytes") != std::string::npos,
                             t.file.find("_recursive") != std::string::npos);
  }
  css_put(css);
  return 0;
}

long cgroup_file_write(cgroup_hierarchy& h, const std::string& path, const std::string& data) {
  const Target t = split(path);
  cgroup* cg = h.lookup(t.dir);
  if (cg == nullptr) return -ENOENT;
  const Kind k = file_kind(h, t.file, cg == h.root());
  switch (k) {
    case Kind::kNone: return -ENOENT;
    case Kind::kIoStat:
    case Kind::kV1Stat: return -EINVAL;  // read-only
    case Kind::kProcs: {
      uint64_t pid;
      if (!parse_u64(data, &pid) || pid == 0 || pid > 4194304) return -EINVAL;
      const int r = h.attach_task_path(t.dir, static_cast<int>(pid));
      return r < 0 ? (r == -ENOENT ? -ENODEV : r) : static_cast<long>(data.size());
    }
    default: break;
  }
  uint64_t v;
  if (k == Kind::kReset && !parse_u64(data, &v)) return -EINVAL;
  blkcg* css = h.get_io_css(t.dir);
  if (css == nullptr) return -ENOENT;
  long r = static_cast<long>(data.size());
  if (k == Kind::kReset)
    blkcg_reset_stats(css);
  else if (k == Kind::kIoMax)
    r = tg_set_limit(css, data);
  else
    r = tg_set_conf(css, data, v1_conf_index(t.file));
  css_put(css);
  return r;
}

}  // namespace blk
