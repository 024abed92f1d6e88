// SPDX-License-Identifier: MIT
// The common fixture of impl/block unit tests: a fresh allocator and lockdep state per
// test, and a leak check when it ends (every object the test created must be freed).
#pragma once

#include <gtest/gtest.h>

#include "impl/kern/alloc.h"
#include "impl/kern/lockdep.h"
#include "impl/kern/report.h"

namespace blk {

class BlockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kern::alloc_reset();
    kern::lockdep_reset();
  }
  void TearDown() override {
    kern::ReportCapture cap;
    EXPECT_TRUE(kern::alloc_check_no_leaks(
        ::testing::UnitTest::GetInstance()->current_test_info()->name()))
        << cap.dump();
    kern::alloc_reset();
  }
};

}  // namespace blk
