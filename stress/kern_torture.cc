// SPDX-License-Identifier: MIT
// kern_torture: rcutorture-style torture of the emulated kernel runtime (impl/kern) on real
// threads bound to virtual CPUs. Run it under TSan: every role's shared data is plain
// (non-atomic) memory protected only by the primitive under test, so a primitive that lets
// two holders in shows up as a TSan race, a broken invariant ("!!!" line) or both.
//
// Roles (each a thread with a TaskScope on a virtual CPU):
//   spinner   spinlock-protected pairs (a == b must hold for every reader)
//   mutexer   mutex-protected pairs, with might_sleep checks inside
//   percpu    get_cpu()/put_cpu() non-atomic per-CPU increments; the sum must match
//   irq       interrupt work on a random CPU taking an irq-safe lock (others use irqsave)
//   io        freeze-counter enter/exit (blocking and nowait)
//   freezer   freeze/unfreeze; once frozen, no IO user may be past enter()
//   reader    RCU readers: the published object's pair must be intact
//   updater   replaces the published object; frees the old one after synchronize_rcu or
//             through call_rcu (alternating), and runs the RCU callbacks
//   worker    queues work items (run by worker threads) and flushes some
//   clock     arms timers and advances the virtual clock (handlers take an irq-safe lock)
//
// Output: a stats line every --stat-interval seconds, "!!!" lines for violations (the
// report sink in count mode), stall detection (a role whose progress counter does not move
// for two intervals), and a final "End of test: SUCCESS|FAILURE" line echoing every flag.
// Exit code 0 on success, 1 on failure, 2 on bad flags.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "impl/kern/alloc.h"
#include "impl/kern/clock.h"
#include "impl/kern/cpu.h"
#include "impl/kern/lock.h"
#include "impl/kern/rcu.h"
#include "impl/kern/timer.h"
#include "impl/kern/workqueue.h"
#include "impl/kern/report.h"
#include "impl/kern/sched.h"
#include "impl/kern/task.h"
#include "stress/flag_parse.h"

namespace {

struct Flags {
  double seconds = 10;
  int cpus = 4;
  int spinners = 2, mutexers = 2, percpu = 2, irqs = 1, ios = 2, freezers = 1;
  int readers = 2, updaters = 1, workers = 1, clocks = 1;
  int pairs = 8;
  unsigned long seed = 1;
  unsigned chaos_permille = 0;
  double stat_interval = 2;
  // Deliberately broken variants (rcutorture's "busted"): the run must end in FAILURE.
  //   irq-unsafe      the irq role's process-side path takes the irq lock with IRQs on
  //   percpu-unowned  the percpu role updates its CPU's counter without get_cpu()
  //   rcu-no-gp       the updater frees the old object without a grace period
  //   stall           the freezer never unfreezes: blocking io roles stop (stall detection)
  std::string busted;
};

bool parse_flag(Flags& f, const char* arg) {
  using stress::parse_int;
  auto val = [&](const char* name) { return stress::flag_value(arg, name); };
  const char* v;
  constexpr long kRoles = 64;
  if ((v = val("--seconds"))) return stress::parse_seconds(v, &f.seconds);
  if ((v = val("--cpus"))) return parse_int(v, 1, kern::kMaxCpus, &f.cpus);
  if ((v = val("--spinners"))) return parse_int(v, 0, kRoles, &f.spinners);
  if ((v = val("--mutexers"))) return parse_int(v, 0, kRoles, &f.mutexers);
  if ((v = val("--percpu"))) return parse_int(v, 0, kRoles, &f.percpu);
  if ((v = val("--irqs"))) return parse_int(v, 0, kRoles, &f.irqs);
  if ((v = val("--ios"))) return parse_int(v, 0, kRoles, &f.ios);
  if ((v = val("--freezers"))) return parse_int(v, 0, kRoles, &f.freezers);
  if ((v = val("--pairs"))) return parse_int(v, 1, 1 << 20, &f.pairs);
  if ((v = val("--readers"))) return parse_int(v, 0, kRoles, &f.readers);
  if ((v = val("--updaters"))) return parse_int(v, 0, kRoles, &f.updaters);
  if ((v = val("--workers"))) return parse_int(v, 0, kRoles, &f.workers);
  if ((v = val("--clocks"))) return parse_int(v, 0, kRoles, &f.clocks);
  if ((v = val("--seed"))) return stress::parse_ulong(v, &f.seed);
  if ((v = val("--chaos"))) return stress::parse_uint(v, 1000, &f.chaos_permille);
  if ((v = val("--stat-interval"))) return stress::parse_seconds(v, &f.stat_interval);
  if ((v = val("--busted"))) {
    f.busted = v;
    return f.busted == "irq-unsafe" || f.busted == "percpu-unowned" || f.busted == "rcu-no-gp" ||
           f.busted == "stall";
  }
  return false;
}

std::string flags_text(const Flags& f) {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "--seconds=%g --cpus=%d --spinners=%d --mutexers=%d --percpu=%d --irqs=%d "
                "--ios=%d --freezers=%d --readers=%d --updaters=%d --workers=%d --clocks=%d "
                "--pairs=%d --seed=%lu --chaos=%u --stat-interval=%g",
                f.seconds, f.cpus, f.spinners, f.mutexers, f.percpu, f.irqs, f.ios, f.freezers,
                f.readers, f.updaters, f.workers, f.clocks, f.pairs, f.seed, f.chaos_permille,
                f.stat_interval);
  std::string s = buf;
  if (!f.busted.empty()) s += " --busted=" + f.busted;
  return s;
}

