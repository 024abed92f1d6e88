// SPDX-License-Identifier: MIT
// The native backend: real threads, real blocking.
//
// wait_until(): spin a little (most waits are short critical sections), then sleep on a
// futex word chosen by hashing the waited-for object into one of kBuckets buckets. A
// bucket's `gen` is bumped by every notify() of an object that hashes there; a waiter
// reads gen, re-checks ready(), and sleeps only if gen is unchanged (std::atomic::wait
// compares and sleeps atomically), so a notify between the check and the sleep is never
// lost. `sleepers` lets notify() skip the wake syscall when nobody sleeps in the bucket:
// sleepers is incremented (seq_cst) before the gen re-check and read (seq_cst) after the
// gen bump, a Dekker pair.
//
// Chaos: a per-thread xorshift PRNG, seeded from (seed, task id) on first use in a task.
#include <sched.h>

#include <atomic>
#include <cstdint>

#include "impl/kern/sched.h"
#include "impl/kern/task.h"

namespace kern {
namespace {

constexpr size_t kBuckets = 256;

struct alignas(64) Bucket {
  std::atomic<uint32_t> gen{0};
  std::atomic<uint32_t> sleepers{0};
};

Bucket buckets[kBuckets];

Bucket& bucket_of(const void* obj) {
  auto v = reinterpret_cast<uintptr_t>(obj);
  v ^= v >> 17;
  v *= 0x9E3779B97F4A7C15ull;
  return buckets[(v >> 56) % kBuckets];
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

std::atomic<bool> chaos_on{false};
NativeChaos chaos_cfg;  // written only while no task runs (set_native_chaos contract)

struct ChaosState {
  uint32_t task_id = 0;
  uint64_t s = 0;
};
thread_local ChaosState chaos_state;

uint64_t next_rand(ChaosState& st) {
  st.s ^= st.s << 13;
  st.s ^= st.s >> 7;
  st.s ^= st.s << 17;
  return st.s;
}

class NativeBackend final : public SchedBackend {
 public:
  void seam(SeamKind, const void*) override {
    if (!chaos_on.load(std::memory_order_relaxed)) return;
    ChaosState& st = chaos_state;
    const Task* t = current();
    if (st.task_id != t->id || st.s == 0) {
      st.task_id = t->id;
      st.s = (chaos_cfg.seed * 0x9E3779B97F4A7C15ull) ^ (uint64_t{t->id} << 32) ^ 0x5bd1e995;
      if (st.s == 0) st.s = 1;
    }
    const uint64_t r = next_rand(st);
    if (r % 1000 >= chaos_cfg.permille) return;
    if ((r >> 20) & 1) {
      sched_yield();
    } else {
      const unsigned spins = 64 + static_cast<unsigned>((r >> 24) % 512);
      for (unsigned i = 0; i < spins; ++i) cpu_relax();
    }
  }

  void wait_until(const WaitDesc& w, function_ref<bool()> ready) override {
    for (int i = 0; i < 128; ++i) {
      if (ready()) return;
      cpu_relax();
    }
    Bucket& b = bucket_of(w.obj);
    for (int round = 0;; ++round) {
      const uint32_t g = b.gen.load(std::memory_order_acquire);
      if (ready()) return;
      if (round < 8) {
        sched_yield();
        continue;
      }
      b.sleepers.fetch_add(1, std::memory_order_seq_cst);
      if (!ready()) b.gen.wait(g, std::memory_order_seq_cst);
      b.sleepers.fetch_sub(1, std::memory_order_relaxed);
    }
  }

  void notify(const void* obj) override {
    Bucket& b = bucket_of(obj);
    b.gen.fetch_add(1, std::memory_order_seq_cst);
    if (b.sleepers.load(std::memory_order_seq_cst) != 0) b.gen.notify_all();
  }

  bool controlled() const override { return false; }
};

NativeBackend native_backend;
std::atomic<SchedBackend*> installed{nullptr};

}  // namespace

const char* seam_kind_name(SeamKind kind) {
  switch (kind) {
    case SeamKind::kLockAcquire: return "lock-acquire";
    case SeamKind::kLockRelease: return "lock-release";
    case SeamKind::kAtomic: return "atomic";
    case SeamKind::kRcuRead: return "rcu-read";
    case SeamKind::kAlloc: return "alloc";
    case SeamKind::kTimer: return "timer";
    case SeamKind::kWork: return "work";
    case SeamKind::kPreempt: return "preempt";
    case SeamKind::kWake: return "wake";
  }
  return "?";
}

SchedBackend& sched() {
  SchedBackend* b = installed.load(std::memory_order_acquire);
  return b ? *b : native_backend;
}

namespace detail {
std::atomic<bool> seam_hooked{false};
}  // namespace detail

void set_sched_backend(SchedBackend* b) {
  installed.store(b, std::memory_order_release);
  detail::seam_hooked.store(b != nullptr || chaos_on.load(std::memory_order_relaxed),
                            std::memory_order_relaxed);
}

void set_native_chaos(const NativeChaos& c) {
  chaos_cfg = c;
  chaos_on.store(c.enabled, std::memory_order_release);
  detail::seam_hooked.store(c.enabled || installed.load(std::memory_order_relaxed) != nullptr,
                            std::memory_order_relaxed);
}

NativeChaos native_chaos() { return chaos_cfg; }

}  // namespace kern
