// SPDX-License-Identifier: MIT
// A virtual-clock world for blk-throttle scenarios: one hierarchy, one disk, the cgroup
// files by path, and dd-like synchronous issuers (queue depth 1: the next request is
// submitted when the previous one completed, at the same jiffy). Time only moves in
// step(): run the queued work items if any, else advance the clock by one jiffy (which
// fires due timers). Used by unit, conformance and oracle tests.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "impl/block/blk_core.h"
#include "impl/block/blk_throttle.h"
#include "impl/block/cgroupfs.h"
#include "impl/kern/clock.h"
#include "impl/kern/rcu.h"
#include "impl/kern/workqueue.h"

namespace blk::testing {

// One request in flight: filled in by its completion.
struct Io {
  bool done = false;
  int status = 0;
  uint64_t done_at = 0;
};

inline void io_end(bio* b) {
  auto* io = static_cast<Io*>(b->bi_private);
  io->done = true;
  io->status = b->status;
  io->done_at = kern::jiffies();
  bio_put(b);
}

// dd ... bs=<bs> count=<count> oflag=direct in cgroup `cg`.
struct Dd {
  cgroup* cg = nullptr;
  bio_op op = bio_op::kWrite;
  uint64_t bs = 0;
  int count = 0;
  unsigned opf = 0;
  // Progress.
  int issued = 0;
  Io cur;
  uint64_t start = 0, end = 0;
  int errors = 0;
  bool finished() const { return issued == count && cur.done; }
  // Seconds from the first submission to the last completion, rounded like blktests'
  // printf "%.0f".
  long rounded_seconds() const {
    const double s = static_cast<double>(end - start) / kern::hz();
    return static_cast<long>(s + 0.5);
  }
  double seconds() const { return static_cast<double>(end - start) / kern::hz(); }
};

class ThrotlWorld;

// Asynchronous submissions (queue depth > 1), each with its own completion record.
// Declare a Batch before the world it submits to: bios still queued when the world goes
// complete (with EIO) into it.
struct Batch {
  std::vector<std::unique_ptr<Io>> ios;
  void submit(ThrotlWorld& w, cgroup* cg, bio_op op, uint64_t size, unsigned opf = 0);
  size_t completed() const {
    size_t n = 0;
    for (const auto& io : ios) n += io->done;
    return n;
  }
  bool all_done() const { return completed() == ios.size(); }
};

class ThrotlWorld {
 public:
  // dfl=false: a cgroup v1 hierarchy (blkio.* files, flat throttling). The disk is 8:16.
  explicit ThrotlWorld(uint64_t max_io_bytes = 0, bool dfl = true) : h(dfl) {
    disk = alloc_disk(8, 16, 1);
    EXPECT_EQ(add_disk(disk), 0);
    disk->max_io_bytes = max_io_bytes;
  }
  ~ThrotlWorld() {
    drain();
    for (auto it = made.rbegin(); it != made.rend(); ++it)
      if (cgroup* c = h.lookup(*it)) h.rmdir(c);
    if (disk) {
      if (disk_live(disk)) del_gendisk(disk);
      drain();
      disk_release(disk);
    }
    kern::run_pending_work();
    h.flush_frees();
  }
  ThrotlWorld(const ThrotlWorld&) = delete;
  ThrotlWorld& operator=(const ThrotlWorld&) = delete;

  cgroup* mkdir(const std::string& path) {
    const size_t slash = path.rfind('/');
    cgroup* parent = slash == 0 ? h.root() : h.lookup(path.substr(0, slash));
    cgroup* c = nullptr;
    EXPECT_EQ(h.mkdir(parent, path.substr(slash + 1), &c), 0) << path;
    made.push_back(path);
    return c;
  }
  long write(const std::string& path, const std::string& data) {
    return cgroup_file_write(h, path, data);
  }
  std::string read(const std::string& path) {
    std::string out;
    const int r = cgroup_file_read(h, path, &out);
    return r < 0 ? "errno " + std::to_string(-r) : out;
  }
  // "<MAJ:MIN> " + text, as written to io.max.
  long set_limit(const std::string& cg_path, const std::string& kv) {
    return write(cg_path + "/io.max", disk->name + " " + kv);
  }
  long remove_limits(const std::string& cg_path) {
    return set_limit(cg_path, "rbps=max wbps=max riops=max wiops=max");
  }

