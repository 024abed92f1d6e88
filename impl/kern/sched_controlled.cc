// SPDX-License-Identifier: MIT
#include "impl/kern/sched_controlled.h"

#include <setjmp.h>
#include <sys/mman.h>
#include <ucontext.h>

#include <cstdio>
#include <cstdlib>
#include <thread>

#include "impl/kern/clock.h"
#include "impl/kern/cpu.h"
#include "impl/kern/lockdep.h"
#include "impl/kern/report.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KERN_ASAN 1
#include <sanitizer/common_interface_defs.h>
#endif
#if __has_feature(thread_sanitizer)
#define KERN_TSAN 1
#include <sanitizer/tsan_interface.h>
#endif
#endif

namespace kern {

// ---- Decision sources ----

namespace {
int round_robin(const std::vector<int>& runnable, int cur) {
  for (int r : runnable)
    if (r > cur) return r;
  return runnable.front();
}

uint64_t xorshift(uint64_t& s) {
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return s;
}
}  // namespace

int ByteSource::choose(const std::vector<int>& runnable, int cur, SeamKind, uint32_t) {
  if (pos_ >= size_) return round_robin(runnable, cur);
  const uint8_t b = data_[pos_++];
  return runnable[b % runnable.size()];
}

int RandomWalk::choose(const std::vector<int>& runnable, int, SeamKind, uint32_t) {
  return runnable[xorshift(s_) % runnable.size()];
}

uint64_t PctSource::next() { return xorshift(s_); }

void PctSource::begin(int n) {
  prio_.resize(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) prio_[static_cast<size_t>(i)] = depth_ + i;  // all above depth
  for (int i = n - 1; i > 0; --i) std::swap(prio_[static_cast<size_t>(i)], prio_[next() % (i + 1)]);
  change_points_.clear();
  for (int i = 1; i < depth_; ++i)
    change_points_.push_back(steps_ ? static_cast<uint32_t>(next() % steps_) : 0);
}

int PctSource::choose(const std::vector<int>& runnable, int cur, SeamKind, uint32_t step) {
  for (size_t i = 0; i < change_points_.size(); ++i) {
    if (change_points_[i] == step && cur >= 0) {
      prio_[static_cast<size_t>(cur)] = static_cast<int>(depth_ - 1 - i);  // demote below all
    }
  }
  int best = runnable.front();
  for (int r : runnable)
    if (prio_[static_cast<size_t>(r)] > prio_[static_cast<size_t>(best)]) best = r;
  return best;
}

int ReplaySource::choose(const std::vector<int>& runnable, int cur, SeamKind kind,
                         uint32_t step) {
  uint32_t mask = 0;
  for (int r : runnable) mask |= 1u << r;
  if (!diverged_) {
    if (step < trace_.size()) {
      const TraceStep& t = trace_[step];
      if (t.kind == kind && t.runnable == mask && (mask >> t.chosen & 1)) return t.chosen;
    }
    diverged_ = true;
    std::string want = step < trace_.size()
                           ? std::string(seam_kind_name(trace_[step].kind)) + " runnable=" +
                                 std::to_string(trace_[step].runnable) + " chose T" +
                                 std::to_string(trace_[step].chosen)
                           : std::string("end of trace");
    kreport(ReportKind::kNondeterminism, "replay-diverged",
            "replay diverged at step " + std::to_string(step) + ": recorded " + want +
                "; now " + seam_kind_name(kind) + " runnable=" + std::to_string(mask));
  }
  return round_robin(runnable, cur);
}

// ---- Fibers ----

namespace {

constexpr size_t kStackSize = 256 * 1024;
constexpr size_t kGuard = 4096;

struct Stack {
  char* base = nullptr;  // mapping start (guard page)
  // ASan's fake stack (use-after-return frames) of the last fiber that ran here, kept with
  // the stack so the next fiber reuses it: creating one per fiber and destroying it at the
  // fiber's end (an mmap, a 2.9 MB shadow write and an munmap) cost a third of fuzz_ops'
  // time. A fiber ends with no instrumented frame live (its body has returned or been
  // unwound), so the pooled fake stack holds no frame of the dead fiber.
  void* asan_fake = nullptr;
};

std::vector<Stack>& stack_pool() {
  static thread_local std::vector<Stack> pool;
  return pool;
}

Stack get_stack() {
  auto& pool = stack_pool();
  if (!pool.empty()) {
    Stack s = pool.back();
    pool.pop_back();
    return s;
  }
  void* m = mmap(nullptr, kStackSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) {
    std::perror("controlled scheduler: mmap fiber stack");
    std::abort();
  }
  mprotect(m, kGuard, PROT_NONE);
  return Stack{static_cast<char*>(m)};
}

enum class State : uint8_t { kRunnable, kBlocked, kDone };

struct Fiber {
  int idx = 0;
  std::unique_ptr<Task> task;
  const std::function<void()>* fn = nullptr;
  State state = State::kRunnable;
  bool started = false;
  WaitDesc wait;
  const function_ref<bool()>* ready = nullptr;
  Task* cur = nullptr;  // the thread's current() while this fiber is switched out
  Stack stack;
  ucontext_t uc;
  jmp_buf jb;
  void* asan_fake = nullptr;
  void* tsan_fiber = nullptr;
};

class Controlled;
thread_local Controlled* g_ctl = nullptr;

class Controlled final : public SchedBackend {
 public:
  Controlled(const std::vector<TaskSpec>& specs, DecisionSource& src, const ControlledOptions& opt,
             RunResult& res)
      : src_(src), opt_(opt), res_(res) {
    for (size_t i = 0; i < specs.size(); ++i) {
      auto f = std::make_unique<Fiber>();
      f->idx = static_cast<int>(i);
      f->task = std::make_unique<Task>(specs[i].name, specs[i].cpu, specs[i].kind);
      f->fn = &specs[i].fn;
      f->cur = f->task.get();
      fibers_.push_back(std::move(f));
    }
    runnable_.reserve(fibers_.size());
  }

