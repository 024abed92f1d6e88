// SPDX-License-Identifier: MIT
#include "impl/kern/lockdep.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "impl/kern/report.h"
#include "impl/kern/string_hash.h"

namespace kern {
namespace {

constexpr uint32_t kWords = kMaxLockClasses / 64;

// Lockdep's own bookkeeping uses plain std::mutex and never calls the seam: it is the
// checker, not the system under test.
//
// class_mutex protects the class registry. graph_mutex protects edge_info, reported and
// the usage sites; the edge bitmap itself is atomics so the hot path ("is A->B known?")
// reads it without the mutex (relaxed: a stale miss only sends us to the slow path, which
// re-checks under graph_mutex).
std::mutex class_mutex;
// Looked up by string_view: interning an existing name (every lock init) must not build a
// std::string.
using ClassMap = std::unordered_map<std::string, std::unique_ptr<LockClass>, StringHash, std::equal_to<>>;
ClassMap* classes_by_name = nullptr;
std::array<LockClass*, kMaxLockClasses> classes_by_id{};
uint32_t nr_classes = 0;
// nr_classes as last published (release, under class_mutex): the graph walks and the
// reset only touch the rows and words of classes that exist (acquire).
std::atomic<uint32_t> classes_hwm{0};

uint32_t used_classes() { return classes_hwm.load(std::memory_order_acquire); }
uint32_t used_words() { return (used_classes() + 63) / 64; }

std::mutex graph_mutex;
std::atomic<uint64_t> edges[kMaxLockClasses][kWords];
std::atomic<uint64_t> redges[kMaxLockClasses][kWords];  // reverse of edges (b -> a)
std::atomic<uint64_t> nr_edges{0};

// Where an edge was first seen: kept raw (a copy of the held-lock stack) and rendered
// only when a report prints it; building the text for every new edge made lockdep the
// largest cost of a fresh fuzz world.
struct EdgeInfo {
  TaskTag task;
  std::vector<HeldLock> held;
  const LockClass* next;
  std::source_location where;
};
std::map<std::pair<uint32_t, uint32_t>, EdgeInfo>* edge_info = nullptr;
std::set<std::string>* reported = nullptr;

std::atomic<bool> enabled{true};

// The union of every class's usage bits (under graph_mutex, reset with them): a walk
// looking for a class with usage bit X cannot succeed while no class has X, and the
// IN-interrupt bits are rare, so most new edges skip their interrupt-safety walks.
uint32_t usage_union = 0;

bool has_edge(uint32_t a, uint32_t b) {
  return (edges[a][b / 64].load(std::memory_order_relaxed) >> (b % 64)) & 1;
}

std::string site(const std::source_location& w) {
  const char* f = w.file_name();
  const char* slash = std::strrchr(f, '/');
  return std::string(slash ? slash + 1 : f) + ":" + std::to_string(w.line()) + " " +
         w.function_name();
}

// BFS from `from` over `adj` to the first class (other than `from` unless `self_ok`) for
// which `hit` is true; returns the path from `from` to it, empty if none. Caller holds
// graph_mutex, which also guards the scratch arrays: every new edge runs up to five walks,
// and allocating their queues was most of lockdep's cost in a fresh fuzz world.
int16_t bfs_prev[kMaxLockClasses];
uint16_t bfs_queue[kMaxLockClasses];
static_assert(kMaxLockClasses <= INT16_MAX);

template <typename Hit>
std::vector<uint32_t> bfs(uint32_t from, std::atomic<uint64_t> (*adj)[kWords], Hit hit,
                          bool self_ok) {
  const uint32_t words = used_words();
  std::fill_n(bfs_prev, used_classes(), int16_t{-1});
  uint32_t qlen = 0;
  bfs_queue[qlen++] = static_cast<uint16_t>(from);
  bfs_prev[from] = static_cast<int16_t>(from);
  int found = -1;
  for (uint32_t qi = 0; qi < qlen && found < 0; ++qi) {
    const uint32_t u = bfs_queue[qi];
    if ((u != from || self_ok) && hit(u)) {
      found = static_cast<int>(u);
      break;
    }
    for (uint32_t w = 0; w < words; ++w) {
      uint64_t bits = adj[u][w].load(std::memory_order_relaxed);
      while (bits) {
        const uint32_t v = w * 64 + static_cast<uint32_t>(__builtin_ctzll(bits));
        bits &= bits - 1;
        if (bfs_prev[v] < 0) {
          bfs_prev[v] = static_cast<int16_t>(u);
          bfs_queue[qlen++] = static_cast<uint16_t>(v);  // each class enters at most once
        }
      }
    }
  }
  if (found < 0) return {};
  std::vector<uint32_t> path{static_cast<uint32_t>(found)};
  while (path.back() != from) path.push_back(static_cast<uint32_t>(bfs_prev[path.back()]));
  return {path.rbegin(), path.rend()};
}

// Path from `from` to `to` over forward edges, empty if none. Caller holds graph_mutex.
std::vector<uint32_t> find_path(uint32_t from, uint32_t to) {
  return bfs(from, edges, [to](uint32_t c) { return c == to; }, true);
}

std::string chain_text(const Task* t, const LockClass* next, const std::source_location& w) {
  std::string s = held_locks_text(t);
  s += "    -> acquiring " + next->name + " at " + site(w) + "\n";
  return s;
}

bool first_report(const std::string& sig) {
  return reported->insert(sig).second;
}

unsigned irq_ctx_of(const Task* t) {
  return (static_cast<unsigned>(t->hardirq) << 8) | static_cast<unsigned>(t->softirq_serving);
}

const char* usage_name(int bit) {
  static const char* const kNames[] = {"IN-HARDIRQ", "IN-SOFTIRQ", "HARDIRQ-ON", "SOFTIRQ-ON"};
  return kNames[bit];
}

struct IrqPair {
  uint32_t in, on;
  int in_bit, on_bit;
};
const IrqPair kIrqPairs[] = {{kUsedInHardirq, kEnabledHardirq, 0, 2},
                             {kUsedInSoftirq, kEnabledSoftirq, 1, 3}};

std::string edge_path_text(const std::vector<uint32_t>& path);

// An interrupt-safe lock S (used in that interrupt) that leads, through the dependency
// graph, to an interrupt-unsafe lock U (taken with that interrupt enabled) can deadlock:
// CPU0 holds U with the interrupt on, CPU1 holds S and waits for U along the chain, the
// interrupt on CPU0 waits for S. Reported with the chain S -> ... -> U. Caller holds
// graph_mutex; `safe_path` ends at S read backwards (from the edge source), `unsafe_path`
// runs from the edge target to U.
void report_irq_dependency(const IrqPair& p, std::vector<uint32_t> chain) {
  LockClass* safe = classes_by_id[chain.front()];
  LockClass* unsafe = classes_by_id[chain.back()];
  std::string sig = std::string("irq-dependency:") + usage_name(p.in_bit) + ":" + safe->name +
                    "->" + unsafe->name;
  if (!first_report(sig)) return;
  std::string text = std::string("WARNING: ") + usage_name(p.in_bit) + "-safe -> " +
                     usage_name(p.on_bit) + "-unsafe lock order detected\n";
  text += "  " + safe->name + " is " + usage_name(p.in_bit) + ", first by " +
          safe->usage_task[p.in_bit].str() + " at " + site(safe->usage_site[p.in_bit]) + "\n";
  text += "  " + unsafe->name + " is " + usage_name(p.on_bit) + ", first by " +
          unsafe->usage_task[p.on_bit].str() + " at " + site(unsafe->usage_site[p.on_bit]) + "\n";
  text += "  dependency chain:\n" + edge_path_text(chain);
  kreport(ReportKind::kIrqSafety, std::move(sig), std::move(text));
}

// After the edge a -> b is added. Caller holds graph_mutex.
void check_irq_dependency_edge(uint32_t a, uint32_t b) {
  for (const IrqPair& p : kIrqPairs) {
    if (!(usage_union & p.in) || !(usage_union & p.on)) continue;
    auto back = bfs(a, redges,
                    [&](uint32_t c) { return classes_by_id[c]->usage.load() & p.in; }, true);
    if (back.empty()) continue;
    auto fwd = bfs(b, edges,
                   [&](uint32_t c) { return classes_by_id[c]->usage.load() & p.on; }, true);
    if (fwd.empty()) continue;
    std::vector<uint32_t> chain(back.rbegin(), back.rend());  // S ... a
    chain.insert(chain.end(), fwd.begin(), fwd.end());        // b ... U
    report_irq_dependency(p, chain);
  }
}

// After class c gained usage bits `added`. Caller holds graph_mutex.
void check_irq_dependency_usage(uint32_t c, uint32_t added) {
  for (const IrqPair& p : kIrqPairs) {
    if (!(usage_union & p.in) || !(usage_union & p.on)) continue;
    if (added & p.in) {
      auto fwd = bfs(c, edges,
                     [&](uint32_t x) { return classes_by_id[x]->usage.load() & p.on; }, false);
      if (!fwd.empty()) report_irq_dependency(p, fwd);
    }
    if (added & p.on) {
      auto back = bfs(c, redges,
                      [&](uint32_t x) { return classes_by_id[x]->usage.load() & p.in; }, false);
      if (!back.empty()) report_irq_dependency(p, std::vector<uint32_t>(back.rbegin(), back.rend()));
    }
  }
}

// Record usage bits; report a class used in an interrupt and also taken with that
// interrupt enabled. The slow path (a bit new since the reset) is out of line: this runs
// on every acquisition, and the report text's locals would otherwise cost each call a
// sanitizer stack frame.
[[gnu::noinline]] void mark_usage_slow(LockClass* cls, const Task* t, uint32_t bits,
                                       std::source_location w) {
  std::lock_guard<std::mutex> g(graph_mutex);
  const uint32_t prev = cls->usage.fetch_or(bits, std::memory_order_relaxed);
  const uint32_t added = bits & ~prev;
  usage_union |= bits;
  for (int b = 0; b < 4; ++b) {
    if (added & (1u << b)) {
      cls->usage_site[b] = w;
      cls->usage_task[b].set(t);
    }
  }
  const uint32_t now = prev | bits;
  check_irq_dependency_usage(cls->id, added);
  for (const IrqPair& p : kIrqPairs) {
    if ((now & p.in) && (now & p.on) && (added & (p.in | p.on))) {
      std::string sig = "irq-safety:" + cls->name + ":" + usage_name(p.in_bit) + "/" +
                        usage_name(p.on_bit);
      if (!first_report(sig)) continue;
      std::string text = "WARNING: inconsistent lock state: " + cls->name + " {" +
                         usage_name(p.in_bit) + "} -> {" + usage_name(p.on_bit) + "}\n";
      text += "  " + std::string(usage_name(p.in_bit)) + " usage by " +
              cls->usage_task[p.in_bit].str() + " at " + site(cls->usage_site[p.in_bit]) + "\n";
      text += "  " + std::string(usage_name(p.on_bit)) + " usage by " +
              cls->usage_task[p.on_bit].str() + " at " + site(cls->usage_site[p.on_bit]) + "\n";
      text += "  an interrupt taking this lock can arrive while it is held with the interrupt "
              "enabled: deadlock on one CPU";
      kreport(ReportKind::kIrqSafety, std::move(sig), std::move(text));
    }
  }
}

// (Source locations go by value: a reference would make the caller's copy addressable.)
inline void mark_usage(LockClass* cls, const Task* t, bool trylock, std::source_location w) {
  uint32_t bits = 0;
  if (!trylock) {
    if (t->hardirq > 0) bits |= kUsedInHardirq;
    if (t->softirq_serving > 0) bits |= kUsedInSoftirq;
  }
  if (!t->irqs_off && t->hardirq == 0) {
    bits |= kEnabledHardirq;
    if (t->softirq == 0) bits |= kEnabledSoftirq;
  }
  const uint32_t old = cls->usage.load(std::memory_order_relaxed);
  if ((old | bits) != old) mark_usage_slow(cls, t, bits, w);
}

[[gnu::noinline]] void add_edge_slow(const Task* t, const HeldLock& held, LockClass* next,
                                     std::source_location w) {
  const uint32_t a = held.cls->id, b = next->id;
  std::lock_guard<std::mutex> g(graph_mutex);
  if (has_edge(a, b)) return;
  // Would a -> b close a cycle? Only if b already reaches a.
  std::vector<uint32_t> path = find_path(b, a);
  if (!path.empty()) {
    std::string names;
    std::vector<std::string> sorted;
    for (uint32_t c : path) sorted.push_back(classes_by_id[c]->name);
    std::sort(sorted.begin(), sorted.end());
    for (const std::string& n : sorted) names += (names.empty() ? "" : ",") + n;
    std::string sig = "lock-order:" + names;
    if (first_report(sig)) {
      std::string text = "WARNING: possible circular locking dependency detected\n";
      text += t->label() + " is trying to acquire " + next->name + " while holding " +
              held.cls->name + ":\n" + chain_text(t, next, w);
      text += "but an existing dependency chain goes " + next->name + " -> ... -> " +
              held.cls->name + ":\n";
      text += edge_path_text(path);
      kreport(ReportKind::kLockOrder, std::move(sig), std::move(text));
    }
    return;  // do not add the cycle-closing edge: later reports stay readable
  }
  edges[a][b / 64].fetch_or(uint64_t{1} << (b % 64), std::memory_order_relaxed);
  redges[b][a / 64].fetch_or(uint64_t{1} << (a % 64), std::memory_order_relaxed);
  nr_edges.fetch_add(1, std::memory_order_relaxed);
  // Entries outlive lockdep_reset (their map nodes and vectors are reused); one is read
  // only while its edge exists, and an edge is re-learned here after every reset.
  EdgeInfo& e = (*edge_info)[{a, b}];
  e.task.set(t);
  e.held.assign(t->held, t->held + t->nr_held);
  e.next = next;
  e.where = w;
  check_irq_dependency_edge(a, b);
}

std::string edge_path_text(const std::vector<uint32_t>& path) {
  std::string text;
  for (size_t i = 0; i + 1 < path.size(); ++i) {
    const auto it = edge_info->find({path[i], path[i + 1]});
    text += "  " + classes_by_id[path[i]]->name + " -> " + classes_by_id[path[i + 1]]->name;
    if (it != edge_info->end()) {
      const EdgeInfo& e = it->second;
      text += " first seen in " + e.task.str() + ":\n";
      for (size_t k = 0; k < e.held.size(); ++k) {
        const HeldLock& h = e.held[k];
        text += "    #" + std::to_string(k) + " " + h.cls->name + (h.read ? " (read)" : "") +
                (h.trylock ? " (trylock)" : "") + " acquired at " + site(h.where) + "\n";
      }
      text += "    -> acquiring " + e.next->name + " at " + site(e.where) + "\n";
    }
    else text += "\n";
  }
  return text;
}

void init_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    classes_by_name = new ClassMap();
    edge_info = new std::map<std::pair<uint32_t, uint32_t>, EdgeInfo>();
    reported = new std::set<std::string>();
  });
}

}  // namespace

