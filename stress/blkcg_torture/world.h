// SPDX-License-Identifier: MIT
// blkcg_torture, part: The shared state: accounting by the on_account hook, per-role state, the World.
// Included by stress/blkcg_torture.cc only (after its includes), inside its unnamed
// namespace's translation unit.
#pragma once

namespace {

// ---------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------

uint64_t xorshift(uint64_t& s) {
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return s;
}

long rss_kb() {
  FILE* fp = std::fopen("/proc/self/status", "r");
  if (!fp) return -1;
  char line[256];
  long kb = -1;
  while (std::fgets(line, sizeof line, fp))
    if (std::sscanf(line, "VmRSS: %ld kB", &kb) == 1) break;
  std::fclose(fp);
  return kb;
}

// Cgroup paths as 63-bit codes: up to three levels, each a 21-bit name number n ("c<n>"),
// the top level in the low bits. 0 is the root. kSlotBusy marks a slot being changed.
constexpr int kNameBits = 21;
constexpr uint64_t kNameMask = (uint64_t{1} << kNameBits) - 1;
constexpr uint64_t kSlotBusy = UINT64_MAX;

int code_depth(uint64_t code) {
  int d = 0;
  while (d < 3 && ((code >> (kNameBits * d)) & kNameMask) != 0) ++d;
  return d;
}
uint64_t code_child(uint64_t parent, uint64_t n) { return parent | (n << (kNameBits * code_depth(parent))); }
std::string code_path(uint64_t code) {
  if (code == 0) return "/";
  std::string p;
  for (int l = 0; l < 3; ++l) {
    const uint64_t n = (code >> (kNameBits * l)) & kNameMask;
    if (n == 0) break;
    p += "/c" + std::to_string(n);
  }
  return p;
}
std::string file_path(uint64_t code, const char* file) {
  return code == 0 ? std::string("/") + file : code_path(code) + "/" + file;
}

constexpr unsigned kMajor = 8;
unsigned minor_of(uint32_t num) { return 16u * num; }
std::string dev_of(uint32_t num) { return std::to_string(kMajor) + ":" + std::to_string(minor_of(num)); }

// ---------------------------------------------------------------------------------------
// Accounting: what blk_cgroup_bio_start accounted, per (cgroup id, disk number), from the
// disks' on_account hook. The hook runs in whatever thread accounts a bio (submitters,
// kernel workers, the main thread while it drains), in any context, so every thread adds
// to a table of its own: no lock and no ordering on the hot path. The main thread reads
// and clears them only at a quiesce point, when every thread that can account is parked or
// idle (the barrier and the work queue flushes order those accesses).
// ---------------------------------------------------------------------------------------

struct IoCounts {
  uint64_t bytes[3] = {}, ios[3] = {};
  IoCounts& operator+=(const IoCounts& o) {
    for (int i = 0; i < 3; ++i) bytes[i] += o.bytes[i], ios[i] += o.ios[i];
    return *this;
  }
  bool operator==(const IoCounts&) const = default;
};

// Key: (cgroup id + 1) << 32 | disk number; cgroup id -1 (stored as 0) is a bio without a
// blkg.
uint64_t acct_key(int cgid, uint32_t num) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(cgid + 1)) << 32) | num;
}
int key_cgid(uint64_t k) { return static_cast<int>(k >> 32) - 1; }
uint32_t key_num(uint64_t k) { return static_cast<uint32_t>(k); }

struct AcctTable {
  std::unordered_map<uint64_t, IoCounts> by_key;
};

// Registration of the per-thread tables: taken once per thread (its first accounted bio)
// and by the main thread at quiesce points.
std::mutex acct_registry_mu;
std::vector<AcctTable*>& acct_registry() {
  static auto* v = new std::vector<AcctTable*>();
  return *v;
}
thread_local AcctTable* tls_acct = nullptr;

AcctTable& my_acct() {
  if (tls_acct == nullptr) {
    tls_acct = new AcctTable();
    std::lock_guard<std::mutex> g(acct_registry_mu);
    acct_registry().push_back(tls_acct);
  }
  return *tls_acct;
}

void on_account_hook(uint32_t num, blk::bio* b, bool first_piece) {
  // The cgroup is pinned by the bio's blkg (a css reference); its id never changes.
  const int cgid = b->bi_blkg ? b->bi_blkg->blkcg->cgroup->id : -1;
  const int t = b->op == blk::bio_op::kDiscard ? 2 : b->op == blk::bio_op::kWrite ? 1 : 0;
  IoCounts& c = my_acct().by_key[acct_key(cgid, num)];
  if (first_piece) c.bytes[t] += b->size;
  c.ios[t] += 1;
}

