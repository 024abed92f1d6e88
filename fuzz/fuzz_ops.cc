// SPDX-License-Identifier: MIT
// fuzz_ops: operation sequences (the binary form of impl/scenario, FORMAT.md) run in a
// fresh world per input, one task, with the oracle after every operation and the deep
// checks and full teardown at the end. Fault injection is part of the input (fault_*
// operations). Any oracle violation, sanitizer error or lockdep report is a crash whose
// report signature is stable; `tools/blkcg-torture decode` prints the input as text.
// Expectations inside an input are ignored (random ones are noise; the oracle decides).
#include <cstddef>
#include <algorithm>
#include <cstdint>
#include <string>

#include <cstdio>
#include <cstdlib>

#include "impl/block/busted.h"
#include "impl/kern/report.h"
#include "impl/scenario/binary.h"
#include "impl/scenario/exec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool init = [] {
    kern::set_report_mode(kern::ReportMode::kAbort);
    // BLKCG_BUSTED=flag[,flag]: plant bugs from impl/block/busted.h (bug benchmarks).
    if (const char* env = std::getenv("BLKCG_BUSTED")) {
      std::string list = env;
      for (size_t pos = 0; pos <= list.size();) {
        const size_t comma = std::min(list.find(',', pos), list.size());
        const std::string name = list.substr(pos, comma - pos);
        if (std::atomic<bool>* f = blk::busted().by_name(name)) f->store(true);
        else if (!name.empty()) std::fprintf(stderr, "BLKCG_BUSTED: unknown flag %s\n", name.c_str());
        pos = comma + 1;
      }
    }
    return true;
  }();
  (void)init;
  scenario::Scenario s = scenario::decode_binary(data, size);
  scenario::strip_expectations(&s);
  scenario::run_scenario(s);
  return 0;
}
