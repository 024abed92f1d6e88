// SPDX-License-Identifier: MIT
// The request pool of a disk with nr_requests (blk_core.h): pieces wait for dispatch by
// the run work on kblockd; an empty pool makes a sleeping submitter run (here: flush) the
// run work, and an atomic one fail with -EAGAIN; disk removal fails what still waits.
#include "impl/block/blk_core.h"

#include <gtest/gtest.h>

#include "tests/common/throtl_world.h"
#include "tests/unit/block/block_fixture.h"

#include <cerrno>
#include <memory>
#include <vector>

#include "impl/block/bio.h"
#include "impl/block/cgroup.h"
#include "impl/block/genhd.h"
#include "impl/kern/report.h"
#include "impl/kern/task.h"
#include "impl/kern/workqueue.h"

namespace blk {
namespace {

class RequestPoolTest : public BlockTest {
 protected:
  void SetUp() override {
    BlockTest::SetUp();
    disk = alloc_disk(8, 0, 1);
    ASSERT_NE(disk, nullptr);
    disk->nr_requests = 2;
    ASSERT_EQ(add_disk(disk), 0);
  }
  void TearDown() override {
    if (disk) disk_release(disk);
    h->flush_frees();
    h.reset();  // before the fixture's leak check
    BlockTest::TearDown();
  }
  // Submits a root bio (from softirq context if `atomic`); its status is appended to
  // `completed` when it completes.
  void submit(bool atomic = false) {
    bio* b = bio_alloc(disk, bio_op::kWrite, 4096, 0, kern::GFP_NOIO);
    ASSERT_NE(b, nullptr);
    ASSERT_TRUE(bio_associate_blkg_from_css(b, h->root()->io, false));
    b->bi_private = this;
    b->bi_end_io = [](bio* done) {
      auto* self = static_cast<RequestPoolTest*>(done->bi_private);
      self->completed.push_back(done->status);
      bio_put(done);
    };
    if (atomic) kern::local_bh_disable();
    submit_bio(b);
    if (atomic) kern::local_bh_enable();
  }
  unsigned allocated() {
    kern::SpinIrqGuard g(disk->dev_lock);
    return disk->nr_allocated;
  }
  std::unique_ptr<cgroup_hierarchy> h = std::make_unique<cgroup_hierarchy>();
  gendisk* disk = nullptr;
  std::vector<int> completed;
};

TEST_F(RequestPoolTest, PiecesWaitForTheRunWorkAndGiveTheirRequestsBack) {
  submit();
  submit();
  EXPECT_EQ(allocated(), 2u);  // both hold a request, none dispatched yet
  EXPECT_TRUE(completed.empty());
  EXPECT_EQ(kern::run_pending_work(), 1);  // one run dispatches the whole list
  EXPECT_EQ(allocated(), 0u);
  EXPECT_EQ(completed, (std::vector<int>{0, 0}));
}

TEST_F(RequestPoolTest, ASleepingSubmitterWaitsForTheRunWork) {
  kern::ReportCapture cap;
  submit();
  submit();
  submit();  // the pool is empty: the submitter flushes the run work (inline here)
  EXPECT_EQ(completed, (std::vector<int>{0, 0}));  // the first two went to the device
  EXPECT_EQ(allocated(), 1u);                       // and the third holds a request
  kern::run_pending_work();
  EXPECT_EQ(completed, (std::vector<int>{0, 0, 0}));
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

TEST_F(RequestPoolTest, AnAtomicSubmitterFailsWithEagainOnAnEmptyPool) {
  submit();
  submit();
  submit(/*atomic=*/true);  // may not sleep: BLK_STS_AGAIN, not a wait
  EXPECT_EQ(completed, (std::vector<int>{-EAGAIN}));
  kern::run_pending_work();
  EXPECT_EQ(completed, (std::vector<int>{-EAGAIN, 0, 0}));
}

TEST_F(RequestPoolTest, DelGendiskFailsTheRequestsWaitingForDispatch) {
  submit();
  del_gendisk(disk);  // flushes the run work: the disk is no longer live there
  EXPECT_EQ(completed, (std::vector<int>{-EIO}));
  EXPECT_EQ(allocated(), 0u);
}

TEST_F(RequestPoolTest, AReleaseWithoutDelGendiskDispatchesFirst) {
  submit();
  disk_release(disk);  // no WARN: the release flushes the run work before its checks
  disk = nullptr;
  EXPECT_EQ(completed, (std::vector<int>{-EIO}));
}

// The throttle's dispatch work submits what it releases, and may wait for a request: it
// must not run on kblockd, whose run work is the only thing that gives requests back
// (bugbench #2, 450adcbe518a). Lockdep sees the possible wait on every submission, so the
// check does not depend on the pool being empty when the dispatch runs.
class ThrottleOverPoolTest : public BlockTest {};

TEST_F(ThrottleOverPoolTest, TheDispatchWorkMayWaitForARequest) {
  kern::ReportCapture cap;
  {
    testing::Batch batch;
    testing::ThrotlWorld w;
    w.disk->nr_requests = 1;
    cgroup* a = w.mkdir("/a");
    ASSERT_GT(w.set_limit("/a", "wbps=4096"), 0);
    for (int i = 0; i < 3; ++i) batch.submit(w, a, bio_op::kWrite, 4096);
    batch.submit(w, nullptr, bio_op::kWrite, 4096);  // root: holds the request meanwhile
    for (int i = 0; i < 5000 && !batch.all_done(); ++i) w.step();
    EXPECT_TRUE(batch.all_done());
  }
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

}  // namespace
}  // namespace blk
