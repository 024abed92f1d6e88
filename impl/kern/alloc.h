// SPDX-License-Identifier: MIT
// The injectable allocator: every allocation in impl/ goes through here (DESIGN principle 5).
//
// What it guarantees:
//   - GFP classes with the kernel's meaning. A class that allows direct reclaim (KERNEL,
//     NOFS, NOIO) is a possible sleep: might_sleep() runs before anything else, so a
//     blocking allocation under a spinlock, in RCU, with IRQs off or in interrupt context is
//     reported (kSleepInAtomic) even when memory is plentiful. The task's memalloc_noio
//     scope strips the IO and FS bits, as the kernel's current_gfp_context() does.
//   - Every allocation is a seam point (SeamKind::kAlloc) and has a named call site
//     ("blkg_alloc", "blkg_alloc.iostat_cpu"): fault injection targets sites by name.
//   - Fault injection, deterministic from its configuration: fail the N-th allocation, every
//     (or the N-th) allocation at a named site, or each with a probability from a seeded
//     PRNG; optionally only non-blocking classes (the GFP_NOWAIT/ATOMIC paths). Every
//     decision can be logged and a log replayed (fail exactly the logged indices).
//   - Memory pressure (optional): a blocking allocation that may do IO can "enter reclaim"
//     and call the registered writeback hook, which may issue IO. This is how the 2011
//     percpu-allocation deadlock (IO path allocating with GFP_KERNEL) becomes a test.
//     Reclaim does not recurse (kernel: PF_MEMALLOC); an allocation that would re-enter
//     reclaim from inside the hook is reported (kAlloc).
//   - Live-object accounting per type and site: a test or a fuzz harness asserts that
//     teardown freed everything (alloc_check_no_leaks reports kLeak with the survivors).
//     kfree of an unknown pointer or a double free is kAlloc.
// Thread-safety: callable from any task concurrently. The allocator's own bookkeeping uses
// a plain std::mutex that never calls the seam: it is infrastructure, not kernel code.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <new>
#include <string>
#include <typeinfo>
#include <utility>
#include <vector>

#include "impl/kern/cpu.h"

namespace kern {

using gfp_t = unsigned;
// Flag bits (the kernel's __GFP_* are reserved identifiers in C++).
inline constexpr gfp_t kGfpDirectReclaim = 1u << 0;  // may sleep to reclaim
inline constexpr gfp_t kGfpIo = 1u << 1;             // reclaim may start IO
inline constexpr gfp_t kGfpFs = 1u << 2;             // reclaim may call into filesystems
inline constexpr gfp_t kGfpHigh = 1u << 3;           // may use atomic reserves
inline constexpr gfp_t GFP_NOWARN = 1u << 4;         // __GFP_NOWARN: do not log a failure
inline constexpr gfp_t GFP_ZERO = 1u << 5;           // __GFP_ZERO

inline constexpr gfp_t GFP_KERNEL = kGfpDirectReclaim | kGfpIo | kGfpFs;
inline constexpr gfp_t GFP_NOFS = kGfpDirectReclaim | kGfpIo;
inline constexpr gfp_t GFP_NOIO = kGfpDirectReclaim;
inline constexpr gfp_t GFP_NOWAIT = 0;
inline constexpr gfp_t GFP_ATOMIC = kGfpHigh;

inline bool gfpflags_allow_blocking(gfp_t gfp) { return gfp & kGfpDirectReclaim; }
std::string gfp_name(gfp_t gfp);

// ---- Fault injection ----
struct FaultConfig {
  uint64_t fail_nth = 0;        // fail the N-th counted allocation (1-based); 0 = off
  std::string fail_site;        // fail allocations at this site ("" = off) ...
  uint64_t fail_site_nth = 0;   // ... only its N-th (1-based); 0 = every one
  unsigned permille = 0;        // fail with this probability (per mille)
  uint64_t seed = 1;            // PRNG seed for permille
  bool only_nonblocking = false;  // apply to GFP_NOWAIT/ATOMIC-class allocations only
};
void fault_set(const FaultConfig& c);
FaultConfig fault_get();

struct AllocDecision {
  uint64_t index;  // 1-based count of allocations since alloc_reset
  std::string site;
  gfp_t gfp;
  bool failed;
};
void fault_record(bool on);
std::vector<AllocDecision> fault_log();
// Replay: fail exactly these allocation indices (and nothing else); empty vector = off.
void fault_replay(std::vector<uint64_t> failing_indices);

// ---- Memory pressure ----
struct ReclaimConfig {
  bool enabled = false;
  unsigned every_nth = 1;  // enter reclaim on every N-th eligible allocation
  std::function<void(gfp_t)> writeback;
};
void reclaim_set(ReclaimConfig c);
uint64_t reclaim_count();

// ---- Core ----
// Decide whether an allocation of `size` at `site` succeeds (runs every check). Returns
// false on an injected failure. Used by the typed helpers below.
bool alloc_decide(gfp_t gfp, const char* site);
void alloc_track(void* p, const char* type, const char* site, size_t size);
// Returns false (and reports kAlloc) if `p` is not a live tracked allocation.
bool alloc_untrack(void* p);

void* kmalloc_bytes(size_t size, gfp_t gfp, const char* site);
void kfree_bytes(void* p);

const char* demangled_type_name(const std::type_info& ti);

template <typename T>
const char* type_name() {
  static const char* const n = demangled_type_name(typeid(T));
  return n;
}

// Allocate and construct a T (value-initialised: zeroed when T has no constructor).
template <typename T, typename... A>
T* kzalloc_obj(gfp_t gfp, const char* site, A&&... args) {
  if (!alloc_decide(gfp, site)) return nullptr;
  T* p = new (std::nothrow) T(std::forward<A>(args)...);
  if (p) alloc_track(p, type_name<T>(), site, sizeof(T));
  return p;
}
template <typename T, typename... A>
T* kmalloc_obj(gfp_t gfp, const char* site, A&&... args) {
  return kzalloc_obj<T>(gfp, site, std::forward<A>(args)...);
}

template <typename T>
void kfree(T* p) {
  if (p == nullptr) return;
  if (alloc_untrack(p)) delete p;
}

template <typename T>
PerCpu<T>* alloc_percpu_gfp(gfp_t gfp, const char* site) {
  return kzalloc_obj<PerCpu<T>>(gfp, site);
}
template <typename T>
void free_percpu(PerCpu<T>* p) {
  kfree(p);
}

// ---- Accounting ----
uint64_t alloc_live_total();
std::map<std::string, uint64_t> alloc_live_by_type();
uint64_t alloc_count();  // allocations attempted since alloc_reset
// Reports kLeak (naming type and site of each survivor) and returns false if anything is
// live. `when` names the check point in the report.
bool alloc_check_no_leaks(const char* when);
// Fresh world: forget fault config, log, counters and the live set (without freeing).
void alloc_reset();

}  // namespace kern
