// SPDX-License-Identifier: MIT
// The cgroup v2 hierarchy with the io controller: just enough cgroup core for blkcg.
//
// Objects. A cgroup has one io css (struct blkcg, blk_cgroup.h), created with it and
// destroyed after it. Lifecycle of a css, in numbered stages (kernel: cgroup.c):
//   1. mkdir: css_alloc (blkcg_css_alloc), link into the parent's children, css_online
//      (blkcg_css_online pins the parent online). The css holds a reference on its parent
//      css until it is freed.
//   2. rmdir (only when empty: no children, no tasks; else -EBUSY): the cgroup is unlinked
//      and marked removed, css_offline runs (blkcg_css_offline drops the base online pin;
//      blkgs are destroyed when the last pin goes, leaf to root), and the css's base
//      reference is killed.
//   3. free: when the last css reference is put (each blkg holds one), css_free runs from a
//      work item after an RCU grace period (the kernel's css_free_rwork), then the parent's
//      css reference is dropped — possibly freeing it in turn.
//
// Locking: cgroup_mutex (kern::mutex, "cgroup_mutex") protects the hierarchy (children
// lists, removed flags) and task membership; css_alloc/online/offline run under it, as in
// the kernel. css reference counts are kern::percpu_ref (any context).
//
// Tasks are identified by pid; a pid not attached anywhere belongs to the root.
#pragma once

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "impl/kern/lock.h"
#include "impl/kern/percpu_ref.h"
#include "impl/kern/rcu.h"
#include "impl/kern/workqueue.h"

namespace blk {

struct cgroup;
struct blkcg;

struct cgroup_subsys_state {
  cgroup* cgroup = nullptr;
  cgroup_subsys_state* parent = nullptr;
  kern::percpu_ref refcnt;
  bool online = false;  // protected by cgroup_mutex
  // Stage 3: release -> RCU -> work -> css_free. Only the free path touches these.
  kern::rcu_head rcu;
  kern::work_struct free_work;
};

struct cgroup {
  std::string name;
  std::string path;  // "/" for the root, "/a/b" below it
  cgroup* parent = nullptr;
  int id = 0;
  // Guarded by cgroup_mutex:
  std::vector<cgroup*> children;
  std::set<int> procs;
  bool removed = false;
  // The io controller's css (a blkcg); set at mkdir, valid until css_free.
  blkcg* io = nullptr;
  class cgroup_hierarchy* hierarchy = nullptr;
};

class cgroup_hierarchy {
 public:
  // Creates the root cgroup (and its blkcg). Reports kBug if that fails. dfl: the io
  // controller on the default (v2) hierarchy; false: the legacy (v1) "blkio" hierarchy,
  // with its own files (blkio.*) and blk-throttle's flat mode.
  explicit cgroup_hierarchy(bool dfl = true);
  bool on_dfl() const { return dfl_; }
  // Tears down what is left: every cgroup must have been removed (reported otherwise);
  // pending frees are flushed.
  ~cgroup_hierarchy();

  cgroup* root() { return root_; }
  // 0, -EEXIST, -ENOENT (parent removed), -EINVAL (bad name), -ENOMEM. Context: process.
  int mkdir(cgroup* parent, const std::string& name, cgroup** out);
  // 0, -EBUSY (children or tasks), -EINVAL (root), -ENOENT (already removed).
  int rmdir(cgroup* cg);
  // The same by path, the lookup and the change under one hold of cgroup_mutex (a
  // concurrent rmdir cannot free the parent or the victim in between): -ENOENT when the
  // parent (mkdir) or the cgroup (rmdir) does not exist. Context: process.
  int mkdir_path(const std::string& path, cgroup** out);
  int rmdir_path(const std::string& path);
  // Looks a live cgroup up by path ("/", "/a/b"); nullptr if none.
  cgroup* lookup(const std::string& path);
  // The io css of the live cgroup at `path` with a reference taken (css_tryget_online),
  // or nullptr. The caller css_put()s it. Safe against a concurrent rmdir.
  blkcg* get_io_css(const std::string& path);
  // cgroup.procs write: move `pid` into `cg` (-ENOENT if cg was removed).
  int attach_task(cgroup* cg, int pid);
  // The same by path, and the pids of the cgroup at `path`, each with the lookup under the
  // same hold of cgroup_mutex (a cgroup* from lookup() may be freed by a concurrent rmdir
  // as soon as the mutex is dropped). -ENOENT if there is no such live cgroup.
  int attach_task_path(const std::string& path, int pid);
  int read_procs(const std::string& path, std::string* out);
  // The cgroup of `pid` (the root if never attached).
  cgroup* task_cgroup(int pid);
  // Runs css frees that are waiting for a grace period and their work (test helper).
  void flush_frees();
  size_t nr_live_cgroups();

  kern::mutex cgroup_mutex{"cgroup_mutex"};

  // Observers for an oracle beside the hierarchy (the scenario executor's model): called
  // under cgroup_mutex at the moment the change takes effect, so concurrent changes reach
  // the observer in the order they happened. Set before any task runs; must not sleep.
  std::function<void(cgroup*)> on_mkdir, on_rmdir;
  std::function<void(int pid, cgroup*)> on_attach;

 private:
  cgroup* lookup_locked(const std::string& path) REQUIRES(cgroup_mutex);
  int mkdir_locked(cgroup* parent, const std::string& name, cgroup** out) REQUIRES(cgroup_mutex);
  int rmdir_locked(cgroup* cg) REQUIRES(cgroup_mutex);
  int attach_task_locked(cgroup* cg, int pid) REQUIRES(cgroup_mutex);

  cgroup* root_ = nullptr;
  bool dfl_ = true;
  int next_id_ = 1;
  std::map<int, cgroup*> task_map_;  // guarded by cgroup_mutex
  std::vector<cgroup*> live_;        // every cgroup not yet freed; guarded by cgroup_mutex
  friend void css_free_workfn(kern::work_struct* w);
};

// css reference helpers (kernel names). css_tryget_online fails once offline started.
// Context: any (the last put schedules the release through call_rcu).
void css_get(cgroup_subsys_state* css);
bool css_tryget(cgroup_subsys_state* css);
bool css_tryget_online(cgroup_subsys_state* css);
void css_put(cgroup_subsys_state* css);

}  // namespace blk