// ---------------------------------------------------------------------------------------
// World and roles
// ---------------------------------------------------------------------------------------

enum Kind {
  kSubmitter,
  kFlusher,
  kReader,
  kCgChurn,
  kDiskChurn,
  kIoMax,
  kToggler,
  kResetter,
  kClock,
  kWorker,
  kKinds
};
const char* const kKindNames[kKinds] = {"submitter", "flusher", "reader", "cgchurn",
                                        "diskchurn", "iomax",   "toggler", "resetter",
                                        "clock",     "worker"};
const char* const kKindShort[kKinds] = {"sub", "fl", "rd", "cg", "dk", "mx", "pol", "rs", "clk", "wk"};

// One bio a submitter waits for.
struct BioRec {
  blk::bio* b = nullptr;      // the original bio: valid while in_use and not done
  bool in_use = false;        // submitter-owned state
  bool expect_eio = false;    // the submitter completed it itself with -EIO
  // Set by the completion after it dropped the bio (release: `status` and everything the
  // completion did are visible to the submitter's acquire load).
  std::atomic<bool> done{false};
  int status = 0;
};

struct SubmitterState {
  blk::gendisk* disk = nullptr;  // held with a disk reference while a session lasts
  uint32_t num = 0;
  int ops_left = 0;
  int outstanding = 0;
  std::unique_ptr<BioRec[]> recs;  // --window of them; completions point into it
};

struct OwnedDisk {
  blk::gendisk* disk;
  uint32_t num;
  int slot;   // published slot while live, -1 once deleted
  bool live;
};

struct DiskChurnState {
  int slot_base = 0;
  std::vector<OwnedDisk> owned;  // live and deleted-but-not-released disks it owns
};

struct CgChurnState {
  std::vector<std::pair<int, int>> made;  // (cgroup id, parent id) of every mkdir
};

struct ReaderState {
  // Last io.stat values seen per (path code, dev): they must never go down.
  std::map<std::pair<uint64_t, std::string>, std::vector<uint64_t>> last;
};

enum Event { kEvBios, kEvCompleted, kEvNowaitFail, kEvMiss, kEvEio, kEvEnomem, kEvEagain, kEvents };

struct Role {
  std::string name;
  Kind kind = kSubmitter;
  int cpu = 0;
  uint64_t rng = 1;
  std::atomic<uint64_t> ops{0};  // progress counter (relaxed: statistics and stall checks)
  std::atomic<uint64_t> ev[kEvents] = {};
  std::atomic<uint64_t> max_op_us{0};  // the slowest operation so far (relaxed: statistics)
  // The quiesce epoch this role is parked at (release store: everything the role did is
  // visible to the main thread's acquire load).
  std::atomic<uint64_t> parked_at{0};
  uint64_t last_seen = 0;
  int stalled_intervals = 0;
  SubmitterState sub;
  DiskChurnState dc;
  CgChurnState cg;
  ReaderState rd;
  std::thread th;
};

struct World {
  Flags f;
  bool dfl = true;
  std::unique_ptr<blk::cgroup_hierarchy> h;
  // Path codes of live cgroups (0: empty slot, kSlotBusy: being created or removed).
  // Readers load them relaxed: a hint, validated by get_io_css under cgroup_mutex. The
  // one ordering kept is creator -> remover of the same cgroup (release store at publish,
  // acquire CAS at claim): a cgroup cannot be removed by someone who never saw it made.
  std::atomic<uint64_t> cg_slot[kMaxCgroupSlots] = {};
  // Disk numbers of live disks (0: empty). Relaxed: a hint, validated by
  // blkdev_get_no_open under bdev_map_lock.
  std::atomic<uint32_t> disk_slot[kMaxDiskSlots] = {};
  int disk_slots = 0;
  std::atomic<uint64_t> next_cg_name{1};
  std::atomic<uint32_t> next_disk_num{1};
  std::atomic<bool> names_wrapped{false};
  std::vector<OwnedDisk> fixed;  // main-owned disks
  // Quiesce protocol: odd while a quiesce is requested. Roles load it (acquire) before every
  // operation; main stores it (release) to request and to end a quiesce.
  std::atomic<uint64_t> pause_epoch{0};
  std::atomic<bool> stop{false};
  std::atomic<long> violations{0};
  std::vector<std::unique_ptr<Role>> roles;
  // Accounting folded at quiesce points (main thread only), and every cgroup's parent.
  std::unordered_map<uint64_t, IoCounts> acct_base;
  std::unordered_map<int, int> parent_of;
  uint64_t quiesces = 0;
  uint64_t census_bios_max = 0;   // most bios (and pieces) the census found held
  uint64_t census_waited_total = 0, census_held_total = 0;
  uint64_t drain_jiffies_max = 0;
  // Clock roles serialise their advances among themselves: advance_jiffies is a single
  // advancer's operation (two would each compute a target from the same start and could
  // move time backwards). Only clock roles take it.
  std::mutex clock_mu;
  bool faults() const { return f.fault_permille != 0; }
};

