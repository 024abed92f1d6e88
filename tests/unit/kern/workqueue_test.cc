// SPDX-License-Identifier: MIT
// Workqueues: inline and worker-thread execution, flush/cancel, ordering, checks.
#include "impl/kern/workqueue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "impl/kern/lock.h"
#include "impl/kern/lockdep.h"
#include "impl/kern/report.h"
#include "impl/kern/task.h"

namespace kern {
namespace {

struct Job {
  work_struct work;
  std::vector<int>* log = nullptr;
  std::atomic<int>* count = nullptr;
  int id = 0;
  bool process_ctx = false;
};

void job_fn(work_struct* w) {
  Job* j = reinterpret_cast<Job*>(w);
  j->process_ctx = in_task() && preemptible() && current()->kind == TaskKind::kKworker;
  if (j->log) j->log->push_back(j->id);
  if (j->count) j->count->fetch_add(1);
}

class WorkqueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    workqueues_reset();
    lockdep_reset();
  }
  void TearDown() override { workqueues_reset(); }
};

TEST_F(WorkqueueTest, QueueRunsInProcessContextOnce) {
  std::vector<int> log;
  Job j{{}, &log, nullptr, 7};
  INIT_WORK(&j.work, job_fn, "test.job");
  EXPECT_TRUE(schedule_work(&j.work));
  EXPECT_FALSE(schedule_work(&j.work));  // already pending
  EXPECT_TRUE(work_pending(&j.work));
  EXPECT_EQ(nr_pending_work(), 1u);
  EXPECT_EQ(run_pending_work(), 1);
  EXPECT_EQ(log, std::vector<int>{7});
  EXPECT_TRUE(j.process_ctx);
  EXPECT_FALSE(work_pending(&j.work));
}

TEST_F(WorkqueueTest, FlushWorkRunsItInlineWithoutWorkers) {
  std::vector<int> log;
  Job j{{}, &log, nullptr, 1};
  INIT_WORK(&j.work, job_fn, "test.flush");
  schedule_work(&j.work);
  EXPECT_TRUE(flush_work(&j.work));
  EXPECT_EQ(log, std::vector<int>{1});
  EXPECT_FALSE(flush_work(&j.work));  // nothing to wait for
}

TEST_F(WorkqueueTest, CancelWorkSyncRemovesPending) {
  std::vector<int> log;
  Job j{{}, &log, nullptr, 1};
  INIT_WORK(&j.work, job_fn, "test.cancel");
  schedule_work(&j.work);
  EXPECT_TRUE(cancel_work_sync(&j.work));
  EXPECT_EQ(run_pending_work(), 0);
  EXPECT_TRUE(log.empty());
  EXPECT_FALSE(cancel_work_sync(&j.work));
}

TEST_F(WorkqueueTest, OrderedQueueRunsInOrder) {
  workqueue_struct* wq = alloc_ordered_workqueue("test.ordered", WQ_MEM_RECLAIM);
  std::vector<int> log;
  std::vector<std::unique_ptr<Job>> jobs;
  for (int i = 0; i < 5; ++i) {
    jobs.push_back(std::make_unique<Job>());
    jobs.back()->log = &log;
    jobs.back()->id = i;
    INIT_WORK(&jobs.back()->work, job_fn, "test.ordered_job");
    queue_work(wq, &jobs.back()->work);
  }
  flush_workqueue(wq);
  EXPECT_EQ(log, (std::vector<int>{0, 1, 2, 3, 4}));
  destroy_workqueue(wq);
}

mutex* work_mutex;
void mutex_job(work_struct*) {
  work_mutex->lock();
  work_mutex->unlock();
}

TEST_F(WorkqueueTest, FlushUnderLockTakenByWorkIsLockOrder) {
  mutex m("test.wq.mutex");
  work_mutex = &m;
  work_struct w;
  INIT_WORK(&w, mutex_job, "test.mutex_job");
  ReportCapture cap;
  schedule_work(&w);
  run_pending_work();  // work -> m
  m.lock();
  flush_work(&w);  // m -> work: the classic flush deadlock (reported even when idle)
  m.unlock();
  EXPECT_EQ(cap.count(ReportKind::kLockOrder), 1u) << cap.dump();
}

