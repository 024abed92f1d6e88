// SPDX-License-Identifier: MIT
// blkcg_torture: rcutorture-style torture of the blkcg implementation (impl/block) on real
// threads bound to virtual CPUs. Run it under TSan: the roles below drive every public entry
// point of impl/block at once, so a missing lock, a missing grace period or a lost reference
// shows up as a TSan race, a report of the kernel runtime's own checkers (lockdep, refcount,
// RCU, allocator), a broken invariant of this program ("!!!" line), a leak at teardown, or a
// stall.
//
// Roles (each a thread with a TaskScope on a virtual CPU; counts are flags):
//   submitter  takes a disk reference by dev_t (blkdev_get_no_open: the disk may be going
//              away; a miss is fine) and, while it holds it, allocates bios on that disk,
//              associates them (blocking and nowait, from process context, with preemption
//              disabled, and from softirq through run_in_irq; a failed nowait association is
//              retried blocking, as the kernel's callers do), sometimes clones or splits
//              them, submits them (process context, softirq when no split can follow, the
//              punt path with REQ_CGROUP_PUNT; half the writes as buffered writeback,
//              REQ_CGWB, which gives the cgroup a cgwb whose release races the cgroup
//              churner's rmdir) or completes them itself, and reaps the completions. Up to --window bios are in flight per submitter; the disk
//              reference is dropped only when none is, since a bio holds no disk reference.
//   flusher    cgroup_rstat_flush of a random subtree, and single-CPU flushes of one blkcg
//              from process or softirq context (the release path flushes from any context).
//   reader     io.stat (v2) or the blkio.throttle statistics (v1) of random cgroups; io.stat
//              lines must be well formed and never go down while names are unique.
//   cgchurn    mkdir/rmdir of cgroups (names are never reused, depth <= --depth), and
//              cgroup.procs writes moving tasks between them (a cgroup with a task is busy).
//   diskchurn  alloc_disk, add_disk (or a release of a disk never added), add_partition,
//              del_gendisk, and the owner's release (put_disk), sometimes with a deleted disk
//              kept around for a while. --fixed-disks disks are never churned.
//   iomax      io.max writes (v2) or blkio.throttle.*_device writes (v1), valid and invalid;
//              the result must be an errno the kernel returns for that input (the io.max
//              grammar is predicted by impl/oracle's independent parser).
//   toggler    blkcg_activate_policy / blkcg_deactivate_policy of the test policy (testpol,
//              registered once at start) on random disks.
//   resetter   blkio.reset_stats writes (v1 only: the file does not exist on v2).
//   clock      advances the virtual clock (timers fire in softirq on their CPUs).
//   worker     runs RCU callbacks (and waits for a grace period when they pile up), and
//              pending work when there are no kernel worker threads (--kworkers=0).
// Every role also runs RCU callbacks every 32 operations (its CPU's tick), and the
// topology and configuration roles wait while more than 4096 work items are pending, so
// memory stays bounded whatever the pauses.
//
// Quiesce points (every --quiesce-every stat intervals, and at the end): every role parks at
// a barrier between two operations, the kernel work queues are flushed, and a deep oracle
// runs on the main thread alone:
//   1. census: every bio the submitters wait for is held somewhere the block layer keeps
//      bios (a device's in-flight list or request pool, a throttle service queue, a
//      blkg's punt list; a split piece stands for the bio it was split from), and
//      everything held there is waited for by some submitter; submitted == completed + in
//      flight; the throttle structure check of impl/oracle on every disk.
//   2. drain: the main thread moves virtual time on until every bio completed (a bio that
//      never completes is a violation), then lets RCU callbacks and frees run.
//   3. conservation (v2): for every live cgroup C and every disk D still registered, the
//      io.stat line of C for D equals the sum of what blk_cgroup_bio_start accounted (the
//      disk's on_account hook) to C and every cgroup ever created below it; the root's
//      line equals everything accounted on D.
// Then the roles resume. At the end: full teardown (every disk deleted and released, every
// cgroup removed, testpol unregistered), no allocation left (alloc_check_no_leaks), no
// pending timer, work item or RCU callback, and testpol's pd/cpd balance.
//
// Output: a stats line every --stat-interval seconds (ops/s per role kind and in total,
// reports, violations, RSS), "!!!" lines for violations (the report sink in count mode, and
// this program's own stall lines), stall detection (a role whose progress counter does not
// move for ten seconds, or a role that does not reach a quiesce barrier), and a final
// "End of test: SUCCESS|FAILURE" line echoing every flag and the seed. Exit code 0 on
// success, 1 on failure, 2 on bad flags.
//
// Shared bookkeeping of this program, and why it adds (almost) no ordering of its own: a
// barrier that every role crosses on every operation would give TSan a happens-before edge
// between any two roles and hide real races in impl/block. So the tables through which
// roles find each other's objects are relaxed atomics (cgroup path codes, disk numbers):
// they are hints, validated by the real lookup (get_io_css under cgroup_mutex,
// blkdev_get_no_open under bdev_map_lock), which is the synchronisation the kernel's users
// have too. Per-role counters are relaxed (statistics only). The only edges this program
// adds are the quiesce barrier (release/acquire, once per interval), the completion flag of
// each bio (release by the completion, acquire by its submitter: it hands the bio's
// result back, as a completion would), creator -> remover of one cgroup (its path slot is
// published with release and claimed with acquire), a std::mutex among clock roles only,
// and one std::mutex taken once per thread to register its accounting table.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "impl/block/backing_dev.h"
#include "impl/block/bio.h"
#include "impl/block/blk_cgroup.h"
#include "impl/block/blk_core.h"
#include "impl/block/blk_stat.h"
#include "impl/block/blk_testpol.h"
#include "impl/block/blk_throttle.h"
#include "impl/block/blkcg_policy.h"
#include "impl/block/blkg.h"
#include "impl/block/busted.h"
#include "impl/block/cgroup.h"
#include "impl/block/cgroupfs.h"
#include "impl/block/genhd.h"
#include "impl/kern/alloc.h"
#include "impl/kern/clock.h"
#include "impl/kern/cpu.h"
#include "impl/kern/lock.h"
#include "impl/kern/radix_tree.h"
#include "impl/kern/rcu.h"
#include "impl/kern/report.h"
#include "impl/kern/sched.h"
#include "impl/kern/task.h"
#include "impl/kern/timer.h"
#include "impl/kern/workqueue.h"
#include "impl/oracle/model.h"
#include "impl/oracle/throtl_check.h"
#include "stress/flag_parse.h"

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define BLKCG_TORTURE_RACE_HOOK 1
#endif
#endif

