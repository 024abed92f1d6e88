// SPDX-License-Identifier: MIT
// Clang thread-safety annotations (-Wthread-safety). Every lock type in impl/kern is a
// capability, so GUARDED_BY / REQUIRES on impl/block data are checked at compile time by
// the `tsa` preset, and at run time by lockdep_assert_held() (see lockdep.h).
#pragma once

#if defined(__clang__)
#define KERN_TSA(x) __attribute__((x))
#else
#define KERN_TSA(x)
#endif

#define CAPABILITY(x) KERN_TSA(capability(x))
#define SCOPED_CAPABILITY KERN_TSA(scoped_lockable)
#define GUARDED_BY(x) KERN_TSA(guarded_by(x))
#define PT_GUARDED_BY(x) KERN_TSA(pt_guarded_by(x))
#define ACQUIRED_BEFORE(...) KERN_TSA(acquired_before(__VA_ARGS__))
#define ACQUIRED_AFTER(...) KERN_TSA(acquired_after(__VA_ARGS__))
#define REQUIRES(...) KERN_TSA(requires_capability(__VA_ARGS__))
#define REQUIRES_SHARED(...) KERN_TSA(requires_shared_capability(__VA_ARGS__))
#define ACQUIRE(...) KERN_TSA(acquire_capability(__VA_ARGS__))
#define ACQUIRE_SHARED(...) KERN_TSA(acquire_shared_capability(__VA_ARGS__))
#define RELEASE(...) KERN_TSA(release_capability(__VA_ARGS__))
#define RELEASE_SHARED(...) KERN_TSA(release_shared_capability(__VA_ARGS__))
#define TRY_ACQUIRE(...) KERN_TSA(try_acquire_capability(__VA_ARGS__))
#define EXCLUDES(...) KERN_TSA(locks_excluded(__VA_ARGS__))
#define ASSERT_CAPABILITY(x) KERN_TSA(assert_capability(x))
#define RETURN_CAPABILITY(x) KERN_TSA(lock_returned(x))
#define NO_THREAD_SAFETY_ANALYSIS KERN_TSA(no_thread_safety_analysis)
