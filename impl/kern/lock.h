// SPDX-License-Identifier: MIT
// Locks: spinlock_t (plain, _irq, _irqsave, _bh, trylock), raw_spinlock_t, struct mutex,
// and the queue-freeze counter, all annotated as capabilities for -Wthread-safety and all
// checked by lockdep (lockdep.h).
//
// Semantics that match the kernel:
//   - spin_lock disables preemption (so the holder owns its CPU) and spins: it never sleeps.
//     The _irq/_irqsave variants also disable local IRQs, _bh disables softirqs.
//   - mutex_lock may sleep: it calls might_sleep() first, so taking a mutex under a spinlock,
//     in RCU, with IRQs off, or in interrupt context is reported even when uncontended.
//   - mutex_trylock never sleeps (allowed in atomic context, as RFC nowait creation uses).
//   - unlocking a lock the task does not hold is kBadUnlock.
//
// Implementation: one atomic owner word per lock. Acquire is CAS nullptr->current() with
// acquire ordering; release is a store of nullptr with release ordering, which pairs with
// the next acquirer's CAS (TSan sees every critical section ordered). Contention goes
// through wait_until()/notify() (sched.h), so the controlled scheduler sees who waits for
// whom and a deadlock becomes a wait-for graph. Every acquire and release is a seam point.
#pragma once

#include <atomic>
#include <source_location>

#include "impl/kern/annotations.h"
#include "impl/kern/lockdep.h"
#include "impl/kern/task.h"

namespace kern {

using SrcLoc = std::source_location;

// The common core: owner word + lockdep class. Not used directly.
class LockCore {
 public:
  LockCore(const char* name, bool sleeping) : cls_(lock_class(name, sleeping)) {}
  const void* dep_instance() const { return this; }
  const char* dep_name() const { return cls_->name.c_str(); }
  LockClass* cls() const { return cls_; }
  Task* owner() const { return owner_.load(std::memory_order_relaxed); }

  bool is_locked() const { return owner() != nullptr; }

 protected:
  bool try_acquire_word();
  void acquire_word(const char* what);  // waits (seam) until acquired
  [[gnu::noinline]] void acquire_word_slow(const char* what);
  void release_word(const char* what, SrcLoc where);
  // lockdep release + word release + seam, if current() owns the lock; false otherwise.
  bool release_checked(const char* what, SrcLoc where);

  LockClass* cls_;
  std::atomic<Task*> owner_{nullptr};
  // Tasks waiting in acquire_word(); release_word() notifies only when non-zero (a
  // seq_cst Dekker pair: waiter increments then re-reads owner_, releaser clears owner_
  // then reads waiters_), so the uncontended unlock costs no shared write.
  std::atomic<int> waiters_{0};
};

class CAPABILITY("spinlock") spinlock_t : public LockCore {
 public:
  explicit spinlock_t(const char* name) : LockCore(name, false) {}
  // lockdep_assert_held() that also tells clang's analysis the lock is held: use it where
  // the analysis cannot see through an alias (blkg->q->blkcg_mutex vs q->blkcg_mutex).
  void assert_held(SrcLoc w = SrcLoc::current()) const ASSERT_CAPABILITY(this) {
    lockdep_assert_held_instance(dep_instance(), dep_name(), w);
  }

  void lock(SrcLoc w = SrcLoc::current()) ACQUIRE();
  void unlock(SrcLoc w = SrcLoc::current()) RELEASE();
  bool trylock(SrcLoc w = SrcLoc::current()) TRY_ACQUIRE(true);
  // Nested acquisition of a second lock of the same class (spin_lock_nested).
  void lock_nested(int subclass, SrcLoc w = SrcLoc::current()) ACQUIRE();

  void lock_irq(SrcLoc w = SrcLoc::current()) ACQUIRE();
  void unlock_irq(SrcLoc w = SrcLoc::current()) RELEASE();
  irqflags_t lock_irqsave(SrcLoc w = SrcLoc::current()) ACQUIRE();
  void unlock_irqrestore(irqflags_t flags, SrcLoc w = SrcLoc::current()) RELEASE();
  void lock_bh(SrcLoc w = SrcLoc::current()) ACQUIRE();
  void unlock_bh(SrcLoc w = SrcLoc::current()) RELEASE();

