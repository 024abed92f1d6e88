// SPDX-License-Identifier: MIT
#include "impl/scenario/exec.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>

#include "impl/block/backing_dev.h"
#include "impl/block/blk_core.h"
#include "impl/block/blk_stat.h"
#include "impl/block/blk_testpol.h"
#include "impl/block/blk_throttle.h"
#include "impl/block/cgroupfs.h"
#include "impl/kern/alloc.h"
#include "impl/kern/clock.h"
#include "impl/kern/cpu.h"
#include "impl/kern/lockdep.h"
#include "impl/kern/rcu.h"
#include "impl/kern/report.h"
#include "impl/kern/task.h"
#include "impl/kern/timer.h"
#include "impl/kern/workqueue.h"
#include "impl/oracle/model.h"
#include "impl/oracle/ref_check.h"
#include "impl/oracle/throtl_check.h"
#include "impl/scenario/schedule.h"
#include "impl/scenario/text.h"

namespace scenario {
namespace {

constexpr uint64_t kMaxJiffiesPerOp = 1000000;
constexpr uint64_t kMaxBioSize = 4ull << 20;
constexpr uint64_t kMinMaxIo = 4096;  // with kMaxBioSize: at most 1024 pieces per bio
constexpr size_t kMaxDisks = 64;
constexpr size_t kMaxBios = 4096;
constexpr uint64_t kMaxDdCount = 128;    // bios per dd
constexpr uint64_t kMaxDdCountConc = 16; // ... in a concurrent run (never judged there)
constexpr uint64_t kMaxDdSeconds = 10;   // of virtual time per dd
constexpr uint64_t kMaxSlice = 1000;     // disk_alloc slice=, jiffies
constexpr uint64_t kMaxNrRequests = 1024; // disk_alloc nr_requests=
constexpr uint64_t kMaxLateness = 3;     // timer_late, jiffies

// A canonical cgroup path: "/" or "/x/y" with no empty, "." or ".." component.
bool canonical(const std::string& p) {
  if (p == "/") return true;
  if (p.empty() || p[0] != '/' || p.back() == '/') return false;
  size_t i = 1;
  while (i <= p.size()) {
    size_t j = p.find('/', i);
    if (j == std::string::npos) j = p.size();
    const std::string c = p.substr(i, j - i);
    if (c.empty() || c == "." || c == "..") return false;
    i = j + 1;
  }
  return true;
}

void split_file(const std::string& p, std::string* dir, std::string* file) {
  const size_t s = p.rfind('/');
  *dir = s == 0 ? "/" : p.substr(0, s);
  *file = p.substr(s + 1);
}

// What a bio handle holds.
struct DiskSlot;

struct Slot {
  blk::bio* b = nullptr;    // while owned by the scenario (not submitted or completed)
  bool submitted = false;   // handed to the block layer
  bool chained = false;     // a split piece: completes into its parent, never on its own
  bool done = false;
  int status = 0;
  blk::gendisk* disk = nullptr;
  // Concurrent mode: the disk reference the bio's opener holds until the harness sees it
  // completed (the kernel's open block device), and an operation of some task is using
  // the slot (another task's operation on it returns -EBUSY instead of racing the harness).
  blk::gendisk* ref = nullptr;
  DiskSlot* ds = nullptr;
  bool busy = false;
};

void slot_end_io(blk::bio* b) {
  auto* s = static_cast<Slot*>(b->bi_private);
  s->done = true;
  s->status = b->status;
  s->b = nullptr;
  blk::bio_put(b);
}

struct DiskSlot {
  blk::gendisk* disk = nullptr;
  std::string dev;
  int state = 0;  // 0 allocated, 1 live, 2 deleted, 3 released (concurrent mode only)
  // Concurrent mode: the slot is never erased while tasks run. `owner`: the scenario's own
  // reference (put by disk_release); `hrefs`: other references the harness holds (one per
  // operation using the disk, one per bio slot); when both are gone the disk is released.
  // `busy`: a lifecycle operation (alloc, add, del) is in progress.
  bool owner = true;
  int hrefs = 0;
  bool busy = false;
  // The dd rate oracle (sequential mode): the slice asked for at disk_alloc (applied once
  // the throttler exists); whether a bio that passes the throttler unheld (REQ_META,
  // REQ_SWAP) or a limit change with bios queued (carried-over credit or debt) may have
  // left a budget no bound covers; the largest bio submitted so far (the debt it leaves).
  uint64_t slice = 0;
  bool slice_set = false;
  bool unbounded_budget = false;
  uint64_t max_bio = 0;
};

// Marks a slot busy for the duration of one operation (concurrent mode).
struct BusyGuard {
  bool* flag;
  explicit BusyGuard(bool* f) : flag(f) { *flag = true; }
  ~BusyGuard() { *flag = false; }
};

}  // namespace

std::string OpResult::str() const {
  if (is_text) return quote(text);
  if (value < 0) {
    const char* n = errno_name(static_cast<int>(-value));
    return n ? std::string("-") + n : std::to_string(value);
  }
  return std::to_string(value);
}

struct World::Impl {
  Impl(bool dfl_, bool conc_) : h(dfl_), dfl(dfl_), conc(conc_) {}
  blk::cgroup_hierarchy h;
  const bool dfl;
  // Concurrent mode (schedule.h): operations of several tasks interleave at seams. The
  // harness then never erases a disk slot, holds disk references where an opener would,
  // keeps a slot busy while an operation uses it, and takes the model's tree from the
  // hierarchy's observers (called at the moment each change takes effect). Results are
  // not compared with predictions (they depend on the interleaving); the deep checks at
  // quiesce are the same.
  const bool conc;
  bool pol_busy = false;  // conc: a register/unregister is in progress
  int pol_users = 0;      // conc: activations/deactivations in progress
  oracle::Model model;
  std::map<int, DiskSlot> disks;
  std::map<int, Slot*> bios;
  std::deque<Slot> slot_store;  // stable addresses for bi_private
  std::vector<std::string> removed;  // cgroups removed (their blkgs may still be releasing)
  bool faults = false;               // fault injection configured: ENOMEM is allowed
  bool testpol_registered = false;
  bool cpd_only_registered = false;  // blk::testpol_cpd_only()
  // The policy a pol_* operation names, and whether the harness registered it.
  static blk::blkcg_policy* policy_of(const Op& op) {
    return op.cpd_only ? blk::testpol_cpd_only() : blk::testpol();
  }
  bool& registered_of(const Op& op) { return op.cpd_only ? cpd_only_registered : testpol_registered; }
  bool quiesced = false;
  ExecStats stats;
  int index = 0;  // of the op being run (for messages)
  // Concurrent mode: the op each task is running (fibers interleave, so `index` is only
  // the latest one started). A violation names the op of the task that found it, or of
  // the task it runs on top of (an inline kworker, an interrupt delivery).
  std::vector<std::pair<const kern::Task*, int>> task_op;
  uint64_t clock_seen = kern::kInitialJiffies;  // jiffies after the latest operation
  std::vector<Slot*> dd_slots;                   // dd's bios that had not completed

