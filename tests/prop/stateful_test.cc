// SPDX-License-Identifier: MIT
// Stateful properties of the whole stack: random sequences of the operation language
// (impl/scenario/op.h) run against a scenario::World, with a model of what the sequence
// has built so far deciding which operations are meaningful next and what some of them
// must return.
//
// What is checked, and why:
//   1. After every operation, no report: the World runs impl/ with impl/oracle's reference
//      model beside it and reports any disagreement (io.stat, io.max, the tree), any
//      checker firing (lockdep, refcounts, the self-checking test policy's pd lifecycle,
//      the throttle's structure), through the report sink, which is recording here.
//   2. Where this file's model can predict a result without the oracle, the operation
//      carries it as an expectation ("mkdir /a => 0", "rmdir /a => -EBUSY", "read
//      /a/cgroup.procs => \"1\n\"", a malformed io.max write => -EINVAL or -ERANGE...),
//      so a wrong answer is a failure even where the oracle has nothing to say. The model
//      is deliberately small and independent: paths alive, tasks per cgroup, disks and
//      their lifecycle state, partitions, bios (owned, chained, submitted), the test
//      policy's registration and activation, and io.max limits (predicted read text when
//      it is a single line, whose order cannot matter).
//   3. At the end of the sequence, World::quiesce(): every disk deleted and drained, every
//      bio completed, io.stat of every live cgroup against the oracle (stats conservation
//      up the tree), then the teardown's leak, timer and work checks.
// Fault injection (fault_nth, fault_site, fault_prob) makes allocation failures legal;
// once a sequence has configured any, the model stops predicting results (it keeps the
// optimistic state to generate meaningful operations) and only 1 and 3 remain.
//
// Each rapidcheck command is one operation kind and prints itself as its line in the text
// form (scenario::op_to_text), so a failing case, after shrinking, prints as a scenario
// that can be pasted into a .scn file and replayed with scenario_tool run. The failure
// message repeats the lines that ran and the reports recorded.
//
// Preconditions keep shrunk sequences meaningful: a command is kept only where its
// structural precondition holds (rmdir of an existing cgroup, submit of a bio the scenario
// owns, partition of a bound disk...) and, if it carries an expectation, only where the
// model still predicts that same result.
//
// Proof that the property can fail: the same property with a historical bug planted
// (impl/block/busted.h) must find a counterexample and shrink it to a short scenario:
// activate_dying_blkg (a pd attached to a destroyed blkg is freed while online: the test
// policy's report) and no_parent_requeue (the flush loses the grandparent's update: the
// oracle's stats conservation at quiesce). Only failures that the planted bug causes
// count there: a failing sequence must pass with the flag cleared.
//
// The property is rc::state::check spelled out (gen::commands, then runAll on a fresh
// World) so that a failing sequence can be run again without the planted bug; a failure
// is recorded where it happens and reported once the sequence has stopped, with the lines
// that ran (the rest of the sequence does nothing).
//
// Not covered here: legacy_hierarchy (a v1 world, the first operation only) and the
// concurrent scenarios (parallel_test.cc drives concurrency directly).
//
// Seeds are fixed (see prop_check.h for RC_PARAMS, to explore further or to replay).
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/state.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <initializer_list>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "impl/block/busted.h"
#include "impl/kern/report.h"
#include "impl/scenario/exec.h"
#include "impl/scenario/text.h"
#include "tests/prop/prop_check.h"

namespace scenario {
namespace {

// ---------------------------------------------------------------------------------------
// The model.

constexpr int kMaxDisks = 4;        // bound at once
constexpr int kMaxDiskHandles = 8;  // ever, per sequence
constexpr int kMaxBios = 24;        // bound at once
constexpr int kMaxDepth = 3;        // cgroup nesting below the root

struct DiskM {
  unsigned major = 8, minor = 0;
  int state = 0;  // 0 allocated, 1 live (added), 2 deleted
  std::set<int> parts;
  bool pol_active = false;
  std::string dev() const { return std::to_string(major) + ":" + std::to_string(minor); }
};

struct BioM {
  int disk = -1;
  uint64_t size = 0;
  bool owned = true;     // bound and neither submitted nor completed
  bool chained = false;  // a split piece
};

// rbps, wbps, riops, wiops; 0 stands for "max".
using Limits = std::array<uint64_t, 4>;

struct Model {
  std::set<std::string> paths{"/"};
  std::map<int, std::string> procs;                      // pid -> cgroup
  std::map<int, DiskM> disks;                            // bound disk handles
  std::map<int, BioM> bios;                              // bound bio handles
  std::map<std::pair<std::string, int>, Limits> limits;  // (cgroup, disk handle)
  int next_disk = 0;
  int next_bio = 0;
  bool registered = false;
  // Fault injection was configured at some point: results may differ from the optimistic
  // state kept here, so nothing is predicted any more.
  bool unsure = false;

