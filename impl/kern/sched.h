// SPDX-License-Identifier: MIT
// The scheduling seam (DESIGN principle 1): the one interface between kernel primitives and
// whoever decides which task runs.
//
// Every primitive in impl/kern calls seam() at each point where another CPU could interleave:
// lock acquire/release, atomic read-modify-write on shared kernel state, RCU read-side
// boundaries, allocation, timer and work dispatch. Blocking is expressed in one way only:
// wait_until(desc, ready) - "this task cannot continue until ready() is true" - paired with
// notify(obj) by whoever changes the state ready() reads. Mutexes, CPU ownership, grace
// periods, flush_work, completions and wait queues are all built on that pair.
//
// Backends:
//   NativeBackend (default): real threads. seam() is a no-op unless chaos is enabled, in
//     which case a seeded per-task PRNG yields or spins at a seam to widen race windows.
//     wait_until() spins briefly, then sleeps on a futex keyed by the object's hash bucket.
//   ControlledScheduler (sched_controlled.h): exactly one task runs at a time; at every seam
//     a decision source picks who runs next; a blocked task is runnable again only when its
//     ready() is true; nobody runnable is a kDeadlock report with the wait-for graph.
//
// Contract for notify(): call it after every state change that can make some waiter's
// ready() true, with the same `obj` the waiter passed in its WaitDesc. A missing notify()
// is a lost wakeup: the native backend may hang (bounded by the caller's watchdog), the
// controlled backend reports it as a deadlock.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>

namespace kern {

struct Task;

enum class SeamKind : uint8_t {
  kLockAcquire,
  kLockRelease,
  kAtomic,        // read-modify-write of shared state (refcount, llist, flags)
  kRcuRead,       // rcu_read_lock/unlock boundary
  kAlloc,
  kTimer,
  kWork,
  kPreempt,       // preempt_enable / cond_resched / explicit yield point
  kWake,          // a wakeup was issued
};
const char* seam_kind_name(SeamKind kind);

// A non-owning reference to a callable (like llvm::function_ref). The referenced callable
// must outlive the call that receives it.
template <typename Fn>
class function_ref;
template <typename R, typename... Args>
class function_ref<R(Args...)> {
 public:
  template <typename F,
            typename = std::enable_if_t<!std::is_same_v<std::decay_t<F>, function_ref>>>
  function_ref(F&& f)  // NOLINT(google-explicit-constructor)
      : obj_(const_cast<void*>(static_cast<const void*>(&f))),
        call_([](void* o, Args... a) -> R {
          return (*static_cast<std::remove_reference_t<F>*>(o))(std::forward<Args>(a)...);
        }) {}
  R operator()(Args... a) const { return call_(obj_, std::forward<Args>(a)...); }

 private:
  void* obj_;
  R (*call_)(void*, Args...);
};

// What a blocked task waits for; the deadlock report prints one line per blocked task.
struct WaitDesc {
  const char* what = "";       // "mutex", "cpu", "completion", "grace-period", "work", ...
  const void* obj = nullptr;   // the object; notify(obj) wakes the waiter
  const char* name = "";       // lock class or object name
  Task* owner = nullptr;       // the task holding obj, when known (wait-for graph edge)
};

class SchedBackend {
 public:
  virtual ~SchedBackend() = default;
  virtual void seam(SeamKind kind, const void* obj) = 0;
  // Returns when ready() is true. ready() is evaluated by the waiting task (native) or by
  // the scheduler while no task runs (controlled); it must only read state and be cheap.
  virtual void wait_until(const WaitDesc& w, function_ref<bool()> ready) = 0;
  virtual void notify(const void* obj) = 0;
  // True for a backend in which only one task runs at a time.
  virtual bool controlled() const = 0;
};

// The installed backend (process-global). Defaults to the native backend.
SchedBackend& sched();
// Install `b` (nullptr restores native). Not thread-safe: call while no task runs.
void set_sched_backend(SchedBackend* b);

namespace detail {
// True when seam() must call the backend: a controlled backend is installed or native
// chaos is on. Relaxed: it only changes while no task runs (set_sched_backend contract).
extern std::atomic<bool> seam_hooked;
}  // namespace detail

// The seam itself. With the native backend and no chaos this is one relaxed load.
inline void seam(SeamKind kind, const void* obj = nullptr) {
  if (detail::seam_hooked.load(std::memory_order_relaxed)) sched().seam(kind, obj);
}
inline void wait_until(const WaitDesc& w, function_ref<bool()> ready) {
  sched().wait_until(w, ready);
}
inline void notify(const void* obj) { sched().notify(obj); }

// Native backend knobs. Chaos: at each seam, with probability permille/1000, yield the
// thread (half the time) or spin a few hundred cycles; each task draws from its own PRNG
// seeded from (seed, task id), so a run is reproducible as far as the OS allows.
struct NativeChaos {
  bool enabled = false;
  uint64_t seed = 1;
  unsigned permille = 20;
};
void set_native_chaos(const NativeChaos& c);
NativeChaos native_chaos();

}  // namespace kern