  // Submits one request of `dd` (associated with its cgroup like a task in it).
  void submit_one(Dd& dd) {
    bio* b = bio_alloc(disk, dd.op, dd.bs, dd.opf, kern::GFP_NOIO);
    ASSERT_NE(b, nullptr);
    ASSERT_TRUE(bio_associate_blkg(b, dd.cg ? dd.cg->io : nullptr, false));
    dd.cur = Io{};
    b->bi_end_io = io_end;
    b->bi_private = &dd.cur;
    if (dd.issued == 0) dd.start = kern::jiffies();
    ++dd.issued;
    submit_bio(b);
  }
  // One unit of virtual progress.
  void step() {
    if (kern::run_pending_work() > 0) return;
    kern::advance_jiffies(1);
  }
  // Runs the issuers side by side until all finish (or `limit` jiffies pass: false).
  bool run(std::vector<Dd*> dds, uint64_t limit = 600 * 1000) {
    const uint64_t t0 = kern::jiffies();
    for (;;) {
      bool all = true;
      for (Dd* d : dds) {
        while (d->issued < d->count && (d->issued == 0 || d->cur.done)) {
          if (d->issued > 0 && d->cur.status) ++d->errors;
          submit_one(*d);
        }
        if (d->finished() && d->end == 0) {
          if (d->cur.status) ++d->errors;
          d->end = d->cur.done_at;
        }
        all = all && d->finished();
      }
      if (all) return true;
      if (kern::jiffies() - t0 > limit) return false;
      step();
    }
  }
  bool run(Dd& dd, uint64_t limit = 600 * 1000) { return run(std::vector<Dd*>{&dd}, limit); }
  // Advances to absolute jiffies `t`, running work on the way, with issuers progressing.
  void run_until_time(std::vector<Dd*> dds, uint64_t t) {
    while (kern::time_before(kern::jiffies(), t)) {
      for (Dd* d : dds)
        while (d->issued < d->count && (d->issued == 0 || d->cur.done)) {
          if (d->issued > 0 && d->cur.status) ++d->errors;
          submit_one(*d);
        }
      step();
    }
  }
  // Lets every timer and work item that is due run, without moving time more than needed
  // for things already queued (bounded).
  void drain(uint64_t max_jiffies = 20000) {
    for (uint64_t i = 0; i < max_jiffies; ++i) {
      kern::run_pending_work();
      if (!disk || !disk->queue->td.load()) return;
      throtl_data* td = disk->queue->td.load();
      const kern::irqflags_t f = td->lock.lock_irqsave();
      const bool idle = td->nr_queued[0] == 0 && td->nr_queued[1] == 0 &&
                        throtl::sq_queued(&td->service_queue, 0) == 0 &&
                        throtl::sq_queued(&td->service_queue, 1) == 0;
      td->lock.unlock_irqrestore(f);
      if (idle) return;
      kern::advance_jiffies(1);
    }
  }

  cgroup_hierarchy h;
  gendisk* disk = nullptr;
  std::vector<std::string> made;
};

inline void Batch::submit(ThrotlWorld& w, cgroup* cg, bio_op op, uint64_t size, unsigned opf) {
  ios.push_back(std::make_unique<Io>());
  bio* b = bio_alloc(w.disk, op, size, opf, kern::GFP_NOIO);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(bio_associate_blkg(b, cg ? cg->io : nullptr, false));
  b->bi_end_io = io_end;
  b->bi_private = ios.back().get();
  submit_bio(b);
}

}  // namespace blk::testing
