// SPDX-License-Identifier: MIT
// The report sink: the one place every checker in the suite sends a violation.
//
// A report has a kind, a stable signature (kind + the names that identify the bug, never
// addresses or counters, so two runs of one bug deduplicate), and free text that includes
// the held locks and contexts of the tasks involved. What happens next is the sink's mode:
//
//   kAbort  - print the report and abort(): fuzzers turn it into a crash artifact.
//   kCount  - print it as a "!!!" line and count it: stress programs keep running and
//             fail at the end.
//   kRecord - keep it in memory: unit tests assert that a checker fired (ReportCapture).
//
// The sink is process-global and thread-safe (one std::mutex; reports are rare).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kern {

enum class ReportKind : uint8_t {
  kWarn,             // WARN_ON: a kernel-style warning
  kBug,              // BUG_ON: state that must never exist
  kLockOrder,        // lock-order cycle (possible ABBA deadlock)
  kIrqSafety,        // lock used in interrupt context and elsewhere with that interrupt on
  kSleepInAtomic,    // a possible sleep in atomic context (spinlock, RCU, IRQs off, irq ctx)
  kBadUnlock,        // release of a lock the task does not hold
  kLockHeld,         // locks held at task exit or across a callback
  kRefcount,         // refcount underflow / increment from zero / saturation
  kRcu,              // RCU misuse (grace period inside a read section, unbalanced unlock)
  kDeadlock,         // controlled scheduler: blocked tasks and nobody runnable
  kLeak,             // live objects remain after teardown
  kPercpu,           // per-CPU data touched without owning the CPU
  kWork,             // workqueue misuse (e.g. flushing a work from itself)
  kTimer,            // timer misuse (armed after shutdown, freed while pending)
  kAlloc,            // allocation misuse (double free, unknown pointer, bad GFP use)
  kOracle,           // an invariant of impl/oracle
  kNondeterminism,   // replay diverged from its recorded trace
};

const char* report_kind_name(ReportKind kind);

enum class ReportMode : uint8_t { kAbort, kCount, kRecord };

struct Report {
  ReportKind kind;
  std::string signature;  // stable: kind, names, call sites; no addresses
  std::string text;       // human-readable detail, with task contexts
};

void set_report_mode(ReportMode mode);
ReportMode report_mode();

// Send a report. The text of the current task's context (held locks, preempt/irq state)
// is appended. Safe in any context; never sleeps, never calls the scheduling seam.
void kreport(ReportKind kind, std::string signature, std::string text);
// The same for two literals, out of line: a hot function's rare report then builds no
// std::string temporaries in its own frame (a sanitizer stack frame on every call).
[[gnu::cold, gnu::noinline]] void kreport(ReportKind kind, const char* signature, const char* text);

// Total number of reports since start (all modes).
uint64_t report_count();

// RAII: switch the sink to kRecord for the scope (tests). Not reentrant; restores the
// previous mode on destruction. Reports are collected from every thread.
class ReportCapture {
 public:
  ReportCapture();
  ~ReportCapture();
  ReportCapture(const ReportCapture&) = delete;
  ReportCapture& operator=(const ReportCapture&) = delete;

  std::vector<Report> reports() const;
  size_t count(ReportKind kind) const;
  bool has(ReportKind kind) const { return count(kind) != 0; }
  size_t size() const;
  // All reports as text, for assertion messages.
  std::string dump() const;

 private:
  ReportMode saved_;
};

// ExpectWarn: for its scope, a WARN_ON that the current task fires inside the function
// `func` (its __func__) is counted instead of reported. It is for a harness probing a guard
// whose documented answer to a caller's misuse is a warning and an error code (activating
// a policy that has no pd callbacks): the harness checks the warning fired once, so a bug
// that drops the guard shows as a missing warning, or as the crash the guard prevents.
// Per task: other tasks, fibers and threads still report their warnings; a BUG_ON is
// never counted. Scopes nest (the inner one wins until it ends).
class ExpectWarn {
 public:
  explicit ExpectWarn(const char* func);
  ~ExpectWarn();
  ExpectWarn(const ExpectWarn&) = delete;
  ExpectWarn& operator=(const ExpectWarn&) = delete;
  int fired() const;  // warnings counted so far in this scope

 private:
  const char* saved_func_;
  int saved_count_;
};

namespace detail {
[[gnu::cold]] void warn_fired(const char* cond, const char* file, int line, const char* func,
                              bool bug);
}  // namespace detail

}  // namespace kern

// WARN_ON(cond): report kWarn once per evaluation where cond is true; returns cond.
#define WARN_ON(cond)                                                                  \
  ({                                                                                   \
    const bool kern_warn_c_ = static_cast<bool>(cond);                                 \
    if (__builtin_expect(kern_warn_c_, 0))                                             \
      ::kern::detail::warn_fired(#cond, __FILE__, __LINE__, __func__, false);          \
    kern_warn_c_;                                                                      \
  })

// BUG_ON(cond): report kBug. In kAbort mode this aborts; otherwise execution continues,
// so callers must still leave state consistent enough for the run to be torn down.
#define BUG_ON(cond)                                                                   \
  do {                                                                                 \
    if (__builtin_expect(static_cast<bool>(cond), 0))                                  \
      ::kern::detail::warn_fired(#cond, __FILE__, __LINE__, __func__, true);           \
  } while (0)
