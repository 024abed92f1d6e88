// SPDX-License-Identifier: MIT
// llist and u64_stats under real threads.
#include "impl/kern/llist.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "impl/kern/cpu.h"
#include "impl/kern/lock.h"
#include "impl/kern/report.h"
#include "impl/kern/u64_stats.h"

namespace kern {
namespace {

struct Item {
  int value = 0;
  llist_node node;
  std::atomic<bool> queued{false};
};

TEST(LlistTest, AddDelAllNewestFirst) {
  llist_head h;
  Item a, b, c;
  a.value = 1;
  b.value = 2;
  c.value = 3;
  EXPECT_TRUE(llist_add(&a.node, h));
  EXPECT_FALSE(llist_add(&b.node, h));
  EXPECT_FALSE(llist_add(&c.node, h));
  std::vector<int> seen;
  llist_for_each_safe(llist_del_all(h),
                      [&](llist_node* n) { seen.push_back(llist_entry<Item, &Item::node>(n)->value); });
  EXPECT_EQ(seen, (std::vector<int>{3, 2, 1}));
  EXPECT_TRUE(llist_empty(h));
}

TEST(LlistTest, DelFirst) {
  llist_head h;
  Item a, b;
  llist_add(&a.node, h);
  llist_add(&b.node, h);
  EXPECT_EQ(llist_del_first(h), &b.node);
  EXPECT_EQ(llist_del_first(h), &a.node);
  EXPECT_EQ(llist_del_first(h), nullptr);
}

TEST(LlistTest, IterationToleratesReAdd) {
  llist_head h, other;
  Item a, b;
  llist_add(&a.node, h);
  llist_add(&b.node, h);
  int visited = 0;
  llist_for_each_safe(llist_del_all(h), [&](llist_node* n) {
    ++visited;
    llist_add(n, other);  // overwrites n->next: the iterator already read it
  });
  EXPECT_EQ(visited, 2);
  int moved = 0;
  llist_for_each_safe(llist_del_all(other), [&](llist_node*) { ++moved; });
  EXPECT_EQ(moved, 2);
}

// The blkcg pattern: producers queue an item at most once (queued flag), a flusher takes
// the list, reads next, clears the flag (release), and counts. Every produced event must be
// counted exactly once overall, with no item on two lists at once.
TEST(LlistTest, QueuedFlagProtocolUnderThreads) {
  constexpr int kItems = 16, kProducers = 3, kRounds = 3000;
  std::vector<Item> items(kItems);
  llist_head h;
  std::atomic<long> produced{0}, pending_events[kItems];
  for (auto& p : pending_events) p = 0;
  std::atomic<bool> stop{false};
  long flushed = 0;
  auto flush = [&] {
    llist_for_each_safe(llist_del_all(h), [&](llist_node* n) {
      Item* it = llist_entry<Item, &Item::node>(n);
      it->queued.store(false, std::memory_order_release);  // after next was read
      flushed += pending_events[it - items.data()].exchange(0);
    });
  };
  std::thread flusher([&] {
    TaskScope ts("flusher", 3);
    while (!stop.load()) flush();
  });
  std::vector<std::thread> ps;
  for (int p = 0; p < kProducers; ++p) {
    ps.emplace_back([&, p] {
      TaskScope ts("producer", p);
      for (int r = 0; r < kRounds; ++r) {
        Item& it = items[(r * 7 + p) % kItems];
        pending_events[&it - items.data()].fetch_add(1);
        produced.fetch_add(1);
        if (!it.queued.exchange(true, std::memory_order_acq_rel)) llist_add(&it.node, h);
      }
    });
  }
  for (auto& t : ps) t.join();
  stop.store(true);
  flusher.join();
  flush();
  for (auto& p : pending_events) flushed += p.exchange(0);
  EXPECT_EQ(flushed, produced.load());
}

struct Stats {
  u64_stats_sync sync;
  u64_stats_t bytes, ios;
};

TEST(U64StatsTest, ReadersNeverSeeTornSnapshots) {
  Stats s;
  spinlock_t writer_lock("test.u64.writer");
  std::atomic<bool> stop{false};
  std::atomic<long> torn{0};
  std::thread reader([&] {
    TaskScope ts("reader", 1);
    while (!stop.load()) {
      uint64_t b, i;
      unsigned seq;
      do {
        seq = u64_stats_fetch_begin(s.sync);
        b = s.bytes.read();
        i = s.ios.read();
      } while (u64_stats_fetch_retry(s.sync, seq));
      if (b != i * 512) torn.fetch_add(1);
    }
  });
  {
    TaskScope ts("writer", 2);
    for (int k = 0; k < 20000; ++k) {
      writer_lock.lock();
      u64_stats_update_begin(s.sync);
      s.ios.inc();
      s.bytes.add(512);
      u64_stats_update_end(s.sync);
      writer_lock.unlock();
    }
  }
  stop.store(true);
  reader.join();
  EXPECT_EQ(torn.load(), 0);
  EXPECT_EQ(s.ios.read(), 20000u);
}

TEST(U64StatsTest, UnprotectedWriterIsReported) {
  Stats s;
  ReportCapture cap;
  u64_stats_update_begin(s.sync);  // preemptible, no lock
  s.ios.inc();
  u64_stats_update_end(s.sync);
  EXPECT_EQ(cap.count(ReportKind::kPercpu), 1u) << cap.dump();
  get_cpu();
  const irqflags_t f = u64_stats_update_begin_irqsave(s.sync);
  s.ios.inc();
  u64_stats_update_end_irqrestore(s.sync, f);
  put_cpu();
  EXPECT_EQ(cap.count(ReportKind::kPercpu), 1u) << cap.dump();
}

}  // namespace
}  // namespace kern