  // Operations are numbered from 1, as in the text form (and preempt's op=).
  int op_of_current() const {
    for (const kern::Task* t = kern::current(); t; t = t->inline_parent)
      for (const auto& [task, i] : task_op)
        if (task == t) return i;
    return index;
  }
  void violation(const std::string& sig, const std::string& what) {
    const int i = op_of_current();
    kern::kreport(kern::ReportKind::kOracle, sig,
                  (i < 0 ? std::string("quiesce") : "op " + std::to_string(i + 1)) + ": " + what);
  }

  Slot* new_slot(int h) {
    Slot* old = nullptr;
    if (auto it = bios.find(h); it != bios.end()) {
      if (it->second->busy) return nullptr;  // conc: another task is using the handle
      old = it->second;
    }
    slot_store.emplace_back();
    Slot* s = &slot_store.back();
    bios[h] = s;
    // The old slot's bio completes only once the handle names the new slot, which stays
    // busy meanwhile: completion has seams, and another task rebinding the handle then
    // must get -EBUSY. (Dropping first let two rebinds interleave: the later one's slot
    // replaced the earlier one's, whose bio then leaked with its blkg reference; found by
    // fuzz_ops as refcount-at-quiesce.) The caller binds its bio without a seam.
    if (old) {
      s->busy = true;
      drop_slot(old);
      s->busy = false;
    }
    return s;
  }
  // A slot rebound or torn down: an owned bio completes (chained pieces into their
  // parent) so nothing leaks and no chain is left waiting.
  void drop_slot(Slot* s) {
    if (s->b && !s->submitted) {
      blk::bio* b = s->b;
      s->b = nullptr;
      if (s->chained) {
        blk::bio_endio(b);
      } else {
        b->bi_private = s;
        b->bi_end_io = slot_end_io;
        blk::bio_endio(b);
      }
    }
  }
  // Another added disk (live or deleted, not released), or one whose add is in progress
  // in another task, already has this dev_t: two blkgs of the root would print the same
  // MAJ:MIN (fuzz_ops, on a scheduled input, found two concurrent adds of 0:0 passing).
  bool dev_in_use(const std::string& dev, const DiskSlot* self) const {
    for (const auto& [h, d] : disks)
      if (&d != self && (d.state != 0 || d.busy) && d.dev == dev) return true;
    return false;
  }
  // Slot s now owns bio b of `disk` (its completion is recorded in the slot).
  static void own(Slot* s, blk::bio* b, blk::gendisk* disk) {
    s->b = b;
    s->disk = disk;
    b->bi_end_io = slot_end_io;
    b->bi_private = s;
  }
  // Binds handle h to a bio the scenario now owns.
  Slot* bind_bio(int h, blk::bio* b, blk::gendisk* disk) {
    Slot* s = new_slot(h);
    if (s) own(s, b, disk);
    return s;
  }
  // Concurrent mode: the slot's bio holds a harness reference on its disk until reaped.
  void hold_disk(Slot* s, DiskSlot* d, blk::gendisk* g) {
    if (!conc) return;
    s->ds = d;
    s->ref = g;
    disk_dup(d, g);
  }
  Slot* owned(int h) {
    auto it = bios.find(h);
    if (it == bios.end() || !it->second->b || it->second->submitted || it->second->busy)
      return nullptr;
    return it->second;
  }

  // Concurrent mode: the harness's users of a disk (seq mode: the pointer, no count). They
  // share the scenario's one disk reference: it is put when the owner let go and the last
  // user is done, by whoever is last. (Counting here, not in disk->refs, keeps the check
  // and the count together: refcount_inc is a seam, a release could slip in before it.)
  blk::gendisk* disk_get(DiskSlot* d) {
    if (!d || !d->disk || (conc && (!d->owner || d->state == 3))) return nullptr;
    if (conc) disk_dup(d, d->disk);
    return d->disk;
  }
  void disk_dup(DiskSlot* d, blk::gendisk*) { ++d->hrefs; }
  void disk_put(DiskSlot* d, blk::gendisk* g) {
    if (!conc || !g) return;
    if (--d->hrefs == 0 && !d->owner) {
      disk_gone(d);
      blk::put_disk(g);
    }
  }
  // The harness's last reference went (the disk may be freed from here on).
  void disk_gone(DiskSlot* d) {
    if (d->state != 0) model.disk_released(d->dev);
    d->state = 3;
    d->disk = nullptr;
  }
  // Concurrent mode: bio slots whose bio completed give their disk reference back.
  void reap() {
    if (!conc) return;
    for (size_t i = 0; i < slot_store.size(); ++i) {
      Slot& s = slot_store[i];
      if (s.ref && s.done && !s.busy) {
        blk::gendisk* g = s.ref;
        s.ref = nullptr;
        disk_put(s.ds, g);
      }
    }
  }
  // An RAII disk reference for one operation.
  struct DiskRef {
    Impl* w;
    DiskSlot* d;
    blk::gendisk* g;
    DiskRef(Impl* w_, DiskSlot* d_) : w(w_), d(d_), g(w_->disk_get(d_)) {}
    ~DiskRef() {
      if (g) w->disk_put(d, g);
    }
    DiskRef(const DiskRef&) = delete;
    DiskRef& operator=(const DiskRef&) = delete;
  };
  DiskSlot* disk(int h) {
    auto it = disks.find(h);
    return it == disks.end() ? nullptr : &it->second;
  }
  DiskSlot* slot_of(const blk::gendisk* g) {
    for (auto& [h, d] : disks)
      if (d.disk == g) return &d;
    return nullptr;
  }
  // After a configuration write created a disk's throttler: the slice disk_alloc asked for.
  // Under a harness reference: in concurrent mode another task may release the disk
  // meanwhile, and its throttler goes with the disk (found by fuzz_sched: the slice was
  // set on a td that a concurrent disk_release had just freed).
  void apply_slices() {
    for (auto& [h, d] : disks) {
      if (!d.slice || d.slice_set) continue;
      DiskRef ref(this, &d);
      if (!ref.g || !ref.g->queue->td.load(std::memory_order_acquire)) continue;
      blk::blk_throtl_set_slice(ref.g->queue, d.slice);
      d.slice_set = true;
    }
  }

