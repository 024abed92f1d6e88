// SPDX-License-Identifier: MIT
// blkcg_torture, part: The quiesce points: bio census, drain, throttle structure, io.stat conservation.
// Included by stress/blkcg_torture.cc only (after its includes), inside its unnamed
// namespace's translation unit.
#pragma once

namespace {

// ---------------------------------------------------------------------------------------
// The deep oracle (main thread, every role parked or joined)
// ---------------------------------------------------------------------------------------

const blk::bio* bio_root(const blk::bio* b) {
  while (b->bi_parent != nullptr) b = b->bi_parent;
  return b;
}

struct Census {
  std::set<const blk::bio*> roots;  // originals that have a bio (or piece) held somewhere
  size_t held = 0;                  // bios and pieces held
  std::string bad;
};

void census_list(const blk::bio_list& l, blk::gendisk* d, const char* where, Census& c) {
  for (const blk::bio* b = l.head; b != nullptr; b = b->bi_next) {
    ++c.held;
    if (b->disk != d && c.bad.empty()) c.bad = std::string("a bio of another disk on ") + where;
    c.roots.insert(bio_root(b));
  }
}

void census_sq(blk::throtl_service_queue* sq, blk::gendisk* d, Census& c) {
  for (int rw = 0; rw < 2; ++rw)
    for (kern::list_head* n = sq->queued[rw].next; n != &sq->queued[rw]; n = n->next) {
      auto* qn = kern::list_entry<blk::throtl_qnode, &blk::throtl_qnode::node>(n);
      census_list(qn->bios_iops, d, "a throttle iops list", c);
      census_list(qn->bios_bps, d, "a throttle bps list", c);
    }
}

// Every place a disk's queue holds bios. Locks: dev_lock alone; then q->blkcg_mutex (the
// blkg list) and, nested in it, each blkg's async_bio_lock and the td lock (the order the
// block layer uses: blkcg_mutex -> td->lock).
void census_disk(blk::gendisk* d, Census& c) {
  {
    kern::SpinIrqGuard g(d->dev_lock);
    census_list(d->inflight, d, "the device", c);
    census_list(d->rq_list, d, "the request pool", c);
  }
  blk::request_queue* q = d->queue;
  kern::MutexGuard m(q->blkcg_mutex);
  for (blk::blkcg_gq* g = q->blkg_list_first; g != nullptr; g = g->q_next) {
    kern::SpinIrqGuard a(g->async_bio_lock);
    census_list(g->async_bios, d, "a punt list", c);
  }
  blk::throtl_data* td = q->td.load(std::memory_order_acquire);
  if (td == nullptr) return;
  const kern::irqflags_t f = td->lock.lock_irqsave();
  census_sq(&td->service_queue, d, c);
  for (blk::blkcg_gq* g = q->blkg_list_first; g != nullptr; g = g->q_next)
    if (blk::throtl_grp* tg = blk::blkg_to_tg(g)) census_sq(&tg->service_queue, d, c);
  td->lock.unlock_irqrestore(f);
}

std::vector<blk::gendisk*> known_disks(World& w, bool with_sessions) {
  std::set<blk::gendisk*> s;
  for (const OwnedDisk& d : w.fixed) s.insert(d.disk);
  for (auto& r : w.roles) {
    for (const OwnedDisk& d : r->dc.owned) s.insert(d.disk);
    if (with_sessions && r->sub.disk) s.insert(r->sub.disk);
  }
  return {s.begin(), s.end()};
}

bool all_bios_done(World& w) {
  for (auto& r : w.roles) {
    if (r->kind != kSubmitter) continue;
    for (int i = 0; i < w.f.window; ++i)
      if (r->sub.recs[i].in_use && !r->sub.recs[i].done.load(std::memory_order_acquire)) return false;
  }
  return true;
}

// 1. Census.
void quiesce_census(World& w) {
  std::set<const blk::bio*> waited;
  uint64_t submitted = 0, completed = 0, outstanding = 0;
  for (auto& r : w.roles) {
    if (r->kind != kSubmitter) continue;
    submitted += r->ev[kEvBios].load(std::memory_order_relaxed);
    completed += r->ev[kEvCompleted].load(std::memory_order_relaxed);
    for (int i = 0; i < w.f.window; ++i) {
      const BioRec& rec = r->sub.recs[i];
      if (!rec.in_use) continue;
      ++outstanding;
      if (!rec.done.load(std::memory_order_acquire)) waited.insert(rec.b);
    }
  }
  if (submitted != completed + outstanding)
    violation(w, "census-count", "submitted " + std::to_string(submitted) + " != reaped " +
                                     std::to_string(completed) + " + outstanding " +
                                     std::to_string(outstanding));
  Census c;
  for (blk::gendisk* d : known_disks(w, true)) {
    census_disk(d, c);
    oracle::throtl_check_structure(d->queue);  // files its own report
  }
  if (!c.bad.empty()) violation(w, "census-wrong-disk", c.bad);
  w.census_bios_max = std::max<uint64_t>(w.census_bios_max, c.held);
  w.census_held_total += c.held;
  w.census_waited_total += waited.size();
  size_t lost = 0, stray = 0;
  for (const blk::bio* b : waited)
    if (!c.roots.count(b)) ++lost;
  for (const blk::bio* b : c.roots)
    if (!waited.count(b)) ++stray;
  if (lost)
    violation(w, "census-lost-bio", std::to_string(lost) + " of " + std::to_string(waited.size()) +
                                        " in-flight bios are held nowhere (lost)");
  if (stray)
    violation(w, "census-stray-bio", std::to_string(stray) +
                                         " bios held by the block layer that nobody waits for");
}

// 2. Drain: move time on until every bio completed.
void quiesce_drain(World& w) {
  const uint64_t j0 = kern::jiffies();
  for (int iter = 0; iter < 1000000; ++iter) {
    if (all_bios_done(w)) break;
    settle_work();
    if (all_bios_done(w)) break;
    uint64_t next;
    if (!kern::timer_next_expiry(&next)) {
      if (kern::nr_pending_work() != 0) continue;
      violation(w, "bio-never-completes",
                "bios still in flight with no timer pending and no work queued");
      return;
    }
    const uint64_t now = kern::jiffies();
    kern::advance_jiffies(kern::time_after(next, now) ? next - now : 1);
  }
  if (!all_bios_done(w)) violation(w, "bio-never-completes", "bios still in flight after the drain");
  w.drain_jiffies_max = std::max<uint64_t>(w.drain_jiffies_max, kern::jiffies() - j0);
  w.h->flush_frees();  // RCU callbacks and free work: released blkgs fold into parents
  settle_work();
}

struct LiveCgroup {
  int id;
  int parent_id;  // -1 for the root
  std::string path;
};

std::vector<LiveCgroup> live_cgroups(World& w) {
  std::vector<LiveCgroup> out;
  kern::MutexGuard g(w.h->cgroup_mutex);
  std::vector<blk::cgroup*> stack{w.h->root()};
  while (!stack.empty()) {
    blk::cgroup* cg = stack.back();
    stack.pop_back();
    out.push_back({cg->id, cg->parent ? cg->parent->id : -1, cg->path});
    for (blk::cgroup* c : cg->children) stack.push_back(c);
  }
  return out;
}

// 3. Conservation, and folding of the accounting tables (bounded memory).
void quiesce_conservation(World& w) {
  // Gather every thread's table into the base and clear them.
  {
    std::lock_guard<std::mutex> g(acct_registry_mu);
    for (AcctTable* t : acct_registry()) {
      for (const auto& [k, v] : t->by_key) w.acct_base[k] += v;
      t->by_key.clear();
    }
  }
  for (auto& r : w.roles) {
    for (const auto& [id, pid] : r->cg.made) w.parent_of[id] = pid;
    r->cg.made.clear();
  }
  const std::vector<LiveCgroup> live = live_cgroups(w);
  std::unordered_map<int, const LiveCgroup*> live_by_id;
  for (const LiveCgroup& c : live) {
    live_by_id[c.id] = &c;
    w.parent_of[c.id] = c.parent_id;
  }
  const int root_id = w.h->root()->id;
  std::map<uint32_t, std::string> disks;  // registered disks (fixed and churner-owned)
  for (const OwnedDisk& d : w.fixed) disks[d.num] = dev_of(d.num);
  for (auto& r : w.roles)
    for (const OwnedDisk& d : r->dc.owned) disks[d.num] = dev_of(d.num);
  // Fold: a removed cgroup's counts go to its closest live ancestor (what its released
  // blkgs were flushed into); counts of disks that are gone are dropped.
  std::unordered_map<uint64_t, IoCounts> folded;
  for (const auto& [k, v] : w.acct_base) {
    if (!disks.count(key_num(k))) continue;
    int id = key_cgid(k);
    int hops = 0;
    while (id != -1 && !live_by_id.count(id) && hops++ < 64) {
      auto it = w.parent_of.find(id);
      if (it == w.parent_of.end()) {
        violation(w, "acct-unknown-cgroup", "bios accounted to cgroup id " + std::to_string(id) +
                                                " of unknown ancestry");
        id = root_id;
        break;
      }
      id = it->second;
    }
    folded[acct_key(id, key_num(k))] += v;
  }
  w.acct_base.swap(folded);
  std::unordered_map<int, int> pruned;
  for (const LiveCgroup& c : live) pruned[c.id] = c.parent_id;
  w.parent_of.swap(pruned);
  if (!w.dfl) return;  // v1 has no io.stat (and reset_stats clears counters)
  // Expected line of every live cgroup for every registered disk.
  std::map<std::pair<int, uint32_t>, IoCounts> expect;
  for (const auto& [k, v] : w.acct_base) {
    const int id = key_cgid(k);
    if (id == -1) {  // no blkg: only the root's line (disk totals) counts it
      expect[{root_id, key_num(k)}] += v;
      continue;
    }
    for (int a = id; a != -1; a = w.parent_of.count(a) ? w.parent_of[a] : -1)
      expect[{a, key_num(k)}] += v;
  }
  for (const LiveCgroup& c : live) {
    std::string out;
    const int rc = blk::cgroup_file_read(*w.h, c.path == "/" ? "/io.stat" : c.path + "/io.stat", &out);
    if (rc != 0) {
      violation(w, "conservation-read", "io.stat of live cgroup " + c.path + " returned " + std::to_string(rc));
      continue;
    }
    std::map<std::string, std::vector<uint64_t>> seen;
    std::istringstream lines(out);
    std::string line, dev;
    std::vector<uint64_t> v;
    while (std::getline(lines, line))
      if (parse_iostat_line(line, &dev, &v)) seen[dev] = v;
    for (const auto& [num, name] : disks) {
      const IoCounts e = expect.count({c.id, num}) ? expect[{c.id, num}] : IoCounts{};
      std::vector<uint64_t> got = seen.count(name) ? seen[name] : std::vector<uint64_t>(6, 0);
      const uint64_t want[6] = {e.bytes[0], e.bytes[1], e.ios[0], e.ios[1], e.bytes[2], e.ios[2]};
      // Discard-only counters do not make a line show counters (kernel behaviour).
      const bool hidden = got == std::vector<uint64_t>(6, 0) && !want[0] && !want[1] && !want[2] && !want[3];
      bool eq = true;
      for (int i = 0; i < 6 && !hidden; ++i) eq = eq && got[i] == want[i];
      if (!eq) {
        char buf[512];
        std::snprintf(buf, sizeof buf,
                      "io.stat of %s for %s: rbytes=%" PRIu64 " wbytes=%" PRIu64 " rios=%" PRIu64
                      " wios=%" PRIu64 " dbytes=%" PRIu64 " dios=%" PRIu64
                      ", accounted rbytes=%" PRIu64 " wbytes=%" PRIu64 " rios=%" PRIu64
                      " wios=%" PRIu64 " dbytes=%" PRIu64 " dios=%" PRIu64,
                      c.path.c_str(), name.c_str(), got[0], got[1], got[2], got[3], got[4],
                      got[5], want[0], want[1], want[2], want[3], want[4], want[5]);
        violation(w, "conservation", buf);
      }
    }
  }
}

void quiesce(World& w) {
  const auto t0 = std::chrono::steady_clock::now();
  const uint64_t held0 = w.census_held_total, waited0 = w.census_waited_total;
  const uint64_t j0 = kern::jiffies();
  settle_work();
  quiesce_census(w);
  quiesce_drain(w);
  quiesce_conservation(w);
  ++w.quiesces;
  std::printf("blkcg_torture: quiesce %" PRIu64 ": %" PRIu64 " bios in flight, %" PRIu64
              " held, drained in %" PRIu64 " jiffies, %.0f ms\n",
              w.quiesces, w.census_waited_total - waited0, w.census_held_total - held0,
              kern::jiffies() - j0,
              std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  std::fflush(stdout);
}

// Parks every role at the barrier, runs the oracle, resumes. False if a role did not reach
// the barrier in time (a stall).
bool quiesce_point(World& w, double limit_s) {
  const uint64_t e = w.pause_epoch.load(std::memory_order_relaxed) + 1;  // odd
  w.pause_epoch.store(e, std::memory_order_release);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(limit_s);
  for (;;) {
    bool all = true;
    for (auto& r : w.roles)
      if (r->parked_at.load(std::memory_order_acquire) != e) all = false;
    if (all) break;
    if (std::chrono::steady_clock::now() > deadline) {
      for (auto& r : w.roles)
        if (r->parked_at.load(std::memory_order_acquire) != e)
          std::printf("!!! stall: role %s did not reach quiesce barrier %" PRIu64 " in %.0f s\n",
                      r->name.c_str(), (e + 1) / 2, limit_s);
      std::fflush(stdout);
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  quiesce(w);
  w.pause_epoch.store(e + 1, std::memory_order_release);  // even: resume
  return true;
}

// ---------------------------------------------------------------------------------------
// Teardown
// ---------------------------------------------------------------------------------------

void teardown(World& w) {
  kern::fault_set({});
  // Submitters: every bio completed in the final drain; drop their disks.
  for (auto& r : w.roles) {
    if (r->kind != kSubmitter) continue;
    for (int i = 0; i < w.f.window; ++i) r->sub.recs[i].in_use = false;
    r->sub.outstanding = 0;
    if (r->sub.disk) blk::put_disk(r->sub.disk);
    r->sub.disk = nullptr;
  }
  // Disks: deleted (if live) and released by their owners.
  auto drop = [&](std::vector<OwnedDisk>& v) {
    for (OwnedDisk& d : v) {
      if (d.live) blk::del_gendisk(d.disk);
      blk::disk_release(d.disk);
    }
    v.clear();
  };
  drop(w.fixed);
  for (auto& r : w.roles) drop(r->dc.owned);
  for (int i = 0; i < kMaxDiskSlots; ++i) w.disk_slot[i].store(0, std::memory_order_relaxed);
  settle_work();
  w.h->flush_frees();
  // Tasks back to the root, then cgroups, deepest first.
  for (int pid = kFirstPid; pid < kFirstPid + kPids; ++pid)
    w.h->attach_task(w.h->root(), pid);
  std::vector<LiveCgroup> live = live_cgroups(w);
  std::sort(live.begin(), live.end(), [](const LiveCgroup& a, const LiveCgroup& b) {
    return std::count(a.path.begin(), a.path.end(), '/') > std::count(b.path.begin(), b.path.end(), '/');
  });
  for (const LiveCgroup& c : live) {
    if (c.path == "/") continue;
    blk::blkcg* css = w.h->get_io_css(c.path);
    const int err = css ? w.h->rmdir(css->cgroup) : -ENOENT;
    if (css) blk::css_put(css);
    if (err != 0) violation(w, "teardown-rmdir", "rmdir " + c.path + " returned " + std::to_string(err));
  }
  for (int i = 0; i < kMaxCgroupSlots; ++i) w.cg_slot[i].store(0, std::memory_order_relaxed);
  w.h->flush_frees();
  if (w.f.togglers > 0) {
    const int err = blk::blkcg_policy_unregister(blk::testpol());
    if (err != 0) violation(w, "teardown-unregister", "pol_unregister returned " + std::to_string(err));
  }
  w.h->flush_frees();
  settle_work();
}


}  // namespace
