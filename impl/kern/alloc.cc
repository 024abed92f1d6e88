// SPDX-License-Identifier: MIT
// The injectable allocator (see alloc.h for the guarantees).
//
// Bookkeeping: one State behind one lock (AllocMutex, a std::mutex annotated as a
// capability so -Wthread-safety checks every GUARDED_BY below). Per-type and per-site
// statistics live in node-based maps keyed by name; a Live entry points at its two records
// (node addresses are stable), so a free updates them without a lookup. The lock is never
// held across a call out of this file except into the standard library.
#include "impl/kern/alloc.h"

#include <cxxabi.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory_resource>
#include <mutex>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "impl/kern/annotations.h"
#include "impl/kern/lockdep.h"
#include "impl/kern/report.h"
#include "impl/kern/sched.h"
#include "impl/kern/string_hash.h"
#include "impl/kern/task.h"

namespace kern {
namespace {

class CAPABILITY("alloc.mu") AllocMutex {
 public:
  void lock() ACQUIRE() { m_.lock(); }
  void unlock() RELEASE() { m_.unlock(); }

 private:
  std::mutex m_;
};

class SCOPED_CAPABILITY AllocGuard {
 public:
  explicit AllocGuard(AllocMutex& m) ACQUIRE(m) : m_(m) { m_.lock(); }
  ~AllocGuard() RELEASE() { m_.unlock(); }
  AllocGuard(const AllocGuard&) = delete;
  AllocGuard& operator=(const AllocGuard&) = delete;

 private:
  AllocMutex& m_;
};

using StatsMap = std::unordered_map<std::string, AllocStats, StringHash, std::equal_to<>>;

struct Live {
  const std::string* type;  // key of the type's StatsMap node
  const std::string* site;  // key of the site's StatsMap node
  AllocStats* type_stats;
  AllocStats* site_stats;
  size_t size;
  bool stale;  // allocated before the last alloc_reset(): outside the accounting
};

// xorshift64: small, fast, and the same sequence on every platform. Never seeded with 0
// (its one fixed point).
uint64_t xorshift(uint64_t& s) {
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return s;
}

bool site_matches(std::string_view pattern, std::string_view site) {
  if (!pattern.empty() && pattern.back() == '*') {
    pattern.remove_suffix(1);
    return site.substr(0, pattern.size()) == pattern;
  }
  return site == pattern;
}

struct State {
  AllocMutex mu;

  // Live set and statistics.
  // Nodes come from a pool: every tracked allocation inserts one and every free erases it,
  // and a malloc per node (a sanitizer's most expensive call) doubled the cost of kmalloc.
  std::pmr::unsynchronized_pool_resource live_pool GUARDED_BY(mu);
  std::pmr::unordered_map<const void*, Live> live GUARDED_BY(mu){&live_pool};
  uint64_t nr_live GUARDED_BY(mu) = 0;  // non-stale entries of `live`
  StatsMap by_type GUARDED_BY(mu);
  StatsMap by_site GUARDED_BY(mu);
  uint64_t nr_allocs GUARDED_BY(mu) = 0;  // decisions since alloc_reset (the log index)
  uint64_t nr_warned GUARDED_BY(mu) = 0;

  // Fault injection; counters restart at fault_set().
  FaultConfig fault GUARDED_BY(mu);
  unsigned fault_classes GUARDED_BY(mu) = kGfpClassesAll;  // effective filter
  uint64_t fault_counted GUARDED_BY(mu) = 0;               // for fail_nth
  uint64_t fault_site_counted GUARDED_BY(mu) = 0;          // for fail_site_nth
  uint64_t fault_prng GUARDED_BY(mu) = 1;

  // Record and replay.
  bool recording GUARDED_BY(mu) = false;
  std::vector<AllocDecision> log GUARDED_BY(mu);
  bool replaying GUARDED_BY(mu) = false;
  std::unordered_set<uint64_t> replay_fail GUARDED_BY(mu);
  bool replay_reclaim_from_log GUARDED_BY(mu) = false;
  std::unordered_set<uint64_t> replay_reclaim GUARDED_BY(mu);