  void hooks(DiskSlot& d) {
    d.disk->on_account = [this, dev = d.dev](blk::bio* b, bool first) {
      const int id = b->bi_blkg ? b->bi_blkg->blkcg->cgroup->id : -1;
      const int t = b->op == blk::bio_op::kDiscard ? 2 : b->op == blk::bio_op::kWrite ? 1 : 0;
      model.account(id, dev, t, b->size, first);
    };
  }

  // Moves time on until `done()` or `limit` jiffies passed: runs queued work first, then
  // jumps to the next timer (nothing else can change the world meanwhile). False when it
  // stopped without `done()`.
  template <typename Done>
  bool progress_until(Done done, uint64_t limit) {
    const uint64_t end = kern::jiffies() + limit;
    for (;;) {
      if (done()) return true;
      if (kern::run_pending_work() > 0 || kern::rcu_process_callbacks() > 0) continue;
      uint64_t next;
      if (!kern::timer_next_expiry(&next) || kern::time_after_eq(kern::jiffies(), end))
        return done();
      if (kern::time_after(next, end)) next = end;
      kern::advance_jiffies(kern::time_after(next, kern::jiffies()) ? next - kern::jiffies() : 0);
    }
  }

  // Drains a disk's device (latency) and the dispatch work, bounded.
  void drain_device(blk::gendisk* disk) {
    progress_until(
        [disk] {
          kern::SpinIrqGuard g(disk->dev_lock);
          return disk->inflight.empty() && kern::nr_pending_work() == 0;
        },
        kMaxJiffiesPerOp);
  }

  void release_disk(int h, DiskSlot& d) {
    // Bios the scenario still owns on this disk complete first (they hold no disk
    // reference in this model); the device is drained.
    for (auto& [bh, s] : bios)
      if (s->b && !s->submitted && s->disk == d.disk) drop_slot(s);
    kern::run_pending_work();
    drain_device(d.disk);
    blk::disk_release(d.disk);
    if (d.state != 0) model.disk_released(d.dev);  // a disk never added was never in it
    disks.erase(h);
  }

  long check_errno(long got, long want, const char* what) {
    if (conc) return got;  // the result depends on the interleaving
    ++stats.model_checks;
    if (got != want && !(faults && got == -ENOMEM))
      violation("model:result", std::string(what) + " returned " + std::to_string(got) +
                                    ", the model predicts " + std::to_string(want));
    return got;
  }

  // A configuration write's -ENOMEM must be explained by its own allocations
  // (oracle::config_enomem_culprit); the decision log covers this one write.
  void check_config_enomem(const Op& op, long got) {
    const std::vector<kern::AllocDecision> log = kern::fault_take_log();
    if (got != -ENOMEM) return;
    const std::string culprit = oracle::config_enomem_culprit(log);
    if (!culprit.empty())
      violation("model:spurious-enomem",
                op_to_text(op) + ": -ENOMEM although no blocking allocation failed (" + culprit + ")");
  }

  bool removed_under(const std::string& path) const {
    for (const std::string& r : removed)
      if (path == "/" || r == path || (r.size() > path.size() && r.compare(0, path.size(), path) == 0 &&
                                       r[path.size()] == '/'))
        return true;
    return false;
  }

  // The RCU softirq (callbacks whose grace period ended) and the workqueues, until neither
  // has anything left (an RCU callback queues the blkg and css free work). Returns how
  // many work items ran.
  long run_until_idle() {
    long works = 0;
    for (;;) {
      const int cbs = kern::rcu_process_callbacks();
      const int w = kern::run_pending_work();
      works += w;
      if (cbs == 0 && w == 0) return works;
    }
  }