 private:
  void do_lock(int subclass, SrcLoc w);
  void do_unlock(SrcLoc w);
};

// raw_spinlock_t: identical semantics here (no PREEMPT_RT distinction).
class CAPABILITY("raw_spinlock") raw_spinlock_t : public spinlock_t {
 public:
  using spinlock_t::spinlock_t;
};

class CAPABILITY("mutex") mutex : public LockCore {
 public:
  explicit mutex(const char* name) : LockCore(name, true) {}
  // lockdep_assert_held() that also tells clang's analysis the lock is held: use it where
  // the analysis cannot see through an alias (blkg->q->blkcg_mutex vs q->blkcg_mutex).
  void assert_held(SrcLoc w = SrcLoc::current()) const ASSERT_CAPABILITY(this) {
    lockdep_assert_held_instance(dep_instance(), dep_name(), w);
  }
  void lock(SrcLoc w = SrcLoc::current()) ACQUIRE();
  void lock_nested(int subclass, SrcLoc w = SrcLoc::current()) ACQUIRE();
  void unlock(SrcLoc w = SrcLoc::current()) RELEASE();
  bool trylock(SrcLoc w = SrcLoc::current()) TRY_ACQUIRE(true);
};

// Kernel-spelled free functions, so impl/block reads like the kernel.
inline void spin_lock(spinlock_t& l, SrcLoc w = SrcLoc::current()) ACQUIRE(l) { l.lock(w); }
inline void spin_unlock(spinlock_t& l, SrcLoc w = SrcLoc::current()) RELEASE(l) { l.unlock(w); }
inline void spin_lock_irq(spinlock_t& l, SrcLoc w = SrcLoc::current()) ACQUIRE(l) {
  l.lock_irq(w);
}
inline void spin_unlock_irq(spinlock_t& l, SrcLoc w = SrcLoc::current()) RELEASE(l) {
  l.unlock_irq(w);
}
inline void spin_lock_bh(spinlock_t& l, SrcLoc w = SrcLoc::current()) ACQUIRE(l) {
  l.lock_bh(w);
}
inline void spin_unlock_bh(spinlock_t& l, SrcLoc w = SrcLoc::current()) RELEASE(l) {
  l.unlock_bh(w);
}
inline bool spin_trylock(spinlock_t& l, SrcLoc w = SrcLoc::current()) TRY_ACQUIRE(true, l) {
  return l.trylock(w);
}
inline void mutex_lock(mutex& m, SrcLoc w = SrcLoc::current()) ACQUIRE(m) { m.lock(w); }
inline void mutex_unlock(mutex& m, SrcLoc w = SrcLoc::current()) RELEASE(m) { m.unlock(w); }
inline bool mutex_trylock(mutex& m, SrcLoc w = SrcLoc::current()) TRY_ACQUIRE(true, m) {
  return m.trylock(w);
}

// RAII guards (scoped capabilities).
struct adopt_lock_t {};
inline constexpr adopt_lock_t adopt_lock{};

class SCOPED_CAPABILITY MutexGuard {
 public:
  explicit MutexGuard(mutex& m, SrcLoc w = SrcLoc::current()) ACQUIRE(m) : m_(m) { m_.lock(w); }
  // Takes over a mutex the caller already holds (after a successful trylock).
  MutexGuard(mutex& m, adopt_lock_t) REQUIRES(m) : m_(m) {}
  ~MutexGuard() RELEASE() { m_.unlock(); }
  MutexGuard(const MutexGuard&) = delete;
  MutexGuard& operator=(const MutexGuard&) = delete;

 private:
  mutex& m_;
};

class SCOPED_CAPABILITY SpinIrqGuard {
 public:
  explicit SpinIrqGuard(spinlock_t& l, SrcLoc w = SrcLoc::current()) ACQUIRE(l) : l_(l) {
    flags_ = l_.lock_irqsave(w);
  }
  ~SpinIrqGuard() RELEASE() { l_.unlock_irqrestore(flags_); }
  SpinIrqGuard(const SpinIrqGuard&) = delete;
  SpinIrqGuard& operator=(const SpinIrqGuard&) = delete;

 private:
  spinlock_t& l_;
  irqflags_t flags_;
};

// The queue freeze counter (q->q_usage_counter), which lockdep treats as a lock:
//   - bio_queue_enter()/exit(): the IO path, a shared ("read") acquisition; waits (may
//     sleep) while the queue is frozen; a nowait enter fails instead.
//   - freeze()/unfreeze(): exclusive; freeze marks the queue frozen and waits (sleeps) until
//     every IO-path user has left. freeze nests (freeze depth); lockdep sees the first.
// Ordering: the freeze depth and the enter count are atomics; enter increments then checks
// the depth (seq_cst both sides, a Dekker pair with freeze's store-then-load), so a freezer
// and an enterer never both proceed.
class CAPABILITY("queue_freeze") freeze_counter : public LockCore {
 public:
  explicit freeze_counter(const char* name) : LockCore(name, true) {}
  void freeze(SrcLoc w = SrcLoc::current()) ACQUIRE();
  void unfreeze(SrcLoc w = SrcLoc::current()) RELEASE();
  // Returns false only for nowait when frozen.
  bool enter(bool nowait, SrcLoc w = SrcLoc::current()) ACQUIRE_SHARED();
  void exit(SrcLoc w = SrcLoc::current()) RELEASE_SHARED();
  bool frozen() const { return depth_.load(std::memory_order_acquire) > 0; }
  long users() const { return users_.load(std::memory_order_acquire); }

 private:
  std::atomic<int> depth_{0};
  std::atomic<long> users_{0};
};

}  // namespace kern