LockClass* lock_class(const char* name, bool sleeping) {
  init_once();
  std::lock_guard<std::mutex> g(class_mutex);
  auto it = classes_by_name->find(std::string_view(name));
  if (it != classes_by_name->end()) return it->second.get();
  if (nr_classes >= kMaxLockClasses) {
    // Out of classes: share the last one (reported once; raise kMaxLockClasses).
    static bool warned = false;
    if (!warned) {
      warned = true;
      std::fprintf(stderr, "lockdep: out of lock classes; raise kMaxLockClasses\n");
    }
    return classes_by_id[kMaxLockClasses - 1];
  }
  auto cls = std::make_unique<LockClass>();
  cls->id = nr_classes++;
  classes_hwm.store(nr_classes, std::memory_order_release);
  cls->name = name;
  cls->sleeping = sleeping;
  LockClass* raw = cls.get();
  classes_by_id[raw->id] = raw;
  classes_by_name->emplace(name, std::move(cls));
  return raw;
}

LockClass* lock_class(const char* prefix, const char* name, bool sleeping) {
  char buf[128];
  const int n = std::snprintf(buf, sizeof buf, "%s%s", prefix, name);
  if (n >= 0 && static_cast<size_t>(n) < sizeof buf) return lock_class(buf, sleeping);
  return lock_class((std::string(prefix) + name).c_str(), sleeping);
}