  // Memory pressure.
  ReclaimConfig reclaim GUARDED_BY(mu);
  uint64_t reclaim_eligible GUARDED_BY(mu) = 0;
  uint64_t reclaim_prng GUARDED_BY(mu) = 1;
  uint64_t reclaims GUARDED_BY(mu) = 0;
  uint64_t reclaim_recursions GUARDED_BY(mu) = 0;
  // Tasks inside the writeback hook. Keyed by Task, not by thread: under the controlled
  // scheduler every task is a fiber of one thread.
  std::unordered_set<const Task*> in_reclaim GUARDED_BY(mu);

  // Only decides whether a warning is printed; relaxed is enough.
  std::atomic<bool> verbose{false};
};

State& st() {
  // Never destroyed: tasks may still allocate or free while static destructors run.
  static State* const s = [] {
    auto* n = new State();
    if (std::getenv("BLKCG_VERBOSE_ALLOC") != nullptr) n->verbose.store(true);
    return n;
  }();
  return *s;
}

AllocStats& stats_for(StatsMap& m, std::string_view name) {
  auto it = m.find(name);
  if (it == m.end()) it = m.emplace(std::string(name), AllocStats{}).first;
  return it->second;
}

// might_sleep() is given a literal on the fast path (no string building when preemptible).
const char* might_sleep_what(gfp_t gfp) {
  switch (gfp_class(gfp)) {
    case kGfpClassKernel:
      return "kmalloc(GFP_KERNEL)";
    case kGfpClassNofs:
      return "kmalloc(GFP_NOFS)";
    default:
      return "kmalloc(GFP_NOIO)";
  }
}

// Removes the task's reclaim mark when the hook returns or unwinds (a fiber killed at a
// deadlock unwinds through it).
class ReclaimMark {
 public:
  explicit ReclaimMark(const Task* t) : t_(t) {}
  ~ReclaimMark() {
    State& s = st();
    AllocGuard g(s.mu);
    s.in_reclaim.erase(t_);
  }
  ReclaimMark(const ReclaimMark&) = delete;
  ReclaimMark& operator=(const ReclaimMark&) = delete;

 private:
  const Task* t_;
};

}  // namespace

std::string gfp_name(gfp_t gfp) {
  const gfp_t base = gfp & ~(GFP_NOWARN | GFP_ZERO);
  std::string s;
  switch (base) {
    case GFP_KERNEL:
      s = "GFP_KERNEL";
      break;
    case GFP_NOFS:
      s = "GFP_NOFS";
      break;
    case GFP_NOIO:
      s = "GFP_NOIO";
      break;
    case GFP_NOWAIT:
      s = "GFP_NOWAIT";
      break;
    case GFP_ATOMIC:
      s = "GFP_ATOMIC";
      break;
    default: {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "GFP(%#x)", base);
      s = buf;
    }
  }
  if (gfp & GFP_NOWARN) s += "|__GFP_NOWARN";
  if (gfp & GFP_ZERO) s += "|__GFP_ZERO";
  return s;
}

gfp_t current_gfp_context(gfp_t gfp) {
  const unsigned scope = current()->gfp_scope;
  if (scope & kScopeNoIo) gfp &= ~(kGfpIo | kGfpFs);
  if (scope & kScopeNoFs) gfp &= ~kGfpFs;
  return gfp;
}

namespace {
// The fault configuration and its counters, afresh (fault_set and alloc_reset).
void set_fault_locked(State& s, const FaultConfig& c) REQUIRES(s.mu) {
  // Exchanged, not assigned: an assigned string keeps its old buffer, so a fault site
  // named in one run would stay allocated into the next (and libFuzzer, seeing more
  // mallocs than frees in a run, runs the input again to look for a leak).
  const FaultConfig old = std::exchange(s.fault, c);
  s.fault_classes = c.classes & (c.only_nonblocking ? kGfpClassesNonblocking : kGfpClassesAll);
  s.fault_counted = 0;
  s.fault_site_counted = 0;
  s.fault_prng = c.seed != 0 ? c.seed : 1;
}
}  // namespace

void fault_set(const FaultConfig& c) {
  State& s = st();
  AllocGuard g(s.mu);
  set_fault_locked(s, c);
}

FaultConfig fault_get() {
  State& s = st();
  AllocGuard g(s.mu);
  return s.fault;
}

void fault_record(bool on) {
  State& s = st();
  AllocGuard g(s.mu);
  s.recording = on;
  if (on) s.log.clear();
}

std::vector<AllocDecision> fault_log() {
  State& s = st();
  AllocGuard g(s.mu);
  return s.log;
}

