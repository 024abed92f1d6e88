// SPDX-License-Identifier: MIT
// The injectable allocator: every allocation in impl/ goes through here (DESIGN principle 5:
// faults are inputs).
//
// What it guarantees, in the order an allocation sees it:
//
//   1. GFP classes with the kernel's meaning. gfp_t is a bitmask. The kernel's __GFP_* names
//      are reserved identifiers in C++, so the reclaim bits are kGfpDirectReclaim / kGfpIo /
//      kGfpFs / kGfpHigh and the modifiers are GFP_NOWARN (__GFP_NOWARN) and GFP_ZERO
//      (__GFP_ZERO). The classes are the kernel's compositions: GFP_KERNEL = reclaim|io|fs,
//      GFP_NOFS = reclaim|io, GFP_NOIO = reclaim, GFP_NOWAIT = 0, GFP_ATOMIC = high.
//   2. Context. The effective class is the requested one masked by the task's GFP scope
//      (memalloc_noio_save strips IO and FS, so GFP_KERNEL inside it is GFP_NOIO), as the
//      kernel's current_gfp_context() does. Everything below sees the effective class.
//      A class that allows direct reclaim is a possible sleep: might_sleep() runs first,
//      before any fault decision, so a blocking allocation under a spinlock, inside RCU, with
//      IRQs off or in interrupt context is reported (kSleepInAtomic) even when memory is
//      plentiful. The report names the class and the call site, and points at the caller's
//      source line.
//   3. Seam. Every allocation then calls seam(SeamKind::kAlloc, site name) before deciding:
//      under the controlled scheduler another task may run here.
//   4. Sites. Every allocation names its call site (AllocSite: "blkg_alloc",
//      "blkg_alloc.iostat_cpu", "pd_alloc.throtl"). Fault injection, statistics and leak
//      reports use the name. A name is copied into the allocator's tables on first use, so
//      it need not outlive the call.
//   5. Fault injection (FaultConfig), deterministic from its configuration: fail the N-th
//      counted allocation; every (or only the N-th) allocation at a named site (a trailing
//      '*' matches a prefix: "blkg_alloc*"); and/or each counted allocation with a
//      probability (per mille) drawn from a PRNG seeded by the config. `classes` restricts
//      which effective classes are counted and may fail (kGfpClassesNonblocking: only
//      GFP_NOWAIT/ATOMIC, the way to show that config writes preallocate with a blocking
//      class; kGfpClassesBlocking: "count only non-atomic allocations"). Counters and the
//      PRNG start afresh at every fault_set().
//      A failure returns nullptr; the allocator never throws. GFP_NOWARN only decides
//      whether a failure is a warning (alloc_warn_count(), printed when verbose).
//   6. Record and replay. With fault_record(true) every decision is appended to a log
//      ({index, site, effective gfp, failed, reclaimed}); `index` counts allocations since
//      alloc_reset(). fault_replay(indices) fails exactly those indices and nothing else;
//      fault_replay_log(log) also enters reclaim exactly where the log did. Determinism:
//      counters and PRNGs advance under one lock in allocation order, so the decisions are a
//      function of the configuration and the order of allocations. That order is itself
//      deterministic under the controlled scheduler or with one thread; with native threads
//      the interleaving decides which allocation is the N-th (record, then replay the log).
//   7. Memory pressure (ReclaimConfig, off by default). An allocation whose effective class
//      may block and may do IO (GFP_KERNEL, GFP_NOFS; not GFP_NOIO, not inside a
//      memalloc_noio scope, never NOWAIT/ATOMIC) may "enter reclaim": every N-th such
//      allocation, or each with a seeded probability. Reclaim calls the registered writeback
//      hook, which may issue IO to a disk. This is the 2011 percpu-allocation deadlock made
//      reproducible: an IO-path allocation with GFP_KERNEL that enters reclaim recursively
//      submits IO. Reclaim does not nest (the kernel's PF_MEMALLOC): an allocation made by a
//      task already inside the hook that would enter reclaim again is reported (kAlloc,
//      signature "reclaim-recursion:<site>") and does not enter it. The mark is per task,
//      not per thread (controlled-mode tasks are fibers of one thread). The hook runs outside
//      every allocator lock, after the decision and before the allocation returns; it must
//      be callable from any task concurrently.
//   8. Accounting. Per type (the demangled C++ name; "bytes" for kmalloc_bytes) and per
//      site: live objects, total allocated, total failed. alloc_check_no_leaks(when) reports
//      kLeak listing every survivor by type and site and returns false if any. kfree of a
//      pointer the allocator does not know (never allocated, or already freed) is kAlloc and
//      the pointer is left alone. So is a free through a type other than the allocated one
//      (kfree_bytes of an object, kfree of a kmalloc_bytes block, a base class without a
//      virtual destructor): the object is not destroyed and stays live. A double free is only
//      recognisable while the address has not been reused by a later allocation (ASan's
//      quarantine makes reuse rare).
//   9. alloc_reset() makes a fresh world: it drops the fault, replay, record and reclaim
//      configuration and zeroes every counter and statistic. It does not free: objects still
//      live become stale, which takes them out of the accounting (they were reported, or
//      not checked, in their own world) while a later kfree of one stays legal and quiet.
//
// Objects are always constructed: kmalloc_obj and kzalloc_obj both value-initialise T (a T
// without a constructor is zeroed), because reading indeterminate C++ scalars is undefined
// behaviour. kmalloc_bytes without GFP_ZERO fills the block with 0x5a (slab's "in use"
// poison), so code that forgets to initialise sees the same garbage on every run.
//
// Thread-safety: every function is callable from any task or thread concurrently. The
// allocator's bookkeeping is guarded by one internal lock, a plain std::mutex (wrapped as a
// capability for -Wthread-safety) that never calls the seam, is invisible to lockdep and is
// never held while calling out (might_sleep, the seam, kreport, the writeback hook,
// constructors, destructors): it is infrastructure, not emulated kernel code, and cannot
// take part in a kernel deadlock. alloc_reset() and the configuration setters may run
// concurrently with allocations, but a run is only reproducible if they do not.
//
// Cost (bench/alloc_bench.cc, release build, native backend, no chaos): an allocation takes
// the bookkeeping lock twice (decide, track) and a free once, with two hash lookups by name
// and one live-set insertion: a kzalloc_obj/kfree pair costs about 85-110 ns against about
// 12 ns for new/delete, and all threads share the one lock. Cheap next to what a fuzz input
// or a stress operation does around it; never put it in a per-bio fast path that the kernel
// keeps allocation-free.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <new>
#include <source_location>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "impl/kern/cpu.h"

