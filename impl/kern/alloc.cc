// SPDX-License-Identifier: MIT
#include "impl/kern/alloc.h"

#include <cxxabi.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <unordered_map>

#include "impl/kern/report.h"
#include "impl/kern/sched.h"
#include "impl/kern/task.h"

namespace kern {
namespace {

struct Live {
  const char* type;
  const char* site;
  size_t size;
};

// All allocator state is guarded by `mu` (infrastructure lock, no seam).
std::mutex mu;
std::unordered_map<void*, Live>* live = nullptr;
FaultConfig fault_cfg;
bool recording = false;
std::vector<AllocDecision>* log_entries = nullptr;
std::vector<uint64_t>* replay = nullptr;  // sorted failing indices; null = off
uint64_t nr_allocs = 0;
std::unordered_map<std::string, uint64_t>* site_counts = nullptr;
uint64_t prng = 1;
ReclaimConfig reclaim_cfg;
uint64_t reclaim_eligible = 0;
std::atomic<uint64_t> reclaims{0};
thread_local int reclaim_depth = 0;

void init_locked() {
  if (!live) {
    live = new std::unordered_map<void*, Live>();
    log_entries = new std::vector<AllocDecision>();
    site_counts = new std::unordered_map<std::string, uint64_t>();
  }
}

uint64_t next_rand() {
  prng ^= prng << 13;
  prng ^= prng >> 7;
  prng ^= prng << 17;
  return prng;
}

// Decide under `mu`: returns true if this allocation must fail.
bool inject_locked(gfp_t gfp, const char* site, uint64_t index) {
  if (replay) return std::binary_search(replay->begin(), replay->end(), index);
  if (fault_cfg.only_nonblocking && gfpflags_allow_blocking(gfp)) return false;
  bool fail = false;
  if (fault_cfg.fail_nth && index == fault_cfg.fail_nth) fail = true;
  if (!fault_cfg.fail_site.empty() && fault_cfg.fail_site == site) {
    const uint64_t n = ++(*site_counts)[site];
    if (fault_cfg.fail_site_nth == 0 || n == fault_cfg.fail_site_nth) fail = true;
  }
  if (fault_cfg.permille && next_rand() % 1000 < fault_cfg.permille) fail = true;
  return fail;
}

}  // namespace

std::string gfp_name(gfp_t gfp) {
  const gfp_t base = gfp & ~(GFP_NOWARN | GFP_ZERO);
  std::string s;
  switch (base) {
    case GFP_KERNEL: s = "GFP_KERNEL"; break;
    case GFP_NOFS: s = "GFP_NOFS"; break;
    case GFP_NOIO: s = "GFP_NOIO"; break;
    case GFP_NOWAIT: s = "GFP_NOWAIT"; break;
    case GFP_ATOMIC: s = "GFP_ATOMIC"; break;
    default: s = "GFP(" + std::to_string(base) + ")";
  }
  if (gfp & GFP_NOWARN) s += "|__GFP_NOWARN";
  return s;
}

void fault_set(const FaultConfig& c) {
  std::lock_guard<std::mutex> g(mu);
  init_locked();
  fault_cfg = c;
  prng = c.seed ? c.seed : 1;
  site_counts->clear();
}

FaultConfig fault_get() {
  std::lock_guard<std::mutex> g(mu);
  return fault_cfg;
}

void fault_record(bool on) {
  std::lock_guard<std::mutex> g(mu);
  init_locked();
  recording = on;
}

std::vector<AllocDecision> fault_log() {
  std::lock_guard<std::mutex> g(mu);
  init_locked();
  return *log_entries;
}

void fault_replay(std::vector<uint64_t> failing) {
  std::lock_guard<std::mutex> g(mu);
  delete replay;
  replay = nullptr;
  if (!failing.empty()) {
    std::sort(failing.begin(), failing.end());
    replay = new std::vector<uint64_t>(std::move(failing));
  }
}

void reclaim_set(ReclaimConfig c) {
  std::lock_guard<std::mutex> g(mu);
  reclaim_cfg = std::move(c);
  if (reclaim_cfg.every_nth == 0) reclaim_cfg.every_nth = 1;
  reclaim_eligible = 0;
}

uint64_t reclaim_count() { return reclaims.load(std::memory_order_relaxed); }

bool alloc_decide(gfp_t gfp, const char* site) {
  Task* t = current();
  // The task's scope masks the class (current_gfp_context()).
  if (t->gfp_scope & kScopeNoIo) gfp &= ~(kGfpIo | kGfpFs);
  if (t->gfp_scope & kScopeNoFs) gfp &= ~kGfpFs;
  if (gfpflags_allow_blocking(gfp)) might_sleep("kmalloc(blocking gfp)");
  seam(SeamKind::kAlloc, site);

  std::function<void(gfp_t)> writeback;
  bool fail;
  uint64_t index;
  {
    std::lock_guard<std::mutex> g(mu);
    init_locked();
    index = ++nr_allocs;
    fail = inject_locked(gfp, site, index);
    if (recording) log_entries->push_back(AllocDecision{index, site, gfp, fail});
    if (reclaim_cfg.enabled && gfpflags_allow_blocking(gfp) && (gfp & kGfpIo) &&
        ++reclaim_eligible % reclaim_cfg.every_nth == 0)
      writeback = reclaim_cfg.writeback;
  }
  if (writeback) {
    if (reclaim_depth > 0) {
      kreport(ReportKind::kAlloc, std::string("reclaim-recursion:") + site,
              std::string("allocation at ") + site + " (" + gfp_name(gfp) +
                  ") would re-enter reclaim from inside reclaim writeback");
    } else {
      ++reclaim_depth;
      reclaims.fetch_add(1, std::memory_order_relaxed);
      writeback(gfp);
      --reclaim_depth;
    }
  }
  if (fail && !(gfp & GFP_NOWARN) && std::getenv("BLKCG_VERBOSE_ALLOC")) {
    std::fprintf(stderr, "alloc: injected failure #%llu at %s (%s)\n",
                 static_cast<unsigned long long>(index), site, gfp_name(gfp).c_str());
  }
  return !fail;
}

void alloc_track(void* p, const char* type, const char* site, size_t size) {
  std::lock_guard<std::mutex> g(mu);
  init_locked();
  (*live)[p] = Live{type, site, size};
}

bool alloc_untrack(void* p) {
  bool known;
  {
    std::lock_guard<std::mutex> g(mu);
    init_locked();
    known = live->erase(p) == 1;
  }
  if (!known) {
    kreport(ReportKind::kAlloc, "kfree-unknown-pointer",
            "kfree of a pointer that is not a live allocation (double free or never allocated)");
  }
  return known;
}

void* kmalloc_bytes(size_t size, gfp_t gfp, const char* site) {
  if (!alloc_decide(gfp, site)) return nullptr;
  void* p = (gfp & GFP_ZERO) ? std::calloc(1, size) : std::malloc(size);
  if (p) alloc_track(p, "bytes", site, size);
  return p;
}

void kfree_bytes(void* p) {
  if (p && alloc_untrack(p)) std::free(p);
}

const char* demangled_type_name(const std::type_info& ti) {
  int status = 0;
  char* d = abi::__cxa_demangle(ti.name(), nullptr, nullptr, &status);
  return status == 0 && d ? d : ti.name();  // leaked once per type, by design
}

uint64_t alloc_live_total() {
  std::lock_guard<std::mutex> g(mu);
  return live ? live->size() : 0;
}

std::map<std::string, uint64_t> alloc_live_by_type() {
  std::lock_guard<std::mutex> g(mu);
  std::map<std::string, uint64_t> out;
  if (live)
    for (const auto& [p, l] : *live) out[l.type]++;
  return out;
}

uint64_t alloc_count() {
  std::lock_guard<std::mutex> g(mu);
  return nr_allocs;
}

bool alloc_check_no_leaks(const char* when) {
  std::map<std::string, uint64_t> survivors;
  {
    std::lock_guard<std::mutex> g(mu);
    if (!live || live->empty()) return true;
    for (const auto& [p, l] : *live) survivors[std::string(l.type) + " @" + l.site]++;
  }
  std::string text = std::string("objects still live at ") + when + ":\n";
  for (const auto& [k, n] : survivors) text += "  " + std::to_string(n) + " x " + k + "\n";
  kreport(ReportKind::kLeak, "leak:" + survivors.begin()->first, std::move(text));
  return false;
}

void alloc_reset() {
  std::lock_guard<std::mutex> g(mu);
  init_locked();
  live->clear();
  fault_cfg = FaultConfig{};
  recording = false;
  log_entries->clear();
  delete replay;
  replay = nullptr;
  nr_allocs = 0;
  site_counts->clear();
  prng = 1;
  reclaim_cfg = ReclaimConfig{};
  reclaim_eligible = 0;
  reclaims.store(0, std::memory_order_relaxed);
}

}  // namespace kern
