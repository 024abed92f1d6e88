// SPDX-License-Identifier: MIT
#include "impl/block/cgroup.h"

#include "impl/block/busted.h"

#include <algorithm>
#include <cerrno>

#include "impl/block/blk_cgroup.h"
#include "impl/kern/alloc.h"
#include "impl/kern/report.h"

namespace blk {

void css_get(cgroup_subsys_state* css) { kern::percpu_ref_get(&css->refcnt); }
bool css_tryget(cgroup_subsys_state* css) { return kern::percpu_ref_tryget(&css->refcnt); }
bool css_tryget_online(cgroup_subsys_state* css) {
  return kern::percpu_ref_tryget_live(&css->refcnt);
}
void css_put(cgroup_subsys_state* css) { kern::percpu_ref_put(&css->refcnt); }

// Stage 3, part 3. Context: process (system_wq), may sleep.
void css_free_workfn(kern::work_struct* w) {
  // free_work is a member of the css; recover the css from it.
  auto* css = reinterpret_cast<cgroup_subsys_state*>(
      reinterpret_cast<char*>(w) - offsetof(cgroup_subsys_state, free_work));
  cgroup* cg = css->cgroup;
  cgroup_hierarchy* h = cg->hierarchy;
  cgroup_subsys_state* parent = css->parent;
  {
    kern::MutexGuard g(h->cgroup_mutex);
    auto& live = h->live_;
    live.erase(std::remove(live.begin(), live.end(), cg), live.end());
  }
  kern::percpu_ref_exit(&css->refcnt);
  blkcg_css_free(css_to_blkcg(css));
  kern::kfree(cg);
  if (parent) css_put(parent);  // the reference the child held since mkdir
}

namespace {

// Stage 3, part 2. Context: RCU callback (softirq): only queues the sleeping part.
void css_free_rcu_fn(kern::rcu_head* head) {
  auto* css = reinterpret_cast<cgroup_subsys_state*>(
      reinterpret_cast<char*>(head) - offsetof(cgroup_subsys_state, rcu));
  kern::queue_work(kern::system_wq(), &css->free_work);
}

// Stage 3, part 1: the last css reference is gone. Context: any (where the last put ran).
void css_release(kern::percpu_ref* ref) {
  auto* css = reinterpret_cast<cgroup_subsys_state*>(
      reinterpret_cast<char*>(ref) - offsetof(cgroup_subsys_state, refcnt));
  kern::call_rcu(&css->rcu, css_free_rcu_fn);
}

bool valid_name(const std::string& n) {
  return !n.empty() && n != "." && n != ".." && n.find('/') == std::string::npos &&
         n.size() <= 255;
}

// Initialises the css part of a freshly allocated blkcg. Context: cgroup_mutex held.
void init_css(blkcg* b, cgroup* cg) {
  b->cgroup = cg;
  kern::percpu_ref_init(&b->refcnt, css_release, "css->refcnt");
  kern::INIT_WORK(&b->free_work, css_free_workfn, "css_free_work");
  if (b->parent) css_get(b->parent);
  cg->io = b;
}

}  // namespace

cgroup_hierarchy::cgroup_hierarchy(bool dfl) : dfl_(dfl) {
  kern::MutexGuard g(cgroup_mutex);
  root_ = kern::kzalloc_obj<cgroup>(kern::GFP_KERNEL, "cgroup_root");
  blkcg* b = root_ ? blkcg_css_alloc(nullptr) : nullptr;
  if (!b) {
    kern::kreport(kern::ReportKind::kBug, "cgroup-root-alloc", "cannot allocate the root cgroup");
    return;
  }
  root_->name = "";
  root_->path = "/";
  root_->hierarchy = this;
  init_css(b, root_);
  live_.push_back(root_);
  blkcg_css_online(b);
  b->online = true;
  set_cgroup_subsys_on_dfl(dfl);
  set_blkcg_root(b);
}

cgroup_hierarchy::~cgroup_hierarchy() {
  if (root_ && root_->io) {
    bool busy;
    {
      kern::MutexGuard g(cgroup_mutex);
      busy = !root_->children.empty();
      if (!busy) {
        set_blkcg_root(nullptr);
        root_->removed = true;
        root_->io->online = false;
        blkcg_css_offline(root_->io);
        kern::percpu_ref_kill(&root_->io->refcnt);
      }
    }
    if (busy)
      kern::kreport(kern::ReportKind::kLeak, "cgroup-hierarchy-not-empty",
                    "cgroup hierarchy destroyed with child cgroups still present");
  }
  flush_frees();
}

void cgroup_hierarchy::flush_frees() {
  // A free may drop the parent's last reference, which queues another free: repeat until
  // nothing is pending.
  while (kern::rcu_pending_callbacks() != 0 || kern::nr_pending_work() != 0) {
    kern::rcu_barrier();
    kern::flush_workqueue(kern::system_wq());
    kern::run_pending_work();  // work on other queues (kthrotld, punt) too
  }
}

size_t cgroup_hierarchy::nr_live_cgroups() {
  kern::MutexGuard g(cgroup_mutex);
  return live_.size();
}

int cgroup_hierarchy::mkdir(cgroup* parent, const std::string& name, cgroup** out) {
  if (!valid_name(name)) return -EINVAL;
  kern::MutexGuard g(cgroup_mutex);
  return mkdir_locked(parent, name, out);
}

int cgroup_hierarchy::mkdir_path(const std::string& path, cgroup** out) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return -EINVAL;
  const std::string name = path.substr(slash + 1);
  if (!valid_name(name)) return -EINVAL;
  kern::MutexGuard g(cgroup_mutex);
  cgroup* parent = lookup_locked(slash == 0 ? "/" : path.substr(0, slash));
  if (!parent) return -ENOENT;
  return mkdir_locked(parent, name, out);
}