  bool alive(const std::string& p) const { return paths.count(p) != 0; }
  bool has_children(const std::string& p) const {
    const std::string pre = p == "/" ? "/" : p + "/";
    for (const std::string& q : paths)
      if (q != p && q.compare(0, pre.size(), pre) == 0) return true;
    return false;
  }
  bool has_procs(const std::string& p) const {
    for (const auto& [pid, cg] : procs)
      if (cg == p) return true;
    return false;
  }
  std::vector<std::string> path_list(bool with_root) const {
    std::vector<std::string> v;
    for (const std::string& p : paths)
      if (with_root || p != "/") v.push_back(p);
    return v;
  }
  std::vector<int> disk_list() const {
    std::vector<int> v;
    for (const auto& [h, d] : disks) v.push_back(h);
    return v;
  }
  std::vector<int> owned_bios() const {
    std::vector<int> v;
    for (const auto& [h, b] : bios)
      if (b.owned) v.push_back(h);
    return v;
  }
  // A whole disk with this dev_t is live.
  int live_disk_with(unsigned major, unsigned minor) const {
    for (const auto& [h, d] : disks)
      if (d.state == 1 && d.major == major && d.minor == minor) return h;
    return -1;
  }
  // Another added (live or deleted, not released) disk holds the dev_t.
  bool dev_in_use(int self) const {
    const DiskM& me = disks.at(self);
    for (const auto& [h, d] : disks)
      if (h != self && d.state != 0 && d.major == me.major && d.minor == me.minor) return true;
    return false;
  }
  // Removing a cgroup forgets its limits (a cgroup made again under the path is new).
  void forget_limits_of(const std::string& p) {
    for (auto it = limits.begin(); it != limits.end();)
      it = it->first.first == p ? limits.erase(it) : std::next(it);
  }
  void forget_limits_of_disk(int h) {
    for (auto it = limits.begin(); it != limits.end();)
      it = it->first.second == h ? limits.erase(it) : std::next(it);
  }
};

int depth(const std::string& p) {
  if (p == "/") return 0;
  int n = 0;
  for (char c : p) n += c == '/';
  return n;
}

std::string child(const std::string& parent, const std::string& name) {
  return parent == "/" ? "/" + name : parent + "/" + name;
}

// True one time in `n`; shrinks to false (so a shrunk case keeps only the rare choices it
// needs).
bool rarely(int n) {
  return *rc::gen::inRange(0, n) == n - 1;
}

// The deepest of the paths half of the time (deep trees are where stats conservation and
// policy ordering matter), any of them otherwise.
std::string deep_or_any(const std::vector<std::string>& paths);

// One of the values, shrinking towards the first.
template <typename T>
T pick(std::initializer_list<T> values) {
  return *rc::gen::elementOf(std::vector<T>(values));
}

std::string deep_or_any(const std::vector<std::string>& paths) {
  int deepest = 0;
  for (const std::string& p : paths) deepest = std::max(deepest, depth(p));
  std::vector<std::string> deep;
  for (const std::string& p : paths)
    if (depth(p) == deepest) deep.push_back(p);
  return *rc::gen::elementOf(rarely(2) ? paths : deep);
}

Expect result(long v) {
  Expect e;
  e.kind = v < 0 ? Expect::kErrno : Expect::kValue;
  e.value = v;
  return e;
}
Expect text(std::string t) {
  Expect e;
  e.kind = Expect::kText;
  e.text = std::move(t);
  return e;
}
const Expect kUnknown{};

// ---------------------------------------------------------------------------------------
// The system under test: a World with the report sink recording, the lines run so far
// (the failure message prints them), and the first failure (the remaining commands of a
// failed sequence do nothing).

struct Sut {
  explicit Sut(kern::ReportCapture& c) : cap(c), world(std::make_unique<World>()) {}
  kern::ReportCapture& cap;
  std::unique_ptr<World> world;
  Scenario log;
  std::string failure;

  bool failed() const { return !failure.empty(); }
  void fail(const std::string& why) {
    if (!failed()) failure = why + "scenario (paste into a .scn file):\n" + to_text(log);
  }
  OpResult exec(const Op& op) {
    log.ops.push_back(op);
    const OpResult r = world->exec(op, static_cast<int>(log.ops.size() - 1));
    if (cap.size() != 0)
      fail("report after `" + op_to_text(op) + "` (got " + r.str() + "):\n" + cap.dump());
    return r;
  }
  // The deep checks, then the teardown's own.
  void finish() {
    if (failed()) return;
    world->quiesce();
    if (cap.size() != 0) return fail("report at quiesce:\n" + cap.dump());
    world.reset();
    if (cap.size() != 0) fail("report at teardown:\n" + cap.dump());
  }
};

// ---------------------------------------------------------------------------------------
// Commands. Each derived constructor draws the operation's arguments from the model state
// it is generated in and seals its expectation; checkPreconditions re-validates both in
// the state it is replayed in (after shrinking).

using CmdBase = rc::state::Command<Model, Sut>;

class OpCmd : public CmdBase {
 public:
  void checkPreconditions(const Model& s) const final {
    RC_PRE(valid(s));
    RC_PRE(expected(s) == op_.expect);
  }
  void apply(Model& s) const final { update(s); }
  void run(const Model& s, Sut& sut) const final {
    if (sut.failed()) return;
    const OpResult r = sut.exec(op_);
    if (wants_text(s) && !r.is_text)
      sut.fail("`" + op_to_text(op_) + "` returned " + r.str() + ", expected text\n");
  }
  void show(std::ostream& os) const final { os << op_to_text(op_); }

