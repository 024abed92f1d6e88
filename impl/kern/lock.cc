// SPDX-License-Identifier: MIT
#include "impl/kern/lock.h"

#include "impl/kern/report.h"
#include "impl/kern/sched.h"

namespace kern {

bool LockCore::try_acquire_word() {
  Task* expected = nullptr;
  // acquire: pairs with release_word()'s release store by the previous holder.
  return owner_.compare_exchange_strong(expected, current(), std::memory_order_acquire,
                                        std::memory_order_relaxed);
}

void LockCore::acquire_word(const char* what) {
  if (!try_acquire_word()) acquire_word_slow(what);
}

// Contended (or self-deadlocked): out of line, so the uncontended path above carries none
// of the reports' and the wait's stack locals (a sanitizer frame per lock otherwise).
void LockCore::acquire_word_slow(const char* what) {
  Task* self = current();
  if (owner() == self) {
    // Self-deadlock: lockdep has reported the recursion; do not hang the run on it.
    kreport(ReportKind::kDeadlock, std::string("self-deadlock:") + cls_->name,
            self->label() + " waits for " + what + " " + cls_->name + " that it holds itself");
    return;
  }
  for (Task* up = self->inline_parent; up != nullptr; up = up->inline_parent) {
    if (owner() == up) {
      kreport(ReportKind::kDeadlock, std::string("inline-deadlock:") + cls_->name,
              self->label() + " runs on top of " + up->label() + " (same thread) and waits for " +
                  what + " " + cls_->name + " that " + up->label() +
                  " holds: it can never be released");
      return;
    }
  }
  waiters_.fetch_add(1, std::memory_order_seq_cst);
  for (;;) {
    WaitDesc d{what, this, cls_->name.c_str(), owner()};
    wait_until(d, [this] { return owner_.load(std::memory_order_relaxed) == nullptr; });
    if (try_acquire_word()) break;
  }
  waiters_.fetch_sub(1, std::memory_order_relaxed);
}

void LockCore::release_word(const char* what, SrcLoc where) {
  // release + seq_cst: the store publishes the critical section to the next acquirer and
  // forms the Dekker pair with acquire_word()'s waiters_ increment (see lock.h).
  owner_.store(nullptr, std::memory_order_seq_cst);
  if (waiters_.load(std::memory_order_seq_cst) != 0) notify(this);
}

bool LockCore::release_checked(const char* what, SrcLoc where) {
  const bool mine = owner() == current();
  // A release by a non-owner is reported by lock_release (kBadUnlock); the word, and so
  // someone else's critical section, is left alone.
  lock_release(cls_, this, where);
  if (!mine) return false;
  release_word(what, where);
  seam(SeamKind::kLockRelease, this);
  return true;
}

// ---- spinlock_t ----

void spinlock_t::do_lock(int subclass, SrcLoc w) {
  preempt_disable();
  seam(SeamKind::kLockAcquire, this);
  lock_acquire(cls_, this, false, false, subclass, w);
  acquire_word("spinlock");
}

void spinlock_t::do_unlock(SrcLoc w) {
  if (!release_checked("spinlock", w)) return;
  preempt_enable();
}

void spinlock_t::lock(SrcLoc w) NO_THREAD_SAFETY_ANALYSIS { do_lock(0, w); }
void spinlock_t::lock_nested(int subclass, SrcLoc w) NO_THREAD_SAFETY_ANALYSIS {
  do_lock(subclass, w);
}
void spinlock_t::unlock(SrcLoc w) NO_THREAD_SAFETY_ANALYSIS { do_unlock(w); }

bool spinlock_t::trylock(SrcLoc w) NO_THREAD_SAFETY_ANALYSIS {
  preempt_disable();
  seam(SeamKind::kLockAcquire, this);
  if (try_acquire_word()) {
    lock_acquire(cls_, this, true, false, 0, w);
    return true;
  }
  preempt_enable();
  return false;
}

void spinlock_t::lock_irq(SrcLoc w) NO_THREAD_SAFETY_ANALYSIS {
  local_irq_disable();
  do_lock(0, w);
}

void spinlock_t::unlock_irq(SrcLoc w) NO_THREAD_SAFETY_ANALYSIS {
  do_unlock(w);
  local_irq_enable();
}

irqflags_t spinlock_t::lock_irqsave(SrcLoc w) NO_THREAD_SAFETY_ANALYSIS {
  const irqflags_t f = local_irq_save();
  do_lock(0, w);
  return f;
}

void spinlock_t::unlock_irqrestore(irqflags_t flags, SrcLoc w) NO_THREAD_SAFETY_ANALYSIS {
  do_unlock(w);
  local_irq_restore(flags);
}

void spinlock_t::lock_bh(SrcLoc w) NO_THREAD_SAFETY_ANALYSIS {
  local_bh_disable();
  do_lock(0, w);
}

void spinlock_t::unlock_bh(SrcLoc w) NO_THREAD_SAFETY_ANALYSIS {
  do_unlock(w);
  local_bh_enable();
}

// ---- mutex ----

void mutex::lock(SrcLoc w) NO_THREAD_SAFETY_ANALYSIS { lock_nested(0, w); }

void mutex::lock_nested(int subclass, SrcLoc w) NO_THREAD_SAFETY_ANALYSIS {
  might_sleep("mutex_lock", w);
  seam(SeamKind::kLockAcquire, this);
  lock_acquire(cls_, this, false, false, subclass, w);
  acquire_word("mutex");
}

void mutex::unlock(SrcLoc w) NO_THREAD_SAFETY_ANALYSIS { release_checked("mutex", w); }

bool mutex::trylock(SrcLoc w) NO_THREAD_SAFETY_ANALYSIS {
  seam(SeamKind::kLockAcquire, this);
  if (!try_acquire_word()) return false;
  lock_acquire(cls_, this, true, false, 0, w);
  return true;
}

// ---- freeze_counter ----

void freeze_counter::freeze(SrcLoc w) NO_THREAD_SAFETY_ANALYSIS {
  might_sleep("blk_mq_freeze_queue", w);
  seam(SeamKind::kLockAcquire, this);
  lock_acquire(cls_, this, false, false, 0, w);
  // seq_cst increment then seq_cst reads of users_: pairs with enter()'s increment of
  // users_ followed by its read of depth_ (Dekker), so no IO enters a frozen queue.
  depth_.fetch_add(1, std::memory_order_seq_cst);
  WaitDesc d{"freeze-drain", this, cls_->name.c_str(), nullptr};
  wait_until(d, [this] { return users_.load(std::memory_order_seq_cst) == 0; });
}

void freeze_counter::unfreeze(SrcLoc w) NO_THREAD_SAFETY_ANALYSIS {
  if (depth_.load(std::memory_order_relaxed) <= 0) {
    kreport(ReportKind::kBug, "unfreeze-not-frozen:" + cls_->name, "unfreeze of a queue not frozen");
    return;
  }
  lock_release(cls_, this, w);
  depth_.fetch_sub(1, std::memory_order_seq_cst);
  notify(this);
  seam(SeamKind::kLockRelease, this);
}

bool freeze_counter::enter(bool nowait, SrcLoc w) NO_THREAD_SAFETY_ANALYSIS {
  if (!nowait) might_sleep("bio_queue_enter", w);
  seam(SeamKind::kLockAcquire, this);
  if (!nowait) lock_acquire(cls_, this, false, true, 0, w);
  for (;;) {
    users_.fetch_add(1, std::memory_order_seq_cst);
    if (depth_.load(std::memory_order_seq_cst) == 0) break;
    users_.fetch_sub(1, std::memory_order_seq_cst);
    notify(this);  // the freezer may be waiting for users_ to drain
    if (nowait) return false;
    WaitDesc d{"queue-enter", this, cls_->name.c_str(), nullptr};
    wait_until(d, [this] { return depth_.load(std::memory_order_seq_cst) == 0; });
  }
  if (nowait) lock_acquire(cls_, this, true, true, 0, w);
  return true;
}

void freeze_counter::exit(SrcLoc w) NO_THREAD_SAFETY_ANALYSIS {
  lock_release(cls_, this, w);
  users_.fetch_sub(1, std::memory_order_seq_cst);
  // Only a freezer waits for users_; it set depth_ before reading users_ (Dekker pair).
  if (depth_.load(std::memory_order_seq_cst) != 0) notify(this);
  seam(SeamKind::kLockRelease, this);
}

}  // namespace kern