std::vector<AllocDecision> fault_take_log() {
  State& s = st();
  AllocGuard g(s.mu);
  s.recording = false;
  return std::exchange(s.log, {});
}

void fault_replay(std::vector<uint64_t> failing) {
  State& s = st();
  AllocGuard g(s.mu);
  s.replay_fail = std::unordered_set<uint64_t>(failing.begin(), failing.end());
  s.replaying = !failing.empty();
  s.replay_reclaim.clear();
  s.replay_reclaim_from_log = false;
}

void fault_replay_log(const std::vector<AllocDecision>& log) {
  State& s = st();
  AllocGuard g(s.mu);
  s.replay_fail.clear();
  s.replay_reclaim.clear();
  for (const AllocDecision& d : log) {
    if (d.failed) s.replay_fail.insert(d.index);
    if (d.reclaimed) s.replay_reclaim.insert(d.index);
  }
  s.replaying = true;
  s.replay_reclaim_from_log = true;
}

uint64_t alloc_warn_count() {
  State& s = st();
  AllocGuard g(s.mu);
  return s.nr_warned;
}

void alloc_set_verbose(bool on) {
  st().verbose.store(on, std::memory_order_relaxed);
}

void reclaim_set(ReclaimConfig c) {
  State& s = st();
  std::function<void(gfp_t)> old;  // destroyed after the lock is dropped (declared first)
  AllocGuard g(s.mu);
  if (c.every_nth == 0) c.every_nth = 1;
  s.reclaim_prng = c.seed != 0 ? c.seed : 1;
  old = std::move(s.reclaim.writeback);
  s.reclaim = std::move(c);
  s.reclaim_eligible = 0;
}

uint64_t reclaim_count() {
  State& s = st();
  AllocGuard g(s.mu);
  return s.reclaims;
}

uint64_t reclaim_recursion_count() {
  State& s = st();
  AllocGuard g(s.mu);
  return s.reclaim_recursions;
}

namespace {

LockClass* fs_reclaim_class() {
  static LockClass* const c = lock_class("fs_reclaim");
  return c;
}
const char fs_reclaim_map = 0;  // the pseudo-lock's one instance

}  // namespace

void fs_reclaim_acquire(std::source_location where) {
  if (lockdep_enabled()) lock_acquire(fs_reclaim_class(), &fs_reclaim_map, false, false, 0, where);
}

void fs_reclaim_release(std::source_location where) {
  if (lockdep_enabled()) lock_release(fs_reclaim_class(), &fs_reclaim_map, where);
}

