// SPDX-License-Identifier: MIT
// fuzz_ops: operation sequences (the binary form of impl/scenario, FORMAT.md) run in a
// fresh world per input, one task, with the oracle after every operation and the deep
// checks and full teardown at the end. Fault injection is part of the input (fault_*
// operations). Any oracle violation, sanitizer error or lockdep report is a crash whose
// report signature is stable; `tools/blkcg-torture decode` prints the input as text.
// Expectations inside an input are ignored (random ones are noise; the oracle decides).
// An input that carries a schedule runs its tasks concurrently, as the decoded text would
// (fuzz_sched is the target for that).
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_common.h"
#include "impl/scenario/binary.h"
#include "impl/scenario/exec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz_init_once();
  // Local, not reused: everything the input allocates is freed before the callback
  // returns, so libFuzzer's malloc/free balance check does not run the input a second
  // time (a reused Scenario's strings and vectors grow and shrink from input to input).
  scenario::Scenario s;
  scenario::decode_binary(data, size, &s);
  scenario::strip_expectations(&s);
  scenario::run_scenario(s);
  return 0;
}