  void run() {
    src_.begin(static_cast<int>(fibers_.size()));
#ifdef KERN_TSAN
    main_tsan_ = __tsan_get_current_fiber();
#endif
    const int first = pick(-1, SeamKind::kPreempt);
    if (first >= 0) switch_to(nullptr, fibers_[static_cast<size_t>(first)].get());
    // Daemons still idling when every other task finished are unwound like the tasks of
    // a deadlocked run, so nothing on their stacks leaks.
    for (auto& f : fibers_)
      if (f->started && f->state != State::kDone) killing_ = true;
    if (killing_) {
      for (auto& f : fibers_) {
        if (f->started && f->state != State::kDone) switch_to(nullptr, f.get());
        f->state = State::kDone;
      }
    }
    for (auto& f : fibers_) {
      if (f->started) stack_pool().push_back(f->stack);
#ifdef KERN_TSAN
      if (f->tsan_fiber) __tsan_destroy_fiber(f->tsan_fiber);
#endif
      // A killed task may still own its CPU; give it back so the next run starts clean.
      for (int c = 0; c < kMaxCpus; ++c) {
        Task* expected = f->task.get();
        cpu_state(c).owner.compare_exchange_strong(expected, nullptr);
      }
    }
  }

  // ---- SchedBackend ----
  void seam(SeamKind kind, const void*) override {
    Fiber* f = running_;
    if (f == nullptr || killing_) return;
    const int next = pick(f->idx, kind);
    if (next < 0 || next == f->idx) return;
    switch_to(f, fibers_[static_cast<size_t>(next)].get());
    if (killing_) throw FiberKilled{};
  }

  void wait_until(const WaitDesc& w, function_ref<bool()> ready) override {
    Fiber* f = running_;
    if (f == nullptr) {
      if (!ready())
        kreport(ReportKind::kBug, "controlled-wait-outside-task",
                std::string("wait for ") + w.what + " outside a controlled task");
      return;
    }
    if (killing_) throw FiberKilled{};
    if (ready()) {
      seam(SeamKind::kPreempt, w.obj);
      return;
    }
    f->state = State::kBlocked;
    f->wait = w;
    f->ready = &ready;
    const int next = pick(-1, SeamKind::kPreempt);
    if (next == f->idx) {
      f->state = State::kRunnable;
      f->ready = nullptr;
      return;
    }
    if (next < 0) {
      end_run(f);  // deadlock or all done: back to main, which unwinds us
    } else {
      switch_to(f, fibers_[static_cast<size_t>(next)].get());
    }
    f->ready = nullptr;
    f->state = State::kRunnable;
    if (killing_) throw FiberKilled{};
  }

  void notify(const void*) override {}
  bool controlled() const override { return true; }