 protected:
  explicit OpCmd(OpKind k) { op_.kind = k; }
  // The structural precondition.
  virtual bool valid(const Model&) const { return true; }
  // The result the model predicts in state s (kNone: unknown).
  virtual Expect predict(const Model&) const { return kUnknown; }
  // The model's update (optimistic when unsure).
  virtual void update(Model&) const {}
  // A read that must succeed with text even where its text is not predicted.
  virtual bool wants_text(const Model&) const { return false; }

  Expect expected(const Model& s) const { return s.unsure ? kUnknown : predict(s); }
  void seal(const Model& s) {
    RC_PRE(valid(s));
    op_.expect = expected(s);
  }
  Op op_;
};

// --- cgroups

class Mkdir final : public OpCmd {
 public:
  explicit Mkdir(const Model& s) : OpCmd(OpKind::kMkdir) {
    std::vector<std::string> parents;
    for (const std::string& p : s.paths)
      if (depth(p) < kMaxDepth) parents.push_back(p);
    const std::string parent = deep_or_any(parents);
    op_.path = child(parent, pick<std::string>({"a", "b", "c"}));
    seal(s);
  }
  bool valid(const Model& s) const override {
    return s.alive(op_.path.substr(0, std::max<size_t>(1, op_.path.rfind('/'))));
  }
  Expect predict(const Model& s) const override { return result(s.alive(op_.path) ? -EEXIST : 0); }
  void update(Model& s) const override { s.paths.insert(op_.path); }
};

class Rmdir final : public OpCmd {
 public:
  explicit Rmdir(const Model& s) : OpCmd(OpKind::kRmdir) {
    std::vector<std::string> leaves, all = s.path_list(false);
    for (const std::string& p : all)
      if (!s.has_children(p) && !s.has_procs(p)) leaves.push_back(p);
    RC_PRE(!all.empty());
    // Mostly removable leaves; sometimes a busy cgroup (-EBUSY).
    op_.path = leaves.empty() || rarely(5) ? *rc::gen::elementOf(all) : *rc::gen::elementOf(leaves);
    seal(s);
  }
  bool valid(const Model& s) const override { return op_.path != "/" && s.alive(op_.path); }
  Expect predict(const Model& s) const override {
    return result(s.has_children(op_.path) || s.has_procs(op_.path) ? -EBUSY : 0);
  }
  void update(Model& s) const override {
    if (s.has_children(op_.path) || s.has_procs(op_.path)) return;
    s.paths.erase(op_.path);
    s.forget_limits_of(op_.path);
  }
};

class Attach final : public OpCmd {
 public:
  explicit Attach(const Model& s) : OpCmd(OpKind::kAttach) {
    op_.n = *rc::gen::inRange(1, 5);
    op_.path = *rc::gen::elementOf(s.path_list(true));
    seal(s);
  }
  bool valid(const Model& s) const override { return s.alive(op_.path); }
  Expect predict(const Model&) const override {
    return result(static_cast<long>(std::to_string(op_.n).size() + 1));  // "PID\n"
  }
  void update(Model& s) const override { s.procs[static_cast<int>(op_.n)] = op_.path; }
};

class Flush final : public OpCmd {
 public:
  explicit Flush(const Model& s) : OpCmd(OpKind::kFlush) {
    op_.path = rarely(10) ? "/gone" : *rc::gen::elementOf(s.path_list(true));
    seal(s);
  }
  Expect predict(const Model& s) const override { return result(s.alive(op_.path) ? 0 : -ENOENT); }
};

// --- disks

class DiskAlloc final : public OpCmd {
 public:
  explicit DiskAlloc(const Model& s) : OpCmd(OpKind::kDiskAlloc) {
    RC_PRE(static_cast<int>(s.disks.size()) < kMaxDisks && s.next_disk < kMaxDiskHandles);
    op_.a = s.next_disk;
    op_.m = 8;
    op_.n = *rc::gen::element<uint64_t>(16, 16, 0, 32);  // whole disks; partitions stay below 16
    op_.max_io = *rc::gen::element<uint64_t>(0, 0, 4096, 65536);
    op_.latency = *rc::gen::element<uint64_t>(0, 0, 5, 50);
    op_.nr_requests = *rc::gen::element<uint64_t>(0, 0, 0, 1, 4);  // a request pool
    seal(s);
  }
  bool valid(const Model& s) const override { return s.disks.count(op_.a) == 0; }
  Expect predict(const Model&) const override { return result(0); }
  void update(Model& s) const override {
    DiskM d;
    d.major = static_cast<unsigned>(op_.m);
    d.minor = static_cast<unsigned>(op_.n);
    s.disks[op_.a] = d;
    s.next_disk = std::max(s.next_disk, op_.a + 1);
  }
};

// The operations on a bound disk handle.
class DiskCmd : public OpCmd {
 protected:
  DiskCmd(OpKind k, const Model& s) : OpCmd(k) {
    RC_PRE(!s.disks.empty());
    op_.a = *rc::gen::elementOf(s.disk_list());
  }
  bool valid(const Model& s) const override { return s.disks.count(op_.a) != 0; }
  const DiskM& disk(const Model& s) const { return s.disks.at(op_.a); }
};

class DiskAdd final : public DiskCmd {
 public:
  explicit DiskAdd(const Model& s) : DiskCmd(OpKind::kDiskAdd, s) { seal(s); }
  Expect predict(const Model& s) const override {
    if (disk(s).state != 0) return result(-EINVAL);
    return result(s.dev_in_use(op_.a) ? -EEXIST : 0);
  }
  void update(Model& s) const override {
    if (disk(s).state == 0 && !s.dev_in_use(op_.a)) s.disks[op_.a].state = 1;
  }
};

class DiskDel final : public DiskCmd {
 public:
  explicit DiskDel(const Model& s) : DiskCmd(OpKind::kDiskDel, s) { seal(s); }
  Expect predict(const Model& s) const override { return result(disk(s).state == 1 ? 0 : -EINVAL); }
  void update(Model& s) const override {
    DiskM& d = s.disks[op_.a];
    if (d.state != 1) return;
    d.state = 2;
    d.parts.clear();
  }
};

class DiskRelease final : public DiskCmd {
 public:
  explicit DiskRelease(const Model& s) : DiskCmd(OpKind::kDiskRelease, s) { seal(s); }
  Expect predict(const Model&) const override { return result(0); }
  void update(Model& s) const override {
    // Bios the scenario still owns on the disk complete first.
    for (auto& [h, b] : s.bios)
      if (b.disk == op_.a) b.owned = false;
    s.disks.erase(op_.a);
    s.forget_limits_of_disk(op_.a);
  }
};

class Partition final : public DiskCmd {
 public:
  explicit Partition(const Model& s) : DiskCmd(OpKind::kPartition, s) {
    op_.n = *rc::gen::inRange(1, 4);
    seal(s);
  }
  Expect predict(const Model& s) const override {
    if (disk(s).state != 1) return result(-EINVAL);
    return result(disk(s).parts.count(static_cast<int>(op_.n)) ? -EEXIST : 0);
  }
  void update(Model& s) const override {
    if (disk(s).state == 1) s.disks[op_.a].parts.insert(static_cast<int>(op_.n));
  }
};

// --- cgroup files

// A device for a configuration write: mostly a bound disk's, sometimes one of its
// partitions, sometimes nothing at all.
void pick_dev(const Model& s, unsigned* major, unsigned* minor, int* handle) {
  *handle = -1;
  const int k = *rc::gen::inRange(0, 10);
  if (!s.disks.empty() && k < 8) {
    std::vector<int> live;
    for (const auto& [h, d] : s.disks)
      if (d.state == 1) live.push_back(h);
    *handle = *rc::gen::elementOf(live.empty() || k == 6 ? s.disk_list() : live);
    const DiskM& d = s.disks.at(*handle);
    *major = d.major;
    *minor = d.minor;
    if (k == 7) {  // a partition of it (ENODEV even when it exists)
      *minor += 1;
      *handle = -1;
    }
    return;
  }
  *major = 8;
  *minor = 48;  // never allocated
}

class WriteIoMax final : public OpCmd {
 public:
  explicit WriteIoMax(const Model& s) : OpCmd(OpKind::kWrite) {
    const std::vector<std::string> below = s.path_list(false);
    const std::string cg = below.empty() || rarely(12) ? "/" : *rc::gen::elementOf(below);
    op_.path = child(cg, "io.max");
    int handle;
    pick_dev(s, &major_, &minor_, &handle);
    static const char* const keys[] = {"rbps", "wbps", "riops", "wiops"};
    std::string data = std::to_string(major_) + ":" + std::to_string(minor_);
    bool any = false;
    for (int k = 0; k < 4; ++k) {
      if (*rc::gen::inRange(0, 3) != 0 && !(k == 3 && !any)) continue;
      any = true;
      const uint64_t v = k < 2 ? *rc::gen::element<uint64_t>(0, 512, 4096, 1 << 20)
                               : *rc::gen::element<uint64_t>(0, 1, 10, 1000);
      set_[k] = true;
      value_[k] = v;
      data += std::string(" ") + keys[k] + "=" + (v == 0 ? "max" : std::to_string(v));
    }
    if (rarely(4)) data += "\n";
    op_.data = data;
    seal(s);
  }
  bool valid(const Model& s) const override { return cg() == "/" || s.alive(cg()); }
  Expect predict(const Model& s) const override {
    if (cg() == "/") return result(-ENOENT);
    return result(s.live_disk_with(major_, minor_) >= 0 ? static_cast<long>(op_.data.size())
                                                        : -ENODEV);
  }
  void update(Model& s) const override {
    const int h = s.live_disk_with(major_, minor_);
    if (cg() == "/" || h < 0) return;
    Limits& l = s.limits[{cg(), h}];
    for (int k = 0; k < 4; ++k)
      if (set_[k]) l[k] = value_[k];
  }

