// SPDX-License-Identifier: MIT
// llist: order, the "was empty" result, safe iteration while nodes are re-added, and the
// producers/consumer protocols under real threads.
#include "impl/kern/llist.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "impl/kern/task.h"

namespace kern {
namespace {

struct Item {
  int value = 0;
  llist_node node;
  std::atomic<bool> queued{false};
};

Item* item_of(llist_node* n) {
  return llist_entry<Item, &Item::node>(n);
}

std::vector<int> values(llist_node* first) {
  std::vector<int> v;
  llist_for_each_safe(first, [&](llist_node* n) { v.push_back(item_of(n)->value); });
  return v;
}

TEST(LlistTest, AddReportsEmptyAndDelAllIsNewestFirst) {
  llist_head h;
  Item a, b, c;
  a.value = 1;
  b.value = 2;
  c.value = 3;
  EXPECT_TRUE(llist_empty(h));
  EXPECT_EQ(llist_del_all(h), nullptr);
  EXPECT_TRUE(llist_add(&a.node, h));
  EXPECT_FALSE(llist_empty(h));
  EXPECT_FALSE(llist_add(&b.node, h));
  EXPECT_FALSE(llist_add(&c.node, h));
  EXPECT_EQ(values(llist_del_all(h)), (std::vector<int>{3, 2, 1}));
  EXPECT_TRUE(llist_empty(h));
  EXPECT_TRUE(llist_add(&a.node, h));  // empty again
}

TEST(LlistTest, DelFirstTakesNewest) {
  llist_head h;
  Item a, b;
  llist_add(&a.node, h);
  llist_add(&b.node, h);
  EXPECT_EQ(llist_del_first(h), &b.node);
  EXPECT_EQ(llist_del_first(h), &a.node);
  EXPECT_EQ(llist_del_first(h), nullptr);
  EXPECT_TRUE(llist_empty(h));
}

TEST(LlistTest, ReverseOrderAndEntryIteration) {
  llist_head h;
  Item it[4];
  for (int i = 0; i < 4; ++i) {
    it[i].value = i;
    llist_add(&it[i].node, h);
  }
  llist_node* fifo = llist_reverse_order(llist_del_all(h));
  std::vector<int> seen;
  llist_for_each_entry_safe<Item, &Item::node>(fifo, [&](Item* e) { seen.push_back(e->value); });
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(llist_reverse_order(nullptr), nullptr);
}

// The visitor re-adds each node to the SAME list it was taken from, which overwrites the
// node's next (what a producer does once the consumer clears the node's queued flag). The
// safe iterator read next first, so it visits exactly the taken nodes, once each.
TEST(LlistTest, SafeIterationToleratesReAddToSameList) {
  llist_head h;
  Item it[3];
  for (int i = 0; i < 3; ++i) {
    it[i].value = i;
    llist_add(&it[i].node, h);
  }
  std::vector<int> seen;
  llist_for_each_safe(llist_del_all(h), [&](llist_node* n) {
    seen.push_back(item_of(n)->value);
    llist_add(n, h);
  });
  EXPECT_EQ(seen, (std::vector<int>{2, 1, 0}));
  EXPECT_EQ(values(llist_del_all(h)), (std::vector<int>{0, 1, 2}));  // re-added, in visit order
}

// The same walk with next read AFTER the visit (the reordering d0aac2363549 fixed) goes
// wrong: this proves the test above can fail.
TEST(LlistTest, UnsafeIterationIsCaughtByTheSameCheck) {
  llist_head h;
  Item it[3];
  for (int i = 0; i < 3; ++i) {
    it[i].value = i;
    llist_add(&it[i].node, h);
  }
  std::vector<int> seen;
  llist_node* n = llist_del_all(h);
  while (n != nullptr && seen.size() < 10) {
    seen.push_back(item_of(n)->value);
    llist_add(n, h);
    n = llist_next(n);  // BUG: read after the node was re-added
  }
  EXPECT_NE(seen, (std::vector<int>{2, 1, 0}));
  llist_del_all(h);
}

// Every add that returns true made the list non-empty, and every del_all that returns a
// list made it empty: the two counts match (plus one if the list is non-empty at the end).
TEST(LlistTest, WasEmptyResultIsExactUnderThreads) {
  constexpr int kProducers = 3, kPerProducer = 4000;
  std::vector<Item> items(kProducers * kPerProducer);
  llist_head h;
  std::atomic<long> firsts{0};
  std::atomic<bool> done{false};
  long takes = 0, taken = 0;
  std::thread consumer([&] {
    TaskScope ts("consumer", 3);
    for (;;) {
      const bool last = done.load();
      llist_node* l = llist_del_all(h);
      if (l) ++takes;
      llist_for_each_safe(l, [&](llist_node*) { ++taken; });
      if (last) break;
    }
  });
  std::vector<std::thread> ps;
  for (int p = 0; p < kProducers; ++p) {
    ps.emplace_back([&, p] {
      TaskScope ts("producer", p);
      for (int i = 0; i < kPerProducer; ++i)
        if (llist_add(&items[static_cast<size_t>(p * kPerProducer + i)].node, h))
          firsts.fetch_add(1);
    });
  }
  for (auto& t : ps) t.join();
  done.store(true);
  consumer.join();
  EXPECT_EQ(taken, kProducers * kPerProducer);
  EXPECT_EQ(firsts.load(), takes);
  EXPECT_TRUE(llist_empty(h));
}

// One consumer with llist_del_first against many producers: every node arrives once.
TEST(LlistTest, DelFirstSingleConsumerUnderThreads) {
  constexpr int kProducers = 3, kPerProducer = 3000;
  std::vector<Item> items(kProducers * kPerProducer);
  for (size_t i = 0; i < items.size(); ++i) items[i].value = static_cast<int>(i);
  llist_head h;
  std::vector<int> got(items.size(), 0);
  std::atomic<int> producers_left{kProducers};
  std::thread consumer([&] {
    TaskScope ts("consumer", 3);
    for (;;) {
      const bool last = producers_left.load() == 0;
      llist_node* n;
      while ((n = llist_del_first(h)) != nullptr) ++got[static_cast<size_t>(item_of(n)->value)];
      if (last) break;
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> ps;
  for (int p = 0; p < kProducers; ++p) {
    ps.emplace_back([&, p] {
      TaskScope ts("producer", p);
      for (int i = 0; i < kPerProducer; ++i)
        llist_add(&items[static_cast<size_t>(p * kPerProducer + i)].node, h);
      producers_left.fetch_sub(1);
    });
  }
  for (auto& t : ps) t.join();
  consumer.join();
  for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], 1) << "item " << i;
}

// The blkcg protocol: producers record an event on an item, then queue the item unless it
// is queued already (flag exchange before llist_add); the flusher takes the list and, for
// each node (its next already read by the safe iterator), clears the flag and then consumes
// the item's events. The flag accesses are seq_cst: the clear must be at least a release
// (ordering 2 of llist.h), and seq_cst on both sides also forbids the store-buffering
// outcome in which a producer sees the flag still set while the flusher misses its event.
// Then nothing is ever lost: after a final flush no event is left behind and no flag is
// stuck, which a walk that followed a re-added node's new next would break.
TEST(LlistTest, QueuedFlagProtocolUnderThreads) {
  constexpr int kItems = 16, kProducers = 3, kRounds = 3000;
  std::vector<Item> items(kItems);
  llist_head h;
  std::atomic<long> pending_events[kItems];
  for (auto& p : pending_events) p = 0;
  std::atomic<bool> stop{false};
  long flushed = 0;
  auto flush = [&] {
    llist_for_each_safe(llist_del_all(h), [&](llist_node* n) {
      Item* it = item_of(n);
      it->queued.store(false, std::memory_order_seq_cst);  // after next was read
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
        Item& it = items[static_cast<size_t>((r * 7 + p) % kItems)];
        pending_events[&it - items.data()].fetch_add(1);
        if (!it.queued.exchange(true, std::memory_order_seq_cst)) llist_add(&it.node, h);
      }
    });
  }
  for (auto& t : ps) t.join();
  stop.store(true);
  flusher.join();
  flush();
  EXPECT_EQ(flushed, kProducers * kRounds);
  for (int i = 0; i < kItems; ++i) {
    EXPECT_EQ(pending_events[i].load(), 0) << "item " << i;
    EXPECT_FALSE(items[static_cast<size_t>(i)].queued.load()) << "item " << i;
  }
  EXPECT_TRUE(llist_empty(h));
}

}  // namespace
}  // namespace kern