  static void entry() {
    Controlled* self = g_ctl;
    Fiber* f = self->running_;
    self->finish_switch(f);
    detail::tls_current = f->cur;
    try {
      (*f->fn)();
    } catch (const FiberKilled&) {
    }
    if (!self->killing_) check_task_exit(f->task.get());
    f->task->exited = true;
    f->state = State::kDone;
    self->fiber_done(f);
  }

 private:
  // Runnable set for a decision; `cur` (the task at a seam) counts as runnable.
  int pick(int cur, SeamKind kind) {
    runnable_.clear();
    bool any_live = false, only_daemons = true;
    for (auto& fp : fibers_) {
      Fiber* f = fp.get();
      if (f->state == State::kDone) continue;
      any_live = true;
      if (f->task->kind != TaskKind::kKworker) only_daemons = false;
      if (f->state == State::kRunnable || (f->state == State::kBlocked && (*f->ready)()))
        runnable_.push_back(f->idx);
    }
    if (runnable_.empty()) {
      if (any_live && !only_daemons) deadlock();
      return -1;
    }
    // Livelock: decisions go on while virtual time stands still. Time that moves is
    // progress (a timer that fires every few jiffies through a long `advance` takes
    // millions of decisions legitimately: fuzz_ops found a 2M-decision cap reporting one),
    // bounded by the run's length; max_steps stops a run that is merely too long.
    const uint64_t now = jiffies();
    if (now != progress_jiffies_) {
      progress_jiffies_ = now;
      progress_step_ = res_.steps;
    }
    ++res_.steps;
    const bool stuck = res_.steps - progress_step_ > opt_.max_steps_without_progress;
    if (stuck || res_.steps > opt_.max_steps) {
      if (!res_.step_limit) {
        res_.step_limit = true;
        kreport(ReportKind::kDeadlock, "controlled-step-limit",
                stuck ? "controlled run took " + std::to_string(opt_.max_steps_without_progress) +
                            " scheduling decisions without the clock moving (livelock?)\n" + graph()
                      : "controlled run exceeded " + std::to_string(opt_.max_steps) +
                            " scheduling decisions in all\n" + graph());
      }
      killing_ = true;
      return -1;
    }
    const uint32_t step = static_cast<uint32_t>(res_.steps - 1);
    int choice = src_.choose(runnable_, cur, kind, step);
    bool ok = false;
    for (int r : runnable_) ok |= r == choice;
    if (!ok) choice = runnable_.front();
    if (opt_.record_trace) {
      uint32_t mask = 0;
      for (int r : runnable_) mask |= 1u << r;
      res_.trace.push_back(TraceStep{step, kind, static_cast<uint8_t>(choice),
                                     static_cast<uint8_t>(cur < 0 ? 0xff : cur), mask});
    }
    if (cur >= 0 && choice != cur) res_.preemptions++;
    return choice;
  }

  std::string graph() const {
    std::string g;
    for (const auto& fp : fibers_) {
      const Fiber* f = fp.get();
      if (f->state == State::kDone) continue;
      g += "  " + f->task->label();
      if (f->state == State::kBlocked) {
        g += std::string(" waits for ") + f->wait.what + " '" + f->wait.name + "'";
        if (f->wait.owner) g += " held by " + f->wait.owner->label();
      } else {
        g += " runnable";
      }
      g += "\n";
      const Task* t = f->cur ? f->cur : f->task.get();
      if (t->nr_held) g += held_locks_text(t);
    }
    return g;
  }

  void deadlock() {
    if (killing_) return;
    res_.deadlock = true;
    std::string names;
    for (const auto& fp : fibers_)
      if (fp->state == State::kBlocked) names += std::string(names.empty() ? "" : ",") + fp->wait.what;
    kreport(ReportKind::kDeadlock, "deadlock:" + names,
            "controlled scheduler: no task can run\n" + graph());
    killing_ = true;
  }

  void end_run(Fiber* f) { switch_to(f, nullptr); }

  void fiber_done(Fiber* f) {
    int next = killing_ ? -1 : pick(-1, SeamKind::kPreempt);
    // Never returns: a finished fiber is not resumed.
    switch_to(f, next < 0 ? nullptr : fibers_[static_cast<size_t>(next)].get());
    std::abort();
  }