 private:
  std::string cg() const {
    const std::string c = op_.path.substr(0, op_.path.rfind('/'));
    return c.empty() ? "/" : c;
  }
  unsigned major_ = 0, minor_ = 0;
  bool set_[4] = {};
  uint64_t value_[4] = {};
};

// Writes the kernel refuses: malformed io.max lines (each with the errno the kernel's
// parser gives), read-only and missing files, bad pids.
class WriteBad final : public OpCmd {
 public:
  explicit WriteBad(const Model& s) : OpCmd(OpKind::kWrite) {
    struct Bad {
      const char* file;
      const char* data;  // "%d" stands for MAJ:MIN
      int err;
      bool needs_dev;  // the errno comes after the device lookup (ENODEV first)
    };
    static const Bad kBad[] = {
        {"io.max", "%d", EINVAL, false},           // no white space after MAJ:MIN
        {"io.max", "8-16 rbps=1", EINVAL, false},  // not MAJ:MIN
        {"io.max", "%d rbps", EINVAL, true},       // no '='
        {"io.max", "%d rbps=", EINVAL, true},      // empty value
        {"io.max", "%d rbps=abc", EINVAL, true},   // not a number
        {"io.max", "%d wbps=-1", EINVAL, true},    // no sign
        {"io.max", "%d foo=1", EINVAL, true},      // unknown key
        {"io.max", "%d rbps=0", ERANGE, true},     // 0 is not a limit
        {"io.max", "%d rbps=1 wiops=0", ERANGE, true},
        {"io.max", "%d riops=1234567890123456789012345", EINVAL, true},
        {"io.stat", "1", EINVAL, false},      // read-only
        {"io.weight", "100", ENOENT, false},  // no such file here
        {"cgroup.procs", "abc", EINVAL, false},
        {"cgroup.procs", "0", EINVAL, false},
    };
    const Bad& b = *rc::gen::elementOf(std::vector<Bad>(std::begin(kBad), std::end(kBad)));
    const std::string cg = *rc::gen::elementOf(s.path_list(true));
    op_.path = child(cg, b.file);
    int handle;
    pick_dev(s, &major_, &minor_, &handle);
    std::string data = b.data;
    if (const size_t at = data.find("%d"); at != std::string::npos)
      data.replace(at, 2, std::to_string(major_) + ":" + std::to_string(minor_));
    op_.data = data;
    err_ = b.err;
    needs_dev_ = b.needs_dev;
    is_iomax_ = std::string(b.file) == "io.max";
    seal(s);
  }
  bool valid(const Model& s) const override { return s.alive(cg()); }
  Expect predict(const Model& s) const override {
    if (is_iomax_ && cg() == "/") return result(-ENOENT);  // io.max is not on the root
    if (needs_dev_ && s.live_disk_with(major_, minor_) < 0) return result(-ENODEV);
    return result(-err_);
  }