namespace kern {

// ---- GFP classes ----

using gfp_t = unsigned;
inline constexpr gfp_t kGfpDirectReclaim = 1u << 0;  // may sleep to reclaim
inline constexpr gfp_t kGfpIo = 1u << 1;             // reclaim may start IO
inline constexpr gfp_t kGfpFs = 1u << 2;             // reclaim may call into filesystems
inline constexpr gfp_t kGfpHigh = 1u << 3;           // may use atomic reserves
inline constexpr gfp_t GFP_NOWARN = 1u << 4;         // __GFP_NOWARN: a failure is no warning
inline constexpr gfp_t GFP_ZERO = 1u << 5;           // __GFP_ZERO: zero the bytes

inline constexpr gfp_t GFP_KERNEL = kGfpDirectReclaim | kGfpIo | kGfpFs;
inline constexpr gfp_t GFP_NOFS = kGfpDirectReclaim | kGfpIo;
inline constexpr gfp_t GFP_NOIO = kGfpDirectReclaim;
inline constexpr gfp_t GFP_NOWAIT = 0;
inline constexpr gfp_t GFP_ATOMIC = kGfpHigh;

inline constexpr bool gfpflags_allow_blocking(gfp_t gfp) {
  return gfp & kGfpDirectReclaim;
}

// Class bits, for FaultConfig::classes. An unusual composition is classified by its
// strongest capability: blocking with FS is KERNEL, with IO only NOFS, else NOIO;
// non-blocking with kGfpHigh is ATOMIC, else NOWAIT.
inline constexpr unsigned kGfpClassKernel = 1u << 0;
inline constexpr unsigned kGfpClassNofs = 1u << 1;
inline constexpr unsigned kGfpClassNoio = 1u << 2;
inline constexpr unsigned kGfpClassNowait = 1u << 3;
inline constexpr unsigned kGfpClassAtomic = 1u << 4;
inline constexpr unsigned kGfpClassesBlocking = kGfpClassKernel | kGfpClassNofs | kGfpClassNoio;
inline constexpr unsigned kGfpClassesNonblocking = kGfpClassNowait | kGfpClassAtomic;
inline constexpr unsigned kGfpClassesAll = kGfpClassesBlocking | kGfpClassesNonblocking;

constexpr unsigned gfp_class(gfp_t gfp) {
  if (gfp & kGfpDirectReclaim)
    return (gfp & kGfpFs) ? kGfpClassKernel : (gfp & kGfpIo) ? kGfpClassNofs : kGfpClassNoio;
  return (gfp & kGfpHigh) ? kGfpClassAtomic : kGfpClassNowait;
}

// "GFP_KERNEL", "GFP_NOIO|__GFP_NOWARN|__GFP_ZERO", "GFP(0x9)" for an unusual composition.
std::string gfp_name(gfp_t gfp);

// Masks `gfp` with current()'s GFP scope (the kernel's current_gfp_context()). Any context.
gfp_t current_gfp_context(gfp_t gfp);

// ---- Call sites ----

// A named allocation site. Converts implicitly from a name, capturing the caller's source
// line (used in kSleepInAtomic reports); AllocSite() names the calling function.
struct AllocSite {
  const char* name;
  std::source_location where;

