// SPDX-License-Identifier: MIT
#include "impl/kern/report.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "impl/kern/task.h"

namespace kern {
namespace {

// The sink's state. sink_mutex protects mode changes against concurrent collection and
// the recorded vector; the counters are atomics so report_count() needs no lock.
std::mutex sink_mutex;
std::atomic<ReportMode> sink_mode{ReportMode::kAbort};
std::vector<Report>* recorded = nullptr;  // GUARDED_BY(sink_mutex); non-null in kRecord
std::atomic<uint64_t> total_reports{0};

}  // namespace

const char* report_kind_name(ReportKind kind) {
  switch (kind) {
    case ReportKind::kWarn: return "WARNING";
    case ReportKind::kBug: return "BUG";
    case ReportKind::kLockOrder: return "LOCK-ORDER";
    case ReportKind::kIrqSafety: return "IRQ-SAFETY";
    case ReportKind::kSleepInAtomic: return "SLEEP-IN-ATOMIC";
    case ReportKind::kBadUnlock: return "BAD-UNLOCK";
    case ReportKind::kLockHeld: return "LOCK-HELD";
    case ReportKind::kRefcount: return "REFCOUNT";
    case ReportKind::kRcu: return "RCU";
    case ReportKind::kDeadlock: return "DEADLOCK";
    case ReportKind::kLeak: return "LEAK";
    case ReportKind::kPercpu: return "PERCPU";
    case ReportKind::kWork: return "WORKQUEUE";
    case ReportKind::kTimer: return "TIMER";
    case ReportKind::kAlloc: return "ALLOC";
    case ReportKind::kOracle: return "ORACLE";
    case ReportKind::kNondeterminism: return "NONDETERMINISM";
  }
  return "UNKNOWN";
}

void set_report_mode(ReportMode mode) {
  std::lock_guard<std::mutex> g(sink_mutex);
  sink_mode.store(mode, std::memory_order_relaxed);
}

ReportMode report_mode() { return sink_mode.load(std::memory_order_relaxed); }

uint64_t report_count() { return total_reports.load(std::memory_order_relaxed); }

void kreport(ReportKind kind, const char* signature, const char* text) {
  kreport(kind, std::string(signature), std::string(text));
}

void kreport(ReportKind kind, std::string signature, std::string text) {
  total_reports.fetch_add(1, std::memory_order_relaxed);
  std::string full = text;
  if (!full.empty() && full.back() != '\n') full += '\n';
  full += "  context: " + current()->describe() + "\n";

  std::unique_lock<std::mutex> g(sink_mutex);
  const ReportMode mode = sink_mode.load(std::memory_order_relaxed);
  if (mode == ReportMode::kRecord && recorded != nullptr) {
    recorded->push_back(Report{kind, std::move(signature), std::move(full)});
    if (std::getenv("BLKCG_VERBOSE_REPORTS") != nullptr)
      std::fprintf(stderr, "[recorded] %s: %s\n", report_kind_name(kind),
                   recorded->back().signature.c_str());
    return;
  }
  const char* prefix = mode == ReportMode::kCount ? "!!! " : "";
  std::fprintf(stderr, "%s==== blkcg-torture report: %s ====\n%ssignature: %s\n%s", prefix,
               report_kind_name(kind), prefix, signature.c_str(), full.c_str());
  std::fflush(stderr);
  if (mode == ReportMode::kAbort) {
    g.unlock();
    std::abort();
  }
}

ReportCapture::ReportCapture() {
  std::lock_guard<std::mutex> g(sink_mutex);
  saved_ = sink_mode.load(std::memory_order_relaxed);
  recorded = new std::vector<Report>();
  sink_mode.store(ReportMode::kRecord, std::memory_order_relaxed);
}

ReportCapture::~ReportCapture() {
  std::lock_guard<std::mutex> g(sink_mutex);
  delete recorded;
  recorded = nullptr;
  sink_mode.store(saved_, std::memory_order_relaxed);
}

std::vector<Report> ReportCapture::reports() const {
  std::lock_guard<std::mutex> g(sink_mutex);
  return recorded ? *recorded : std::vector<Report>{};
}

size_t ReportCapture::count(ReportKind kind) const {
  std::lock_guard<std::mutex> g(sink_mutex);
  size_t n = 0;
  if (recorded)
    for (const Report& r : *recorded) n += r.kind == kind;
  return n;
}

size_t ReportCapture::size() const {
  std::lock_guard<std::mutex> g(sink_mutex);
  return recorded ? recorded->size() : 0;
}

std::string ReportCapture::dump() const {
  std::string out;
  for (const Report& r : reports()) {
    out += std::string(report_kind_name(r.kind)) + " [" + r.signature + "]\n" + r.text;
  }
  return out;
}

ExpectWarn::ExpectWarn(const char* func) {
  Task* t = current();
  saved_func_ = t->expected_warn_func;
  saved_count_ = t->expected_warns;
  t->expected_warn_func = func;
  t->expected_warns = 0;
}

ExpectWarn::~ExpectWarn() {
  Task* t = current();
  t->expected_warn_func = saved_func_;
  t->expected_warns = saved_count_;
}

int ExpectWarn::fired() const { return current()->expected_warns; }

namespace detail {
void warn_fired(const char* cond, const char* file, int line, const char* func, bool bug) {
  Task* t = current();
  if (!bug && t->expected_warn_func && std::strcmp(t->expected_warn_func, func) == 0) {
    ++t->expected_warns;
    return;
  }
  // The signature names the function and condition, not the line, so it survives edits.
  std::string sig = std::string(bug ? "BUG_ON" : "WARN_ON") + "(" + cond + ") in " + func;
  std::string text = std::string(bug ? "BUG_ON" : "WARN_ON") + "(" + cond + ") at " + file +
                     ":" + std::to_string(line) + " in " + func;
  kreport(bug ? ReportKind::kBug : ReportKind::kWarn, std::move(sig), std::move(text));
}
}  // namespace detail

}  // namespace kern
