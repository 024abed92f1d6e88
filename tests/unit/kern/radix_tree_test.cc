// SPDX-License-Identifier: MIT
// The RCU-readable radix tree.
#include "impl/kern/radix_tree.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <mutex>
#include <thread>

#include "impl/kern/rcu.h"
#include "impl/kern/report.h"

namespace kern {
namespace {

TEST(RadixTreeTest, InsertLookupErase) {
  alloc_reset();
  {
    radix_tree t(GFP_NOWAIT, "test.radix");
    int a = 1, b = 2;
    EXPECT_EQ(t.insert(5, &a), 0);
    EXPECT_EQ(t.insert(70000, &b), 0);
    EXPECT_EQ(t.insert(5, &b), -EEXIST);
    EXPECT_EQ(t.insert(radix_tree::kMaxIndex + 1, &b), -EINVAL);
    EXPECT_EQ(t.lookup(5), &a);
    EXPECT_EQ(t.lookup(70000), &b);
    EXPECT_EQ(t.lookup(6), nullptr);
    EXPECT_EQ(t.erase(5), &a);
    EXPECT_EQ(t.lookup(5), nullptr);
    EXPECT_EQ(t.erase(5), nullptr);
    t.destroy();
  }
  ReportCapture cap;
  EXPECT_TRUE(alloc_check_no_leaks("radix")) << cap.dump();
}

TEST(RadixTreeTest, NodeAllocationFailureIsEnomem) {
  alloc_reset();
  radix_tree t(GFP_NOWAIT | GFP_NOWARN, "test.radix.fail");
  int a = 1;
  fault_set({.fail_site = "test.radix.fail"});
  EXPECT_EQ(t.insert(9, &a), -ENOMEM);
  fault_set({});
  EXPECT_EQ(t.lookup(9), nullptr);
  EXPECT_EQ(t.insert(9, &a), 0);
  t.destroy();
  alloc_reset();
}

// A preloaded insertion allocates nothing at the tree's own (non-blocking) site, so a
// failure there cannot fail it; preload_end frees what was not used.
TEST(RadixTreeTest, PreloadedInsertionDoesNotAllocate) {
  alloc_reset();
  {
    radix_tree t(GFP_NOWAIT | GFP_NOWARN, "test.radix.nowait", "test.radix.preload");
    int a = 1, b = 2;
    fault_set({.fail_site = "test.radix.nowait"});
    radix_tree::preload p;
    ASSERT_EQ(t.preload_nodes(&p, GFP_KERNEL), 0);
    EXPECT_EQ(t.insert(3, &a, &p), 0);  // an empty tree: takes all three levels
    t.preload_end(&p);
    ASSERT_EQ(t.preload_nodes(&p, GFP_KERNEL), 0);
    EXPECT_EQ(t.insert(4, &b, &p), 0);  // same leaf node: takes none
    t.preload_end(&p);                  // frees all three
    EXPECT_EQ(t.insert(70000, &b), -ENOMEM);  // unpreloaded: the tree's site fails
    fault_set({});
    EXPECT_EQ(t.lookup(3), &a);
    EXPECT_EQ(t.lookup(4), &b);
    t.destroy();
  }
  ReportCapture cap;
  EXPECT_TRUE(alloc_check_no_leaks("radix-preload")) << cap.dump();
}

TEST(RadixTreeTest, PreloadFailureIsEnomemAndKeepsNothing) {
  alloc_reset();
  {
    radix_tree t(GFP_NOWAIT | GFP_NOWARN, "test.radix.nowait", "test.radix.preload");
    radix_tree::preload p;
    fault_set({.fail_site = "test.radix.preload", .fail_site_nth = 2});
    EXPECT_EQ(t.preload_nodes(&p, GFP_KERNEL), -ENOMEM);
    fault_set({});
    t.preload_end(&p);  // nothing left to free: harmless
    t.destroy();
  }
  ReportCapture cap;
  EXPECT_TRUE(alloc_check_no_leaks("radix-preload-fail")) << cap.dump();
}

TEST(RadixTreeTest, ReadersUnderRcuWhileWriterChanges) {
  alloc_reset();
  radix_tree t(GFP_NOWAIT, "test.radix.mt");
  std::mutex writer;
  static int items[64];
  std::atomic<bool> stop{false};
  std::atomic<long> bad{0};
  std::thread reader([&] {
    TaskScope ts("reader", 1);
    while (!stop.load()) {
      rcu_read_lock();
      for (uint64_t i = 0; i < 64; ++i) {
        void* p = t.lookup(i * 4099);
        if (p != nullptr && p != &items[i]) bad.fetch_add(1);
      }
      rcu_read_unlock();
    }
  });
  {
    TaskScope ts("writer", 2);
    for (int round = 0; round < 50; ++round) {
      std::lock_guard<std::mutex> g(writer);
      for (uint64_t i = 0; i < 64; ++i) t.insert(i * 4099, &items[i]);
      for (uint64_t i = 0; i < 64; i += 2) t.erase(i * 4099);
      for (uint64_t i = 0; i < 64; i += 2) t.insert(i * 4099, &items[i]);
      for (uint64_t i = 0; i < 64; ++i) t.erase(i * 4099);
    }
  }
  stop = true;
  reader.join();
  EXPECT_EQ(bad.load(), 0);
  t.destroy();
  alloc_reset();
}

}  // namespace
}  // namespace kern