  AllocSite(const char* n,  // NOLINT(google-explicit-constructor): a site is its name
            std::source_location w = std::source_location::current())
      : name(n != nullptr ? n : "(unnamed)"), where(w) {}
  AllocSite(std::source_location w = std::source_location::current())  // NOLINT
      : name(w.function_name()), where(w) {}
};

// ---- Fault injection ----

struct FaultConfig {
  uint64_t fail_nth = 0;              // fail the N-th counted allocation (1-based); 0 = off
  std::string fail_site;              // fail counted allocations at this site ("" = off; "x*" =
                                      // every site starting with "x") ...
  uint64_t fail_site_nth = 0;         // ... only the N-th at a matching site (1-based); 0 = all
  unsigned permille = 0;              // fail each counted allocation with this probability
  uint64_t seed = 1;                  // PRNG seed for permille
  bool only_nonblocking = false;      // shorthand for classes = kGfpClassesNonblocking
  unsigned classes = kGfpClassesAll;  // effective classes that are counted and may fail
};
// Replaces the configuration and restarts its counters and PRNG. Any context.
void fault_set(const FaultConfig& c);
FaultConfig fault_get();

struct AllocDecision {
  uint64_t index;  // 1-based count of allocations since alloc_reset
  std::string site;
  gfp_t gfp;  // the effective class (after the task's GFP scope)
  bool failed;
  bool reclaimed = false;  // this allocation entered reclaim (called the writeback hook)
};
// Start (and clear) or stop the decision log. Any context.
void fault_record(bool on);
std::vector<AllocDecision> fault_log();
// Stop recording and hand the log over: the allocator keeps neither a copy nor the log's
// memory, so nothing one run recorded stays allocated into the next.
std::vector<AllocDecision> fault_take_log();
// Replay: fail exactly these allocation indices and nothing else (FaultConfig is ignored
// while replaying); an empty vector turns replay off.
void fault_replay(std::vector<uint64_t> failing_indices);
// Replay a whole log: fail where it failed, and (when a writeback hook is registered) enter
// reclaim exactly where it did instead of by the ReclaimConfig trigger.
void fault_replay_log(const std::vector<AllocDecision>& log);

// Failures that were not GFP_NOWARN (the kernel's "page allocation failure" warnings).
// They are printed to stderr when alloc_set_verbose(true) or BLKCG_VERBOSE_ALLOC is set.
uint64_t alloc_warn_count();
void alloc_set_verbose(bool on);

// ---- Memory pressure ----

struct ReclaimConfig {
  bool enabled = false;
  unsigned every_nth = 1;  // enter reclaim on every N-th eligible allocation (0 acts as 1) ...
  unsigned permille = 0;   // ... or, when non-zero, on each with this probability instead
  uint64_t seed = 1;       // PRNG seed for permille (independent of FaultConfig::seed)
  std::function<void(gfp_t)> writeback;  // called with the effective gfp; any task
};
void reclaim_set(ReclaimConfig c);
uint64_t reclaim_count();            // reclaims entered since alloc_reset
uint64_t reclaim_recursion_count();  // reclaims refused as recursive since alloc_reset

// ---- fs_reclaim (the kernel's __fs_reclaim_map) ----
//
// A pseudo-lock for "this task may enter filesystem reclaim". Every allocation whose
// effective class may block and may call into filesystems (GFP_KERNEL; not GFP_NOFS or
// GFP_NOIO, not inside the matching scope, not from inside reclaim) acquires and releases
// it, so a lock held across such an allocation gets the edge L -> fs_reclaim; reclaim's
// writeback (the ReclaimConfig hook) runs holding it, so what writeback takes gets
// fs_reclaim -> L. Code whose locks reclaim may need primes the second direction up front
// (fs_reclaim_acquire(); lock_acquire/release of the lock's class; fs_reclaim_release()),
// the way the kernel primes dma_resv, so the cycle is reported without reclaim having
// to happen in that run. Context: process (the acquisition is lockdep bookkeeping only).
void fs_reclaim_acquire(std::source_location where = std::source_location::current());
void fs_reclaim_release(std::source_location where = std::source_location::current());

// ---- Core (the typed helpers below are the interface; these are their building blocks) ----

// Runs every check and decision for one allocation (context check, seam, fault injection,
// reclaim). Returns false on an injected failure. Use directly for an allocation the
// emulation does not perform but the kernel does (a percpu_ref's counters), so it is still
// a fault-injection site. `type` only feeds the per-type failure count.
// Context: any context for a non-blocking class; may sleep (process context, no spinlock,
// no RCU) for a blocking one. Calls the writeback hook when reclaim is entered.
bool alloc_decide(gfp_t gfp, AllocSite site, const char* type = nullptr);
// Enters `p` in the live set. Any context.
void alloc_track(const void* p, const char* type, const char* site, size_t size);
// Removes `p` from the live set. Returns false (and reports kAlloc) if `p` is not live,
// or if it was allocated as another type and `type_may_differ` is false (it then stays
// live). `type` nullptr skips the type check.
bool alloc_untrack(const void* p, const char* type = nullptr, bool type_may_differ = false);

// kmalloc: `size` bytes, zeroed with GFP_ZERO, else filled with 0x5a. nullptr on failure.
void* kmalloc_bytes(size_t size, gfp_t gfp, AllocSite site);
inline void* kzalloc_bytes(size_t size, gfp_t gfp, AllocSite site) {
  return kmalloc_bytes(size, gfp | GFP_ZERO, site);
}
// kfree of a kmalloc_bytes block; nullptr is fine.
void kfree_bytes(const void* p);

// The demangled name of a type, interned for the life of the process.
const char* demangled_type_name(const std::type_info& ti);
template <typename T>
const char* type_name() {
  static const char* const n = demangled_type_name(typeid(T));
  return n;
}

namespace detail {
template <typename T, typename... A>
T* alloc_obj(gfp_t gfp, const AllocSite& site, A&&... args) {
  if (!alloc_decide(gfp, site, type_name<T>())) return nullptr;
  T* p = new (std::nothrow) T(std::forward<A>(args)...);
  if (p != nullptr) alloc_track(p, type_name<T>(), site.name, sizeof(T));
  return p;
}
}  // namespace detail

// Allocate and construct a T from `args` (value-initialised without args: zeroed when T
// has no constructor). nullptr on (injected) failure; the constructor does not run then.
// Context: as alloc_decide().
template <typename T, typename... A>
T* kzalloc_obj(gfp_t gfp, AllocSite site, A&&... args) {
  return detail::alloc_obj<T>(gfp, site, std::forward<A>(args)...);
}
// The same: C++ objects are always constructed (see the header comment).
template <typename T, typename... A>
T* kmalloc_obj(gfp_t gfp, AllocSite site, A&&... args) {
  return detail::alloc_obj<T>(gfp, site, std::forward<A>(args)...);
}

// Destroy and free an object from kzalloc_obj/kmalloc_obj; kfree(nullptr) is a no-op.
// A pointer the allocator does not know is reported (kAlloc) and left alone. A polymorphic
// object may be freed through any base (it is found by its most-derived address).
// Context: any (the destructor's own requirements aside).
template <typename T>
void kfree(T* p) {
  if (p == nullptr) return;
  const void* key = p;
  if constexpr (std::is_polymorphic_v<T>) key = dynamic_cast<const void*>(p);
  if (alloc_untrack(key, type_name<std::remove_cv_t<T>>(), std::has_virtual_destructor_v<T>))
    delete p;
}

// Per-CPU storage (cpu.h), one T per possible CPU, value-initialised.
template <typename T>
PerCpu<T>* alloc_percpu_gfp(gfp_t gfp, AllocSite site) {
  return detail::alloc_obj<PerCpu<T>>(gfp, site);
}
// alloc_percpu(): GFP_KERNEL only, as the kernel's was before it took a gfp (the 2011 bug).
template <typename T>
PerCpu<T>* alloc_percpu(AllocSite site) {
  return detail::alloc_obj<PerCpu<T>>(GFP_KERNEL, site);
}
template <typename T>
void free_percpu(PerCpu<T>* p) {
  kfree(p);
}

// ---- Accounting ----

struct AllocStats {
  uint64_t live = 0;       // allocated and not yet freed
  uint64_t allocated = 0;  // successful allocations
  uint64_t failed = 0;     // injected failures
  bool operator==(const AllocStats&) const = default;
};

uint64_t alloc_live_total();
std::map<std::string, uint64_t> alloc_live_by_type();  // types with live objects only
std::map<std::string, AllocStats> alloc_stats_by_type();
std::map<std::string, AllocStats> alloc_stats_by_site();
uint64_t alloc_count();  // allocations attempted (decided) since alloc_reset
// Reports kLeak (naming type and site of each survivor) and returns false if anything is
// live. `when` names the check point in the report. Any context.
bool alloc_check_no_leaks(const char* when);
// Fresh world (see the header comment, point 9).
void alloc_reset();

}  // namespace kern