void violation(World& w, const std::string& sig, const std::string& what) {
  w.violations.fetch_add(1, std::memory_order_relaxed);
  kern::kreport(kern::ReportKind::kOracle, "blkcg_torture:" + sig, what);
}

void count(Role& r, Event e, uint64_t n = 1) { r.ev[e].fetch_add(n, std::memory_order_relaxed); }

// A random live cgroup path code (0, the root, with probability 1/root_odds or when the
// table is empty).
uint64_t pick_cgroup(World& w, uint64_t x, int root_odds) {
  if (root_odds > 0 && x % static_cast<uint64_t>(root_odds) == 0) return 0;
  const int n = w.f.cgroups;
  const int start = static_cast<int>((x >> 8) % static_cast<uint64_t>(n));
  for (int i = 0; i < n; ++i) {
    const uint64_t c = w.cg_slot[(start + i) % n].load(std::memory_order_relaxed);
    if (c != 0 && c != kSlotBusy) return c;
  }
  return 0;
}

// A random published disk number, or 0.
uint32_t pick_disk(World& w, uint64_t x) {
  const int n = w.disk_slots;
  if (n == 0) return 0;
  const int start = static_cast<int>(x % static_cast<uint64_t>(n));
  for (int i = 0; i < n; ++i) {
    const uint32_t num = w.disk_slot[(start + i) % n].load(std::memory_order_relaxed);
    if (num != 0) return num;
  }
  return 0;
}

// Queue ids key blkcg->blkg_tree (a radix tree of limited range): unique among live queues.
// The fixed disks (numbers 1..fixed, made first) keep theirs; churned disks cycle through
// the rest of the range, which outlasts any churned queue by far.
int queue_id_for(const World& w, uint32_t num) {
  const uint64_t fixed = static_cast<uint64_t>(w.f.fixed_disks);
  if (num <= fixed) return static_cast<int>(num);
  const uint64_t range = kern::radix_tree::kMaxIndex - fixed;
  return static_cast<int>(fixed + 1 + (num - fixed - 1) % range);
}

// Allocates and adds a disk with random device behaviour (latency, max_io_bytes, a request
// pool) and the
// accounting hook. nullptr if allocation or add_disk failed (then it was released).
blk::gendisk* make_disk(World& w, uint32_t num, uint64_t x, int* err) {
  *err = 0;
  blk::gendisk* d = blk::alloc_disk(static_cast<int>(kMajor), static_cast<int>(minor_of(num)),
                                    queue_id_for(w, num));
  if (d == nullptr) {
    *err = -ENOMEM;
    return nullptr;
  }
  static const uint64_t latencies[] = {0, 0, 1, 2, 3};
  static const uint64_t max_ios[] = {0, 0, 4096, 16384};
  d->latency = latencies[(x >> 3) % 5];
  d->max_io_bytes = max_ios[(x >> 6) % 4];
  // A request pool in front of the device on two disks in five (blk_core.h): submitters
  // wait for kblockd's run work, softirq submitters may get -EAGAIN.
  static const unsigned pools[] = {0, 0, 0, 1, 4};
  d->nr_requests = pools[(x >> 9) % 5];
  // Set before add_disk publishes the disk (bdev_map_lock orders it for every user).
  d->on_account = [num](blk::bio* b, bool first) { on_account_hook(num, b, first); };
  *err = blk::add_disk(d);
  if (*err != 0) {
    blk::disk_release(d);
    return nullptr;
  }
  return d;
}


}  // namespace