void lockdep_set_enabled(bool on) { enabled.store(on, std::memory_order_relaxed); }
bool lockdep_enabled() { return enabled.load(std::memory_order_relaxed); }

void lockdep_reset() {
  init_once();
  std::lock_guard<std::mutex> g(graph_mutex);
  // Only the rows and words of existing classes can hold a bit.
  const uint32_t n = used_classes(), words = used_words();
  for (uint32_t i = 0; i < n; ++i)
    for (uint32_t w = 0; w < words; ++w) {
      edges[i][w].store(0, std::memory_order_relaxed);
      redges[i][w].store(0, std::memory_order_relaxed);
    }
  nr_edges.store(0, std::memory_order_relaxed);
  usage_union = 0;
  reported->clear();
  std::lock_guard<std::mutex> g2(class_mutex);
  for (uint32_t i = 0; i < nr_classes; ++i) classes_by_id[i]->usage.store(0);
}

namespace {

// The reports of lock_acquire and lock_release, out of line (see mark_usage).
[[gnu::noinline, gnu::cold]] void report_max_depth(const Task* t) {
  kreport(ReportKind::kBug, "lockdep-max-depth",
          t->label() + " holds more than " + std::to_string(kMaxHeldLocks) + " locks");
}

[[gnu::noinline, gnu::cold]] void report_recursive(const Task* t, const LockClass* cls,
                                                   std::source_location where) {
  std::string sig = "recursive-locking:" + cls->name;
  std::lock_guard<std::mutex> g(graph_mutex);
  if (first_report(sig)) {
    kreport(ReportKind::kLockOrder, sig,
            "WARNING: possible recursive locking detected: " + t->label() + " acquires " +
                cls->name + " at " + site(where) + " already holding:\n" + held_locks_text(t));
  }
}

[[gnu::noinline, gnu::cold]] void report_bad_unlock(const Task* t, const LockClass* cls,
                                                    std::source_location where) {
  kreport(ReportKind::kBadUnlock, "bad-unlock:" + cls->name,
          "WARNING: bad unlock balance detected: " + t->label() + " releases " + cls->name +
              " at " + site(where) + " but does not hold it");
}

}  // namespace

