// SPDX-License-Identifier: MIT
// Policies: register/unregister with cpds, activate/deactivate per queue with the testpol
// checking every pd lifecycle, rollback at every allocation failure, dying blkgs skipped.
#include "impl/block/blkcg_policy.h"

#include <gtest/gtest.h>

#include "tests/unit/block/block_fixture.h"

#include <cerrno>

#include "impl/block/blk_testpol.h"
#include "impl/block/blkg.h"
#include "impl/kern/lockdep.h"
#include "impl/kern/report.h"

namespace blk {
namespace {

class PolicyTest : public BlockTest {
 protected:
  void SetUp() override {
    BlockTest::SetUp();
    testpol_reset();
  }
  void TearDown() override {
    EXPECT_EQ(testpol_get_counters().live_pds(), 0);
    BlockTest::TearDown();
  }
};

struct World {
  cgroup_hierarchy h;
  gendisk* disk = nullptr;
  cgroup *a = nullptr, *b = nullptr, *c = nullptr;
  explicit World(bool registered = true) {
    if (registered) EXPECT_EQ(blkcg_policy_register(testpol()), 0);
    disk = alloc_disk(8, 0, 1);
    EXPECT_EQ(add_disk(disk), 0);
    EXPECT_EQ(h.mkdir(h.root(), "a", &a), 0);
    EXPECT_EQ(h.mkdir(a, "b", &b), 0);
    EXPECT_EQ(h.mkdir(b, "c", &c), 0);
  }
  ~World() {
    // By path: a test may have removed (and freed) some of them already.
    for (const char* path : {"/a/b/c", "/a/b", "/a"})
      if (cgroup* x = h.lookup(path)) h.rmdir(x);
    if (disk) disk_release(disk);
    h.flush_frees();
    if (testpol()->plid >= 0) blkcg_policy_unregister(testpol());
  }
  request_queue* q() { return disk->queue; }
};

TEST_F(PolicyTest, RegisterAllocatesCpdsForEveryBlkcg) {
  {
    World w(/*registered=*/false);
    EXPECT_EQ(blkcg_policy_register(testpol()), 0);
    EXPECT_GE(testpol()->plid, 0);
    EXPECT_EQ(testpol_get_counters().live_cpds(), 4);  // root, a, b, c
    cgroup* d;
    ASSERT_EQ(w.h.mkdir(w.h.root(), "d", &d), 0);
    EXPECT_EQ(testpol_get_counters().live_cpds(), 5);
    EXPECT_NE(d->io->cpd[testpol()->plid], nullptr);
    ASSERT_EQ(w.h.rmdir(d), 0);
    w.h.flush_frees();
    EXPECT_EQ(testpol_get_counters().live_cpds(), 4);
  }
  EXPECT_EQ(testpol_get_counters().live_cpds(), 0);
}

TEST_F(PolicyTest, RegisterChecksPairsAndSlots) {
  blkcg_policy unpaired;
  unpaired.pd_alloc_fn = [](request_queue*, blkcg*, kern::gfp_t) -> blkg_policy_data* {
    return nullptr;
  };
  EXPECT_EQ(blkcg_policy_register(&unpaired), -EINVAL);
  // Slots already taken (blk-throttle registers itself on first use and stays).
  int free_slots = 0;
  for (int i = 0; i < BLKCG_MAX_POLS; ++i) free_slots += blkcg_policy_slot(i) == nullptr;
  blkcg_policy pols[BLKCG_MAX_POLS + 1];
  int ok = 0;
  for (auto& p : pols) ok += blkcg_policy_register(&p) == 0;
  EXPECT_EQ(ok, free_slots);
  EXPECT_EQ(pols[free_slots].plid, -1);  // -ENOSPC
  for (auto& p : pols)
    if (p.plid >= 0) blkcg_policy_unregister(&p);
}

TEST_F(PolicyTest, ActivateInitialisesParentsFirstAndNewBlkgsGetPds) {
  World w;
  blkg_lookup_create(w.c->io, w.q());  // root, a, b, c blkgs exist before activation
  kern::ReportCapture cap;
  ASSERT_EQ(blkcg_activate_policy(w.q(), testpol()), 0);
  EXPECT_TRUE(blkcg_policy_enabled(w.q(), testpol()));
  auto n = testpol_get_counters();
  EXPECT_EQ(n.pd_alloc, 4u);
  EXPECT_EQ(n.pd_init, 4u);
  EXPECT_EQ(n.pd_online, 4u);
  cgroup* d;
  ASSERT_EQ(w.h.mkdir(w.c, "d", &d), 0);
  blkcg_gq* gd = blkg_lookup_create(d->io, w.q());
  EXPECT_NE(gd->pd[testpol()->plid].load(), nullptr);
  EXPECT_EQ(testpol_get_counters().pd_online, 5u);
  ASSERT_EQ(w.h.rmdir(d), 0);
  EXPECT_EQ(testpol_get_counters().pd_offline, 1u);
  w.h.flush_frees();
  EXPECT_EQ(testpol_get_counters().pd_free, 1u);
  blkcg_deactivate_policy(w.q(), testpol());
  EXPECT_FALSE(blkcg_policy_enabled(w.q(), testpol()));
  n = testpol_get_counters();
  EXPECT_EQ(n.pd_offline, 5u);
  EXPECT_EQ(n.live_pds(), 0);
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

TEST_F(PolicyTest, ActivationRollsBackAtEveryAllocationFailure) {
  kern::ReportCapture cap;
  for (int nth = 1; nth <= 4; ++nth) {
    World w;
    blkg_lookup_create(w.c->io, w.q());
    testpol_reset();
    kern::fault_set({.fail_site = "pd_alloc.testpol", .fail_site_nth = static_cast<uint64_t>(nth)});
    EXPECT_EQ(blkcg_activate_policy(w.q(), testpol()), -ENOMEM) << "nth=" << nth;
    kern::fault_set({});
    EXPECT_FALSE(blkcg_policy_enabled(w.q(), testpol()));
    EXPECT_EQ(testpol_get_counters().live_pds(), 0) << "nth=" << nth;
    // Activation works once memory is back.
    ASSERT_EQ(blkcg_activate_policy(w.q(), testpol()), 0);
    blkcg_deactivate_policy(w.q(), testpol());
  }
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

TEST_F(PolicyTest, BlkgCreationFailsCleanlyWhenPdAllocFails) {
  World w;
  ASSERT_EQ(blkcg_activate_policy(w.q(), testpol()), 0);
  kern::fault_set({.fail_site = "pd_alloc.testpol"});
  blkcg_gq* got = blkg_lookup_create(w.c->io, w.q());
  kern::fault_set({});
  EXPECT_EQ(got, w.q()->root_blkg.load());  // closest ancestor: nothing below root made it
  EXPECT_EQ(testpol_get_counters().live_pds(), 1);  // the root's
  blkcg_deactivate_policy(w.q(), testpol());
}

// Bug #47's shape: a destroyed-but-unreleased blkg on q->blkg_list during activation must
// not get a pd (its offline would never run).
TEST_F(PolicyTest, ActivationSkipsDyingBlkgs) {
  World w;
  blkcg_gq* gc = blkg_lookup_create(w.c->io, w.q());
  blkg_get(gc);  // keeps it on q->blkg_list after destroy
  ASSERT_EQ(w.h.rmdir(w.c), 0);
  ASSERT_FALSE(gc->hashed);
  kern::ReportCapture cap;
  ASSERT_EQ(blkcg_activate_policy(w.q(), testpol()), 0);
  EXPECT_EQ(gc->pd[testpol()->plid].load(), nullptr);
  blkg_put(gc);
  w.h.flush_frees();
  blkcg_deactivate_policy(w.q(), testpol());
  EXPECT_EQ(testpol_get_counters().live_pds(), 0);
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

TEST_F(PolicyTest, DiskReleaseOfflinesAndFreesEveryPd) {
  World w;
  blkg_lookup_create(w.c->io, w.q());
  ASSERT_EQ(blkcg_activate_policy(w.q(), testpol()), 0);
  disk_release(w.disk);
  w.disk = nullptr;
  w.h.flush_frees();
  const auto n = testpol_get_counters();
  EXPECT_EQ(n.pd_offline, n.pd_online);
  EXPECT_EQ(n.live_pds(), 0);
}

// nr_queues is the module reference: each queue with the policy enabled counts once
// (activating twice does not count twice), deactivation and disk release give it back,
// and unregistering while a queue still counts is refused with a WARN (the policy stays
// registered, so its blkgs' pds are still freed through its slot).
TEST_F(PolicyTest, UnregisterWhileActiveWarnsAndKeepsThePolicy) {
  World w;
  gendisk* other = alloc_disk(8, 16, 2);
  ASSERT_EQ(add_disk(other), 0);
  blkg_lookup_create(w.c->io, w.q());
  ASSERT_EQ(blkcg_activate_policy(w.q(), testpol()), 0);
  ASSERT_EQ(blkcg_activate_policy(w.q(), testpol()), 0);
  ASSERT_EQ(blkcg_activate_policy(other->queue, testpol()), 0);
  EXPECT_EQ(testpol()->nr_queues.load(), 2);
  {
    kern::ReportCapture cap;
    blkcg_policy_unregister(testpol());
    EXPECT_EQ(cap.count(kern::ReportKind::kWarn), 1u) << cap.dump();
  }
  EXPECT_GE(testpol()->plid, 0);
  blkcg_deactivate_policy(w.q(), testpol());
  blkcg_deactivate_policy(w.q(), testpol());
  EXPECT_EQ(testpol()->nr_queues.load(), 1);
  disk_release(other);
  EXPECT_EQ(testpol()->nr_queues.load(), 0);
  w.h.flush_frees();
  kern::ReportCapture cap;
  blkcg_policy_unregister(testpol());
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
  EXPECT_LT(testpol()->plid, 0);
}

TEST_F(PolicyTest, PolicyWithoutPdCallbacksCannotBeActivated) {
  World w;
  blkcg_policy bare;
  ASSERT_EQ(blkcg_policy_register(&bare), 0);
  kern::ReportCapture cap;
  EXPECT_EQ(blkcg_activate_policy(w.q(), &bare), -EINVAL);
  EXPECT_EQ(cap.count(kern::ReportKind::kWarn), 1u);
  blkcg_policy_unregister(&bare);
}

}  // namespace
}  // namespace blk

namespace blk {
namespace {

// The test policy's own checks fire on planted misuse (what makes it worth shipping).
TEST_F(PolicyTest, TestpolReportsOutOfOrderCallbacks) {
  ASSERT_EQ(blkcg_policy_register(testpol()), 0);
  blkcg_policy* pol = testpol();
  kern::ReportCapture cap;
  blkg_policy_data* pd = pol->pd_alloc_fn(nullptr, nullptr, kern::GFP_KERNEL);
  pd->plid = pol->plid;
  pol->pd_online_fn(pd);  // online before init
  EXPECT_EQ(cap.count(kern::ReportKind::kOracle), 1u) << cap.dump();
  pol->pd_free_fn(pd);  // freed while online
  EXPECT_EQ(cap.count(kern::ReportKind::kOracle), 2u) << cap.dump();
  blkcg_policy_unregister(pol);
}

TEST_F(PolicyTest, TestpolReportsChildInitBeforeParent) {
  ASSERT_EQ(blkcg_policy_register(testpol()), 0);
  blkcg_policy* pol = testpol();
  blkcg_gq parent, child;
  child.parent = &parent;  // the parent has no pd yet: the 2019 activation-order bug
  kern::ReportCapture cap;
  blkg_policy_data* pd = pol->pd_alloc_fn(nullptr, nullptr, kern::GFP_KERNEL);
  pd->blkg = &child;
  pd->plid = pol->plid;
  pol->pd_init_fn(pd);
  ASSERT_EQ(cap.count(kern::ReportKind::kOracle), 1u) << cap.dump();
  EXPECT_EQ(cap.reports()[0].signature, "testpol:parent-pd-missing-at-init");
  pol->pd_free_fn(pd);
  blkcg_policy_unregister(pol);
}


// 06b285bd1125: a blkcg without this policy's cpd must never get one of its pds. Planted
// by emptying a real blkcg's slot; the pd_alloc of the activation's walk reports it.
TEST_F(PolicyTest, TestpolReportsPdForBlkcgWithoutCpd) {
  World w;
  blkcg* a = w.a->io;
  ASSERT_NE(blkg_lookup_create(a, w.q()), nullptr);  // a blkg in /a for the walk to meet
  const int plid = testpol()->plid;
  blkcg_policy_data* saved = a->cpd[plid];
  a->cpd[plid] = nullptr;
  {
    kern::ReportCapture cap;
    EXPECT_EQ(blkcg_activate_policy(w.q(), testpol()), 0);
    ASSERT_EQ(cap.count(kern::ReportKind::kOracle), 1u) << cap.dump();
    EXPECT_EQ(cap.reports()[0].signature, "testpol:pd-without-cpd");
  }
  a->cpd[plid] = saved;
  blkcg_deactivate_policy(w.q(), testpol());
}

}  // namespace
}  // namespace blk
