// SPDX-License-Identifier: MIT
// Native threads (TSan) mixing association (blocking and nowait), submission accounting,
// io.stat flushes, cgroup churn and disk deletion; zero leaks at the end.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "impl/block/blk_stat.h"
#include "impl/kern/lockdep.h"
#include "impl/kern/report.h"

namespace blk {
namespace {

TEST(BlockConcurrency, AssociateSubmitFlushRmdirDelete) {
  kern::alloc_reset();
  kern::lockdep_reset();
  {
    cgroup_hierarchy h;
    gendisk* d1 = alloc_disk(8, 0, 1);
    gendisk* d2 = alloc_disk(8, 16, 2);
    ASSERT_EQ(add_disk(d1), 0);
    ASSERT_EQ(add_disk(d2), 0);
    cgroup* a;
    ASSERT_EQ(h.mkdir(h.root(), "a", &a), 0);
    std::atomic<bool> stop{false};
    std::atomic<long> submitted{0}, nowait_failed{0};
    std::vector<std::thread> ts;
    for (int i = 0; i < 2; ++i) {
      ts.emplace_back([&, i] {
        kern::TaskScope scope("submit" + std::to_string(i), i);
        uint64_t k = 0;
        while (!stop.load()) {
          ++k;
          const char* path = (k % 3 == 0) ? "/a" : (k % 3 == 1) ? "/a/x" : "/a/x/y";
          blkcg* css = h.get_io_css(path);
          gendisk* disk = (k & 1) ? d1 : d2;
          bio* bi = bio_alloc(disk, (k & 2) ? bio_op::kWrite : bio_op::kRead, 4096, 0,
                              kern::GFP_NOIO);
          const bool nowait = (k % 5) == 0;
          if (!bio_associate_blkg(bi, css ? css : h.root()->io, nowait)) {
            nowait_failed.fetch_add(1);
            bio_associate_blkg(bi, css ? css : h.root()->io, false);  // retry blocking
          }
          if (css) css_put(css);  // the bio's blkg holds its own css reference
          if (bi->bi_blkg) {
            blk_cgroup_bio_start(bi);
            submitted.fetch_add(1);
          }
          bio_put(bi);
        }
      });
    }
    ts.emplace_back([&] {
      kern::TaskScope scope("flusher", 2);
      while (!stop.load()) {
        blkcg_print_stat(h, a);
        blkcg_print_stat(h, h.root());
      }
    });
    ts.emplace_back([&] {
      kern::TaskScope scope("churn", 3);
      for (int k = 0; k < 150; ++k) {
        cgroup *x = nullptr, *y = nullptr;
        if (h.mkdir(a, "x", &x) == 0) {
          h.mkdir(x, "y", &y);
          if (y) h.rmdir(y);
          h.rmdir(x);
        }
        if (k == 75) del_gendisk(d2);
        h.flush_frees();
      }
      stop = true;
    });
    for (auto& t : ts) t.join();
    EXPECT_GT(submitted.load(), 0);
    disk_release(d1);
    disk_release(d2);
    ASSERT_EQ(h.rmdir(a), 0);
    h.flush_frees();
  }
  kern::ReportCapture cap;
  EXPECT_TRUE(kern::alloc_check_no_leaks("block concurrency teardown")) << cap.dump();
  kern::alloc_reset();
}

}  // namespace
}  // namespace blk
