// SPDX-License-Identifier: MIT
#include "impl/block/blk_testpol.h"

#include <mutex>
#include <unordered_map>
#include <string>

#include "impl/block/blkg.h"
#include "impl/kern/report.h"
#include "impl/kern/sched.h"

namespace blk {
namespace {

enum class St : uint8_t { kAllocated, kInited, kOnline, kOffline, kFreed };

struct test_pd : blkg_policy_data {
  St st = St::kAllocated;
  uint64_t id = 0;
  uint64_t parent_id = 0;  // 0: none
};

// A per-cgroup setting, as real policies keep one (bfq's and iocost's weight): pd_alloc
// reads it from the pd's blkcg.
struct test_cpd : blkcg_policy_data {
  uint32_t weight = 100;
};

// Counters are the checker's own bookkeeping (plain mutex, no seam).
std::mutex mu;
testpol_counters counters;
uint64_t next_id = 1;
// Live children per pd id (an id is never reused, unlike an address).
std::unordered_map<uint64_t, int>* children = new std::unordered_map<uint64_t, int>();

void violation(const char* what, const std::string& detail) {
  kern::kreport(kern::ReportKind::kOracle, std::string("testpol:") + what,
                std::string("testpol: ") + what + ": " + detail);
}

const char* st_name(St s) {
  switch (s) {
    case St::kAllocated: return "allocated";
    case St::kInited: return "inited";
    case St::kOnline: return "online";
    case St::kOffline: return "offline";
    case St::kFreed: return "freed";
  }
  return "?";
}

test_pd* as_test(blkg_policy_data* pd) { return static_cast<test_pd*>(pd); }

void expect(test_pd* pd, St want, const char* step) {
  if (pd->st != want)
    violation(step, std::string("pd in state ") + st_name(pd->st) + ", expected " + st_name(want));
}

extern blkcg_policy the_policy;  // defined below, after its callbacks

blkg_policy_data* pd_alloc(request_queue*, blkcg* bc, kern::gfp_t gfp) {
  // A registered policy with cpd callbacks has a cpd in every blkcg, so a pd can read its
  // cgroup's settings (06b285bd1125: a blkcg without blkgs at registration got none, and
  // the policy's pd_init later dereferenced the empty slot). The read is real: a cpd
  // freed too early is a use-after-free here.
  const int plid = the_policy.plid;
  if (bc && plid >= 0) {
    auto* cpd = static_cast<test_cpd*>(bc->cpd[plid]);
    if (!cpd) violation("pd-without-cpd", "pd allocated for a blkcg that has no cpd of the policy");
    else if (cpd->weight == 0) violation("pd-without-cpd", "the blkcg's cpd was never initialised");
  }
  test_pd* pd = kern::kzalloc_obj<test_pd>(gfp, "pd_alloc.testpol");
  if (pd) {
    std::lock_guard<std::mutex> g(mu);
    counters.pd_alloc++;
    pd->id = next_id++;
    (*children)[pd->id] = 0;
  }
  return pd;
}

void pd_init(blkg_policy_data* p) {
  test_pd* pd = as_test(p);
  expect(pd, St::kAllocated, "pd_init");
  pd->st = St::kInited;
  blkcg_gq* parent = pd->blkg ? pd->blkg->parent : nullptr;
  if (parent) {
    // Touch the parent's pd, as real policies do (throttle reads its parent's limits).
    blkg_policy_data* pp = parent->pd[pd->plid].load(std::memory_order_acquire);
    if (!pp) {
      violation("parent-pd-missing-at-init", "child pd initialised before its parent's");
    } else {
      test_pd* ppd = as_test(pp);
      if (ppd->st == St::kAllocated || ppd->st == St::kFreed)
        violation("parent-pd-not-ready", std::string("parent pd is ") + st_name(ppd->st));
      pd->parent_id = ppd->id;
    }
  }
  std::lock_guard<std::mutex> g(mu);
  if (pd->parent_id) (*children)[pd->parent_id]++;
  counters.pd_init++;
}

void pd_online(blkg_policy_data* p) {
  test_pd* pd = as_test(p);
  expect(pd, St::kInited, "pd_online");
  pd->st = St::kOnline;
  std::lock_guard<std::mutex> g(mu);
  counters.pd_online++;
}

void pd_offline(blkg_policy_data* p) {
  test_pd* pd = as_test(p);
  expect(pd, St::kOnline, "pd_offline");
  pd->st = St::kOffline;
  std::lock_guard<std::mutex> g(mu);
  counters.pd_offline++;
}

void pd_free(blkg_policy_data* p) {
  test_pd* pd = as_test(p);
  if (pd->st == St::kOnline) violation("pd_free", "pd freed while online (offline skipped)");
  if (pd->st == St::kFreed) violation("pd_free", "pd freed twice");
  pd->st = St::kFreed;
  int live_children;
  {
    std::lock_guard<std::mutex> g(mu);
    live_children = (*children)[pd->id];
    children->erase(pd->id);
    auto it = children->find(pd->parent_id);
    if (pd->parent_id && it != children->end()) it->second--;
    counters.pd_free++;
  }
  if (live_children > 0)
    violation("parent-pd-freed-first", "pd freed while a child pd is still live");
  kern::kfree(pd);  // a callback on it after this is a use-after-free (ASan)
}

// blkio.reset_stats (and any walker of a blkcg's blkgs under blkcg->lock) calls this on
// each pd it finds. The core publishes and unpublishes pds, and offlines them, under
// blkcg->lock, so a pd reached here is initialised or online, never offline or freed
// (858560b27645, CVE-2021-47379: a deactivation freed pds under the queue's lock only).
// The seam lets a concurrent deactivation run between finding the pd and using it, the
// window the bug needs.
void pd_reset_stats(blkg_policy_data* p) {
  test_pd* pd = as_test(p);
  kern::seam(kern::SeamKind::kAtomic, pd);
  if (pd->st != St::kInited && pd->st != St::kOnline)
    violation("pd-used-after-offline",
              std::string("a blkcg->lock walker reached a pd in state ") + st_name(pd->st));
  std::lock_guard<std::mutex> g(mu);
  counters.pd_reset_stats++;
}

// The cpd callbacks of both test policies: the same cpd, counted per policy.
template <uint64_t testpol_counters::*kAllocs>
blkcg_policy_data* new_cpd(kern::gfp_t gfp, const char* site) {
  test_cpd* cpd = kern::kzalloc_obj<test_cpd>(gfp, site);
  if (cpd) {
    std::lock_guard<std::mutex> g(mu);
    ++(counters.*kAllocs);
  }
  return cpd;
}

template <uint64_t testpol_counters::*kFrees>
void delete_cpd(blkcg_policy_data* cpd) {
  {
    std::lock_guard<std::mutex> g(mu);
    ++(counters.*kFrees);
  }
  kern::kfree(static_cast<test_cpd*>(cpd));
}

blkcg_policy_data* cpd_alloc(kern::gfp_t gfp) {
  return new_cpd<&testpol_counters::cpd_alloc>(gfp, "cpd_alloc.testpol");
}
void cpd_free(blkcg_policy_data* cpd) { delete_cpd<&testpol_counters::cpd_free>(cpd); }

// The cpd-only policy: per-cgroup data and nothing per disk, as blk-ioprio has been since
// it stopped being activated. Registering it allocates a cpd in every blkcg; activating it
// must be refused (b925680cf083).
blkcg_policy_data* cpd_only_alloc(kern::gfp_t gfp) {
  return new_cpd<&testpol_counters::cpd_only_alloc>(gfp, "cpd_alloc.testpol_cpd");
}
void cpd_only_free(blkcg_policy_data* cpd) { delete_cpd<&testpol_counters::cpd_only_free>(cpd); }

blkcg_policy the_cpd_only_policy{
    .name = "testpol_cpd",
    .cpd_alloc_fn = cpd_only_alloc,
    .cpd_free_fn = cpd_only_free,
};

blkcg_policy the_policy{
    .name = "testpol",
    .cpd_alloc_fn = cpd_alloc,
    .cpd_free_fn = cpd_free,
    .pd_alloc_fn = pd_alloc,
    .pd_init_fn = pd_init,
    .pd_online_fn = pd_online,
    .pd_offline_fn = pd_offline,
    .pd_free_fn = pd_free,
    .pd_reset_stats_fn = pd_reset_stats,
};

}  // namespace

blkcg_policy* testpol() { return &the_policy; }
blkcg_policy* testpol_cpd_only() { return &the_cpd_only_policy; }

testpol_counters testpol_get_counters() {
  std::lock_guard<std::mutex> g(mu);
  return counters;
}

void testpol_reset() {
  std::lock_guard<std::mutex> g(mu);
  counters = testpol_counters{};
  children->clear();
}

}  // namespace blk
