// SPDX-License-Identifier: MIT
// blkcg_torture, part: The roles: submitters, flushers and readers, topology churn, io.max writers, policy togglers, reset_stats, clock and work runners.
// Included by stress/blkcg_torture.cc only (after its includes), inside its unnamed
// namespace's translation unit.
#pragma once

namespace {

// ---------------------------------------------------------------------------------------
// Submitter
// ---------------------------------------------------------------------------------------

// bi_end_io of every bio a submitter waits for. Context: any (process, softirq timer,
// kernel worker, the main thread while it drains).
void torture_end_io(blk::bio* b) {
  BioRec* rec = static_cast<BioRec*>(b->bi_private);
  const int st = b->status;
  blk::bio_put(b);  // before `done`: the submitter may drop the disk once it sees it
  rec->status = st;
  rec->done.store(true, std::memory_order_release);  // pairs with reap()'s acquire load
}

BioRec* free_rec(World& w, SubmitterState& s) {
  for (int i = 0; i < w.f.window; ++i)
    if (!s.recs[i].in_use) return &s.recs[i];
  return nullptr;
}

void track(SubmitterState& s, BioRec* rec, blk::bio* b) {
  rec->b = b;
  rec->in_use = true;
  rec->expect_eio = false;
  rec->status = 0;
  rec->done.store(false, std::memory_order_relaxed);  // nobody else sees rec before submit
  b->bi_end_io = torture_end_io;
  b->bi_private = rec;
  ++s.outstanding;
}

// Reaps completed bios; returns how many.
int reap(World& w, Role& r) {
  SubmitterState& s = r.sub;
  int n = 0;
  for (int i = 0; i < w.f.window; ++i) {
    BioRec& rec = s.recs[i];
    if (!rec.in_use || !rec.done.load(std::memory_order_acquire)) continue;
    rec.in_use = false;
    rec.b = nullptr;
    --s.outstanding;
    ++n;
    count(r, kEvCompleted);
    // -EAGAIN: a softirq submission found the disk's request pool empty (BLK_STS_AGAIN).
    if (rec.status == -EAGAIN && s.disk->nr_requests != 0) {
      count(r, kEvEagain);
    } else if (rec.status != 0 && rec.status != -EIO) {
      violation(w, "bio-status", r.name + ": bio completed with status " + std::to_string(rec.status));
    } else if (rec.status == -EIO) {
      count(r, kEvEio);
      // -EIO comes from a disk that stopped being live (the device or the throttler's
      // cancel) or a failed split allocation; a disk never becomes live again.
      if (!rec.expect_eio && !w.faults() && blk::disk_live(s.disk))
        violation(w, "bio-eio-live-disk",
                  r.name + ": bio failed with -EIO on disk " + dev_of(s.num) + ", which is live");
    }
  }
  return n;
}

// Associates `b` with `css` in a random context; a failed nowait association is retried
// blocking from process context (what the kernel's callers do).
void associate(World& w, Role& r, blk::bio* b, blk::blkcg* css, uint64_t x) {
  bool ok = false;
  const bool reassoc = (x >> 20) % 8 == 0 && b->bi_blkg == nullptr;
  switch ((x >> 12) % 6) {
    case 0:
    case 1:
      ok = reassoc ? blk::bio_associate_blkg(b, css, false)
                   : blk::bio_associate_blkg_from_css(b, css, false);
      break;
    case 2:
      ok = blk::bio_associate_blkg_from_css(b, css, true);
      break;
    case 3:
      kern::preempt_disable();
      ok = blk::bio_associate_blkg_from_css(b, css, true);
      kern::preempt_enable();
      break;
    default: {
      const int cpu = static_cast<int>((x >> 24) % static_cast<uint64_t>(w.f.cpus));
      kern::run_in_irq(cpu, /*hard=*/false,
                       [&] { ok = blk::bio_associate_blkg_from_css(b, css, true); });
      break;
    }
  }
  if (!ok) {
    count(r, kEvNowaitFail);
    if (!blk::bio_associate_blkg_from_css(b, css, false))
      violation(w, "assoc-blocking-failed",
                r.name + ": blocking association failed on a disk with a root blkg");
  }
  // Sometimes re-associate from atomic context with the bio's own blkcg (the path of a
  // bio that moves between queues); a failure leaves it unassociated: retry blocking.
  if ((x >> 30) % 16 == 0) {
    kern::preempt_disable();
    ok = blk::bio_associate_blkg(b, css, true);
    kern::preempt_enable();
    if (!ok) {
      count(r, kEvNowaitFail);
      if (!blk::bio_associate_blkg_from_css(b, css, false))
        violation(w, "assoc-blocking-failed",
                  r.name + ": blocking re-association failed on a disk with a root blkg");
    }
  }
}

// Submits `b` from process context, or from softirq when no split can follow (the split
// in the submission path allocates with GFP_NOIO, which may sleep).
void submit(World& w, blk::bio* b, uint64_t x) {
  const uint64_t max = b->disk->max_io_bytes;
  if ((x >> 40) % 6 == 0 && (max == 0 || b->size <= max)) {
    const int cpu = static_cast<int>((x >> 44) % static_cast<uint64_t>(w.f.cpus));
    kern::run_in_irq(cpu, /*hard=*/false, [&] { blk::submit_bio(b); });
  } else {
    blk::submit_bio(b);
  }
}

// One submission: allocate, associate, maybe clone and split, submit (or complete).
void submit_op(World& w, Role& r, uint64_t x) {
  SubmitterState& s = r.sub;
  BioRec* rec = free_rec(w, s);
  if (rec == nullptr) return;
  const uint64_t code = pick_cgroup(w, x, 6);
  blk::blkcg* css = w.h->get_io_css(code_path(code));
  if (css == nullptr) {  // removed meanwhile: the task's cgroup is then the root
    css = w.h->get_io_css("/");
    if (css == nullptr) {
      violation(w, "root-css", "get_io_css(\"/\") failed");
      return;
    }
  }
  const blk::bio_op op = (x >> 4) % 10 == 0 ? blk::bio_op::kDiscard
                         : (x >> 4) % 2    ? blk::bio_op::kWrite
                                           : blk::bio_op::kRead;
  const uint64_t size = 512 * (1 + (x >> 8) % 128);
  unsigned opf = 0;
  if ((x >> 16) % 4 == 0) opf |= blk::REQ_SYNC;
  if ((x >> 18) % 16 == 0) opf |= blk::REQ_META;
  if (static_cast<int>((x >> 22) % 1000) < w.f.punt_permille) opf |= blk::REQ_CGROUP_PUNT;
  if ((x >> 32) % 2 == 0) opf |= blk::REQ_CGWB;  // half the writes are buffered (a cgwb)
  blk::bio* b = blk::bio_alloc(s.disk, op, size, opf, kern::GFP_NOIO);
  if (b == nullptr) {
    count(r, kEvEnomem);
    if (!w.faults()) violation(w, "bio-alloc", "bio_alloc failed without fault injection");
    blk::css_put(css);
    return;
  }
  associate(w, r, b, css, x);
  blk::css_put(css);  // the bio's blkg holds its own css reference
  track(s, rec, b);
  count(r, kEvBios);
  const uint64_t y = xorshift(r.rng);
  // A clone: a second bio with the same association, waited for on its own.
  blk::bio* clone = nullptr;
  BioRec* crec = nullptr;
  if (y % 8 == 0 && (crec = free_rec(w, s)) != nullptr) {
    clone = blk::bio_alloc(s.disk, b->op, b->size, b->opf, kern::GFP_NOIO);
    if (clone != nullptr) {
      blk::bio_clone_blkg_association(clone, b, (y >> 3) & 1);
      track(s, crec, clone);
      count(r, kEvBios);
    } else {
      count(r, kEvEnomem);
    }
  }
  // A split: the front piece is chained to `b`, which completes after both.
  blk::bio* piece = nullptr;
  if ((y >> 8) % 8 == 0 && b->size >= 1024) {
    piece = blk::bio_split(b, (b->size / 2) & ~uint64_t{511}, kern::GFP_NOIO);
    if (piece == nullptr) count(r, kEvEnomem);
  }
  if ((y >> 12) % 32 == 0) {
    // Completed by the submitter without submission (an error before submit).
    const bool eio = (y >> 17) & 1;
    if (eio) {
      b->status = -EIO;
      rec->expect_eio = true;
    }
    if (piece) blk::bio_endio(piece);
    blk::bio_endio(b);
  } else {
    if (piece && ((y >> 18) & 1)) submit(w, piece, y), piece = nullptr;
    submit(w, b, y >> 1);
    if (piece) submit(w, piece, y >> 2);
  }
  if (clone) submit(w, clone, y >> 3);
}

void run_submitter(World& w, Role& r, uint64_t x) {
  SubmitterState& s = r.sub;
  if (s.disk == nullptr) {
    const uint32_t num = pick_disk(w, x);
    blk::gendisk* d = num ? blk::blkdev_get_no_open(kMajor, minor_of(num)) : nullptr;
    if (d == nullptr) {  // gone (or none yet): fine, try again later
      count(r, kEvMiss);
      r.ops.fetch_add(1, std::memory_order_relaxed);
      std::this_thread::sleep_for(std::chrono::microseconds(50));
      return;
    }
    s.disk = d;
    s.num = num;
    s.ops_left = 16 + static_cast<int>((x >> 7) % 48);
    r.ops.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (s.ops_left > 0 && s.outstanding < w.f.window) {
    --s.ops_left;
    submit_op(w, r, x);
    reap(w, r);
    r.ops.fetch_add(1, std::memory_order_relaxed);
    if ((x >> 50) % 64 == 0)  // the scheduler migrates us (preemptible here)
      kern::set_task_cpu(kern::current(), static_cast<int>((x >> 56) % static_cast<uint64_t>(w.f.cpus)));
    return;
  }
  if (reap(w, r) > 0) {
    r.ops.fetch_add(1, std::memory_order_relaxed);
  } else if (s.outstanding > 0) {
    // Waiting for the clock or the workers; not progress.
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
  if (s.ops_left == 0 && s.outstanding == 0) {
    blk::put_disk(s.disk);  // may be the last reference: the disk's release runs here
    s.disk = nullptr;
    s.num = 0;
    r.ops.fetch_add(1, std::memory_order_relaxed);
  }
}

// ---------------------------------------------------------------------------------------
// Flusher, reader
// ---------------------------------------------------------------------------------------

void run_flusher(World& w, Role& r, uint64_t x) {
  const uint64_t code = pick_cgroup(w, x, 4);
  blk::blkcg* css = w.h->get_io_css(code_path(code));
  if (css != nullptr) {
    if ((x >> 10) % 4 != 0) {
      blk::cgroup_rstat_flush(*w.h, css->cgroup);
    } else {
      // One CPU of one blkcg, as the release path does, from process or softirq context.
      const int cpu = static_cast<int>((x >> 12) % static_cast<uint64_t>(w.f.cpus));
      if ((x >> 20) & 1)
        kern::run_in_irq(cpu, false, [&] { blk::blkcg_rstat_flush_cpu(css, cpu); });
      else
        blk::blkcg_rstat_flush_cpu(css, cpu);
    }
    blk::css_put(css);
  }
  r.ops.fetch_add(1, std::memory_order_relaxed);
}

// Parses one io.stat line; false if malformed.
bool parse_iostat_line(const std::string& line, std::string* dev, std::vector<uint64_t>* v) {
  const size_t sp = line.find(' ');
  if (sp == std::string::npos || sp == 0) return false;
  *dev = line.substr(0, sp);
  unsigned maj, min;
  char tail;
  if (std::sscanf(dev->c_str(), "%u:%u%c", &maj, &min, &tail) != 2) return false;
  const std::string rest = line.substr(sp + 1);
  v->assign(6, 0);
  if (rest.empty()) return true;  // a blkg without (read/write) IO yet
  unsigned long long a[6];
  int used = 0;
  if (std::sscanf(rest.c_str(), "rbytes=%llu wbytes=%llu rios=%llu wios=%llu dbytes=%llu dios=%llu%n",
                  &a[0], &a[1], &a[2], &a[3], &a[4], &a[5], &used) != 6 ||
      static_cast<size_t>(used) != rest.size())
    return false;
  for (int i = 0; i < 6; ++i) (*v)[i] = a[i];
  return true;
}

void run_reader(World& w, Role& r, uint64_t x) {
  const uint64_t code = pick_cgroup(w, x, 4);
  std::string out;
  if (!w.dfl) {
    static const char* const files[] = {
        "blkio.throttle.io_service_bytes", "blkio.throttle.io_serviced",
        "blkio.throttle.io_service_bytes_recursive", "blkio.throttle.io_serviced_recursive",
        "blkio.throttle.read_bps_device", "cgroup.procs"};
    const int rc = blk::cgroup_file_read(*w.h, file_path(code, files[(x >> 8) % 6]), &out);
    if (rc != 0 && rc != -ENOENT)
      violation(w, "read-errno", r.name + ": v1 read returned " + std::to_string(rc));
    r.ops.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if ((x >> 8) % 4 == 0 && code != 0) {
    const int rc = blk::cgroup_file_read(*w.h, file_path(code, "io.max"), &out);
    if (rc != 0 && rc != -ENOENT)
      violation(w, "read-errno", r.name + ": io.max read returned " + std::to_string(rc));
    std::istringstream lines(out);
    std::string line;
    while (std::getline(lines, line)) {
      unsigned maj, min;
      char k0[32], k1[32], k2[32], k3[32];
      if (std::sscanf(line.c_str(), "%u:%u rbps=%31s wbps=%31s riops=%31s wiops=%31s", &maj, &min,
                      k0, k1, k2, k3) != 6)
        violation(w, "iomax-format", r.name + ": malformed io.max line '" + line + "'");
    }
    r.ops.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const int rc = blk::cgroup_file_read(*w.h, file_path(code, "io.stat"), &out);
  if (rc != 0 && rc != -ENOENT)
    violation(w, "read-errno", r.name + ": io.stat read returned " + std::to_string(rc));
  if (rc == 0) {
    std::istringstream lines(out);
    std::string line, dev;
    std::vector<uint64_t> v;
    const bool unique = !w.names_wrapped.load(std::memory_order_relaxed);
    while (std::getline(lines, line)) {
      if (!parse_iostat_line(line, &dev, &v)) {
        violation(w, "iostat-format", r.name + ": malformed io.stat line '" + line + "'");
        continue;
      }
      if (!unique) continue;
      std::vector<uint64_t>& last = r.rd.last[{code, dev}];
      if (!last.empty())
        for (int i = 0; i < 6; ++i)
          if (v[i] < last[i])
            violation(w, "iostat-decreased",
                      r.name + ": io.stat of " + code_path(code) + " for " + dev +
                          " went down: field " + std::to_string(i) + " " +
                          std::to_string(last[i]) + " -> " + std::to_string(v[i]) +
                          "; io.stat:\n" + out);
      last = v;
    }
    if (r.rd.last.size() > 4096) r.rd.last.clear();  // bounded memory
  }
  r.ops.fetch_add(1, std::memory_order_relaxed);
}

// ---------------------------------------------------------------------------------------
// Topology: cgroups and disks
// ---------------------------------------------------------------------------------------

void cg_rmdir(World& w, Role& r, uint64_t x) {
  const int n = w.f.cgroups;
  const int start = static_cast<int>(x % static_cast<uint64_t>(n));
  for (int i = 0; i < n; ++i) {
    std::atomic<uint64_t>& slot = w.cg_slot[(start + i) % n];
    uint64_t code = slot.load(std::memory_order_relaxed);
    if (code == 0 || code == kSlotBusy) continue;
    // Claim: only the claimer removes it. acquire: pairs with the release store that
    // published the slot, so the creator's last look at the cgroup (cg_mkdir reads its
    // id) happens before this removal and the free that may follow.
    if (!slot.compare_exchange_strong(code, kSlotBusy, std::memory_order_acquire,
                                      std::memory_order_relaxed))
      continue;
    blk::blkcg* css = w.h->get_io_css(code_path(code));
    if (css == nullptr) {
      violation(w, "cgroup-vanished", r.name + ": claimed cgroup " + code_path(code) + " is gone");
      slot.store(0, std::memory_order_relaxed);
      return;
    }
    const int err = w.h->rmdir(css->cgroup);
    blk::css_put(css);
    if (err == 0) {
      slot.store(0, std::memory_order_relaxed);
    } else {
      slot.store(code, std::memory_order_release);  // -EBUSY: it has children (as above)
      if (err != -EBUSY)
        violation(w, "rmdir-errno", r.name + ": rmdir " + code_path(code) + " returned " +
                                        std::to_string(err));
    }
    return;
  }
}

void cg_mkdir(World& w, Role& r, uint64_t x) {
  const int n = w.f.cgroups;
  const int start = static_cast<int>(x % static_cast<uint64_t>(n));
  std::atomic<uint64_t>* slot = nullptr;
  for (int i = 0; i < n && slot == nullptr; ++i) {
    std::atomic<uint64_t>& s = w.cg_slot[(start + i) % n];
    uint64_t zero = 0;
    if (s.compare_exchange_strong(zero, kSlotBusy, std::memory_order_relaxed)) slot = &s;
  }
  if (slot == nullptr) return cg_rmdir(w, r, x);  // full
  uint64_t pcode = pick_cgroup(w, x >> 16, 4);
  if (code_depth(pcode) >= w.f.depth) pcode = 0;
  uint64_t name = w.next_cg_name.fetch_add(1, std::memory_order_relaxed);
  if (name > kNameMask) {
    w.names_wrapped.store(true, std::memory_order_relaxed);
    name = 1 + name % (kNameMask - 1);
  }
  blk::blkcg* pcss = w.h->get_io_css(code_path(pcode));
  if (pcss == nullptr) {  // the parent was removed meanwhile
    slot->store(0, std::memory_order_relaxed);
    return;
  }
  blk::cgroup* out = nullptr;
  const int err = w.h->mkdir(pcss->cgroup, "c" + std::to_string(name), &out);
  const int parent_id = pcss->cgroup->id;
  blk::css_put(pcss);
  if (err == 0) {
    r.cg.made.emplace_back(out->id, parent_id);
    // release: our read of out->id happens before whoever claims the slot removes it.
    slot->store(code_child(pcode, name), std::memory_order_release);
    return;
  }
  slot->store(0, std::memory_order_relaxed);
  const bool ok = err == -ENOENT || (err == -ENOMEM && w.faults()) ||
                  (err == -EEXIST && w.names_wrapped.load(std::memory_order_relaxed));
  if (err == -ENOMEM) count(r, kEvEnomem);
  if (!ok)
    violation(w, "mkdir-errno", r.name + ": mkdir under " + code_path(pcode) + " returned " +
                                    std::to_string(err));
}

// Tasks are pids kFirstPid.. kFirstPid + kPids - 1; a cgroup holding one cannot be removed
// (-EBUSY) until the task moves on.
constexpr int kFirstPid = 100, kPids = 16;

// cgroup.procs write: moves a task into a random cgroup (or back to the root).
void cg_attach(World& w, Role& r, uint64_t x) {
  const uint64_t code = pick_cgroup(w, x, 3);
  const std::string data = std::to_string(kFirstPid + static_cast<int>((x >> 40) % kPids)) + "\n";
  const long got = blk::cgroup_file_write(*w.h, file_path(code, "cgroup.procs"), data);
  // -ENOENT: no such cgroup any more; -ENODEV: removed between lookup and attach.
  if (got != static_cast<long>(data.size()) && got != -ENOENT && got != -ENODEV)
    violation(w, "attach-errno", r.name + ": cgroup.procs write to " + code_path(code) +
                                     " returned " + std::to_string(got));
}

void run_cgchurn(World& w, Role& r, uint64_t x) {
  const uint64_t c = (x >> 32) % 100;
  if (c < 10)
    cg_attach(w, r, x);
  else if (c < 60)
    cg_mkdir(w, r, x);
  else
    cg_rmdir(w, r, x);
  r.ops.fetch_add(1, std::memory_order_relaxed);
}

void run_diskchurn(World& w, Role& r, uint64_t x) {
  DiskChurnState& s = r.dc;
  int live = 0, deleted = 0, free_slot = -1;
  for (const OwnedDisk& d : s.owned) (d.live ? live : deleted)++;
  for (int i = 0; i < w.f.disks && free_slot < 0; ++i)
    if (w.disk_slot[s.slot_base + i].load(std::memory_order_relaxed) == 0) free_slot = s.slot_base + i;
  const uint64_t c = (x >> 8) % 16;
  if (deleted > 0 && (c < 3 || deleted > 2)) {
    // The owner's release of a deleted disk (the last reference may be a submitter's).
    for (size_t i = 0; i < s.owned.size(); ++i) {
      if (s.owned[i].live) continue;
      blk::put_disk(s.owned[i].disk);
      s.owned.erase(s.owned.begin() + static_cast<long>(i));
      break;
    }
  } else if (free_slot >= 0 && (c < 9 || live == 0)) {
    const uint32_t num = w.next_disk_num.fetch_add(1, std::memory_order_relaxed);
    if (c == 8) {
      // A disk released without ever being added.
      blk::gendisk* d = blk::alloc_disk(static_cast<int>(kMajor), static_cast<int>(minor_of(num)),
                                        queue_id_for(w, num));
      if (d) blk::disk_release(d);
      else if (!w.faults()) violation(w, "alloc-disk", "alloc_disk failed without fault injection");
    } else {
      int err;
      blk::gendisk* d = make_disk(w, num, x >> 12, &err);
      if (d == nullptr) {
        count(r, kEvEnomem);
        if (!w.faults()) violation(w, "add-disk", "add_disk failed: " + std::to_string(err));
      } else {
        if ((x >> 40) % 4 == 0) blk::add_partition(d, 1);  // io.max must refuse it (-ENODEV)
        s.owned.push_back({d, num, free_slot, true});
        w.disk_slot[free_slot].store(num, std::memory_order_relaxed);
      }
    }
  } else if (live > 0) {
    // Delete a live disk; release it now or on a later operation.
    int k = static_cast<int>((x >> 20) % static_cast<uint64_t>(live));
    for (size_t i = 0; i < s.owned.size(); ++i) {
      OwnedDisk& d = s.owned[i];
      if (!d.live || k-- > 0) continue;
      w.disk_slot[d.slot].store(0, std::memory_order_relaxed);
      blk::del_gendisk(d.disk);
      d.live = false;
      d.slot = -1;
      if ((x >> 30) & 1) {
        blk::put_disk(d.disk);
        s.owned.erase(s.owned.begin() + static_cast<long>(i));
      }
      break;
    }
  }
  r.ops.fetch_add(1, std::memory_order_relaxed);
}

// ---------------------------------------------------------------------------------------
// io.max (and the v1 limit files), policy toggles, reset_stats
// ---------------------------------------------------------------------------------------

std::string iomax_token(uint64_t& rng) {
  static const char* const keys[] = {"rbps", "wbps", "riops", "wiops"};
  static const char* const bps[] = {"262144", "1048576", "4194304", "16777216", "67108864"};
  static const char* const iops[] = {"50", "200", "1000", "5000"};
  const uint64_t x = xorshift(rng);
  const int k = static_cast<int>(x % 4);
  const std::string key = keys[k];
  const std::string good = k < 2 ? bps[(x >> 4) % 5] : iops[(x >> 4) % 4];
  switch ((x >> 8) % 20) {
    case 10:
    case 11:
    case 12: return key + "=max";
    case 13: return key + "=0";                       // -ERANGE
    case 14: return "foo=" + good;                    // -EINVAL: unknown key
    case 15: return key;                              // -EINVAL: no '='
    case 16: return key + "=-1";                      // -EINVAL: a sign is no number
    case 17: return key + "=99999999999999999999999";  // wraps modulo 2^64 (scanf's way)
    case 18: return key + "=" + good + "junk";        // digits then junk: the digits count
    case 19: return key + "=000000000000000000000" + good;  // > 26 chars: split by %26s
    default: return key + "=" + good;
  }
}

void run_iomax_v2(World& w, Role& r, uint64_t x) {
  const uint64_t code = pick_cgroup(w, x, 16);
  // The device: a live disk, one that never existed, a partition, or garbage.
  std::string dev;
  bool known_absent = false;
  const uint64_t d = (x >> 8) % 20;
  const uint32_t num = pick_disk(w, x >> 16);
  if (d < 15 && num != 0) {
    dev = dev_of(num);
  } else if (d < 17) {
    // Disk numbers are never reused: one past every number handed out so far.
    dev = dev_of(w.next_disk_num.load(std::memory_order_relaxed) + 1000);
    known_absent = true;
  } else if (d < 18 && num != 0) {
    dev = std::to_string(kMajor) + ":" + std::to_string(minor_of(num) + 1);  // partition
    known_absent = true;
  } else {
    static const char* const junk[] = {"8-16", "x:y", "8:", ":16", "8:16x"};
    dev = junk[(x >> 24) % 5];
  }
  std::string input = dev;
  const int ntok = 1 + static_cast<int>((x >> 28) % 3);
  for (int i = 0; i < ntok; ++i) input += " " + iomax_token(r.rng);
  if ((x >> 32) % 4 == 0) input += "\n";
  const oracle::IomaxParse p = oracle::iomax_parse(input);
  const long got = blk::cgroup_file_write(*w.h, file_path(code, "io.max"), input);
  bool ok;
  if (got == -ENOENT) ok = true;  // root (no io.max) or removed meanwhile
  else if (got == -ENOMEM) ok = w.faults();
  else if (!p.dev_ok) ok = got == -EINVAL;
  else if (got == -ENODEV) ok = true;  // gone meanwhile, never existed, or a partition
  else if (known_absent) ok = false;
  else if (p.err != 0) ok = got == -p.err;
  else ok = got == static_cast<long>(input.size());
  if (got == -ENOMEM) count(r, kEvEnomem);
  if (!ok)
    violation(w, "iomax-errno", r.name + ": io.max write '" + input + "' to " + code_path(code) +
                                    " returned " + std::to_string(got));
}

void run_iomax_v1(World& w, Role& r, uint64_t x) {
  static const char* const files[] = {
      "blkio.throttle.read_bps_device", "blkio.throttle.write_bps_device",
      "blkio.throttle.read_iops_device", "blkio.throttle.write_iops_device"};
  const int which = static_cast<int>((x >> 4) % 4);
  const uint64_t code = pick_cgroup(w, x, 8);
  const uint32_t num = pick_disk(w, x >> 16);
  std::string input = num ? dev_of(num) : dev_of(w.next_disk_num.load(std::memory_order_relaxed) + 1000);
  static const char* const bps[] = {"0", "262144", "1048576", "16777216"};
  static const char* const iops[] = {"0", "50", "1000", "5000"};
  const uint64_t v = (x >> 12) % 12;
  bool garbage = false;
  if (v < 10) {
    input += std::string(" ") + (which < 2 ? bps[v % 4] : iops[v % 4]);
  } else {
    input += v == 10 ? " abc" : "";  // no number, or no value at all
    garbage = true;
  }
  const long got = blk::cgroup_file_write(*w.h, file_path(code, files[which]), input);
  bool ok;
  if (got == -ENOENT || got == -ENODEV) ok = true;
  else if (got == -ENOMEM) ok = w.faults();
  else if (garbage) ok = got == -EINVAL;
  else ok = got == static_cast<long>(input.size());
  if (!ok)
    violation(w, "v1-conf-errno", r.name + ": " + files[which] + " write '" + input + "' returned " +
                                      std::to_string(got));
}

void run_iomax(World& w, Role& r, uint64_t x) {
  if (w.dfl)
    run_iomax_v2(w, r, x);
  else
    run_iomax_v1(w, r, x);
  r.ops.fetch_add(1, std::memory_order_relaxed);
}

void run_toggler(World& w, Role& r, uint64_t x) {
  const uint32_t num = pick_disk(w, x);
  blk::gendisk* d = num ? blk::blkdev_get_no_open(kMajor, minor_of(num)) : nullptr;
  if (d != nullptr) {
    blk::request_queue* q = d->queue;
    if ((x >> 8) % 2 == 0) {
      const int err = blk::blkcg_activate_policy(q, blk::testpol());
      if (err == -ENOMEM) count(r, kEvEnomem);
      if (err != 0 && !(err == -ENOMEM && w.faults()))
        violation(w, "activate-errno", r.name + ": blkcg_activate_policy returned " + std::to_string(err));
      // With one toggler nobody else deactivates it, and we hold the disk: still active.
      if (err == 0 && w.f.togglers == 1 && !blk::blkcg_policy_enabled(q, blk::testpol()))
        violation(w, "activate-lost", r.name + ": policy not enabled after a successful activation");
    } else {
      blk::blkcg_deactivate_policy(q, blk::testpol());
      if (w.f.togglers == 1 && blk::blkcg_policy_enabled(q, blk::testpol()))
        violation(w, "deactivate-lost", r.name + ": policy still enabled after deactivation");
    }
    blk::put_disk(d);
  } else {
    count(r, kEvMiss);
  }
  r.ops.fetch_add(1, std::memory_order_relaxed);
}

void run_resetter(World& w, Role& r, uint64_t x) {
  const uint64_t code = pick_cgroup(w, x, 4);
  const bool garbage = (x >> 8) % 8 == 0;
  const std::string data = garbage ? "reset" : std::to_string((x >> 12) % 3) + "\n";
  const long got = blk::cgroup_file_write(*w.h, file_path(code, "blkio.reset_stats"), data);
  const bool ok = got == -ENOENT || (garbage ? got == -EINVAL : got == static_cast<long>(data.size()));
  if (!ok)
    violation(w, "reset-errno", r.name + ": blkio.reset_stats write returned " + std::to_string(got));
  r.ops.fetch_add(1, std::memory_order_relaxed);
}

// ---------------------------------------------------------------------------------------
// Timers and work
// ---------------------------------------------------------------------------------------

void run_clock(World& w, Role& r, uint64_t x) {
  {
    std::lock_guard<std::mutex> g(w.clock_mu);
    kern::advance_jiffies(1 + x % 4);  // fires due timers in softirq on their CPUs
  }
  if ((x >> 8) % 16 == 0) kern::rcu_process_callbacks();
  r.ops.fetch_add(1, std::memory_order_relaxed);
  // Let the IO roles run between ticks: on a small machine a spinning clock would starve
  // them, and virtual time needs no hurry.
  std::this_thread::sleep_for(std::chrono::microseconds(20));
}

// The RCU softirq, and the work of a machine without kernel worker threads (where a
// run_pending_work that keeps finding new work is still progress).
void run_worker(World& w, Role& r, uint64_t x) {
  // A poll of the grace period finds some CPU in a read section more often than not on a
  // busy machine, so callbacks can pile up; past a backlog, wait for a grace period (what
  // the kernel's RCU does under callback pressure) so memory stays bounded.
  if (kern::rcu_pending_callbacks() > 4096) kern::rcu_barrier();
  const int cbs = kern::rcu_process_callbacks();
  const int items = w.f.kworkers == 0 ? kern::run_pending_work() : 0;
  r.ops.fetch_add(1, std::memory_order_relaxed);
  if (cbs == 0 && items == 0) std::this_thread::sleep_for(std::chrono::microseconds(100));
}

// ---------------------------------------------------------------------------------------
// The role loop and the quiesce barrier
// ---------------------------------------------------------------------------------------

void role_main(World& w, Role& r) {
  kern::TaskScope scope(r.name, r.cpu);
  uint64_t parked_epoch = 0, ticks = 0;
  while (!w.stop.load(std::memory_order_relaxed)) {
    // acquire: pairs with main's release store that ends a quiesce (its oracle's writes to
    // shared state, e.g. cleared accounting tables, happen before our next operation).
    const uint64_t e = w.pause_epoch.load(std::memory_order_acquire);
    if ((e & 1) && e != parked_epoch) {
      parked_epoch = e;
      // release: everything this role did happens before main's acquire load of parked_at.
      r.parked_at.store(e, std::memory_order_release);
      while (w.pause_epoch.load(std::memory_order_acquire) == e &&
             !w.stop.load(std::memory_order_relaxed))
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      continue;
    }
    const uint64_t x = xorshift(r.rng);
    // The RCU softirq of this CPU's tick: callbacks (blkg and css releases) run wherever
    // roles run, as they do on every CPU of a real machine, and never pile up behind one
    // busy worker role.
    if (++ticks % 32 == 0) kern::rcu_process_callbacks();
    const auto t0 = std::chrono::steady_clock::now();
    switch (r.kind) {
      case kSubmitter: run_submitter(w, r, x); break;
      case kFlusher: run_flusher(w, r, x); break;
      case kReader: run_reader(w, r, x); break;
      case kCgChurn: run_cgchurn(w, r, x); break;
      case kDiskChurn: run_diskchurn(w, r, x); break;
      case kIoMax: run_iomax(w, r, x); break;
      case kToggler: run_toggler(w, r, x); break;
      case kResetter: run_resetter(w, r, x); break;
      case kClock: run_clock(w, r, x); break;
      case kWorker: run_worker(w, r, x); break;
      default: break;
    }
    const uint64_t us = static_cast<uint64_t>(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    if (us > r.max_op_us.load(std::memory_order_relaxed))
      r.max_op_us.store(us, std::memory_order_relaxed);
    int delay = 0;
    switch (r.kind) {
      case kDiskChurn: delay = w.f.disk_delay_us; break;
      case kCgChurn:
      case kIoMax:
      case kToggler:
      case kResetter: delay = w.f.churn_delay_us; break;
      case kFlusher:
      case kReader: delay = w.f.read_delay_us; break;
      default: break;
    }
    if (delay) std::this_thread::sleep_for(std::chrono::microseconds(delay));
    // Backpressure: a topology or configuration role waits while the kernel's workers are
    // far behind (free work of released blkgs and cgroups), as a real machine's reclaim
    // would slow it down, so memory stays bounded however short the pauses are.
    const bool topology = r.kind == kCgChurn || r.kind == kDiskChurn || r.kind == kIoMax ||
                          r.kind == kToggler || r.kind == kResetter;
    if (topology)
      while (kern::nr_pending_work() > 4096 && !w.stop.load(std::memory_order_relaxed) &&
             !(w.pause_epoch.load(std::memory_order_relaxed) & 1))
        std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

// Runs queued work until the block layer's queues are empty and nothing runs. Process
// context (main).
void settle_work() {
  for (int i = 0; i < 1000; ++i) {
    kern::flush_all_workqueues();  // a running item (a run work mid-dispatch) too
    if (kern::nr_pending_work() == 0) return;
    kern::run_pending_work();
  }
}


}  // namespace
