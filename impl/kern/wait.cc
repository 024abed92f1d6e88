// SPDX-License-Identifier: MIT
#include "impl/kern/wait.h"

#include "impl/kern/task.h"

namespace kern {

void prepare_to_wait(wait_queue_head& wq, wait_queue_entry& e) {
  const irqflags_t f = wq.lock.lock_irqsave();
  e.task = current();
  // relaxed: the lock orders this against wake_up's store; we only need the flag reset
  // before we re-test the condition, and the lock release publishes it.
  e.woken.store(false, std::memory_order_relaxed);
  if (!e.queued) {
    e.queued = true;
    e.prev = wq.last;
    e.next = nullptr;
    if (wq.last)
      wq.last->next = &e;
    else
      wq.first = &e;
    wq.last = &e;
  }
  wq.lock.unlock_irqrestore(f);
}

void finish_wait(wait_queue_head& wq, wait_queue_entry& e) {
  const irqflags_t f = wq.lock.lock_irqsave();
  if (e.queued) {
    if (e.prev)
      e.prev->next = e.next;
    else
      wq.first = e.next;
    if (e.next)
      e.next->prev = e.prev;
    else
      wq.last = e.prev;
    e.queued = false;
    e.prev = e.next = nullptr;
  }
  wq.lock.unlock_irqrestore(f);
}

void schedule_wait(wait_queue_head& wq, wait_queue_entry& e) {
  might_sleep("schedule");
  WaitDesc d{"waitqueue", &e, wq.lock.dep_name(), nullptr};
  // acquire: pairs with wake_up's release store of woken.
  wait_until(d, [&e] { return e.woken.load(std::memory_order_acquire); });
}

void wake_up(wait_queue_head& wq) {
  const irqflags_t f = wq.lock.lock_irqsave();
  for (wait_queue_entry* e = wq.first; e != nullptr; e = e->next) {
    e->woken.store(true, std::memory_order_release);
    notify(e);
  }
  wq.lock.unlock_irqrestore(f);
  seam(SeamKind::kWake, &wq);
}

bool waitqueue_active(wait_queue_head& wq) {
  // The kernel reads this unlocked; here the lock keeps TSan's view exact.
  const irqflags_t f = wq.lock.lock_irqsave();
  const bool active = wq.first != nullptr;
  wq.lock.unlock_irqrestore(f);
  return active;
}

void completion::complete() {
  const irqflags_t f = wait.lock.lock_irqsave();
  if (done != kAll) done++;
  wait.lock.unlock_irqrestore(f);
  wake_up(wait);
}

void completion::complete_all() {
  const irqflags_t f = wait.lock.lock_irqsave();
  done = kAll;
  wait.lock.unlock_irqrestore(f);
  wake_up(wait);
}

bool completion::try_wait_for_completion() {
  const irqflags_t f = wait.lock.lock_irqsave();
  const bool ok = done > 0;
  if (ok && done != kAll) done--;
  wait.lock.unlock_irqrestore(f);
  return ok;
}

void completion::wait_for_completion() {
  might_sleep("wait_for_completion");
  for (;;) {
    if (try_wait_for_completion()) return;
    wait_event(wait, [this] { return completion_done(); });
  }
}

bool completion::completion_done() {
  const irqflags_t f = wait.lock.lock_irqsave();
  const bool ok = done > 0;
  wait.lock.unlock_irqrestore(f);
  return ok;
}

void completion::reinit() {
  const irqflags_t f = wait.lock.lock_irqsave();
  done = 0;
  wait.lock.unlock_irqrestore(f);
}

}  // namespace kern