TEST_F(WorkqueueTest, InlineRunNeedingTheFlushersLockIsDeadlock) {
  mutex m("test.wq.inline_mutex");
  work_mutex = &m;
  work_struct w;
  INIT_WORK(&w, mutex_job, "test.inline_job");
  ReportCapture cap;
  schedule_work(&w);
  m.lock();
  flush_work(&w);  // would hang forever in the kernel; here it is reported
  m.unlock();
  EXPECT_GE(cap.count(ReportKind::kDeadlock), 1u) << cap.dump();
  EXPECT_GE(cap.count(ReportKind::kLockOrder), 1u) << cap.dump();
}

TEST_F(WorkqueueTest, FlushWithoutLockIsQuiet) {
  mutex m("test.wq.quiet");
  work_mutex = &m;
  work_struct w;
  INIT_WORK(&w, mutex_job, "test.quiet_job");
  ReportCapture cap;
  schedule_work(&w);
  flush_work(&w);
  EXPECT_EQ(cap.size(), 0u) << cap.dump();
}

void self_flush(work_struct* w) { flush_work(w); }

TEST_F(WorkqueueTest, FlushFromItselfIsReported) {
  work_struct w;
  INIT_WORK(&w, self_flush, "test.self_flush");
  ReportCapture cap;
  schedule_work(&w);
  run_pending_work();
  EXPECT_EQ(cap.count(ReportKind::kWork), 1u) << cap.dump();
}

// One item of a queue flushing (or annotating a possible flush of) another item of the
// same queue. A queue with a rescuer may be down to that one execution context under
// memory pressure, so lockdep must see the queue's pseudo-lock taken twice.
struct Pair {
  work_struct outer;
  work_struct inner;
  workqueue_struct* wq = nullptr;
  workqueue_struct* inner_wq = nullptr;
  bool annotate_only = false;
  int inner_runs = 0;
};
Pair* pair;

void pair_inner(work_struct*) { ++pair->inner_runs; }
void pair_outer(work_struct*) {
  queue_work(pair->inner_wq, &pair->inner);
  if (pair->annotate_only) {
    might_flush_work(&pair->inner, pair->inner_wq);
  } else {
    flush_work(&pair->inner);
  }
}

// Runs the outer item on a queue `name` (flags), the inner one on the same queue or on a
// second one with the same flags; returns the recursion reports on `name`.
size_t run_pair(unsigned flags, bool same_queue, bool annotate_only, ReportCapture& cap,
                const char* name) {
  Pair p;
  pair = &p;
  p.wq = alloc_workqueue(name, flags, 0);
  p.inner_wq = same_queue ? p.wq : alloc_workqueue("test.other", flags, 0);
  p.annotate_only = annotate_only;
  INIT_WORK(&p.outer, pair_outer, "test.pair_outer");
  INIT_WORK(&p.inner, pair_inner, "test.pair_inner");
  queue_work(p.wq, &p.outer);
  run_pending_work();
  EXPECT_EQ(p.inner_runs, 1);
  if (p.inner_wq != p.wq) destroy_workqueue(p.inner_wq);
  destroy_workqueue(p.wq);
  size_t recursion = 0;
  for (const Report& r : cap.reports())
    if (r.signature == std::string("recursive-locking:wq:") + name) ++recursion;
  return recursion;
}

TEST_F(WorkqueueTest, FlushOfAnItemOfItsOwnRescuerQueueIsRecursion) {
  ReportCapture cap;
  EXPECT_EQ(run_pair(WQ_MEM_RECLAIM, true, false, cap, "test.reclaim"), 1u)
      << cap.dump();
}

