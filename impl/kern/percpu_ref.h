// SPDX-License-Identifier: MIT
// percpu_ref: the kernel's killable reference count with a release callback.
//
// Semantics kept from the kernel:
//   - init(release) starts with one reference (the "initial" or existence reference);
//   - get/put while live; tryget succeeds while the count is > 0, EVEN AFTER kill (blkg
//     association depends on this: a dying blkg can still be tried-got); tryget_live fails
//     once kill has run;
//   - kill marks the ref dead and drops the initial reference; the put that reaches zero
//     after that calls release(ref), in whatever context it runs (IRQ included);
//   - exit after release (or on a ref that never went live).
// Not emulated: the per-CPU fast mode. Every operation works on one atomic word, which is
// what the kernel's ref degrades to after kill; the observable ordering (kill, then
// tryget_live fails, then the last put releases) is the same, so no bug class the suite
// looks for is hidden, and the word being shared makes races on it visible to TSan.
// Word: bit 63 = DEAD, low bits = count. RMWs are acq_rel so release() sees every access
// made under any reference. Misuse (put below zero, get on zero, double kill, release
// before kill) is kRefcount.
#pragma once

#include <atomic>
#include <cstdint>

namespace kern {

struct percpu_ref;
using percpu_ref_func_t = void (*)(percpu_ref*);

struct percpu_ref {
  std::atomic<uint64_t> word{0};
  percpu_ref_func_t release = nullptr;
  const char* name = "percpu_ref";
  bool initialized = false;
};

inline constexpr uint64_t kPercpuRefDead = uint64_t{1} << 63;

// gfp-less: the emulation allocates nothing per ref (see above). Returns 0.
int percpu_ref_init(percpu_ref* ref, percpu_ref_func_t release, const char* name);
void percpu_ref_exit(percpu_ref* ref);
void percpu_ref_get(percpu_ref* ref);
bool percpu_ref_tryget(percpu_ref* ref);
bool percpu_ref_tryget_live(percpu_ref* ref);
void percpu_ref_put(percpu_ref* ref);
void percpu_ref_kill(percpu_ref* ref);
bool percpu_ref_is_zero(const percpu_ref* ref);
bool percpu_ref_is_dying(const percpu_ref* ref);
uint64_t percpu_ref_count(const percpu_ref* ref);

}  // namespace kern