 private:
  std::string cg() const {
    const std::string c = op_.path.substr(0, op_.path.rfind('/'));
    return c.empty() ? "/" : c;
  }
  unsigned major_ = 0, minor_ = 0;
  int err_ = 0;
  bool needs_dev_ = false, is_iomax_ = false;
};

std::string iomax_text(const Model& s, const std::string& cg, int* lines) {
  std::string out;
  *lines = 0;
  for (const auto& [key, l] : s.limits) {
    if (key.first != cg || !s.disks.count(key.second)) continue;
    if (l[0] == 0 && l[1] == 0 && l[2] == 0 && l[3] == 0) continue;
    auto v = [](uint64_t x) { return x == 0 ? std::string("max") : std::to_string(x); };
    out += s.disks.at(key.second).dev() + " rbps=" + v(l[0]) + " wbps=" + v(l[1]) +
           " riops=" + v(l[2]) + " wiops=" + v(l[3]) + "\n";
    ++*lines;
  }
  return out;
}

class Read final : public OpCmd {
 public:
  explicit Read(const Model& s) : OpCmd(OpKind::kRead) {
    const std::string cg = *rc::gen::elementOf(s.path_list(true));
    op_.path = child(cg, pick<std::string>({"io.stat", "io.stat", "io.max", "cgroup.procs"}));
    seal(s);
  }
  bool valid(const Model& s) const override { return s.alive(cg()); }
  Expect predict(const Model& s) const override {
    if (file() == "cgroup.procs") {
      std::string t;
      for (const auto& [pid, where] : s.procs)  // sorted by pid
        if (where == cg()) t += std::to_string(pid) + "\n";
      return text(t);
    }
    if (file() == "io.max") {
      if (cg() == "/") return result(-ENOENT);
      int lines;
      const std::string t = iomax_text(s, cg(), &lines);
      return lines <= 1 ? text(t) : kUnknown;  // the order of several lines is not ABI
    }
    return kUnknown;  // io.stat: the oracle checks the numbers
  }
  bool wants_text(const Model& s) const override {
    return !s.unsure && !(file() == "io.max" && cg() == "/");
  }

