// SPDX-License-Identifier: MIT
// The bug benchmark's canary (Magma's idea): a re-injected bug (bench/bugs/*.patch) calls
// BUGBENCH_REACHED() on its buggy path, so the benchmark can tell "the bad state was
// reached" (triggered) apart from "a checker reported it" (detected).
//
// Nothing on main calls it. When the environment variable BLKCG_BUGBENCH_REACHED names a
// file, the first call in a process appends one line ("file:line") to it; later calls cost
// one relaxed load. Without the variable, nothing is written.
#pragma once

namespace kern {

// Context: any (one open/write/close the first time, nothing that sleeps on a kernel lock).
void bugbench_reached(const char* where);

}  // namespace kern

#define BUGBENCH_STR2(x) #x
#define BUGBENCH_STR(x) BUGBENCH_STR2(x)
#define BUGBENCH_REACHED() ::kern::bugbench_reached(__FILE__ ":" BUGBENCH_STR(__LINE__))