void lock_acquire(LockClass* cls, const void* instance, bool trylock, bool read, int subclass,
                  std::source_location where) {
  Task* t = current();
  if (t->nr_held >= kMaxHeldLocks) {
    report_max_depth(t);
    return;
  }
  const unsigned ctx = irq_ctx_of(t);
  if (enabled.load(std::memory_order_relaxed)) {
    // No init_once() here: `cls` came from lock_class(), which initialised everything.
    mark_usage(cls, t, trylock, where);
    if (!trylock) {
      for (int i = 0; i < t->nr_held; ++i) {
        const HeldLock& h = t->held[i];
        if (h.irq_ctx != ctx) continue;  // an interrupt's chain is separate
        if (h.cls == cls) {
          if (read && h.read) continue;
          if (subclass != h.subclass) continue;
          report_recursive(t, cls, where);
          continue;
        }
        if (!has_edge(h.cls->id, cls->id)) add_edge_slow(t, h, cls, where);
      }
    }
  }
  HeldLock& h = t->held[t->nr_held++];
  h.cls = cls;
  h.instance = instance;
  h.where = where;
  h.read = read;
  h.trylock = trylock;
  h.subclass = subclass;
  h.irq_ctx = ctx;
}

void lock_release(LockClass* cls, const void* instance, std::source_location where) {
  Task* t = current();
  for (int i = t->nr_held - 1; i >= 0; --i) {
    if (t->held[i].instance == instance) {
      for (int j = i; j + 1 < t->nr_held; ++j) t->held[j] = t->held[j + 1];
      t->nr_held--;
      return;
    }
  }
  report_bad_unlock(t, cls, where);
}

bool lock_is_held(const void* instance) {
  const Task* t = current();
  for (int i = 0; i < t->nr_held; ++i)
    if (t->held[i].instance == instance) return true;
  return false;
}

void lockdep_assert_held_instance(const void* instance, const char* name,
                                  std::source_location where) {
  if (lock_is_held(instance)) return;
  kreport(ReportKind::kBug, std::string("lockdep_assert_held:") + name + ":" + where.function_name(),
          std::string("lockdep_assert_held(") + name + ") failed at " + site(where));
}

std::string held_locks_text(const Task* t) {
  std::string s;
  for (int i = 0; i < t->nr_held; ++i) {
    const HeldLock& h = t->held[i];
    s += "    #" + std::to_string(i) + " " + h.cls->name + (h.read ? " (read)" : "") +
         (h.trylock ? " (trylock)" : "") + " acquired at " + site(h.where) + "\n";
  }
  return s;
}

uint64_t lockdep_nr_edges() { return nr_edges.load(std::memory_order_relaxed); }

}  // namespace kern