bool alloc_decide(gfp_t requested, AllocSite site, const char* type) {
  const gfp_t gfp = current_gfp_context(requested);
  // 1. A blocking class is a possible sleep, whatever happens next.
  if (gfpflags_allow_blocking(gfp)) {
    if (preemptible() && !in_interrupt()) {
      might_sleep(might_sleep_what(gfp), site.where);  // only the seam of a possible sleep
    } else {
      const std::string what = std::string(might_sleep_what(gfp)) + " at " + site.name;
      might_sleep(what.c_str(), site.where);
    }
  }
  // 2. Another task may run here.
  seam(SeamKind::kAlloc, site.name);

  // 3. Decide, under the bookkeeping lock.
  State& s = st();
  const Task* const self = current();
  std::function<void(gfp_t)> writeback;
  bool fail = false, reclaim = false, recursion = false, warn = false, in_reclaim = false;
  uint64_t index;
  {
    AllocGuard g(s.mu);
    index = ++s.nr_allocs;
    in_reclaim = s.in_reclaim.count(self) != 0;
    if (s.replaying) {
      fail = s.replay_fail.count(index) != 0;
    } else if (s.fault_classes & gfp_class(gfp)) {
      ++s.fault_counted;
      if (s.fault.fail_nth != 0 && s.fault_counted == s.fault.fail_nth) fail = true;
      if (!s.fault.fail_site.empty() && site_matches(s.fault.fail_site, site.name)) {
        ++s.fault_site_counted;
        if (s.fault.fail_site_nth == 0 || s.fault_site_counted == s.fault.fail_site_nth)
          fail = true;
      }
      if (s.fault.permille != 0 && xorshift(s.fault_prng) % 1000 < s.fault.permille) fail = true;
    }

    // Reclaim: only a class that may block and may do IO.
    if (s.reclaim.enabled && s.reclaim.writeback && gfpflags_allow_blocking(gfp) &&
        (gfp & kGfpIo)) {
      bool want;
      if (s.replay_reclaim_from_log) {
        want = s.replay_reclaim.count(index) != 0;
      } else if (s.reclaim.permille != 0) {
        want = xorshift(s.reclaim_prng) % 1000 < s.reclaim.permille;
      } else {
        want = ++s.reclaim_eligible % s.reclaim.every_nth == 0;
      }
      if (want) {
        if (s.in_reclaim.count(self) != 0) {
          recursion = true;
          ++s.reclaim_recursions;
        } else {
          reclaim = true;
          ++s.reclaims;
          s.in_reclaim.insert(self);
          writeback = s.reclaim.writeback;
        }
      }
    }

    if (fail) {
      if (type != nullptr) stats_for(s.by_type, type).failed++;
      stats_for(s.by_site, site.name).failed++;
      if (!(requested & GFP_NOWARN)) {
        warn = true;
        ++s.nr_warned;
      }
    }
    if (s.recording) s.log.push_back(AllocDecision{index, site.name, gfp, fail, reclaim});
  }

  // 4. Out of the lock: the fs_reclaim annotation (a class that may enter FS reclaim; the
  // kernel's fs_reclaim_acquire skips a task already in reclaim, PF_MEMALLOC), reports,
  // reclaim, the warning.
  if (gfpflags_allow_blocking(gfp) && (gfp & kGfpFs) && !in_reclaim) {
    fs_reclaim_acquire(site.where);
    fs_reclaim_release(site.where);
  }
  if (recursion) {
    kreport(ReportKind::kAlloc, std::string("reclaim-recursion:") + site.name,
            std::string("allocation at ") + site.name + " (" + gfp_name(gfp) +
                ") would re-enter reclaim from inside reclaim writeback, at " +
                site.where.file_name() + ":" + std::to_string(site.where.line()) + " in " +
                site.where.function_name());
  }
  if (reclaim) {
    ReclaimMark mark(self);
    fs_reclaim_acquire(site.where);  // direct reclaim runs inside the annotation
    writeback(gfp);
    fs_reclaim_release(site.where);
  }
  if (warn && s.verbose.load(std::memory_order_relaxed)) {
    std::fprintf(stderr, "alloc: allocation failure #%llu at %s (%s%s%s)\n",
                 static_cast<unsigned long long>(index), site.name, gfp_name(requested).c_str(),
                 type != nullptr ? ", " : "", type != nullptr ? type : "");
  }
  return !fail;
}

void alloc_track(const void* p, const char* type, const char* site, size_t size) {
  State& s = st();
  AllocGuard g(s.mu);
  auto ti = s.by_type.find(std::string_view(type));
  if (ti == s.by_type.end()) ti = s.by_type.emplace(std::string(type), AllocStats{}).first;
  auto si = s.by_site.find(std::string_view(site));
  if (si == s.by_site.end()) si = s.by_site.emplace(std::string(site), AllocStats{}).first;
  ti->second.live++;
  ti->second.allocated++;
  si->second.live++;
  si->second.allocated++;
  // An entry already at this address was released without kfree (only possible for a
  // stale one, or memory freed behind the allocator's back): the new object replaces it.
  auto [it, inserted] = s.live.try_emplace(p);
  if (!inserted && !it->second.stale) {
    it->second.type_stats->live--;
    it->second.site_stats->live--;
    s.nr_live--;
  }
  it->second = Live{&ti->first, &si->first, &ti->second, &si->second, size, false};
  s.nr_live++;
}

bool alloc_untrack(const void* p, const char* type, bool type_may_differ) {
  State& s = st();
  bool unknown = false;
  std::string allocated_as;  // set on a type mismatch
  {
    AllocGuard g(s.mu);
    auto it = s.live.find(p);
    if (it == s.live.end()) {
      unknown = true;
    } else if (type != nullptr && !type_may_differ && *it->second.type != type) {
      // Not freed (destroying it as the wrong type is undefined behaviour): it stays live,
      // so a correct free still works and teardown still reports it if none comes.
      allocated_as = *it->second.type + " @" + *it->second.site;
    } else {
      if (!it->second.stale) {
        it->second.type_stats->live--;
        it->second.site_stats->live--;
        s.nr_live--;
      }
      s.live.erase(it);
      return true;
    }
  }
  const std::string as = type != nullptr ? type : "?";
  if (unknown) {
    kreport(ReportKind::kAlloc, "kfree-unknown-pointer:" + as,
            "kfree of a pointer that is not a live allocation (double free or never "
            "allocated), freed as " +
                as);
  } else {
    kreport(ReportKind::kAlloc, "kfree-type-mismatch:" + as + ":" + allocated_as,
            "kfree as " + as + " of an object allocated as " + allocated_as +
                " (wrong free function, or a base without a virtual destructor); not freed");
  }
  return false;
}

