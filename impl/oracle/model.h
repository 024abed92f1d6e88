// SPDX-License-Identifier: MIT
// The reference model of what a user of blkcg can observe, kept beside the implementation
// by the scenario executor and compared with it (DESIGN principle 6).
//
//   The cgroup tree (paths alive, task membership): mkdir/rmdir/attach results predicted.
//   Disks: handle -> dev and lifecycle state.
//   io.max: an independent grammar (iomax_parse, written apart from the implementation's
//     parser) predicts every write's result; limits per (cgroup, disk) predict the read
//     text (as a set of lines: the kernel's line order is the blkg list's, not part of
//     the ABI).
//   io.stat: counters per (cgroup, disk) of every bio accounted (blk_cgroup_bio_start:
//     bytes once per original bio, one IO per piece), kept for removed cgroups too. A
//     cgroup's line must show the sum over its whole subtree, removed children included
//     (stats conservation up the hierarchy); the root's line is the disk's total. Cgroups
//     are identified by their id, not their path: a path removed and made again is a new
//     cgroup that starts from zero.
//   Allocation failures: which failed allocations explain a configuration write's -ENOMEM
//     (config_enomem_culprit).
//
// Every check returns "" or a description of the first difference.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "impl/kern/alloc.h"

namespace oracle {

// A configuration write (io.max, blkio.throttle.*) runs in process context and allocates
// what it needs with a blocking class (457e490f2b74), radix-tree nodes for
// blkcg->blkg_tree included (preloaded, f255c19b3ab4), so -ENOMEM is explained only by a
// failed blocking allocation. Given the allocation log of one write that returned
// -ENOMEM: "" if it is explained, else what is wrong ("no allocation failed" or the
// non-blocking site that did).
std::string config_enomem_culprit(const std::vector<kern::AllocDecision>& log);

// io.max grammar oracle. errno 0: a valid write of `limits` to (major, minor); else the
// errno the kernel returns before touching any limit. ENODEV is not decided here (it needs
// the device table): dev_ok tells whether the MAJ:MIN part parsed.
struct IomaxParse {
  bool dev_ok = false;
  unsigned major = 0, minor = 0;
  int err = 0;               // 0, EINVAL, ERANGE (negative values are not used)
  bool set[4] = {};          // which of rbps, wbps, riops, wiops the write names
  uint64_t value[4] = {};    // the value for each named key (UINT64_MAX / UINT32_MAX: max)
};
IomaxParse iomax_parse(const std::string& input);
// A write to blkio.throttle.{read,write}_{bps,iops}_device (cgroup v1): the device as
// for io.max, then the value as the kernel's sscanf("%llu") reads it: white space, at
// least one decimal digit (no sign), digits wrapping modulo 2^64, the rest ignored. The
// caller applies the file's rules: 0 means no limit, iops files keep the low 32 bits.
struct V1LimitParse {
  bool dev_ok = false;
  unsigned major = 0, minor = 0;
  int err = 0;  // 0 or EINVAL
  uint64_t value = 0;
};
V1LimitParse v1_limit_parse(const std::string& input);
// The read-back line of one device's limits, "" if all are max.
std::string iomax_line(const std::string& dev, const uint64_t limits[4]);

class Model {
 public:
  Model();

  // Cgroup tree. Each predicts the errno (0 or negative) of the operation.
  int predict_mkdir(const std::string& path) const;
  int predict_rmdir(const std::string& path) const;
  // id: the implementation's cgroup id (unique for the hierarchy's lifetime).
  void mkdir(const std::string& path, int id);
  void set_root_id(int id) { root_id_ = id; }
  void rmdir(const std::string& path);
  void attach(int pid, const std::string& path);
  bool cgroup_exists(const std::string& path) const { return alive_.count(path) != 0; }
  // Live cgroups, parents before children; pids with the cgroup they are in.
  std::vector<std::string> live_paths() const { return {alive_.begin(), alive_.end()}; }
  const std::map<int, std::string>& procs() const { return procs_; }

  // Disks: dev "MAJ:MIN".
  void disk_added(const std::string& dev);
  void disk_deleted(const std::string& dev);
  void disk_released(const std::string& dev);
  bool disk_live(const std::string& dev) const;

  // io.max of `path` (non-root, existing): the predicted result of writing `data`
  // (bytes written or -errno) and, when it succeeds, the new limits are kept.
  long predict_iomax_write(const std::string& path, const std::string& data) const;
  void iomax_written(const std::string& path, const std::string& data);
  std::string check_iomax_read(const std::string& path, const std::string& text) const;
  // The limits kept for (path, dev): rbps, wbps, riops, wiops; nullptr when none were set.
  const std::vector<uint64_t>* limits(const std::string& path, const std::string& dev) const {
    auto it = limits_.find({path, dev});
    return it == limits_.end() ? nullptr : &it->second;
  }

  // io.stat: one accounted bio piece of the cgroup with this id (-1: no blkg).
  void account(int id, const std::string& dev, int type, uint64_t bytes, bool first_piece);
  std::string check_iostat_read(const std::string& path, const std::string& text) const;

 private:
  struct Counters {
    uint64_t bytes[3] = {}, ios[3] = {};
  };
  std::set<std::string> alive_;
  std::map<int, std::string> procs_;
  std::map<std::string, int> disk_state_;  // 1 live, 2 deleted (released: erased)
  std::map<std::pair<std::string, std::string>, std::vector<uint64_t>> limits_;
  std::map<std::pair<int, std::string>, Counters> stats_;  // (cgroup id, dev)
  std::map<std::string, int> id_of_path_;                  // live cgroups
  std::map<int, int> parent_id_;                           // every cgroup ever made
  int root_id_ = 0;
  bool below(int id, int ancestor) const;
};

}  // namespace oracle