  void start_switch(Fiber* from, Fiber* to) {
#ifdef KERN_ASAN
    void** fake = (from && from->state == State::kDone) ? &from->stack.asan_fake
                  : from ? &from->asan_fake : &main_asan_fake_;
    if (to)
      __sanitizer_start_switch_fiber(fake, to->stack.base + kGuard, kStackSize - kGuard);
    else
      __sanitizer_start_switch_fiber(fake, main_bottom_, main_size_);
#endif
#ifdef KERN_TSAN
    if (to && !to->tsan_fiber) to->tsan_fiber = __tsan_create_fiber(0);
    __tsan_switch_to_fiber(to ? to->tsan_fiber : main_tsan_, 0);
#endif
    (void)from;
    (void)to;
  }

  void finish_switch(Fiber* self) {
#ifdef KERN_ASAN
    const void* bottom = nullptr;
    size_t size = 0;
    __sanitizer_finish_switch_fiber(self ? self->asan_fake : main_asan_fake_, &bottom, &size);
    if (switching_from_main_ && self != nullptr) {
      main_bottom_ = bottom;
      main_size_ = size;
    }
#endif
    (void)self;
  }

  void switch_to(Fiber* from, Fiber* to) {
    res_.switches++;
    Task*& saved = from ? from->cur : main_cur_;
    saved = detail::tls_current;
    switching_from_main_ = from == nullptr;
    if (to && !to->started) {
      to->started = true;
      to->stack = get_stack();
      to->asan_fake = to->stack.asan_fake;  // entry's finish_switch installs it
      getcontext(&to->uc);
      to->uc.uc_stack.ss_sp = to->stack.base + kGuard;
      to->uc.uc_stack.ss_size = kStackSize - kGuard;
      to->uc.uc_link = nullptr;
      makecontext(&to->uc, &Controlled::entry, 0);
      running_ = to;
#ifdef KERN_TSAN
      start_switch(from, to);
      swapcontext(from ? &from->uc : &main_uc_, &to->uc);
#else
      if (_setjmp(from ? from->jb : main_jb_) == 0) {
        start_switch(from, to);
        setcontext(&to->uc);
      }
#endif
    } else {
      running_ = to;
#ifdef KERN_TSAN
      start_switch(from, to);
      swapcontext(from ? &from->uc : &main_uc_, to ? &to->uc : &main_uc_);
#else
      if (_setjmp(from ? from->jb : main_jb_) == 0) {
        start_switch(from, to);
        _longjmp(to ? to->jb : main_jb_, 1);
      }
#endif
    }
    // Resumed as `from`.
    finish_switch(from);
    running_ = from;
    detail::tls_current = from ? from->cur : main_cur_;
  }

  DecisionSource& src_;
  ControlledOptions opt_;
  RunResult& res_;
  // The livelock check of pick(): the jiffies value seen at the last decision and the
  // step count when it last changed. Touched only by the deciding fiber.
  uint64_t progress_jiffies_ = jiffies();
  uint64_t progress_step_ = 0;
  std::vector<std::unique_ptr<Fiber>> fibers_;
  std::vector<int> runnable_;
  Fiber* running_ = nullptr;
  bool killing_ = false;
  Task* main_cur_ = nullptr;
  [[maybe_unused]] jmp_buf main_jb_;  // non-TSan builds switch with _setjmp/_longjmp
  [[maybe_unused]] ucontext_t main_uc_;  // TSan builds switch with swapcontext
  bool switching_from_main_ = false;
  [[maybe_unused]] void* main_asan_fake_ = nullptr;
  [[maybe_unused]] const void* main_bottom_ = nullptr;
  [[maybe_unused]] size_t main_size_ = 0;
  [[maybe_unused]] void* main_tsan_ = nullptr;
};

}  // namespace

RunResult run_controlled(const std::vector<TaskSpec>& tasks, DecisionSource& source,
                         const ControlledOptions& opt) {
  RunResult res;
  if (tasks.empty()) return res;
  if (tasks.size() > 32) {
    kreport(ReportKind::kBug, "controlled-too-many-tasks", "run_controlled: at most 32 tasks");
    return res;
  }
  Controlled ctl(tasks, source, opt, res);
  Controlled* saved = g_ctl;
  g_ctl = &ctl;
  set_sched_backend(&ctl);
  ctl.run();
  set_sched_backend(nullptr);
  g_ctl = saved;
  return res;
}

RunResult run_native(const std::vector<TaskSpec>& tasks) {
  std::vector<std::thread> threads;
  threads.reserve(tasks.size());
  for (const TaskSpec& t : tasks) {
    threads.emplace_back([&t] {
      TaskScope scope(t.name, t.cpu, t.kind);
      t.fn();
    });
  }
  for (auto& th : threads) th.join();
  return RunResult{};
}

}  // namespace kern
