// SPDX-License-Identifier: MIT
// What every operation fuzzer does once per process: reports abort (a crash with a stable
// signature), and BLKCG_BUSTED=flag[,flag] plants bugs from impl/block/busted.h (the bug
// benchmark and the minimizer's --busted run fuzzers on a broken implementation this way).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "impl/block/busted.h"
#include "impl/kern/report.h"

inline void fuzz_init_once() {
  static const bool init = [] {
    kern::set_report_mode(kern::ReportMode::kAbort);
    if (const char* env = std::getenv("BLKCG_BUSTED")) {
      const std::string list = env;
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
}