uint64_t xorshift(uint64_t& s) {
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return s;
}

struct Pair {
  explicit Pair(const char* cls) : lock(cls) {}
  kern::spinlock_t lock;
  long a GUARDED_BY(lock) = 0;
  long b GUARDED_BY(lock) = 0;
};

struct MPair {
  explicit MPair(const char* cls) : lock(cls) {}
  kern::mutex lock;
  long a GUARDED_BY(lock) = 0;
  long b GUARDED_BY(lock) = 0;
};

// An RCU-published object: a == b always; poisoned (a = -1) just before it is freed.
struct RcuObj {
  kern::rcu_head rcu;  // first member: the callback casts back
  long a = 0, b = 0;
};

void rcu_obj_free(kern::rcu_head* h) {
  RcuObj* o = reinterpret_cast<RcuObj*>(h);
  o->a = -1;
  kern::kfree(o);
}

struct Job {
  kern::work_struct work;  // first member
  std::atomic<long>* done = nullptr;
};

void job_fn(kern::work_struct* w) {
  reinterpret_cast<Job*>(w)->done->fetch_add(1, std::memory_order_relaxed);
}

struct Tick {
  kern::timer_list timer;  // first member
  kern::spinlock_t* lock = nullptr;
  long* count = nullptr;
};

void tick_fn(kern::timer_list* t) NO_THREAD_SAFETY_ANALYSIS {
  Tick* k = reinterpret_cast<Tick*>(t);
  k->lock->lock();
  (*k->count)++;
  k->lock->unlock();
}

struct World {
  std::vector<std::unique_ptr<Pair>> spin_pairs;
  std::vector<std::unique_ptr<MPair>> mutex_pairs;
  kern::spinlock_t irq_lock{"torture.irq_lock"};
  long irq_count GUARDED_BY(irq_lock) = 0;
  std::unique_ptr<kern::PerCpu<long>> percpu;
  kern::freeze_counter queue{"torture.q_usage_counter"};
  std::atomic<long> io_inside{0};  // io roles past a successful enter()
  std::atomic<RcuObj*> published{nullptr};
  std::atomic<long> jobs_done{0};
  kern::spinlock_t tick_lock{"torture.tick_lock"};
  long ticks GUARDED_BY(tick_lock) = 0;
  std::atomic<bool> stop{false};
  std::atomic<long> violations{0};
};