TEST_F(WorkqueueTest, APossibleFlushOfAnItemOfItsOwnRescuerQueueIsRecursion) {
  ReportCapture cap;
  EXPECT_EQ(run_pair(WQ_MEM_RECLAIM, true, true, cap, "test.reclaim_might"), 1u)
      << cap.dump();
}

TEST_F(WorkqueueTest, FlushAcrossQueuesOrOnAPlainQueueIsQuiet) {
  {
    ReportCapture cap;  // a plain queue gets another worker when an item sleeps
    EXPECT_EQ(run_pair(0, true, false, cap, "test.plain"), 0u);
    EXPECT_EQ(cap.size(), 0u) << cap.dump();
  }
  {
    ReportCapture cap;  // a rescuer queue waiting for another rescuer queue
    EXPECT_EQ(run_pair(WQ_MEM_RECLAIM, false, false, cap, "test.two"), 0u);
    EXPECT_EQ(cap.size(), 0u) << cap.dump();
  }
}

TEST_F(WorkqueueTest, FlushAllWorkqueuesRunsEveryQueue) {
  workqueue_struct* a = alloc_workqueue("test.all_a", WQ_MEM_RECLAIM, 0);
  workqueue_struct* b = alloc_ordered_workqueue("test.all_b", 0);
  std::atomic<int> count{0};
  Job ja{{}, nullptr, &count, 1}, jb{{}, nullptr, &count, 2};
  INIT_WORK(&ja.work, job_fn, "test.all_ja");
  INIT_WORK(&jb.work, job_fn, "test.all_jb");
  queue_work(a, &ja.work);
  queue_work(b, &jb.work);
  flush_all_workqueues();
  EXPECT_EQ(count.load(), 2);
  EXPECT_EQ(nr_pending_work(), 0u);
  destroy_workqueue(a);
  destroy_workqueue(b);
}

spinlock_t* leak_spin;
void leaky_job(work_struct*) { leak_spin->lock(); }

TEST_F(WorkqueueTest, WorkReturningWithLockIsReported) {
  spinlock_t l("test.wq.leak");
  leak_spin = &l;
  work_struct w;
  INIT_WORK(&w, leaky_job, "test.leaky_job");
  ReportCapture cap;
  schedule_work(&w);
  run_pending_work();
  EXPECT_GE(cap.count(ReportKind::kLockHeld), 1u) << cap.dump();
}

void self_free_job(work_struct* w) { delete reinterpret_cast<Job*>(w); }

TEST_F(WorkqueueTest, WorkMayFreeItself) {
  Job* j = new Job();
  INIT_WORK(&j->work, self_free_job, "test.self_free");
  schedule_work(&j->work);
  EXPECT_EQ(run_pending_work(), 1);  // ASan: nothing touches the item after it returns
}

TEST_F(WorkqueueTest, WorkerThreadsWithProducers) {
  start_workers(2);
  std::atomic<int> count{0};
  constexpr int kProducers = 3, kJobs = 200;
  std::vector<std::unique_ptr<Job>> jobs;
  for (int i = 0; i < kProducers * kJobs; ++i) {
    jobs.push_back(std::make_unique<Job>());
    jobs.back()->count = &count;
    INIT_WORK(&jobs.back()->work, job_fn, "test.mt_job");
  }
  std::vector<std::thread> ps;
  for (int p = 0; p < kProducers; ++p) {
    ps.emplace_back([&, p] {
      TaskScope ts("producer", p);
      for (int k = 0; k < kJobs; ++k) {
        Job* j = jobs[static_cast<size_t>(p * kJobs + k)].get();
        queue_work(system_wq(), &j->work);
        if (k % 10 == 0) flush_work(&j->work);
      }
    });
  }
  for (auto& t : ps) t.join();
  flush_workqueue(system_wq());
  stop_workers();
  EXPECT_EQ(count.load(), kProducers * kJobs);
  for (auto& j : jobs) EXPECT_TRUE(j->process_ctx);
}

}  // namespace
}  // namespace kern