  OpResult run(const Op& op);
  long dd(const Op& op);
  void after_op();
  void quiesce();
  bool check_lock_state();
};

World::World(bool dfl, bool concurrent) : p_(nullptr) {
  // What impl/ creates once per process on first use (the throttle policy's registration,
  // the workqueues) is created here, before any run: else the first run of a process
  // would take extra locks and seams inside its first operation that uses them, and a
  // schedule found in a later run would not replay as the first run of a new process
  // (check_determinism found this).
  blk::blkcg_policy_throtl();
  blk::kthrotld_workqueue();
  blk::blkcg_punt_bio_wq();
  blk::kblockd_workqueue();
  blk::cgwb_release_wq();
  kern::system_wq();
  kern::alloc_reset();
  kern::lockdep_reset();
  kern::timers_reset();
  kern::rcu_reset();  // grace-period numbers too: a run must not depend on the one before
  kern::set_hz(1000);
  kern::clock_reset();
  kern::fault_set({});
  blk::testpol_reset();
  p_ = std::make_unique<Impl>(dfl, concurrent);
  p_->model.set_root_id(p_->h.root()->id);
  if (concurrent) {
    Impl* w = p_.get();
    auto path = [w](blk::cgroup* cg) { return cg == w->h.root() ? std::string("/") : cg->path; };
    w->h.on_mkdir = [w, path](blk::cgroup* cg) { w->model.mkdir(path(cg), cg->id); };
    w->h.on_rmdir = [w, path](blk::cgroup* cg) {
      w->model.rmdir(path(cg));
      w->removed.push_back(path(cg));
    };
    w->h.on_attach = [w, path](int pid, blk::cgroup* cg) { w->model.attach(pid, path(cg)); };
  }
}

World::~World() {
  quiesce();
  p_.reset();  // the hierarchy goes: nothing of the scenario may be left
  kern::alloc_check_no_leaks("the end of the scenario");
  if (kern::nr_pending_timers() != 0)
    kern::kreport(kern::ReportKind::kTimer, "timer-after-teardown",
                  std::to_string(kern::nr_pending_timers()) + " timer(s) still pending");
  if (kern::nr_pending_work() != 0)
    kern::kreport(kern::ReportKind::kWork, "work-after-teardown",
                  std::to_string(kern::nr_pending_work()) + " work item(s) still queued");
}

// The sanitizers' death callback, where one is linked (a weak reference: a build without
// a sanitizer runtime has none).
extern "C" void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

// After a sanitizer report, before the process dies: the task that crashed, in the form
// of a report's context line. In a concurrent scenario the last "op N:" line printed is the
// last operation any task started, not necessarily the one that crashed; triage takes the
// crashed task's last operation instead (a kern report names its task the same way).
static void print_crashed_task() {
  std::fprintf(stderr, "crashed in task: %s\n", kern::current()->describe().c_str());
}

// BLKCG_TRACE_OPS set: each operation is printed to stderr as it starts ("op N: TEXT",
// N 1-based; the deep checks and teardown as "op end: quiesce"), so a crash's output names
// the operation it happened in (campaign triage deduplicates by it), and a sanitizer's
// death prints the task it happened in. Read once per process.
static bool trace_ops() {
  static const bool on = [] {
    const bool set = std::getenv("BLKCG_TRACE_OPS") != nullptr;
    if (set && __sanitizer_set_death_callback != nullptr)
      __sanitizer_set_death_callback(print_crashed_task);
    return set;
  }();
  return on;
}

void World::quiesce() {
  if (trace_ops()) std::fprintf(stderr, "op end: quiesce\n");
  p_->quiesce();
}
const ExecStats& World::stats() const { return p_->stats; }

OpResult World::exec(const Op& op, int index) {
  if (trace_ops()) std::fprintf(stderr, "op %d: %s\n", index + 1, op_to_text(op).c_str());
  p_->index = index;
  if (p_->conc) {
    const kern::Task* t = kern::current();
    auto it = std::find_if(p_->task_op.begin(), p_->task_op.end(), [t](const auto& e) { return e.first == t; });
    if (it == p_->task_op.end()) p_->task_op.emplace_back(t, index);
    else it->second = index;
  }
  p_->reap();
  OpResult r = p_->run(op);
  ++p_->stats.ops;
  // The expectation of the line.
  const Expect& e = op.expect;
  if (e.kind != Expect::kNone) {
    ++p_->stats.expectations;
    bool ok = true;
    std::string want;
    switch (e.kind) {
      case Expect::kErrno:
      case Expect::kValue:
        ok = !r.is_text && r.value == e.value;
        want = OpResult{false, static_cast<long>(e.value), ""}.str();
        break;
      case Expect::kText:
        ok = r.is_text && r.text == e.text;
        want = quote(e.text);
        break;
      case Expect::kDone:
      case Expect::kPending: {
        auto it = p_->bios.find(op.a);
        const bool done = it != p_->bios.end() && it->second->done;
        ok = done == (e.kind == Expect::kDone);
        want = e.kind == Expect::kDone ? "done" : "pending";
        r.text = done ? "done" : "pending";
        r.is_text = true;
        break;
      }
      default: break;
    }
    // The signature names the operation, its path and what it got (a text by its FNV-1a
    // hash): a minimizer keeping "the same crash" must keep this expectation failing the
    // same way, not any other (with a bare "expect", removing a mkdir made a later read
    // fail with ENOENT instead, and removing the IO made an io.stat read come out empty).
    if (!ok) {
      char text_hash[24];
      std::snprintf(text_hash, sizeof text_hash, "text#%016llx",
                    static_cast<unsigned long long>(fnv1a(r.text)));
      p_->violation("expect:" + std::string(op_name(op.kind)) + (op.path.empty() ? "" : " " + op.path) +
                        " got " + (r.is_text ? std::string(text_hash) : r.str()),
                    op_to_text(op) + ": got " + r.str() + ", expected " + want);
    }
  }
  p_->after_op();
  return r;
}

void World::Impl::after_op() {
  const kern::Task* t = kern::current();
  if (t->nr_held != 0)
    violation("lock-held-after-op", std::to_string(t->nr_held) + " lock(s) still held");
  // Virtual time only moves forward, whichever task moved it (a fuzz_ops campaign found
  // an advance that, preempted in its window, set the clock back over another task's).
  const uint64_t now = kern::jiffies();
  if (kern::time_before(now, clock_seen))
    violation("clock-went-back", "jiffies is " + std::to_string(now) + " after an operation ended at " +
                                     std::to_string(clock_seen));
  else
    clock_seen = now;
  for (auto& [h, d] : disks) {
    if (d.state != 1 && d.state != 2) continue;
    DiskRef ref(this, &d);  // conc: another task may release it meanwhile
    // The timer rule only single-task: another task may be inside a timer function.
    if (ref.g) oracle::throtl_check_structure(ref.g->queue, !conc);
  }
}

OpResult World::Impl::run(const Op& op) {
  OpResult r;
  switch (op.kind) {
    case OpKind::kMkdir: {
      if (!canonical(op.path) || op.path == "/") {
        r.value = op.path == "/" ? -EEXIST : -EINVAL;
        break;
      }
      blk::cgroup* out = nullptr;
      r.value = h.mkdir_path(op.path, &out);
      if (conc) break;  // the model follows h.on_mkdir
      check_errno(r.value, model.predict_mkdir(op.path), "mkdir");
      if (r.value == 0) model.mkdir(op.path, out->id);
      break;
    }
    case OpKind::kRmdir: {
      if (op.path == "/") r.value = -EINVAL;
      else r.value = canonical(op.path) ? h.rmdir_path(op.path) : -ENOENT;
      if (conc) break;  // the model follows h.on_rmdir
      check_errno(r.value, canonical(op.path) ? model.predict_rmdir(op.path) : -ENOENT, "rmdir");
      if (r.value == 0) {
        model.rmdir(op.path);
        removed.push_back(op.path);
      }
      break;
    }
    case OpKind::kAttach: {
      if (!canonical(op.path)) {
        r.value = -ENOENT;
        break;
      }
      const std::string data = std::to_string(op.n) + "\n";
      r.value = blk::cgroup_file_write(h, op.path == "/" ? "/cgroup.procs" : op.path + "/cgroup.procs", data);
      if (r.value > 0 && !conc) model.attach(static_cast<int>(op.n), op.path);
      break;
    }
    case OpKind::kDiskAlloc: {
      // (conc: a slot whose disk is gone may be bound again; never erased while tasks run)
      auto it = disks.find(op.a);
      const bool reuse = conc && it != disks.end() && !it->second.disk && !it->second.busy;
      if (it != disks.end() && !reuse) {
        r.value = -EEXIST;
        break;
      }
      if (!reuse && disks.size() >= kMaxDisks) {
        r.value = -ENOSPC;
        break;
      }
      DiskSlot& s = disks[op.a];
      s = DiskSlot{};
      s.busy = true;  // conc: reserved while the allocation may switch tasks
      blk::gendisk* d = blk::alloc_disk(static_cast<int>(op.m), static_cast<int>(op.n), op.a + 1);
      s.busy = false;
      if (!d) {
        r.value = -ENOMEM;
        if (conc) s.state = 3;  // an empty slot, bindable again
        else disks.erase(op.a);
        break;
      }
      d->max_io_bytes = op.max_io == 0 ? 0 : std::max(op.max_io, kMinMaxIo);
      d->latency = std::min<uint64_t>(op.latency, 10000);
      d->nr_requests = static_cast<unsigned>(std::min<uint64_t>(op.nr_requests, kMaxNrRequests));
      s.slice = std::min(op.slice, kMaxSlice);
      s.disk = d;
      s.dev = d->name;
      hooks(s);
      break;
    }
    case OpKind::kDiskAdd: {
      DiskSlot* d = disk(op.a);
      if (!d || !d->disk || (conc && !d->owner)) r.value = -EBADF;
      else if (d->busy) r.value = -EBUSY;
      else if (d->state != 0) r.value = -EINVAL;
      else if (dev_in_use(d->dev, d)) r.value = -EEXIST;  // a dev_t is free after release
      else {
        DiskRef ref(this, d);
        BusyGuard busy(&d->busy);
        r.value = blk::add_disk(d->disk);
        if (r.value == 0) {
          d->state = 1;
          model.disk_added(d->dev);
        }
      }
      break;
    }
    case OpKind::kDiskDel: {
      DiskSlot* d = disk(op.a);
      if (!d || !d->disk || (conc && !d->owner)) r.value = -EBADF;
      else if (d->busy) r.value = -EBUSY;
      else if (d->state != 1) r.value = -EINVAL;
      else {
        DiskRef ref(this, d);
        BusyGuard busy(&d->busy);
        d->state = 2;  // before: conc tasks see it deleted while del_gendisk runs
        blk::del_gendisk(d->disk);
        model.disk_deleted(d->dev);
      }
      break;
    }
    case OpKind::kDiskRelease: {
      DiskSlot* d = disk(op.a);
      if (!d || !d->disk || (conc && !d->owner)) r.value = -EBADF;
      else if (d->busy) r.value = -EBUSY;
      else if (!conc) release_disk(op.a, *d);
      else {
        // The scenario's reference goes; the disk is released when the last opener (an
        // operation in progress, a bio not yet completed) lets go.
        blk::gendisk* g = d->disk;
        d->owner = false;
        if (d->hrefs == 0) {
          disk_gone(d);
          blk::put_disk(g);
        }
      }
      break;
    }
    case OpKind::kPartition: {
      DiskSlot* d = disk(op.a);
      DiskRef ref(this, d);
      r.value = !ref.g ? -EBADF : d->state != 1 || op.n == 0 || op.n > 255
                                  ? -EINVAL
                                  : blk::add_partition(ref.g, static_cast<int>(op.n));
      break;
    }
    case OpKind::kWrite: {
      std::string dir, file;
      split_file(op.path, &dir, &file);
      const bool conf = file == "io.max" || file.rfind("blkio.throttle.", 0) == 0;
      if (faults && conf && !conc) kern::fault_record(true);
      // A limit change while bios wait carries their budget over (tg_update_carryover).
      if (conf && !conc)  // (conc: no rate judgement; td->lock would add seams)
        for (auto& [dh, d] : disks)
          if (d.disk && d.state == 1 && !oracle::throtl_idle(d.disk->queue)) d.unbounded_budget = true;
      r.value = blk::cgroup_file_write(h, op.path, op.data);
      if (conf) apply_slices();
      if (faults && conf && !conc) check_config_enomem(op, r.value);
      if (conc) break;  // io.max and the tree: the interleaving decides (observers)
      if (dfl && file == "io.max" && canonical(dir) && model.cgroup_exists(dir) && dir != "/") {
        const long want = model.predict_iomax_write(dir, op.data);
        check_errno(r.value, want, "io.max write");
        if (r.value > 0) model.iomax_written(dir, op.data);
      }
      if (file == "cgroup.procs" && r.value > 0 && canonical(dir)) {
        char* end = nullptr;
        const unsigned long pid = strtoul(op.data.c_str(), &end, 10);
        model.attach(static_cast<int>(pid), dir);
      }
      break;
    }
    case OpKind::kRead: {
      std::string dir, file;
      split_file(op.path, &dir, &file);
      std::string out;
      const int rc = blk::cgroup_file_read(h, op.path, &out);
      if (rc < 0) {
        r.value = rc;
        break;
      }
      r.is_text = true;
      r.text = out;
      if (dfl && !conc && canonical(dir) && model.cgroup_exists(dir)) {
        std::string bad;
        if (file == "io.max" && dir != "/") bad = model.check_iomax_read(dir, out);
        if (file == "io.stat" && (dir == "/" || !removed_under(dir)))
          bad = model.check_iostat_read(dir, out);
        ++stats.model_checks;
        if (!bad.empty()) violation("model:read", bad);
      }
      break;
    }
    case OpKind::kBio: {
      DiskSlot* d = disk(op.b);
      DiskRef ref(this, d);
      if (!ref.g) {
        r.value = -EBADF;
        break;
      }
      if (d->state == 0) {  // no block device to open before add_disk
        r.value = -ENODEV;
        break;
      }
      if (op.n > kMaxBioSize || (bios.size() >= kMaxBios && !bios.count(op.a))) {
        r.value = -EINVAL;
        break;
      }
      if (auto it = bios.find(op.a); it != bios.end() && it->second->busy) {
        r.value = -EBUSY;
        break;
      }
      unsigned opf = 0;
      if (op.flags & kFlagMeta) opf |= blk::REQ_META;
      if (op.flags & kFlagSwap) opf |= blk::REQ_SWAP;
      if (op.flags & kFlagSync) opf |= blk::REQ_SYNC;
      if (op.flags & kFlagPunt) opf |= blk::REQ_CGROUP_PUNT;
      if (op.flags & kFlagWb) opf |= blk::REQ_CGWB;
      blk::bio* b = blk::bio_alloc(ref.g, static_cast<blk::bio_op>(op.bio_op), op.n, opf,
                                   kern::GFP_NOIO);
      if (!b) {
        r.value = -ENOMEM;
        break;
      }
      Slot* s = bind_bio(op.a, b, ref.g);
      if (!s) {  // conc: the handle became busy while the allocation switched tasks
        blk::bio_put(b);
        r.value = -EBUSY;
        break;
      }
      hold_disk(s, d, ref.g);
      break;
    }
    case OpKind::kAssoc: {
      Slot* s = owned(op.a);
      if (!s) {
        r.value = -EBADF;
        break;
      }
      BusyGuard busy(&s->busy);
      blk::blkcg* css = canonical(op.path) ? h.get_io_css(op.path) : nullptr;
      if (!css) {
        r.value = -ENOENT;
        break;
      }
      // A blocking association from atomic context is a caller bug the language does not
      // express: ctx=atomic and ctx=softirq associate with nowait.
      bool ok = false;
      if (op.ctx == Ctx::kProcess) {
        ok = blk::bio_associate_blkg_from_css(s->b, css, op.nowait);
      } else if (op.ctx == Ctx::kAtomic) {
        kern::preempt_disable();
        ok = blk::bio_associate_blkg_from_css(s->b, css, true);
        kern::preempt_enable();
      } else {
        kern::run_in_irq(kern::current()->cpu, /*hard=*/false,
                         [&] { ok = blk::bio_associate_blkg_from_css(s->b, css, true); });
      }
      blk::css_put(css);
      r.value = ok ? 0 : -EAGAIN;
      break;
    }
    case OpKind::kClone: {
      Slot* src = owned(op.b);
      if (!src) {
        r.value = -EBADF;
        break;
      }
      BusyGuard busy(&src->busy);
      blk::bio* b = blk::bio_alloc(src->b->disk, src->b->op, src->b->size, src->b->opf, kern::GFP_NOIO);
      if (!b) {
        r.value = -ENOMEM;
        break;
      }
      const bool ok = blk::bio_clone_blkg_association(b, src->b, op.nowait);
      Slot* s = bind_bio(op.a, b, src->disk);
      if (!s) {  // the handle is in use by another task's operation (or is the source)
        blk::bio_put(b);
        r.value = -EBUSY;
        break;
      }
      hold_disk(s, src->ds, src->disk);  // the source's reference keeps the disk alive
      r.value = ok ? 0 : -EAGAIN;
      break;
    }
    case OpKind::kSplit: {
      Slot* src = owned(op.b);
      if (!src || op.a == op.b) {
        r.value = -EBADF;
        break;
      }
      if (op.n == 0 || op.n >= src->b->size) {
        r.value = -EINVAL;
        break;
      }
      BusyGuard busy(&src->busy);
      blk::bio* piece = blk::bio_split(src->b, op.n, kern::GFP_NOIO);
      if (!piece) {
        r.value = -ENOMEM;
        break;
      }
      Slot* s = new_slot(op.a);
      if (!s) {  // conc: the handle is in use; the piece completes into its parent
        blk::bio_endio(piece);
        r.value = -EBUSY;
        break;
      }
      s->b = piece;
      s->disk = src->disk;
      s->ds = src->ds;
      s->chained = true;
      break;
    }
    case OpKind::kSubmit: {
      Slot* s = owned(op.a);
      if (!s) {
        r.value = -EBADF;
        break;
      }
      BusyGuard busy(&s->busy);
      blk::bio* b = s->b;
      s->submitted = true;
      if (s->chained) s->b = nullptr;  // its completion is its parent's business
      if (DiskSlot* d = slot_of(s->disk)) {
        if (b->opf & (blk::REQ_META | blk::REQ_SWAP)) d->unbounded_budget = true;
        d->max_bio = std::max(d->max_bio, b->size);
      }
      blk::submit_bio(b);
      break;
    }
    case OpKind::kComplete: {
      Slot* s = owned(op.a);
      if (!s) {
        r.value = -EBADF;
        break;
      }
      BusyGuard busy(&s->busy);
      blk::bio* b = s->b;
      s->submitted = true;
      if (s->chained) s->b = nullptr;
      b->status = -static_cast<int>(op.n);
      blk::bio_endio(b);
      break;
    }
    case OpKind::kWait: {
      auto it = bios.find(op.a);
      if (it == bios.end() || it->second->chained) {
        r.value = -EBADF;
        break;
      }
      Slot* s = it->second;
      const uint64_t max = std::min<uint64_t>(op.n ? op.n : 100000, kMaxJiffiesPerOp);
      if (s->submitted) progress_until([s] { return s->done; }, max);
      r.value = s->done ? s->status : -EAGAIN;
      break;
    }
    case OpKind::kFlush: {
      // Pinned: a concurrent rmdir cannot free the cgroup under the flush.
      blk::blkcg* css = canonical(op.path) ? h.get_io_css(op.path) : nullptr;
      if (!css) {
        r.value = -ENOENT;
        break;
      }
      blk::cgroup_rstat_flush(h, css->cgroup);
      blk::css_put(css);
      break;
    }
    case OpKind::kPolRegister: {
      bool& registered = registered_of(op);
      if (pol_busy) r.value = -EBUSY;
      else if (registered) r.value = -EEXIST;
      else {
        BusyGuard busy(&pol_busy);
        if ((r.value = blk::blkcg_policy_register(policy_of(op))) == 0) registered = true;
      }
      break;
    }
    case OpKind::kPolUnregister: {
      // A module unloads its policy only once no queue uses it: the module reference
      // counted in nr_queues. The harness cannot judge this from its own disk handles:
      // a released disk still has the policy while someone inside the block layer (a
      // config write's open bdev) holds it (fuzz_sched found the harness unregistering
      // under such a write, whose new blkg then freed its pd through the empty slot).
      bool& registered = registered_of(op);
      if (pol_busy || pol_users > 0) r.value = -EBUSY;
      else if (!registered) r.value = -ENOENT;
      else if (policy_of(op)->nr_queues.load(std::memory_order_relaxed) != 0) r.value = -EBUSY;
      else {
        // -EBUSY also while a destroyed blkg with the policy's pd is pinned by a
        // reference another task holds (blkcg_policy.h: nr_pds).
        BusyGuard busy(&pol_busy);
        r.value = blk::blkcg_policy_unregister(policy_of(op));
        if (r.value == 0) registered = false;
      }
      break;
    }
    case OpKind::kPolActivate:
    case OpKind::kPolDeactivate: {
      DiskSlot* d = disk(op.a);
      DiskRef ref(this, d);
      const bool registered = registered_of(op);
      if (!ref.g) r.value = -EBADF;
      else if (!registered || pol_busy || d->state != 1) r.value = -EINVAL;
      else if (op.kind == OpKind::kPolActivate && op.cpd_only) {
        // The misuse the core guards against: a policy without pd callbacks cannot be
        // activated; the answer is -EINVAL and a warning (b925680cf083). Without the
        // guard, the walk over the blkgs calls the absent pd_alloc_fn.
        ++pol_users;
        kern::ExpectWarn warn("blkcg_activate_policy");
        r.value = blk::blkcg_activate_policy(ref.g->queue, policy_of(op));
        const int warned = warn.fired();
        --pol_users;
        if (r.value != -EINVAL || warned != 1)
          violation("cpd-only-activation",
                    "activating a policy without pd callbacks returned " + std::to_string(r.value) +
                        " with " + std::to_string(warned) + " warning(s) (want -EINVAL and one)");
      } else {
        ++pol_users;
        if (op.kind == OpKind::kPolActivate) r.value = blk::blkcg_activate_policy(ref.g->queue, policy_of(op));
        else blk::blkcg_deactivate_policy(ref.g->queue, policy_of(op));
        --pol_users;
      }
      break;
    }
    case OpKind::kAdvance: kern::advance_jiffies(std::min(op.n, kMaxJiffiesPerOp)); break;
    case OpKind::kRun: r.value = run_until_idle(); break;
    case OpKind::kFaultNth: {
      kern::FaultConfig c;
      c.fail_nth = op.n;
      kern::fault_set(c);
      faults = op.n != 0;
      break;
    }
    case OpKind::kFaultSite: {
      kern::FaultConfig c;
      c.fail_site = op.data;
      c.fail_site_nth = op.m;
      kern::fault_set(c);
      faults = true;
      break;
    }
    case OpKind::kFaultProb: {
      kern::FaultConfig c;
      c.permille = static_cast<unsigned>(op.n);
      c.seed = op.m;
      kern::fault_set(c);
      faults = op.n != 0;
      break;
    }
    case OpKind::kLegacy:
      // Only as the first operation, where run_scenario made the world v1.
      r.value = (index == 0 && !dfl) ? 0 : -EINVAL;
      break;
    case OpKind::kHz:
      // CONFIG_HZ: only before anything exists that keeps time (first, or after
      // legacy_hierarchy).
      if ((index == 0 || (index == 1 && !dfl)) &&
          (op.n == 100 || op.n == 250 || op.n == 300 || op.n == 1000)) {
        kern::set_hz(static_cast<unsigned>(op.n));
      } else {
        r.value = -EINVAL;
      }
      break;
    case OpKind::kTimerLate:
      if (op.n > kMaxLateness) {
        r.value = -EINVAL;
        break;
      }
      kern::set_timer_lateness(op.n);
      break;
    case OpKind::kDd: r.value = dd(op); break;
    case OpKind::kFaultOff:
      kern::fault_set({});
      faults = false;
      break;
    default: break;
  }
  return r;
}

// dd PATH D read|write SIZE COUNT: a synchronous issuer, as blktests' dd with direct IO.
// Each bio is associated with PATH's blkg and submitted when the one before completed;
// the result is the jiffies it all took, or the first failure. In sequential mode its
// time is judged against the limits on PATH (oracle::dd_bounds) when it ran alone on a
// disk whose budgets are bounded: queued work runs first (a punted bio or a writeback
// must not join in), nothing is queued in the throttler, no fault injection.
long World::Impl::dd(const Op& op) {
  DiskSlot* d = disk(op.a);
  DiskRef ref(this, d);
  if (!ref.g) return -EBADF;
  if (d->state != 1) return -ENODEV;
  if (op.n == 0 || op.n > kMaxBioSize || op.m == 0 || op.m > (conc ? kMaxDdCountConc : kMaxDdCount))
    return -EINVAL;
  blk::blkcg* css = canonical(op.path) ? h.get_io_css(op.path) : nullptr;
  if (!css) return -ENOENT;
  if (!conc) run_until_idle();
  const bool judge = !conc && dfl && !faults && !d->unbounded_budget &&
                     oracle::throtl_idle(ref.g->queue);
  const uint64_t debt = d->max_bio;
  d->max_bio = std::max(d->max_bio, op.n);
  const uint64_t t0 = kern::jiffies();
  // Ten seconds of virtual time: a throttled wait fires the pending timer every 8 slices,
  // so a run at 10 B/s would otherwise cost the fuzzers ~10^5 timer runs per bio.
  const uint64_t budget = kMaxDdSeconds * kern::hz();
  long status = 0;
  for (uint64_t i = 0; i < op.m && status == 0; ++i) {
    blk::bio* b = blk::bio_alloc(ref.g, static_cast<blk::bio_op>(op.bio_op), op.n, blk::REQ_SYNC,
                                 kern::GFP_NOIO);
    if (!b) {
      status = -ENOMEM;
      break;
    }
    Slot* s = &slot_store.emplace_back();  // no handle: nothing else can name it
    own(s, b, ref.g);
    s->submitted = true;
    hold_disk(s, d, ref.g);
    blk::bio_associate_blkg_from_css(b, css, /*nowait=*/false);
    blk::submit_bio(b);
    const uint64_t spent = kern::jiffies() - t0;
    if (!progress_until([s] { return s->done; }, budget - std::min(spent, budget)))
      dd_slots.push_back(s);  // still throttled (or in the device): checked at quiesce
    if (!s->done) status = -EAGAIN;
    else if (s->status != 0) status = s->status;
  }
  blk::css_put(css);
  const uint64_t took = kern::jiffies() - t0;
  if (status != 0) return status;
  if (judge) {
    // The limits on the path, from the model (io.max is checked against it elsewhere).
    std::vector<oracle::DdLevel> path;
    const int k = op.bio_op == BioOp::kWrite ? 1 : 0;
    for (std::string p = op.path, parent, leaf; p != "/"; p = parent) {
      oracle::DdLevel l;
      if (const std::vector<uint64_t>* lim = model.limits(p, d->dev)) {
        l.bps = (*lim)[k];
        l.iops = (*lim)[2 + k];
      }
      path.push_back(l);
      split_file(p, &parent, &leaf);
    }
    oracle::DdRun run;
    run.hz = kern::hz();
    if (blk::throtl_data* td = ref.g->queue->td.load(std::memory_order_acquire)) {
      const kern::irqflags_t f = td->lock.lock_irqsave();
      run.slice = td->throtl_slice;
      td->lock.unlock_irqrestore(f);
    }
    run.latency = ref.g->latency;
    run.lateness = kern::timer_lateness();
    run.size = op.n;
    run.count = op.m;
    const uint64_t max_io = ref.g->max_io_bytes;
    run.pieces = max_io ? (op.n + max_io - 1) / max_io : 1;
    run.debt_bytes = debt;
    const oracle::DdBounds b = oracle::dd_bounds(path, run);
    if (b.limited) ++stats.rate_checks;
    if (b.limited && (took < b.min || took > b.max))
      violation(took < b.min ? "throtl:dd-too-fast" : "throtl:dd-too-slow",
                op_to_text(op) + ": took " + std::to_string(took) + " jiffies; the limits on " +
                    op.path + " allow " + std::to_string(b.min) + ".." + std::to_string(b.max) +
                    " (ideal " + std::to_string(b.ideal) + ", HZ=" + std::to_string(run.hz) +
                    ", slice " + std::to_string(run.slice) + ")");
  }
  return static_cast<long>(took);
}

// Lock state once every task has finished (step 0 of quiesce): no lock of the world may
// still be held and no queue frozen; a leftover would hang or corrupt the teardown, so it
// is reported and the teardown skipped. Returns whether all is clear.
bool World::Impl::check_lock_state() {
  std::string held;
  auto check = [&](const char* what, kern::Task* owner) {
    if (owner != nullptr) held += std::string(held.empty() ? "" : ", ") + what + " (" + owner->label() + ")";
  };
  check("cgroup_mutex", h.cgroup_mutex.owner());
  check("blkcg_pol_mutex", blk::blkcg_pol_mutex_ref().owner());
  for (auto& [dh, d] : disks) {
    if (d.disk == nullptr || d.state == 3) continue;
    blk::request_queue* q = d.disk->queue;
    check("q->blkcg_mutex", q->blkcg_mutex.owner());
    check("q->queue_lock", q->queue_lock.owner());
    check("q->rq_qos_mutex", q->rq_qos_mutex.owner());
    if (blk::throtl_data* td = q->td.load(std::memory_order_acquire)) check("td->lock", td->lock.owner());
    if (q->q_usage_counter.frozen()) held += std::string(held.empty() ? "" : ", ") + "q->q_usage_counter (frozen)";
  }
  if (held.empty()) return true;
  violation("lock-state-at-quiesce", "still held after every task ended: " + held);
  return false;
}

void World::Impl::quiesce() {
  if (quiesced) return;
  quiesced = true;
  index = -1;
  task_op.clear();
  kern::fault_set({});
  faults = false;
  if (!check_lock_state()) return;
  // 1. Every live disk deleted: throttled bios fail now; devices drained.
  for (auto& [dh, d] : disks)
    if (d.state == 1 && d.disk) {
      blk::del_gendisk(d.disk);
      d.state = 2;
      model.disk_deleted(d.dev);
    }
  kern::run_pending_work();
  // (conc: a disk whose owner let go is still here while a bio slot holds it)
  for (auto& [dh, d] : disks)
    if (d.disk) drain_device(d.disk);
  // 2. Every bio the scenario still owns completes; submitted ones must have.
  for (auto& [bh, s] : bios) drop_slot(s);
  kern::run_pending_work();
  reap();  // conc: completed bios give their disks back (released disks go now)
  for (auto& [bh, s] : bios)
    if (s->submitted && !s->chained && !s->done)
      violation("bio-never-completed", "b" + std::to_string(bh) + " was submitted and never completed");
  for (Slot* s : dd_slots)
    if (!s->done) violation("bio-never-completed", "a bio of a dd was submitted and never completed");
  h.flush_frees();
  // 2b. Reference counts: with no bio and no pending free left, each is what the object
  // graph says (oracle/ref_check.h).
  {
    std::vector<blk::gendisk*> qs;
    for (auto& [dh, d] : disks)
      if (d.disk && d.state != 3) qs.push_back(d.disk);
    const std::string bad = oracle::check_refcounts(h, qs, model.live_paths());
    if (!bad.empty()) violation("refcount-at-quiesce", bad);
  }
  // 3. Stats conservation: every live cgroup's io.stat against the model (the blkgs of
  // removed cgroups are released by now, so their counts are in their parents).
  // (v1 has no io.stat; its throttle counts bytes in io_service_bytes instead.)
  for (const std::string& path : dfl ? model.live_paths() : std::vector<std::string>{}) {
    blk::cgroup* cg = h.lookup(path);
    if (!cg) {
      violation("model:tree", "cgroup " + path + " is alive in the model, not in the hierarchy");
      continue;
    }
    const std::string bad = model.check_iostat_read(path, blk::blkcg_print_stat(h, cg));
    ++stats.model_checks;
    if (!bad.empty()) violation("model:quiesce", bad);
  }
  // 4. Teardown: disks released, tasks back to the root, cgroups removed deepest first.
  if (conc) {
    for (auto& [dh, d] : disks) {
      if (d.hrefs != 0)
        violation("teardown", "disk d" + std::to_string(dh) + " still has " +
                                  std::to_string(d.hrefs) + " harness reference(s)");
      if (d.disk && d.owner) {
        d.owner = false;
        blk::gendisk* g = d.disk;
        disk_gone(&d);
        blk::put_disk(g);
      }
    }
    disks.clear();
  }
  while (!disks.empty()) release_disk(disks.begin()->first, disks.begin()->second);
  // Every task has ended and every bio is gone: nothing may pin a pd any more.
  auto unregister = [this](blk::blkcg_policy* pol, bool* registered) {
    if (!*registered) return;
    *registered = false;
    if (const int err = blk::blkcg_policy_unregister(pol))
      violation("teardown", std::string("pol_unregister of ") + pol->name + " failed (" +
                                std::to_string(err) + "): " + std::to_string(pol->nr_pds.load()) +
                                " pd(s) still live");
  };
  unregister(blk::testpol(), &testpol_registered);
  unregister(blk::testpol_cpd_only(), &cpd_only_registered);
  for (const auto& [pid, path] : model.procs()) h.attach_task(h.root(), pid);
  std::vector<std::string> paths = model.live_paths();  // sorted: parents before children
  for (auto it = paths.rbegin(); it != paths.rend(); ++it) {
    if (*it == "/") continue;
    blk::cgroup* cg = h.lookup(*it);
    if (cg && h.rmdir(cg) != 0) violation("teardown", "rmdir " + *it + " failed");
  }
  h.flush_frees();
  kern::run_pending_work();
}

ExecStats run_scenario(const Scenario& s) {
  if (s.sched.kind != Schedule::kNone) return run_concurrent(s).stats;
  World w(s.ops.empty() || s.ops[0].kind != OpKind::kLegacy);
  for (size_t i = 0; i < s.ops.size(); ++i) w.exec(s.ops[i], static_cast<int>(i));
  w.quiesce();
  return w.stats();
}

}  // namespace scenario
