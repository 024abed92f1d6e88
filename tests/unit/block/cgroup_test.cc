// SPDX-License-Identifier: MIT
// The cgroup hierarchy and the blkcg css lifecycle, one test per teardown stage.
#include "impl/block/cgroup.h"

#include <gtest/gtest.h>

#include "tests/unit/block/block_fixture.h"

#include <cerrno>
#include <thread>
#include <vector>

#include "impl/block/blk_cgroup.h"
#include "impl/kern/alloc.h"
#include "impl/kern/lockdep.h"
#include "impl/kern/report.h"

namespace blk {
namespace {

bool is_live_blkcg(blkcg* b) {
  for (blkcg* x : all_blkcgs_snapshot())
    if (x == b) return true;
  return false;
}

class CgroupTest : public BlockTest {};

TEST_F(CgroupTest, MkdirRmdirAndErrnos) {
  cgroup_hierarchy h;
  cgroup* a = nullptr;
  ASSERT_EQ(h.mkdir(h.root(), "a", &a), 0);
  EXPECT_EQ(a->path, "/a");
  EXPECT_EQ(h.mkdir(h.root(), "a", nullptr), -EEXIST);
  EXPECT_EQ(h.mkdir(h.root(), "x/y", nullptr), -EINVAL);
  EXPECT_EQ(h.mkdir(h.root(), "..", nullptr), -EINVAL);
  cgroup* b = nullptr;
  ASSERT_EQ(h.mkdir(a, "b", &b), 0);
  EXPECT_EQ(b->path, "/a/b");
  EXPECT_EQ(h.lookup("/a/b"), b);
  EXPECT_EQ(h.lookup("/a/c"), nullptr);
  EXPECT_EQ(h.rmdir(a), -EBUSY);  // has a child
  EXPECT_EQ(h.rmdir(h.root()), -EINVAL);
  EXPECT_EQ(h.rmdir(b), 0);
  EXPECT_EQ(h.rmdir(b), -ENOENT);
  EXPECT_EQ(h.mkdir(b, "c", nullptr), -ENOENT);  // parent removed
  EXPECT_EQ(h.lookup("/a/b"), nullptr);
  EXPECT_EQ(h.rmdir(a), 0);
}

TEST_F(CgroupTest, TasksPinTheirCgroup) {
  cgroup_hierarchy h;
  cgroup *a, *b;
  ASSERT_EQ(h.mkdir(h.root(), "a", &a), 0);
  ASSERT_EQ(h.mkdir(h.root(), "b", &b), 0);
  EXPECT_EQ(h.task_cgroup(42), h.root());
  EXPECT_EQ(h.attach_task(a, 42), 0);
  EXPECT_EQ(h.task_cgroup(42), a);
  EXPECT_EQ(h.rmdir(a), -EBUSY);  // a task lives there
  EXPECT_EQ(h.attach_task(b, 42), 0);  // migrate
  EXPECT_EQ(h.rmdir(a), 0);
  EXPECT_EQ(h.attach_task(a, 7), -ENOENT);
  EXPECT_EQ(h.attach_task(h.root(), 42), 0);
  EXPECT_EQ(h.rmdir(b), 0);
}

// Stage 1: alloc + online. A child pins its parent online.
TEST_F(CgroupTest, Stage1OnlinePinsParent) {
  cgroup_hierarchy h;
  cgroup* a;
  ASSERT_EQ(h.mkdir(h.root(), "a", &a), 0);
  EXPECT_TRUE(a->io->online);
  EXPECT_EQ(kern::refcount_read(h.root()->io->online_pin), 2);  // base + child a
  EXPECT_EQ(kern::refcount_read(a->io->online_pin), 1);
  EXPECT_EQ(blkcg_parent(a->io), h.root()->io);
  ASSERT_EQ(h.rmdir(a), 0);
  EXPECT_EQ(kern::refcount_read(h.root()->io->online_pin), 1);
}

// Stage 2: offline destroys blkgs leaf to root when the last online pin goes. An extra pin
// (cgroup writeback in the kernel) delays it; unpinning cascades up.
TEST_F(CgroupTest, Stage2OfflineCascadesLeafToRoot) {
  cgroup_hierarchy h;
  cgroup *a, *b;
  ASSERT_EQ(h.mkdir(h.root(), "a", &a), 0);
  ASSERT_EQ(h.mkdir(a, "b", &b), 0);
  blkcg* ba = a->io;
  blkcg* bb = b->io;
  css_get(ba);  // keep both blkcgs' memory alive to observe them after rmdir
  css_get(bb);
  blkcg_pin_online(bb);  // like a cgwb still referencing b
  ASSERT_EQ(h.rmdir(b), 0);
  EXPECT_FALSE(bb->blkgs_destroyed);  // still pinned
  ASSERT_EQ(h.rmdir(a), 0);
  EXPECT_FALSE(ba->blkgs_destroyed);  // b's pin on a remains
  blkcg_unpin_online(bb);  // the writeback goes away: b, then a
  EXPECT_TRUE(bb->blkgs_destroyed);
  EXPECT_TRUE(ba->blkgs_destroyed);
  EXPECT_FALSE(h.root()->io->blkgs_destroyed);
  css_put(bb);
  css_put(ba);
  h.flush_frees();
}

// Stage 3: the css is freed only after its last reference, after a grace period, from a
// work item; the parent goes after the child.
TEST_F(CgroupTest, Stage3FreeAfterLastReference) {
  cgroup_hierarchy h;
  cgroup *a, *b;
  ASSERT_EQ(h.mkdir(h.root(), "a", &a), 0);
  ASSERT_EQ(h.mkdir(a, "b", &b), 0);
  blkcg* ba = a->io;
  blkcg* bb = b->io;
  css_get(bb);  // like a blkg of b
  ASSERT_EQ(h.rmdir(b), 0);
  ASSERT_EQ(h.rmdir(a), 0);
  h.flush_frees();
  EXPECT_TRUE(is_live_blkcg(bb));
  EXPECT_TRUE(is_live_blkcg(ba));  // b holds a reference on a
  EXPECT_FALSE(css_tryget_online(bb));
  EXPECT_TRUE(css_tryget(bb));  // dying, not dead
  css_put(bb);
  EXPECT_EQ(h.nr_live_cgroups(), 3u);
  css_put(bb);  // the last reference
  EXPECT_TRUE(is_live_blkcg(bb));  // the free waits for a grace period and a work item
  h.flush_frees();
  EXPECT_FALSE(is_live_blkcg(bb));
  EXPECT_FALSE(is_live_blkcg(ba));
  EXPECT_EQ(h.nr_live_cgroups(), 1u);
}

TEST_F(CgroupTest, AllocationFailuresFailMkdirCleanly) {
  cgroup_hierarchy h;
  for (const char* site : {"cgroup_mkdir", "blkcg_css_alloc", "blkcg_css_alloc.lhead"}) {
    kern::fault_set({.fail_site = site});
    EXPECT_EQ(h.mkdir(h.root(), "a", nullptr), -ENOMEM) << site;
    kern::fault_set({});
  }
  cgroup* a;
  EXPECT_EQ(h.mkdir(h.root(), "a", &a), 0);
  EXPECT_EQ(h.rmdir(a), 0);
}

TEST_F(CgroupTest, ConcurrentMkdirRmdirAttach) {
  cgroup_hierarchy h;
  std::vector<std::thread> ts;
  for (int i = 0; i < 3; ++i) {
    ts.emplace_back([&h, i] {
      kern::TaskScope scope("cg" + std::to_string(i), i);
      for (int k = 0; k < 200; ++k) {
        const std::string name = "t" + std::to_string(i) + "_" + std::to_string(k % 5);
        cgroup* c = nullptr;
        if (h.mkdir(h.root(), name, &c) == 0) {
          cgroup* d = nullptr;
          if (h.mkdir(c, "leaf", &d) == 0) {
            h.attach_task(d, 1000 + i);
            h.attach_task(h.root(), 1000 + i);
            EXPECT_EQ(h.rmdir(d), 0);
          }
          EXPECT_EQ(h.rmdir(c), 0);
        }
      }
    });
  }
  for (auto& t : ts) t.join();
  h.flush_frees();
  EXPECT_EQ(h.nr_live_cgroups(), 1u);
}

}  // namespace
}  // namespace blk
