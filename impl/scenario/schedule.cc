// SPDX-License-Identifier: MIT
#include "impl/scenario/schedule.h"

#include <algorithm>
#include <memory>
#include <tuple>

#include "impl/kern/cpu.h"
#include "impl/kern/report.h"
#include "impl/scenario/text.h"

namespace scenario {

namespace {
bool seam_before(const Preempt* a, const Preempt* b) {
  return std::tie(a->task, a->op, a->seam) < std::tie(b->task, b->op, b->seam);
}
// The index's order: by seam, then by position in the list (the pointers are into one
// vector, so comparing them is comparing positions).
bool index_before(const Preempt* a, const Preempt* b) {
  return seam_before(a, b) || (!seam_before(b, a) && a < b);
}
}  // namespace

ScheduleSource::ScheduleSource(const Schedule& sched, size_t nr_ops,
                               std::vector<FiberState>* fibers,
                               std::function<void(const Preempt&)> record)
    : sched_(sched), nr_ops_(nr_ops), fibers_(fibers), record_(std::move(record)) {
  by_seam_.reserve(sched_.preempts.size());
  for (const Preempt& p : sched_.preempts) by_seam_.push_back(&p);
  std::sort(by_seam_.begin(), by_seam_.end(), index_before);
}

void ScheduleSource::begin(int nr_tasks) {
  last_ = -1;
  preemptions_ = 0;
  for (FiberState& f : *fibers_) {
    f.op = -1;
    f.seams = 0;
  }
  // PCT's change points fall among the first k decisions: about 25 per operation.
  const uint32_t k = sched_.steps != 0
                         ? sched_.steps
                         : static_cast<uint32_t>(std::clamp<size_t>(25 * nr_ops_, 100, 100000));
  if (sched_.kind == Schedule::kPct) inner_ = std::make_unique<kern::PctSource>(sched_.seed, sched_.depth, k);
  else if (sched_.kind == Schedule::kWalk) inner_ = std::make_unique<kern::RandomWalk>(sched_.seed);
  else inner_.reset();
  if (inner_) inner_->begin(nr_tasks);
}

int ScheduleSource::choose(const std::vector<int>& runnable, int cur, kern::SeamKind kind,
                           uint32_t step) {
  // The first decision has no anchor (nobody ran yet): always the first task.
  if (last_ < 0) return last_ = runnable.front();
  FiberState& from = (*fibers_)[static_cast<size_t>(last_)];
  ++from.seams;  // last_ is the fiber that reached this seam (only one runs at a time)
  if (where) where->push_back({from.tag, from.op, from.seams, 0});
  // The default policy: keep running; else the next runnable task after the last one.
  int def = cur;
  if (def < 0) {
    auto it = std::upper_bound(runnable.begin(), runnable.end(), last_);
    def = it == runnable.end() ? runnable.front() : *it;
  }
  int pick = def;
  if (inner_) {
    pick = inner_->choose(runnable, cur, kind, step);
  } else {
    const Preempt here{from.tag, from.op, from.seams, 0};
    auto it = std::lower_bound(by_seam_.begin(), by_seam_.end(), &here, seam_before);
    if (it != by_seam_.end() && !seam_before(&here, *it)) {
      for (int r : runnable)
        if ((*fibers_)[static_cast<size_t>(r)].tag == (*it)->to) pick = r;
    }
  }
  if (pick != def) {
    if (cur >= 0) ++preemptions_;
    if (record_) record_({from.tag, from.op, from.seams, (*fibers_)[static_cast<size_t>(pick)].tag});
  }
  return last_ = pick;
}

size_t prologue_end(const Scenario& s) {
  size_t k = 0;
  while (k < s.ops.size() && s.ops[k].task == 0) ++k;
  return k;
}

std::vector<int> fiber_tasks(const Scenario& s) {
  std::vector<int> tags;
  for (size_t k = prologue_end(s); k < s.ops.size(); ++k)
    if (std::find(tags.begin(), tags.end(), s.ops[k].task) == tags.end()) tags.push_back(s.ops[k].task);
  std::sort(tags.begin(), tags.end());
  return tags;
}

ConcurrentRun run_concurrent(const Scenario& s, bool record_trace,
                             const std::function<void(const Preempt&)>& on_preempt) {
  ConcurrentRun out;
  // The prologue runs alone, first (the setup every task then races on).
  const size_t prologue = prologue_end(s);
  const std::vector<int> tags = fiber_tasks(s);
  out.tasks = static_cast<int>(tags.size());
  World w(s.ops.empty() || s.ops[0].kind != OpKind::kLegacy, /*concurrent=*/true);
  std::vector<FiberState> fibers(tags.size());
  std::vector<kern::TaskSpec> specs;
  for (size_t i = 0; i < tags.size(); ++i) {
    fibers[i].tag = tags[i];
    kern::TaskSpec t;
    t.name = "T" + std::to_string(tags[i]);
    t.cpu = static_cast<int>(i) % kern::nr_cpu_ids();
    t.fn = [&s, &w, &fibers, i, prologue] {
      for (size_t k = prologue; k < s.ops.size(); ++k) {
        if (s.ops[k].task != fibers[i].tag) continue;
        fibers[i].op = static_cast<int>(k);
        fibers[i].seams = 0;
        w.exec(s.ops[k], static_cast<int>(k));
      }
    };
    specs.push_back(std::move(t));
  }
  for (size_t k = 0; k < prologue; ++k) w.exec(s.ops[k], static_cast<int>(k));
  ScheduleSource src(s.sched, s.ops.size(), &fibers, [&out, &on_preempt](const Preempt& p) {
    out.schedule.push_back(p);
    if (on_preempt) on_preempt(p);
  });
  if (record_trace) src.where = &out.where;
  kern::ControlledOptions opt;
  opt.record_trace = record_trace;
  if (!specs.empty()) out.run = kern::run_controlled(specs, src, opt);
  w.quiesce();
  out.stats = w.stats();
  return out;
}

bool check_determinism(const Scenario& s) {
  const ConcurrentRun a = run_concurrent(s, true);
  const ConcurrentRun b = run_concurrent(s, true);
  const auto& ta = a.run.trace;
  const auto& tb = b.run.trace;
  size_t i = 0;
  while (i < ta.size() && i < tb.size() && ta[i] == tb[i]) ++i;
  if (i == ta.size() && i == tb.size()) return true;
  // The trace's first step is the start (no seam); where[] covers the others.
  auto step = [&s](const ConcurrentRun& r, size_t i) -> std::string {
    const auto& t = r.run.trace;
    if (i >= t.size()) return "the run ended";
    std::string at = std::string(kern::seam_kind_name(t[i].kind)) + " seam";
    if (i >= 1 && i - 1 < r.where.size()) {
      const Preempt& w = r.where[i - 1];
      at += " " + std::to_string(w.seam) + " of T" + std::to_string(w.task) + "'s op " +
            std::to_string(w.op + 1) + " (" +
            (w.op >= 0 && static_cast<size_t>(w.op) < s.ops.size() ? op_to_text(s.ops[w.op]) : "?") + ")";
    }
    return at + ", fiber " + std::to_string(t[i].chosen) + " chosen";
  };
  kern::kreport(kern::ReportKind::kNondeterminism, "sched-trace-diverged",
                "the same scenario ran twice diverges at step " + std::to_string(i) +
                    ": first run: " + step(a, i) + "; second run: " + step(b, i));
  return false;
}
}  // namespace scenario