void violation(World& w, const std::string& what) {
  w.violations.fetch_add(1);
  kern::kreport(kern::ReportKind::kOracle, "kern_torture:" + what, what);
}

struct Role {
  std::string name;
  std::atomic<uint64_t> ops{0};
  uint64_t last_seen = 0;
  int stalled_intervals = 0;
  long percpu_done = 0;  // percpu role: increments it made (read after join)
  std::thread th;
};

void run_role(World& w, Role& r, const Flags& f, int idx, int cpu,
              int kind) NO_THREAD_SAFETY_ANALYSIS {
  kern::TaskScope scope(r.name, cpu);
  uint64_t rng = (f.seed + 1) * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(idx) * 7919 + 1;
  while (!w.stop.load(std::memory_order_relaxed)) {
    const uint64_t x = xorshift(rng);
    switch (kind) {
      case 0: {  // spinner
        Pair& p = *w.spin_pairs[x % w.spin_pairs.size()];
        if (x & 1) {
          p.lock.lock_irq();
          p.a++;
          kern::seam(kern::SeamKind::kAtomic);
          p.b++;
          p.lock.unlock_irq();
        } else {
          p.lock.lock_irq();
          if (p.a != p.b) violation(w, "spin pair torn");
          p.lock.unlock_irq();
        }
        break;
      }
      case 1: {  // mutexer
        MPair& p = *w.mutex_pairs[x % w.mutex_pairs.size()];
        kern::MutexGuard g(p.lock);
        kern::might_sleep("torture");
        if (x & 1) {
          p.a++;
          kern::seam(kern::SeamKind::kAtomic);
          p.b++;
        } else if (p.a != p.b) {
          violation(w, "mutex pair torn");
        }
        break;
      }
      case 2: {  // percpu
        if (f.busted == "percpu-unowned") {
          // The classic bug: this_cpu_ptr() without preempt_disable()/get_cpu().
          long* c = w.percpu->this_cpu_ptr();
          const long v = *c;
          kern::seam(kern::SeamKind::kAtomic);
          *c = v + 1;
        } else {
          kern::get_cpu();
          long* c = w.percpu->this_cpu_ptr();
          const long v = *c;
          kern::seam(kern::SeamKind::kAtomic);
          *c = v + 1;
          kern::put_cpu();
        }
        r.percpu_done++;
        break;
      }
      case 3: {  // irq
        const int cpu = static_cast<int>(x % static_cast<uint64_t>(f.cpus));
        kern::run_in_irq(cpu, true, [&] {
          w.irq_lock.lock();
          w.irq_count++;
          w.irq_lock.unlock();
        });
        if (f.busted == "irq-unsafe") {
          w.irq_lock.lock();
          w.irq_count++;
          w.irq_lock.unlock();
        } else {
          const kern::irqflags_t fl = w.irq_lock.lock_irqsave();
          w.irq_count++;
          w.irq_lock.unlock_irqrestore(fl);
        }
        break;
      }
      case 4: {  // io
        if (w.queue.enter(x & 1)) {
          w.io_inside.fetch_add(1);
          if (w.queue.users() <= 0) violation(w, "io inside queue but users==0");
          kern::seam(kern::SeamKind::kAtomic);
          w.io_inside.fetch_sub(1);
          w.queue.exit();
        }
        break;
      }
      case 5: {  // freezer
        w.queue.freeze();
        if (w.io_inside.load() != 0) violation(w, "queue frozen with IO inside");
        kern::seam(kern::SeamKind::kPreempt);
        if (f.busted == "stall") {
          while (!w.stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        w.queue.unfreeze();
        break;
      }
      case 6: {  // reader
        kern::rcu_read_lock();
        RcuObj* o = kern::rcu_dereference(w.published);
        if (o && o->a != o->b) violation(w, "RCU reader saw a freed or torn object");
        kern::rcu_read_unlock();
        break;
      }
      case 7: {  // updater
        RcuObj* n = kern::kzalloc_obj<RcuObj>(kern::GFP_KERNEL, "torture.rcu_obj");
        n->a = n->b = static_cast<long>(x & 0xffff);
        RcuObj* old = w.published.exchange(n, std::memory_order_acq_rel);
        if (old && f.busted == "rcu-no-gp") {
          rcu_obj_free(&old->rcu);  // BUG: readers may still hold it
        } else if (old) {
          if (x & 1) {
            kern::synchronize_rcu();
            rcu_obj_free(&old->rcu);
          } else {
            kern::call_rcu(&old->rcu, rcu_obj_free);
          }
        }
        kern::rcu_process_callbacks();
        break;
      }
      case 8: {  // worker
        Job* j = kern::kzalloc_obj<Job>(kern::GFP_KERNEL, "torture.job");
        j->done = &w.jobs_done;
        kern::INIT_WORK(&j->work, job_fn, "torture.job");
        kern::queue_work(kern::system_wq(), &j->work);
        kern::flush_work(&j->work);
        kern::kfree(j);
        break;
      }
      case 9: {  // clock
        Tick k;
        k.lock = &w.tick_lock;
        k.count = &w.ticks;
        kern::timer_setup(&k.timer, tick_fn, "torture.tick", static_cast<int>(x % f.cpus));
        kern::mod_timer(&k.timer, kern::jiffies() + 1 + x % 3);
        if (x & 4) {
          kern::advance_jiffies(4);  // fires it (and any other role's due timer)
        } else {
          kern::del_timer_sync(&k.timer);
        }
        const kern::irqflags_t fl = w.tick_lock.lock_irqsave();
        w.tick_lock.unlock_irqrestore(fl);
        break;
      }
    }
    r.ops.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    if (!parse_flag(f, argv[i])) {
      std::fprintf(stderr, "kern_torture: bad flag '%s'\nflags: %s\n", argv[i],
                   flags_text(Flags{}).c_str());
      return 2;
    }
  }
  kern::set_nr_cpus(f.cpus);
  kern::set_report_mode(kern::ReportMode::kCount);
  if (f.chaos_permille) kern::set_native_chaos({true, f.seed, f.chaos_permille});
  std::printf("kern_torture: start %s\n", flags_text(f).c_str());
  std::fflush(stdout);

  World w;
  for (int i = 0; i < f.pairs; ++i) {
    w.spin_pairs.push_back(std::make_unique<Pair>("torture.spin_pair"));
    w.mutex_pairs.push_back(std::make_unique<MPair>("torture.mutex_pair"));
  }
  w.percpu = std::make_unique<kern::PerCpu<long>>();
  if (f.workers > 0) kern::start_workers(2);

  const int counts[] = {f.spinners, f.mutexers, f.percpu, f.irqs, f.ios,
                        f.freezers, f.readers, f.updaters, f.workers, f.clocks};
  const char* names[] = {"spinner", "mutexer", "percpu", "irq", "io",
                         "freezer", "reader", "updater", "worker", "clock"};
  constexpr int kKinds = 10;
  std::vector<std::unique_ptr<Role>> roles;
  std::vector<int> kinds, role_cpus;
  int idx = 0;
  for (int k = 0; k < kKinds; ++k) {
    for (int i = 0; i < counts[k]; ++i) {
      auto r = std::make_unique<Role>();
      r->name = std::string(names[k]) + std::to_string(i);
      roles.push_back(std::move(r));
      kinds.push_back(k);
      // Roles spread over the CPUs, except that percpu roles go two to a CPU: per-CPU data
      // shared by tasks of one CPU is what ownership must protect.
      role_cpus.push_back(k == 2 ? (i / 2) % f.cpus : idx % f.cpus);
      ++idx;
    }
  }
  for (size_t i = 0; i < roles.size(); ++i) {
    Role* r = roles[i].get();
    const int kind = kinds[i], cpu = role_cpus[i], id = static_cast<int>(i);
    r->th = std::thread([&w, r, &f, id, cpu, kind] { run_role(w, *r, f, id, cpu, kind); });
  }

  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  const auto end = start + std::chrono::duration<double>(f.seconds);
  auto next_stat = start + std::chrono::duration<double>(f.stat_interval);
  bool stalled = false;
  uint64_t last_total = 0;
  while (clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (clock::now() < next_stat) continue;
    next_stat += std::chrono::duration<double>(f.stat_interval);
    uint64_t total = 0;
    std::string per_role;
    for (auto& r : roles) {
      const uint64_t n = r->ops.load(std::memory_order_relaxed);
      total += n;
      if (n == r->last_seen) {
        // A stall is a role without progress for ten seconds (and at least two intervals):
        // long enough that CPU starvation on a loaded 2-core machine is not mistaken for it.
        const int limit = f.busted == "stall"
                              ? 1
                              : std::max(2, static_cast<int>(10.0 / f.stat_interval + 0.999));
        if (++r->stalled_intervals >= limit) {
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
    std::printf("kern_torture: t=%.1fs ops=%llu (+%llu) ops/s=%.0f reports=%llu violations=%ld\n",
                secs, static_cast<unsigned long long>(total),
                static_cast<unsigned long long>(total - last_total),
                static_cast<double>(total) / secs,
                static_cast<unsigned long long>(kern::report_count()), w.violations.load());
    std::fflush(stdout);
    last_total = total;
    if (stalled) {
      // Stalled roles may never return: report and leave without joining them.
      std::printf("End of test: FAILURE %s\n", flags_text(f).c_str());
      std::fflush(stdout);
      std::_Exit(1);
    }
  }
  w.stop.store(true);
  for (auto& r : roles) r->th.join();
  if (f.workers > 0) kern::stop_workers();
  // Tear down the RCU world: unpublish, wait, free, and drain the callbacks.
  if (RcuObj* last = w.published.exchange(nullptr)) {
    kern::synchronize_rcu();
    rcu_obj_free(&last->rcu);
  }
  kern::rcu_barrier();

  // Quiesce: the deep checks.
  long expect_percpu = 0, got_percpu = 0;
  for (auto& r : roles) expect_percpu += r->percpu_done;
  for_each_possible_cpu(cpu) got_percpu += *w.percpu->per_cpu_ptr(cpu);
  if (expect_percpu != got_percpu) {
    violation(w, "per-CPU counters lost updates: expected " + std::to_string(expect_percpu) +
                     " got " + std::to_string(got_percpu));
  }
  for (auto& p : w.spin_pairs) {
    p->lock.lock();
    if (p->a != p->b) violation(w, "spin pair torn at quiesce");
    p->lock.unlock();
  }
  if (w.queue.frozen() || w.queue.users() != 0) violation(w, "queue not idle at quiesce");
  if (kern::nr_pending_timers() != 0) violation(w, "timers still pending at quiesce");
  kern::alloc_check_no_leaks("kern_torture quiesce");

  uint64_t total = 0;
  std::string per_role;
  for (auto& r : roles) {
    total += r->ops.load();
    per_role += " " + r->name + "=" + std::to_string(r->ops.load());
  }
  std::printf("kern_torture: ops per role:%s\n", per_role.c_str());
  const bool ok = kern::report_count() == 0 && !stalled;
  std::printf("kern_torture: total ops=%llu reports=%llu\n", static_cast<unsigned long long>(total),
              static_cast<unsigned long long>(kern::report_count()));
  std::printf("End of test: %s %s\n", ok ? "SUCCESS" : "FAILURE", flags_text(f).c_str());
  return ok ? 0 : 1;
}
