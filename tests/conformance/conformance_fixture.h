// SPDX-License-Identifier: MIT
// Common fixture of the conformance scenarios: a fresh allocator, lockdep, clock and
// timer state per test, and at the end no leak, no pending timer and no report
// (blktests' _check_dmesg, for a userspace model: no assertion, sanitizer or lock-order
// report during the scenario).
#pragma once

#include <gtest/gtest.h>

#include "impl/block/busted.h"
#include "impl/kern/alloc.h"
#include "impl/kern/clock.h"
#include "impl/kern/lockdep.h"
#include "impl/kern/report.h"
#include "impl/kern/timer.h"
#include "tests/common/throtl_world.h"

namespace blk {

class ConformanceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kern::alloc_reset();
    kern::lockdep_reset();
    kern::set_hz(1000);
    kern::clock_reset();
    cap_ = std::make_unique<kern::ReportCapture>();
  }
  void TearDown() override {
    EXPECT_EQ(kern::nr_pending_timers(), 0u) << "a timer outlived the scenario";
    EXPECT_TRUE(kern::alloc_check_no_leaks(
        ::testing::UnitTest::GetInstance()->current_test_info()->name()))
        << cap_->dump();
    EXPECT_EQ(cap_->size(), 0u) << cap_->dump();
    cap_.reset();
    busted().reset();  // never leak a planted bug into the next test
    kern::set_hz(1000);
    kern::alloc_reset();
  }
  std::unique_ptr<kern::ReportCapture> cap_;
};

}  // namespace blk