 private:
  std::string cg() const {
    const std::string c = op_.path.substr(0, op_.path.rfind('/'));
    return c.empty() ? "/" : c;
  }
  std::string file() const { return op_.path.substr(op_.path.rfind('/') + 1); }
};

// --- bios

class Bio final : public OpCmd {
 public:
  explicit Bio(const Model& s) : OpCmd(OpKind::kBio) {
    RC_PRE(!s.disks.empty() && static_cast<int>(s.bios.size()) < kMaxBios);
    op_.a = s.next_bio;
    op_.b = *rc::gen::elementOf(s.disk_list());
    op_.bio_op = pick({BioOp::kWrite, BioOp::kWrite, BioOp::kRead, BioOp::kDiscard});
    op_.n = *rc::gen::element<uint64_t>(512, 4096, 4096, 8192, 65536, 1 << 20);
    if (rarely(4))
      op_.flags =
          pick<unsigned>({kFlagMeta, kFlagSwap, kFlagSync, kFlagPunt, kFlagMeta | kFlagSync});
    seal(s);
  }
  bool valid(const Model& s) const override {
    return s.disks.count(op_.b) != 0 && s.bios.count(op_.a) == 0;
  }
  Expect predict(const Model& s) const override {
    return result(s.disks.at(op_.b).state == 0 ? -ENODEV : 0);
  }
  void update(Model& s) const override {
    s.next_bio = std::max(s.next_bio, op_.a + 1);
    if (s.disks.at(op_.b).state == 0) return;
    BioM b;
    b.disk = op_.b;
    b.size = op_.n;
    s.bios[op_.a] = b;
  }
};

// The operations on a bio the scenario owns (bound, not submitted, not completed).
class OwnedBioCmd : public OpCmd {
 protected:
  // The owned bio acted on goes to op_.a, or to op_.b (the source) when `as_source`.
  OwnedBioCmd(OpKind k, const Model& s, bool as_source) : OpCmd(k) {
    const std::vector<int> owned = s.owned_bios();
    RC_PRE(!owned.empty());
    (as_source ? op_.b : op_.a) = *rc::gen::elementOf(owned);
  }
  static bool owned(const Model& s, int h) {
    auto it = s.bios.find(h);
    return it != s.bios.end() && it->second.owned;
  }
};

class Assoc final : public OwnedBioCmd {
 public:
  explicit Assoc(const Model& s) : OwnedBioCmd(OpKind::kAssoc, s, false) {
    op_.path = rarely(10) ? "/gone" : deep_or_any(s.path_list(true));
    op_.nowait = rarely(4);
    op_.ctx = pick(
        {Ctx::kProcess, Ctx::kProcess, Ctx::kProcess, Ctx::kProcess, Ctx::kAtomic, Ctx::kSoftirq});
    seal(s);
  }
  bool valid(const Model& s) const override { return owned(s, op_.a); }
  Expect predict(const Model& s) const override {
    if (!s.alive(op_.path)) return result(-ENOENT);
    // In process context the blkg is found or made (nowait: the mutex is free here).
    const DiskM& d = s.disks.at(s.bios.at(op_.a).disk);
    return op_.ctx == Ctx::kProcess && d.state == 1 ? result(0) : kUnknown;
  }
};

class Clone final : public OwnedBioCmd {
 public:
  explicit Clone(const Model& s) : OwnedBioCmd(OpKind::kClone, s, true) {
    RC_PRE(static_cast<int>(s.bios.size()) < kMaxBios);
    op_.a = s.next_bio;
    op_.nowait = rarely(2);
    seal(s);
  }
  bool valid(const Model& s) const override { return owned(s, op_.b) && !s.bios.count(op_.a); }
  Expect predict(const Model&) const override { return result(0); }
  void update(Model& s) const override {
    s.next_bio = std::max(s.next_bio, op_.a + 1);
    BioM b = s.bios.at(op_.b);
    b.chained = false;
    s.bios[op_.a] = b;
  }
};

class Split final : public OwnedBioCmd {
 public:
  explicit Split(const Model& s) : OwnedBioCmd(OpKind::kSplit, s, true) {
    RC_PRE(static_cast<int>(s.bios.size()) < kMaxBios);
    op_.a = s.next_bio;
    const uint64_t size = s.bios.at(op_.b).size;
    op_.n = *rc::gen::element<uint64_t>(512, 4096, size / 2, size / 2, size);
    seal(s);
  }
  bool valid(const Model& s) const override { return owned(s, op_.b) && !s.bios.count(op_.a); }
  Expect predict(const Model& s) const override {
    const uint64_t size = s.bios.at(op_.b).size;
    return result(op_.n == 0 || op_.n >= size ? -EINVAL : 0);
  }
  void update(Model& s) const override {
    s.next_bio = std::max(s.next_bio, op_.a + 1);
    BioM& src = s.bios.at(op_.b);
    if (op_.n == 0 || op_.n >= src.size) return;
    src.size -= op_.n;
    BioM piece = src;
    piece.size = op_.n;
    piece.chained = true;
    s.bios[op_.a] = piece;
  }
};

class Submit final : public OwnedBioCmd {
 public:
  explicit Submit(const Model& s) : OwnedBioCmd(OpKind::kSubmit, s, false) { seal(s); }
  bool valid(const Model& s) const override { return owned(s, op_.a); }
  Expect predict(const Model&) const override { return result(0); }
  void update(Model& s) const override { s.bios.at(op_.a).owned = false; }
};

class Complete final : public OwnedBioCmd {
 public:
  explicit Complete(const Model& s) : OwnedBioCmd(OpKind::kComplete, s, false) {
    op_.n = *rc::gen::element<uint64_t>(0, 0, EIO, ENOMEM, EAGAIN);
    seal(s);
  }
  bool valid(const Model& s) const override { return owned(s, op_.a); }
  Expect predict(const Model&) const override { return result(0); }
  void update(Model& s) const override { s.bios.at(op_.a).owned = false; }
};

class Wait final : public OpCmd {
 public:
  explicit Wait(const Model& s) : OpCmd(OpKind::kWait) {
    std::vector<int> v;
    for (const auto& [h, b] : s.bios)
      if (!b.chained) v.push_back(h);
    RC_PRE(!v.empty());
    op_.a = *rc::gen::elementOf(v);
    op_.n = *rc::gen::element<uint64_t>(0, 10, 1000);
    seal(s);
  }
  bool valid(const Model& s) const override {
    auto it = s.bios.find(op_.a);
    return it != s.bios.end() && !it->second.chained;
  }
  // A bio never handed over cannot complete by waiting.
  Expect predict(const Model& s) const override {
    return s.bios.at(op_.a).owned ? result(-EAGAIN) : kUnknown;
  }
};

// --- the test policy

class PolRegister final : public OpCmd {
 public:
  explicit PolRegister(const Model& s) : OpCmd(OpKind::kPolRegister) { seal(s); }
  Expect predict(const Model& s) const override { return result(s.registered ? -EEXIST : 0); }
  void update(Model& s) const override { s.registered = true; }
};

class PolUnregister final : public OpCmd {
 public:
  explicit PolUnregister(const Model& s) : OpCmd(OpKind::kPolUnregister) { seal(s); }
  static bool active(const Model& s) {
    for (const auto& [h, d] : s.disks)
      if (d.pol_active) return true;
    return false;
  }
  Expect predict(const Model& s) const override {
    if (!s.registered) return result(-ENOENT);
    return result(active(s) ? -EBUSY : 0);
  }
  void update(Model& s) const override {
    if (!active(s)) s.registered = false;
  }
};

class PolActivate final : public DiskCmd {
 public:
  explicit PolActivate(const Model& s) : DiskCmd(OpKind::kPolActivate, s) { seal(s); }
  Expect predict(const Model& s) const override {
    return result(!s.registered || disk(s).state != 1 ? -EINVAL : 0);
  }
  void update(Model& s) const override {
    if (s.registered && disk(s).state == 1) s.disks[op_.a].pol_active = true;
  }
};

class PolDeactivate final : public DiskCmd {
 public:
  explicit PolDeactivate(const Model& s) : DiskCmd(OpKind::kPolDeactivate, s) { seal(s); }
  Expect predict(const Model& s) const override {
    return result(!s.registered || disk(s).state != 1 ? -EINVAL : 0);
  }
  void update(Model& s) const override {
    if (s.registered && disk(s).state == 1) s.disks[op_.a].pol_active = false;
  }
};

// --- time, work, faults

class Advance final : public OpCmd {
 public:
  explicit Advance(const Model& s) : OpCmd(OpKind::kAdvance) {
    op_.n = *rc::gen::element<uint64_t>(1, 10, 100, 1000, 5000);
    seal(s);
  }
  Expect predict(const Model&) const override { return result(0); }
};

class Run final : public OpCmd {
 public:
  explicit Run(const Model& s) : OpCmd(OpKind::kRun) { seal(s); }
};

class FaultNth final : public OpCmd {
 public:
  explicit FaultNth(const Model& s) : OpCmd(OpKind::kFaultNth) {
    op_.n = *rc::gen::inRange(1, 16);
    seal(s);
  }
  Expect predict(const Model&) const override { return result(0); }
  void update(Model& s) const override { s.unsure = true; }
};

class FaultSite final : public OpCmd {
 public:
  explicit FaultSite(const Model& s) : OpCmd(OpKind::kFaultSite) {
    op_.data =
        pick<std::string>({"blkg_alloc", "blkg_alloc.iostat_cpu", "bio_alloc", "pd_alloc.testpol",
                           "pd_alloc.throtl", "cgroup_mkdir", "blk_throtl_init"});
    op_.m = *rc::gen::inRange(0, 3);
    seal(s);
  }
  Expect predict(const Model&) const override { return result(0); }
  void update(Model& s) const override { s.unsure = true; }
};

class FaultProb final : public OpCmd {
 public:
  explicit FaultProb(const Model& s) : OpCmd(OpKind::kFaultProb) {
    op_.n = *rc::gen::element<uint64_t>(10, 100, 500);
    op_.m = *rc::gen::inRange(0, 1000);
    seal(s);
  }
  Expect predict(const Model&) const override { return result(0); }
  void update(Model& s) const override { s.unsure = true; }
};

class FaultOff final : public OpCmd {
 public:
  explicit FaultOff(const Model& s) : OpCmd(OpKind::kFaultOff) { seal(s); }
  Expect predict(const Model&) const override { return result(0); }
};

// ---------------------------------------------------------------------------------------
// Generation: one command kind drawn by weight (rapidcheck's execOneOf draws uniformly,
// which would make fault injection as common as mkdir and leave little to predict).

using CmdSP = std::shared_ptr<const CmdBase>;

template <typename Cmd>
CmdSP make(const Model& s) {
  return std::make_shared<const Cmd>(s);
}

struct Weighted {
  int weight;
  CmdSP (*make)(const Model&);
};

// The weights in state s: fixed ones, with the steps that open up the rest of the
// language (a disk, a live disk, a bio to associate and submit) favoured while missing.
std::vector<Weighted> command_table(const Model& s) {
  bool live = false, allocated = false;
  for (const auto& [h, d] : s.disks) {
    live |= d.state == 1;
    allocated |= d.state == 0;
  }
  const bool owned = !s.owned_bios().empty();
  const int no_disk = s.disks.empty() ? 6 : 1;
  const int to_add = allocated && !live ? 4 : 1;
  const int io = live ? 2 : 1;
  const int cgroups = s.paths.size() < 3 ? 2 : 1;
  return {
      {12 * cgroups, make<Mkdir>},
      {12, make<Rmdir>},
      {8, make<Attach>},
      {6, make<Flush>},
      {8 * no_disk, make<DiskAlloc>},
      {10 * to_add, make<DiskAdd>},
      {4, make<DiskDel>},
      {4, make<DiskRelease>},
      {3, make<Partition>},
      {10 * io, make<WriteIoMax>},
      {6, make<WriteBad>},
      {14, make<Read>},
      {10 * io, make<Bio>},
      {(owned ? 12 : 1) * io, make<Assoc>},
      {4, make<Clone>},
      {6, make<Split>},
      {(owned ? 14 : 1) * io, make<Submit>},
      {4, make<Complete>},
      {6, make<Wait>},
      {5, make<PolRegister>},
      {2, make<PolUnregister>},
      {6, make<PolActivate>},
      {4, make<PolDeactivate>},
      {6, make<Advance>},
      {4, make<Run>},
      {1, make<FaultNth>},
      {1, make<FaultSite>},
      {1, make<FaultProb>},
      {1, make<FaultOff>},
  };
}

// A Gen<CmdSP> for state s: the kind from the random stream (not shrunk: rapidcheck's
// own choice), the arguments from the command's constructor inside gen::exec (shrunk).
class CommandGen {
 public:
  explicit CommandGen(Model s) : s_(std::move(s)) {}
  rc::Shrinkable<CmdSP> operator()(const rc::Random& random, int size) const {
    const std::vector<Weighted> table = command_table(s_);
    int total = 0;
    for (const Weighted& w : table) total += w.weight;
    rc::Random r = random;
    int n = static_cast<int>(r.split().next() % static_cast<uint64_t>(total));
    size_t i = 0;
    while (n >= table[i].weight) n -= table[i++].weight;
    const auto fn = table[i].make;
    const Model s = s_;
    return rc::gen::exec([=] { return fn(s); })(r, size);
  }