void* kmalloc_bytes(size_t size, gfp_t gfp, AllocSite site) {
  if (!alloc_decide(gfp, site, "bytes")) return nullptr;
  void* p = std::malloc(size != 0 ? size : 1);
  if (p == nullptr) return nullptr;
  std::memset(p, (gfp & GFP_ZERO) ? 0 : 0x5a, size);
  alloc_track(p, "bytes", site.name, size);
  return p;
}

void kfree_bytes(const void* p) {
  if (p != nullptr && alloc_untrack(p, "bytes")) std::free(const_cast<void*>(p));
}

const char* demangled_type_name(const std::type_info& ti) {
  int status = 0;
  char* d = abi::__cxa_demangle(ti.name(), nullptr, nullptr, &status);
  return status == 0 && d != nullptr ? d : ti.name();  // kept for the process, once per type
}

uint64_t alloc_live_total() {
  State& s = st();
  AllocGuard g(s.mu);
  return s.nr_live;
}

std::map<std::string, uint64_t> alloc_live_by_type() {
  State& s = st();
  AllocGuard g(s.mu);
  std::map<std::string, uint64_t> out;
  for (const auto& [name, stats] : s.by_type)
    if (stats.live != 0) out[name] = stats.live;
  return out;
}

std::map<std::string, AllocStats> alloc_stats_by_type() {
  State& s = st();
  AllocGuard g(s.mu);
  std::map<std::string, AllocStats> out;
  for (const auto& [name, stats] : s.by_type)
    if (stats != AllocStats{}) out[name] = stats;
  return out;
}

std::map<std::string, AllocStats> alloc_stats_by_site() {
  State& s = st();
  AllocGuard g(s.mu);
  std::map<std::string, AllocStats> out;
  for (const auto& [name, stats] : s.by_site)
    if (stats != AllocStats{}) out[name] = stats;
  return out;
}

uint64_t alloc_count() {
  State& s = st();
  AllocGuard g(s.mu);
  return s.nr_allocs;
}

bool alloc_check_no_leaks(const char* when) {
  State& s = st();
  std::map<std::string, uint64_t> survivors;  // "type @site" -> count; sorted, so stable
  {
    AllocGuard g(s.mu);
    if (s.nr_live == 0) return true;
    for (const auto& [p, l] : s.live)
      if (!l.stale) survivors[*l.type + " @" + *l.site]++;
  }
  std::string text = std::string("objects still live at ") + when + ":\n";
  for (const auto& [k, n] : survivors) text += "  " + std::to_string(n) + " x " + k + "\n";
  kreport(ReportKind::kLeak, "leak:" + survivors.begin()->first, std::move(text));
  return false;
}

void alloc_reset() {
  State& s = st();
  std::function<void(gfp_t)> old;  // destroyed after the lock is dropped (declared first)
  AllocGuard g(s.mu);
  for (auto& [p, l] : s.live) l.stale = true;
  s.nr_live = 0;
  for (auto& [name, stats] : s.by_type) stats = AllocStats{};
  for (auto& [name, stats] : s.by_site) stats = AllocStats{};
  s.nr_allocs = 0;
  s.nr_warned = 0;
  set_fault_locked(s, FaultConfig{});
  s.recording = false;
  s.log.clear();
  s.replaying = false;
  s.replay_fail.clear();
  s.replay_reclaim_from_log = false;
  s.replay_reclaim.clear();
  old = std::move(s.reclaim.writeback);
  s.reclaim = ReclaimConfig{};
  s.reclaim_eligible = 0;
  s.reclaim_prng = 1;
  s.reclaims = 0;
  s.reclaim_recursions = 0;
  // in_reclaim is left alone: a task inside the hook removes its own mark.
}

}  // namespace kern