int cgroup_hierarchy::mkdir_locked(cgroup* parent, const std::string& name, cgroup** out) {
  if (parent->removed) return -ENOENT;
  for (cgroup* c : parent->children)
    if (c->name == name) return -EEXIST;
  cgroup* cg = kern::kzalloc_obj<cgroup>(kern::GFP_KERNEL, "cgroup_mkdir");
  if (!cg) return -ENOMEM;
  blkcg* b = blkcg_css_alloc(parent->io);
  if (!b) {
    kern::kfree(cg);
    return -ENOMEM;
  }
  cg->name = name;
  cg->path = (parent == root_ ? "" : parent->path) + "/" + name;
  cg->parent = parent;
  cg->id = next_id_++;
  cg->hierarchy = this;
  init_css(b, cg);
  parent->children.push_back(cg);
  live_.push_back(cg);
  blkcg_css_online(b);
  b->online = true;
  if (on_mkdir) on_mkdir(cg);
  if (out) *out = cg;
  return 0;
}

int cgroup_hierarchy::rmdir(cgroup* cg) {
  kern::MutexGuard g(cgroup_mutex);
  return rmdir_locked(cg);
}

int cgroup_hierarchy::rmdir_path(const std::string& path) {
  kern::MutexGuard g(cgroup_mutex);
  cgroup* cg = lookup_locked(path);
  return cg ? rmdir_locked(cg) : -ENOENT;
}

int cgroup_hierarchy::rmdir_locked(cgroup* cg) {
  if (cg == root_) return -EINVAL;
  if (cg->removed) return -ENOENT;
  if (!cg->children.empty() || !cg->procs.empty()) return -EBUSY;
  auto& siblings = cg->parent->children;
  siblings.erase(std::remove(siblings.begin(), siblings.end(), cg), siblings.end());
  cg->removed = true;
  // Stage 2: kill the base reference first, as the kernel does (css_tryget_online fails
  // from here on, so no blkg creation can start while offline destroys the blkgs), then
  // offline, pinned by a reference of our own (the kill may have dropped the last one).
  // The old order let a creation pass css_tryget_online while offline ran (found by
  // blkcg_torture: io.stat of a cgroup going down); busted: rmdir_offline_before_kill.
  blkcg* io = cg->io;
  io->online = false;
  if (busted().rmdir_offline_before_kill.load(std::memory_order_relaxed)) {
    blkcg_css_offline(io);
    if (on_rmdir) on_rmdir(cg);
    kern::percpu_ref_kill(&io->refcnt);
    return 0;
  }
  css_get(io);
  kern::percpu_ref_kill(&io->refcnt);
  blkcg_css_offline(io);
  if (on_rmdir) on_rmdir(cg);
  css_put(io);
  return 0;
}

cgroup* cgroup_hierarchy::lookup(const std::string& path) {
  kern::MutexGuard g(cgroup_mutex);
  return lookup_locked(path);
}

cgroup* cgroup_hierarchy::lookup_locked(const std::string& path) {
  if (path.empty() || path[0] != '/') return nullptr;
  cgroup* cur = root_;
  size_t pos = 1;
  while (pos < path.size()) {
    const size_t end = path.find('/', pos);
    const std::string part = path.substr(pos, end == std::string::npos ? end : end - pos);
    pos = end == std::string::npos ? path.size() : end + 1;
    if (part.empty()) continue;
    cgroup* next = nullptr;
    for (cgroup* c : cur->children)
      if (c->name == part) next = c;
    if (!next) return nullptr;
    cur = next;
  }
  return cur;
}

blkcg* cgroup_hierarchy::get_io_css(const std::string& path) {
  kern::MutexGuard g(cgroup_mutex);
  cgroup* cg = lookup_locked(path);  // linked, hence not freed, while we hold the mutex
  if (cg == nullptr) return nullptr;
  return css_tryget_online(cg->io) ? cg->io : nullptr;
}

int cgroup_hierarchy::attach_task(cgroup* cg, int pid) {
  kern::MutexGuard g(cgroup_mutex);
  return attach_task_locked(cg, pid);
}

int cgroup_hierarchy::attach_task_path(const std::string& path, int pid) {
  kern::MutexGuard g(cgroup_mutex);
  cgroup* cg = lookup_locked(path);
  return cg ? attach_task_locked(cg, pid) : -ENOENT;
}

int cgroup_hierarchy::read_procs(const std::string& path, std::string* out) {
  kern::MutexGuard g(cgroup_mutex);
  cgroup* cg = lookup_locked(path);
  if (!cg) return -ENOENT;
  out->clear();
  for (int pid : cg->procs) *out += std::to_string(pid) + "\n";
  return 0;
}

int cgroup_hierarchy::attach_task_locked(cgroup* cg, int pid) {
  if (cg->removed) return -ENOENT;
  auto it = task_map_.find(pid);
  cgroup* old = it == task_map_.end() ? root_ : it->second;
  old->procs.erase(pid);
  cg->procs.insert(pid);
  task_map_[pid] = cg;
  if (on_attach) on_attach(pid, cg);
  return 0;
}

cgroup* cgroup_hierarchy::task_cgroup(int pid) {
  kern::MutexGuard g(cgroup_mutex);
  auto it = task_map_.find(pid);
  return it == task_map_.end() ? root_ : it->second;
}

}  // namespace blk