 private:
  Model s_;
};

rc::Gen<CmdSP> gen_command(const Model& s) {
  return CommandGen(s);
}

// The property: a generated sequence, run, then quiesced; no report anywhere.
using Commands = rc::state::Commands<CmdBase>;

// Runs a command sequence in a fresh world: "" when nothing failed, else why.
std::string run_commands(const Commands& cmds) {
  kern::ReportCapture cap;
  Sut sut(cap);
  rc::state::runAll(cmds, Model{}, sut);
  sut.finish();
  return sut.failure;
}

// The property: a generated sequence (what rc::state::check does, with the failure
// reported once the world is quiesced).
void world_property() {
  const Commands cmds = *rc::state::gen::commands(Model{}, gen_command);
  const std::string why = run_commands(cmds);
  if (!why.empty()) RC_FAIL(why);
}

// The property with a planted bug, counting only what the bug causes: a sequence that
// fails with the flag set must pass with it cleared, so a counterexample is the planted
// bug's and not another failure the same sequence would hit anyway.
void busted_property(std::atomic<bool>* flag) {
  const Commands cmds = *rc::state::gen::commands(Model{}, gen_command);
  const std::string why = run_commands(cmds);
  if (why.empty()) return;
  flag->store(false);
  const bool fails_without = !run_commands(cmds).empty();
  flag->store(true);
  if (!fails_without) RC_FAIL(why);
}

constexpr uint64_t kSeed = 0x5eedb1c6;

TEST(PropStateful, WorldAgreesWithModelAndOracle) {
  const prop::Outcome out =
      prop::check_property("PropStateful/WorldAgreesWithModelAndOracle", world_property,
                           prop::fixed_params(kSeed, 200, 100));
  EXPECT_FALSE(out.failed) << out.message;
  EXPECT_GE(out.tests, 200);
}

// A planted bug must be found from a fixed seed and shrunk to a short scenario.
void expect_busted_found(const char* flag, size_t max_lines) {
  std::atomic<bool>* f = blk::busted().by_name(flag);
  ASSERT_NE(f, nullptr) << flag;
  f->store(true);
  const prop::Outcome out = prop::check_property(
      std::string("PropStateful/busted/") + flag, [f] { busted_property(f); },
      prop::fixed_params(kSeed, 1000, 100),
      /*env_may_override=*/false);
  blk::busted().reset();
  ASSERT_TRUE(out.failed) << "busted " << flag << " was not caught in " << out.tests
                          << " sequences";
  ASSERT_FALSE(out.gave_up) << out.message;
  size_t lines = 0;  // non-empty lines: the operations of the shrunk scenario
  for (size_t i = 0; i < out.counterexample.size(); ++i)
    lines += out.counterexample[i] == '\n' && i > 0 && out.counterexample[i - 1] != '\n';
  std::cout << "busted " << flag << ": found after " << out.tests << " passing sequences, "
            << out.shrinks << " shrink steps; the counterexample:\n"
            << out.counterexample << "what it broke:\n"
            << out.description << std::endl;
  EXPECT_LE(lines, max_lines) << out.message;
}

TEST(PropStateful, BustedActivateDyingBlkgIsCaught) {
  expect_busted_found("activate_dying_blkg", 12);
}

TEST(PropStateful, BustedNoParentRequeueIsCaught) {
  expect_busted_found("no_parent_requeue", 12);
}

}  // namespace
}  // namespace scenario
