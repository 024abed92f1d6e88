// SPDX-License-Identifier: MIT
// blk-throttle on native threads (run under TSan in CI): submitters in several cgroups,
// a clock thread firing the pending timers (softirq), worker threads running the dispatch
// work, an io.max writer changing limits while bios wait, a thread removing and
// re-creating a cgroup with bios queued in it, and finally disk deletion while IO is
// throttled. Every bio must complete (success, or -EIO after the deletion), the throttle
// structure must hold whenever sampled, nothing may leak, no report may be filed.
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "impl/block/blk_core.h"
#include "impl/block/blk_throttle.h"
#include "impl/block/cgroupfs.h"
#include "impl/kern/clock.h"
#include "impl/kern/workqueue.h"
#include "impl/oracle/throtl_check.h"
#include "tests/unit/block/block_fixture.h"

namespace blk {
namespace {

class ThrotlConcurrency : public BlockTest {};

struct Counters {
  std::atomic<long> submitted{0}, completed{0}, failed{0};
};

void count_end(bio* b) {
  auto* c = static_cast<Counters*>(b->bi_private);
  if (b->status) c->failed.fetch_add(1);
  c->completed.fetch_add(1);
  bio_put(b);
}

TEST_F(ThrotlConcurrency, TimersWorkConfigRmdirAndDeletionRace) {
  kern::ReportCapture cap;
  Counters n;
  {
    cgroup_hierarchy h;
    gendisk* disk = alloc_disk(8, 16, 1);
    ASSERT_EQ(add_disk(disk), 0);
    disk->max_io_bytes = 16384;
    cgroup *a, *b, *c;
    ASSERT_EQ(h.mkdir(h.root(), "a", &a), 0);
    ASSERT_EQ(h.mkdir(a, "b", &b), 0);
    ASSERT_EQ(h.mkdir(h.root(), "c", &c), 0);
    ASSERT_GT(cgroup_file_write(h, "/a/io.max", "8:16 wbps=4194304 riops=2000"), 0);
    ASSERT_GT(cgroup_file_write(h, "/c/io.max", "8:16 wbps=1048576 wiops=500"), 0);
    kern::start_workers(2);
    std::atomic<bool> stop{false}, deleted{false};
    std::vector<std::thread> ts;
    for (int i = 0; i < 2; ++i) {
      ts.emplace_back([&, i] {
        kern::TaskScope scope("submit" + std::to_string(i), i);
        std::mt19937 rng(i + 1);
        const char* paths[] = {"/a", "/a/b", "/a/b/x", "/c"};
        while (!stop.load()) {
          blkcg* css = h.get_io_css(paths[rng() % 4]);
          bio* bi = bio_alloc(disk, rng() % 3 ? bio_op::kWrite : bio_op::kRead,
                              4096u << (rng() % 4), rng() % 16 == 0 ? REQ_META : 0,
                              kern::GFP_NOIO);
          bio_associate_blkg(bi, css ? css : h.root()->io, false);
          if (css) css_put(css);
          bi->bi_end_io = count_end;
          bi->bi_private = &n;
          n.submitted.fetch_add(1);
          submit_bio(bi);
          if (deleted.load()) break;  // a few more after the deletion, then stop
        }
      });
    }
    ts.emplace_back([&] {  // the clock: fires pending timers in softirq
      kern::TaskScope scope("clock", 2);
      while (!stop.load()) {
        kern::advance_jiffies(1);
        std::this_thread::yield();
      }
    });
    ts.emplace_back([&] {  // config writes while bios wait
      kern::TaskScope scope("config", 3);
      std::mt19937 rng(7);
      const char* limits[] = {"8:16 wbps=262144", "8:16 wbps=max wiops=50",
                              "8:16 wbps=2097152 riops=100", "8:16 rbps=65536"};
      for (int k = 0; !deleted.load(); ++k) {
        cgroup_file_write(h, rng() % 2 ? "/a/b/io.max" : "/c/io.max", limits[rng() % 4]);
        if (k % 8 == 0) EXPECT_EQ(oracle::throtl_check_structure(disk->queue), "");
        std::this_thread::yield();
      }
    });
    ts.emplace_back([&] {  // rmdir/mkdir with bios queued, then the disk goes
      kern::TaskScope scope("churn", 3);
      for (int k = 0; k < 300; ++k) {
        cgroup* x = nullptr;
        if (h.mkdir(b, "x", &x) == 0) {
          cgroup_file_write(h, "/a/b/x/io.max", "8:16 wiops=20");
          std::this_thread::yield();
          h.rmdir(x);
        }
        if (k % 50 == 0) h.flush_frees();
      }
      del_gendisk(disk);
      deleted = true;
    });
    // The submitters and config writer stop after the deletion; then the clock.
    for (size_t i = 0; i < ts.size(); ++i)
      if (i != 2) ts[i].join();
    stop = true;
    ts[2].join();
    kern::run_pending_work();
    EXPECT_EQ(oracle::throtl_check_drained(disk->queue), "");
    disk_release(disk);
    kern::stop_workers();
    ASSERT_EQ(h.rmdir(b), 0);
    ASSERT_EQ(h.rmdir(a), 0);
    ASSERT_EQ(h.rmdir(c), 0);
    h.flush_frees();
  }
  EXPECT_GT(n.submitted.load() - n.failed.load(), 100) << "IO before the deletion succeeds";
  EXPECT_EQ(n.completed.load(), n.submitted.load());
  EXPECT_GT(n.failed.load(), 0) << "IO after the deletion fails";
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

}  // namespace
}  // namespace blk