#ifdef BLKCG_TORTURE_RACE_HOOK
// Data-race reports of the thread sanitizer count as failures of the run, whatever its
// halt_on_error setting: the runtime calls this hook once per printed report.
static std::atomic<uint64_t> g_race_reports{0};
extern "C" void __tsan_on_report(const void*) {
  g_race_reports.fetch_add(1, std::memory_order_relaxed);
}
#endif

namespace {

uint64_t race_reports() {
#ifdef BLKCG_TORTURE_RACE_HOOK
  return g_race_reports.load(std::memory_order_relaxed);
#else
  return 0;
#endif
}

}  // namespace

// The parts, in dependency order.
#include "stress/blkcg_torture/flags.h"
#include "stress/blkcg_torture/world.h"
#include "stress/blkcg_torture/roles.h"
#include "stress/blkcg_torture/quiesce.h"

int main(int argc, char** argv) {
  Flags f;
  // A scenario's flags first, then the command line over them.
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--scenario", 10) == 0 && !parse_flag(f, argv[i])) {
      std::fprintf(stderr, "blkcg_torture: bad flag '%s'\nflags: %s\n", argv[i], flags_text(Flags{}).c_str());
      return 2;
    }
  }
  if (!f.scenario.empty()) {
    std::string err;
    if (!load_scenario(f, &err)) {
      std::fprintf(stderr, "blkcg_torture: %s\n", err.c_str());
      return 2;
    }
  }
  for (int i = 1; i < argc; ++i) {
    if (!parse_flag(f, argv[i])) {
      std::fprintf(stderr, "blkcg_torture: bad flag '%s'\nflags: %s\n", argv[i], flags_text(Flags{}).c_str());
      return 2;
    }
  }
  if (f.resetters > 0 && f.hierarchy != "v1") {
    std::fprintf(stderr, "blkcg_torture: --resetters needs --hierarchy=v1 (v2 has no blkio.reset_stats)\n");
    return 2;
  }
  if (f.fixed_disks + f.diskchurners * f.disks > kMaxDiskSlots) {
    std::fprintf(stderr, "blkcg_torture: too many disk slots (at most %d)\n", kMaxDiskSlots);
    return 2;
  }
  if (!f.busted.empty() && !f.chaos_given) f.chaos_permille = 20;

  kern::set_nr_cpus(f.cpus);
  kern::set_report_mode(kern::ReportMode::kCount);
  kern::set_hz(1000);
  std::printf("blkcg_torture: start %s\n", flags_text(f).c_str());
  std::fflush(stdout);
  const long rss_start = rss_kb();

  World w;
  w.f = f;
  w.dfl = f.hierarchy == "v2";
  bool stalled = false;
  {
    kern::TaskScope main_task("torture-main", 0);
    w.h = std::make_unique<blk::cgroup_hierarchy>(w.dfl);
    // Created once, before any role runs (each is a lazily created singleton).
    blk::blkcg_policy_throtl();
    blk::kthrotld_workqueue();
    blk::blkcg_punt_bio_wq();
    blk::cgwb_release_wq();
    kern::system_wq();
    if (f.togglers > 0 && blk::blkcg_policy_register(blk::testpol()) != 0) {
      std::fprintf(stderr, "blkcg_torture: cannot register the test policy\n");
      return 1;
    }
    // Disk slots: the fixed disks first, then --disks per disk churner.
    w.disk_slots = f.fixed_disks + f.diskchurners * f.disks;
    for (int i = 0; i < f.fixed_disks; ++i) {
      const uint32_t num = w.next_disk_num.fetch_add(1, std::memory_order_relaxed);
      int err;
      uint64_t x = (f.seed + 7) * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(i);
      blk::gendisk* d = make_disk(w, num, xorshift(x), &err);
      if (d == nullptr) {
        std::fprintf(stderr, "blkcg_torture: cannot add fixed disk %d: %d\n", i, err);
        return 1;
      }
      w.fixed.push_back({d, num, i, true});
      w.disk_slot[i].store(num, std::memory_order_relaxed);
    }
    if (!f.busted.empty()) blk::busted().by_name(f.busted)->store(true, std::memory_order_relaxed);
    if (f.chaos_permille) kern::set_native_chaos({true, f.seed, f.chaos_permille});
    if (f.kworkers > 0) kern::start_workers(f.kworkers);
    if (f.fault_permille) {
      kern::FaultConfig fc;
      fc.permille = f.fault_permille;
      fc.seed = f.seed;
      kern::fault_set(fc);
    }

    // Roles.
    const int counts[kKinds] = {f.submitters, f.flushers, f.readers,   f.cgchurners, f.diskchurners,
                                f.iomaxers,   f.togglers, f.resetters, f.clocks,     f.workers};
    int idx = 0;
    for (int k = 0; k < kKinds; ++k) {
      for (int i = 0; i < counts[k]; ++i, ++idx) {
        auto r = std::make_unique<Role>();
        r->name = std::string(kKindNames[k]) + std::to_string(i);
        r->kind = static_cast<Kind>(k);
        r->cpu = idx % f.cpus;
        r->rng = (f.seed + 1) * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(idx) * 7919 + 1;
        if (k == kSubmitter) r->sub.recs = std::make_unique<BioRec[]>(static_cast<size_t>(f.window));
        if (k == kDiskChurn) r->dc.slot_base = f.fixed_disks + i * f.disks;
        w.roles.push_back(std::move(r));
      }
    }
    for (auto& r : w.roles) {
      Role* rp = r.get();
      rp->th = std::thread([&w, rp] { role_main(w, *rp); });
    }

    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    const auto end = start + std::chrono::duration<double>(f.seconds);
    auto next_stat = start + std::chrono::duration<double>(f.stat_interval);
    const int stall_limit = std::max(2, static_cast<int>(10.0 / f.stat_interval + 0.999));
    uint64_t last_total = 0, last_kind[kKinds] = {};
    double last_t = 0;
    int intervals = 0;
    while (clock::now() < end && !stalled) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      if (clock::now() < next_stat) continue;
      next_stat += std::chrono::duration<double>(f.stat_interval);
      ++intervals;
      uint64_t total = 0, kind_ops[kKinds] = {}, ev[kEvents] = {};
      for (auto& r : w.roles) {
        const uint64_t n = r->ops.load(std::memory_order_relaxed);
        total += n;
        kind_ops[r->kind] += n;
        for (int e = 0; e < kEvents; ++e) ev[e] += r->ev[e].load(std::memory_order_relaxed);
        if (n == r->last_seen) {
          // A stall is a role without progress for ten seconds (and at least two
          // intervals): long enough that starvation on a loaded machine is not one.
          if (++r->stalled_intervals >= stall_limit) {
            std::printf("!!! stall: role %s made no progress for %d intervals\n", r->name.c_str(),
                        r->stalled_intervals);
            stalled = true;
          }
        } else {
          r->stalled_intervals = 0;
        }
        r->last_seen = n;
      }
      const double secs = std::chrono::duration<double>(clock::now() - start).count();
      const double dt = secs - last_t;
      std::string per_kind;
      for (int k = 0; k < kKinds; ++k) {
        if (counts[k] == 0) continue;
        char b[64];
        std::snprintf(b, sizeof b, " %s=%.0f", kKindShort[k], static_cast<double>(kind_ops[k] - last_kind[k]) / dt);
        per_kind += b;
        last_kind[k] = kind_ops[k];
      }
      std::printf("blkcg_torture: t=%.1fs ops=%" PRIu64 " (+%" PRIu64 ") ops/s=%.0f [%s ] bios=%" PRIu64
                  " done=%" PRIu64 " nowait-fail=%" PRIu64 " eio=%" PRIu64 " eagain=%" PRIu64 " enomem=%" PRIu64
                  " jiffies=%" PRIu64 " quiesces=%" PRIu64 " reports=%" PRIu64 " races=%" PRIu64
                  " violations=%ld live-objs=%" PRIu64 " rcu-cbs=%" PRIu64 " work=%" PRIu64
                  " rss=%ldkB\n",
                  secs, total, total - last_total, static_cast<double>(total - last_total) / dt,
                  per_kind.c_str() + 1, ev[kEvBios], ev[kEvCompleted], ev[kEvNowaitFail], ev[kEvEio],
                  ev[kEvEagain], ev[kEvEnomem], kern::jiffies() - kern::kInitialJiffies, w.quiesces,
                  kern::report_count(), race_reports(), w.violations.load(),
                  kern::alloc_live_total(), kern::rcu_pending_callbacks(), kern::nr_pending_work(),
                  rss_kb());
      std::fflush(stdout);
      last_total = total;
      last_t = secs;
      if (stalled) break;
      // A busted run has made its point once something failed.
      if (!f.busted.empty() && (kern::report_count() != 0 || race_reports() != 0)) break;
      if (f.quiesce_every > 0 && intervals % f.quiesce_every == 0 && clock::now() < end) {
        const auto q0 = clock::now();
        if (!quiesce_point(w, 20.0)) {
          stalled = true;
          break;
        }
        // The time parked is not the roles' fault: restart the stall clocks.
        for (auto& r : w.roles) r->last_seen = r->ops.load(std::memory_order_relaxed), r->stalled_intervals = 0;
        next_stat += clock::now() - q0;
      }
    }
    if (stalled) {
      // Stalled roles may never return: report and leave without joining them.
      std::printf("End of test: FAILURE %s\n", flags_text(f).c_str());
      std::fflush(stdout);
      std::_Exit(1);
    }
    w.stop.store(true);
    for (auto& r : w.roles) r->th.join();
    quiesce(w);  // the final deep oracle; every bio completes in its drain
    uint64_t total = 0;
    std::string per_role;
    for (auto& r : w.roles) {
      total += r->ops.load();
      per_role += " " + r->name + "=" + std::to_string(r->ops.load()) + "(max " +
                  std::to_string(r->max_op_us.load() / 1000) + "ms)";
    }
    teardown(w);
    if (f.kworkers > 0) kern::stop_workers();
    kern::rcu_barrier();
    while (kern::run_pending_work() > 0 || kern::rcu_pending_callbacks() != 0) kern::rcu_barrier();
    w.h.reset();  // the root cgroup goes
    if (kern::nr_pending_timers() != 0)
      violation(w, "timer-after-teardown", std::to_string(kern::nr_pending_timers()) + " timer(s) still pending");
    if (kern::nr_pending_work() != 0)
      violation(w, "work-after-teardown", std::to_string(kern::nr_pending_work()) + " work item(s) still queued");
    if (kern::rcu_pending_callbacks() != 0)
      violation(w, "rcu-after-teardown", std::to_string(kern::rcu_pending_callbacks()) + " RCU callback(s) pending");
    const blk::testpol_counters tc = blk::testpol_get_counters();
    if (tc.live_pds() != 0 || tc.live_cpds() != 0)
      violation(w, "testpol-balance", "testpol: " + std::to_string(tc.live_pds()) + " pds and " +
                                          std::to_string(tc.live_cpds()) + " cpds live after teardown");
    kern::alloc_check_no_leaks("blkcg_torture teardown");
    const double secs = std::chrono::duration<double>(clock::now() - start).count();
    std::printf("blkcg_torture: ops per role:%s\n", per_role.c_str());
    std::printf("blkcg_torture: total ops=%" PRIu64 " in %.1fs (%.0f ops/s) quiesces=%" PRIu64
                " max-census=%" PRIu64 " max-drain=%" PRIu64 "j testpol pds=%" PRIu64 " jiffies=%" PRIu64
                " rss start=%ldkB end=%ldkB\n",
                total, secs, static_cast<double>(total) / secs, w.quiesces, w.census_bios_max,
                w.drain_jiffies_max, tc.pd_alloc,
                kern::jiffies() - kern::kInitialJiffies, rss_start, rss_kb());
  }
  const bool ok = kern::report_count() == 0 && race_reports() == 0 && w.violations.load() == 0;
  std::printf("blkcg_torture: reports=%" PRIu64 " races=%" PRIu64 " violations=%ld\n", kern::report_count(),
              race_reports(), w.violations.load());
  std::printf("End of test: %s %s\n", ok ? "SUCCESS" : "FAILURE", flags_text(f).c_str());
  std::fflush(stdout);
  for (AcctTable* t : acct_registry()) delete t;
  acct_registry().clear();
  return ok ? 0 : 1;
}
