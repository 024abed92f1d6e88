// SPDX-License-Identifier: MIT
// The C++ half of tools/blkcg-torture (which builds and calls it):
//
//   scenario_tool run [--busted=FLAG] [--twice] FILE...
//                                               replay text or binary scenarios; reports are
//                                               printed ("!!!") and counted; exit 1 if any;
//                                               --twice: a scheduled scenario also runs twice
//                                               first, and a trace divergence is reported
//   scenario_tool decode FILE                   binary -> text, on stdout (a PCT or random-walk
//                                               schedule as the explicit preemptions of its run)
//   scenario_tool encode FILE [OUT]             text -> binary (default OUT: stdout)
//   scenario_tool hash FILE                     the content-hash name of a file
//   scenario_tool minimize [--busted=FLAG] [--time=S] [--against=TOOL] FILE [OUT]
//                                               delta debugging over operations, then over
//                                               numbers, keeping the crash signature; writes
//                                               the text (OUT or stdout), prints the signature
//   scenario_tool observe FILE                  a sequential scenario's observable run, its
//                                               expectations dropped: each operation's result
//                                               and each report (what --against compares)
//
// Differential minimization (--against=TOOL, TOOL: the scenario tool of a reference tree,
// such as the tree before a patch): a sequential scenario is interesting while this
// build's observable run differs from TOOL's. The file's expectations are dropped first (a
// fixed expected text describes the whole run, and any shrink would break it, bug or not);
// the result carries expectations again, TOOL's results, on the operations whose results
// differ, so it fails here and passes on the reference tree.
//
// A file is binary when its first byte is the format version (1), text otherwise. Text
// runs with its expectations checked; binary inputs, like the fuzzer's, without.
// Minimizing runs each candidate in a child process (fork), so sanitizer aborts are
// compared too: the signature is the first report's "KIND signature", or a sanitizer's
// SUMMARY line.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "impl/block/busted.h"
#include "impl/kern/alloc.h"
#include "impl/kern/report.h"
#include "impl/scenario/binary.h"
#include "impl/scenario/exec.h"
#include "impl/scenario/schedule.h"
#include "impl/scenario/text.h"

namespace {

using scenario::Scenario;

bool read_file(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return true;
}

// Loads text or binary; false (with the reason on stderr) if text does not parse.
bool load(const std::string& path, Scenario* s, bool* is_text) {
  std::string bytes;
  if (!read_file(path, &bytes)) {
    std::fprintf(stderr, "%s: cannot read\n", path.c_str());
    return false;
  }
  *is_text = bytes.empty() || static_cast<uint8_t>(bytes[0]) != scenario::kBinaryVersion;
  if (!*is_text) {
    *s = scenario::decode_binary(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    scenario::strip_expectations(s);
    return true;
  }
  scenario::ParseError err;
  if (!scenario::parse_text(bytes, path, s, &err)) {
    std::fprintf(stderr, "%s\n", err.str().c_str());
    return false;
  }
  return true;
}

bool set_busted(const std::string& name) {
  if (std::atomic<bool>* f = blk::busted().by_name(name)) {
    f->store(true);
    return true;
  }
  std::fprintf(stderr, "unknown busted flag '%s' (see impl/block/busted.h)\n", name.c_str());
  return false;
}

// Removes operations [start, end) and keeps the schedule's preemptions pointing at the same
// operations (those inside the range go with them).
void erase_ops(Scenario* s, size_t start, size_t end) {
  s->ops.erase(s->ops.begin() + static_cast<long>(start), s->ops.begin() + static_cast<long>(end));
  auto& pre = s->sched.preempts;
  std::vector<scenario::Preempt> kept;
  for (scenario::Preempt p : pre) {
    const size_t op = static_cast<size_t>(p.op);
    if (op >= start && op < end) continue;
    if (op >= end) p.op -= static_cast<int>(end - start);
    kept.push_back(p);
  }
  pre = std::move(kept);
}

// s with operation i (after the prologue, which ends at `prologue`) moved to the end of
// the prologue and tagged T0. Preemptions inside it are dropped, the others renumbered,
// and those naming a task left without operations dropped.
Scenario hoisted(const Scenario& s, size_t i, size_t prologue) {
  Scenario c = s;
  scenario::Op op = c.ops[i];
  op.task = 0;
  c.ops.erase(c.ops.begin() + static_cast<long>(i));
  c.ops.insert(c.ops.begin() + static_cast<long>(prologue), op);
  std::vector<scenario::Preempt> kept;
  for (scenario::Preempt p : c.sched.preempts) {
    const size_t at = static_cast<size_t>(p.op);
    if (at == i) continue;
    if (at >= prologue && at < i) ++p.op;
    kept.push_back(p);
  }
  const std::vector<int> live = scenario::fiber_tasks(c);
  auto has_ops = [&](int t) { return std::find(live.begin(), live.end(), t) != live.end(); };
  std::erase_if(kept, [&](const scenario::Preempt& p) { return !has_ops(p.task) || !has_ops(p.to); });
  c.sched.preempts = std::move(kept);
  return c;
}

// Runs child(put) in a forked child with stderr silenced; every value the child passes
// to put() reaches the parent at once, so values sent before a crash are kept.
template <typename T, typename Child>
std::vector<T> collect_from_child(Child child) {
  int fds[2];
  if (pipe(fds) != 0) return {};
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    const int null = open("/dev/null", O_WRONLY);
    if (null >= 0) dup2(null, 2);
    child([&](const T& v) {
      if (write(fds[1], &v, sizeof(v)) != sizeof(v)) _exit(1);
    });
    _exit(0);
  }
  close(fds[1]);
  std::vector<T> out;
  T v;
  while (read(fds[0], &v, sizeof(v)) == sizeof(v)) out.push_back(v);
  close(fds[0]);
  int status;
  waitpid(pid, &status, 0);
  return out;
}

// The explicit preemption list of a scheduled scenario's run (reports abort as when
// fuzzing; every preemption reaches us before any crash).
std::vector<scenario::Preempt> explicit_preempts(const Scenario& s) {
  return collect_from_child<scenario::Preempt>([&](auto put) {
    kern::set_report_mode(kern::ReportMode::kAbort);
    scenario::run_concurrent(s, false, put);
  });
}

// `s` with a PCT or random-walk schedule replaced by the explicit list of its run.
Scenario with_explicit_schedule(const Scenario& s) {
  if (s.sched.kind != scenario::Schedule::kPct && s.sched.kind != scenario::Schedule::kWalk)
    return s;
  Scenario e = s;
  e.sched = {};
  e.sched.kind = scenario::Schedule::kList;
  e.sched.preempts = explicit_preempts(s);
  return e;
}

// Runs child() in a forked child whose stderr the parent reads to the end; the child's
// exit status beside it (a crash or a sanitizer abort is a status too).
struct ChildOutput {
  bool ran = true;  // false: no pipe, nothing ran
  std::string err;
  int status = 0;
  bool exited_ok() const { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }
};
template <typename Child>
ChildOutput stderr_of_child(Child child) {
  ChildOutput o;
  int fds[2];
  if (pipe(fds) != 0) {
    o.ran = false;
    return o;
  }
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    close(fds[1]);
    child();
    _exit(0);
  }
  close(fds[1]);
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof(buf))) > 0) o.err.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  waitpid(pid, &o.status, 0);
  return o;
}

// Runs `s` in a child with reports aborting; returns the crash signature ("" if none).
std::string signature_of(const Scenario& s) {
  const ChildOutput o = stderr_of_child([&] {
    kern::set_report_mode(kern::ReportMode::kAbort);
    scenario::run_scenario(s);
  });
  if (!o.ran || o.exited_ok()) return "";
  const std::string& err = o.err;
  const int status = o.status;
  // "==== blkcg-torture report: KIND ====" then "signature: SIG"
  const size_t r = err.find("==== blkcg-torture report: ");
  const size_t sg = err.find("signature: ", r == std::string::npos ? 0 : r);
  if (r != std::string::npos && sg != std::string::npos) {
    const size_t k0 = r + std::strlen("==== blkcg-torture report: ");
    const std::string kind = err.substr(k0, err.find(' ', k0) - k0);
    const size_t e = err.find('\n', sg);
    return kind + " " + err.substr(sg + 11, e - sg - 11);
  }
  const size_t sum = err.find("SUMMARY: ");
  if (sum != std::string::npos) return err.substr(sum, err.find('\n', sum) - sum);
  return "crash (status " + std::to_string(status) + ")";
}

// The observable run of a sequential scenario, expectations dropped: "@@ N RESULT" per
// operation, "@@ report KIND SIGNATURE" per report, and a sanitizer's SUMMARY kind if the
// run died (its file paths left out: two trees differ there). In a forked child.
std::string observe(const Scenario& in) {
  Scenario s = in;
  scenario::strip_expectations(&s);
  const ChildOutput o = stderr_of_child([&] {
    std::string line;
    auto out = [&](const std::string& l) {
      line = "@@ " + l + "\n";
      if (write(2, line.data(), line.size()) < 0) _exit(1);
    };
    kern::ReportCapture cap;
    {
      scenario::World w(s.ops.empty() || s.ops[0].kind != scenario::OpKind::kLegacy);
      for (size_t i = 0; i < s.ops.size(); ++i)
        out(std::to_string(i) + " " + w.exec(s.ops[i], static_cast<int>(i)).str());
      w.quiesce();
    }
    for (const kern::Report& r : cap.reports())
      out(std::string("report ") + kern::report_kind_name(r.kind) + " " + r.signature);
  });
  if (!o.ran) return "pipe failed";
  const std::string& err = o.err;
  std::string obs;
  for (size_t pos = 0; pos < err.size();) {
    size_t e = err.find('\n', pos);
    if (e == std::string::npos) e = err.size();
    const std::string l = err.substr(pos, e - pos);
    if (l.rfind("@@ ", 0) == 0) obs += l.substr(3) + "\n";
    if (l.rfind("SUMMARY: ", 0) == 0) obs += "died " + l.substr(9, l.find(' ', l.find(' ', 9) + 1) - 9) + "\n";
    pos = e + 1;
  }
  if (!o.exited_ok()) obs += "exit status " + std::to_string(o.status) + "\n";
  return obs;
}

// The same observation by another tree's scenario tool (a subprocess on a temporary copy).
// Nothing when that tool did not finish within kReferenceSeconds (killed by timeout(1)):
// a candidate the reference tree hangs on tells nothing and is not kept.
constexpr int kReferenceSeconds = 60;
std::optional<std::string> observe_with(const std::string& tool, const Scenario& s) {
  char path[] = "/tmp/scenario-observe-XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) return "mkstemp failed";
  const std::string t = scenario::to_text(s);
  const bool wrote = write(fd, t.data(), t.size()) == static_cast<ssize_t>(t.size());
  close(fd);
  std::string obs = wrote ? "" : "write failed";
  if (wrote) {
    const std::string cmd = "timeout -s KILL " + std::to_string(kReferenceSeconds) + " '" + tool +
                            "' observe '" + path + "' 2>/dev/null";
    if (FILE* p = popen(cmd.c_str(), "r")) {
      char buf[4096];
      size_t n;
      while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) obs.append(buf, n);
      const int st = pclose(p);
      if (WIFEXITED(st) && WEXITSTATUS(st) == 137) {  // timeout -s KILL: 128 + SIGKILL
        unlink(path);
        return std::nullopt;
      }
      if (st != 0) obs += "reference tool failed\n";
    } else {
      obs = "popen failed";
    }
  }
  unlink(path);
  return obs;
}

// Each operation's result in an observation, by index ("" where the run never got there).
std::vector<std::string> results_of(const std::string& obs, size_t nops) {
  std::vector<std::string> r(nops);
  for (size_t pos = 0; pos < obs.size();) {
    size_t e = obs.find('\n', pos);
    if (e == std::string::npos) e = obs.size();
    const std::string l = obs.substr(pos, e - pos);
    const size_t sp = l.find(' ');
    if (!l.empty() && l[0] >= '0' && l[0] <= '9' && sp != std::string::npos) {
      const size_t i = std::stoul(l.substr(0, sp));
      if (i < nops) r[i] = l.substr(sp + 1);
    }
    pos = e + 1;
  }
  return r;
}

std::string against_tool;  // minimize --against=TOOL

// fault_nth N counts allocations from where it stands, so removing an earlier operation
// moves the failure. Re-anchor it: find the operation during which the N-th allocation
// happens (a child runs the scenario and reports the allocation count before each
// operation) and move fault_nth right before it with N reduced accordingly. Then the
// operations in between can go. Returns false if nothing changed.
bool reanchor_fault(Scenario* s) {
  size_t p = 0;
  while (p < s->ops.size() && !(s->ops[p].kind == scenario::OpKind::kFaultNth && s->ops[p].n))
    ++p;
  if (p >= s->ops.size()) return false;
  // before[j]: allocations since fault_nth before op p+1+j (then the total at the end).
  const std::vector<uint64_t> before = collect_from_child<uint64_t>([&](auto put) {
    kern::set_report_mode(kern::ReportMode::kCount);
    scenario::World w;
    uint64_t base = 0;
    for (size_t i = 0; i < s->ops.size(); ++i) {
      if (i > p) put(kern::alloc_count() - base);
      w.exec(s->ops[i], static_cast<int>(i));
      if (i == p) base = kern::alloc_count();
    }
    put(kern::alloc_count() - base);
  });
  const uint64_t n = s->ops[p].n;
  for (size_t j = 0; j + 1 < before.size(); ++j) {
    if (before[j + 1] < n) continue;  // the n-th allocation is not in op p+1+j
    const size_t k = p + 1 + j;
    if (k == p + 1) return false;  // already right before it
    scenario::Op f = s->ops[p];
    f.n = n - before[j];
    s->ops.erase(s->ops.begin() + static_cast<long>(p));
    s->ops.insert(s->ops.begin() + static_cast<long>(k - 1), f);
    return true;
  }
  return false;
}

// What an operation makes and later operations name: a cgroup path (mkdir), a disk or bio
// handle (disk_alloc, bio, clone, split); "" for the rest.
std::string made_by(const scenario::Op& op) {
  using scenario::OpKind;
  if (op.kind == OpKind::kMkdir) return op.path;
  if (op.kind != OpKind::kDiskAlloc && op.kind != OpKind::kBio && op.kind != OpKind::kClone &&
      op.kind != OpKind::kSplit)
    return "";
  const std::string t = scenario::op_to_text(op);  // "bio b3 d0 ...": the second word
  const size_t a = t.find(' ');
  if (a == std::string::npos) return "";
  const size_t b = t.find(' ', a + 1);
  return t.substr(a + 1, b == std::string::npos ? std::string::npos : b - a - 1);
}

// Whether an operation's text names `what` (a handle as a word; a path, or one under it,
// as a word or as the start of a file path).
bool names(const scenario::Op& op, const std::string& what) {
  const std::string t = scenario::op_to_text(op);
  for (size_t pos = 0; pos < t.size();) {
    size_t e = t.find(' ', pos);
    if (e == std::string::npos) e = t.size();
    std::string w = t.substr(pos, e - pos);
    if (!w.empty() && w.front() == '"') w.erase(0, 1);
    if (w == what || (what[0] == '/' && w.size() > what.size() &&
                      w.compare(0, what.size(), what) == 0 && w[what.size()] == '/'))
      return true;
    pos = e + 1;
  }
  return false;
}

bool check_twice = false;  // run --twice: scheduled scenarios run twice, traces compared

int cmd_run(const std::vector<std::string>& files) {
  kern::set_report_mode(kern::ReportMode::kCount);
  const uint64_t before = kern::report_count();
  for (const std::string& f : files) {
    Scenario s;
    bool text;
    if (!load(f, &s, &text)) return 2;
    if (check_twice && s.sched.kind != scenario::Schedule::kNone) scenario::check_determinism(s);
    const scenario::ExecStats st = scenario::run_scenario(s);
    std::fprintf(stderr, "%s: %zu ops, %zu expectations, %zu model checks\n", f.c_str(), st.ops,
                 st.expectations, st.model_checks);
  }
  const uint64_t reports = kern::report_count() - before;
  std::fprintf(stderr, "%llu report(s)\n", static_cast<unsigned long long>(reports));
  return reports ? 1 : 0;
}

int cmd_minimize(const std::string& file, const std::string& out, double seconds) {
  Scenario s;
  bool text;
  if (!load(file, &s, &text)) return 2;
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  const bool diff = !against_tool.empty();
  if (diff) {
    if (s.sched.kind != scenario::Schedule::kNone) {
      std::fprintf(stderr, "%s: --against needs a sequential scenario (two trees' seams differ, "
                           "so a schedule does not carry over)\n", file.c_str());
      return 2;
    }
    scenario::strip_expectations(&s);
  }
  // The predicate: the same crash signature, or (--against) a run that differs from the
  // reference tree's.
  bool ref_hung = false;
  auto judge = [&](const Scenario& c) -> std::string {
    if (!diff) return signature_of(c);
    const std::optional<std::string> ref = observe_with(against_tool, c);
    if (!ref) {  // the reference tree hung on it
      ref_hung = true;
      return "";
    }
    return observe(c) == *ref ? "" : "differs from " + against_tool;
  };
  const std::string sig = judge(s);
  if (sig.empty()) {
    const std::string why =
        !diff      ? "does not crash"
        : ref_hung ? "the reference tool did not finish within " + std::to_string(kReferenceSeconds) + " s"
                   : "runs as on the reference tree";
    std::fprintf(stderr, "%s: %s; nothing to minimize\n", file.c_str(), why.c_str());
    return 1;
  }
  std::fprintf(stderr, "signature: %s (%zu ops)\n", sig.c_str(), s.ops.size());
  // A PCT or random-walk schedule becomes the explicit preemptions of its run (the same
  // run, now shrinkable entry by entry).
  if (s.sched.kind == scenario::Schedule::kPct || s.sched.kind == scenario::Schedule::kWalk) {
    Scenario e = with_explicit_schedule(s);
    if (judge(e) == sig) {
      s = std::move(e);
      std::fprintf(stderr, "explicit schedule: %zu preemption(s)\n", s.sched.preempts.size());
    }
  }
  // Fewer preemptions first (ddmin over the list), so that operations then go more easily.
  // Chunks halve rounding up (3, 2, 1): two preemptions that only matter together (one
  // switches away, the other back) go in one step.
  auto shrink_preempts = [&] {
    auto& pre = s.sched.preempts;
    for (size_t chunk = std::max<size_t>(1, pre.size()); chunk >= 1 && elapsed() < seconds;) {
      bool progress = false;
      for (size_t start = 0; start < pre.size() && elapsed() < seconds;) {
        Scenario c = s;
        auto& cp = c.sched.preempts;
        cp.erase(cp.begin() + static_cast<long>(start),
                 cp.begin() + static_cast<long>(std::min(start + chunk, cp.size())));
        if (judge(c) == sig) {
          s = std::move(c);
          progress = true;
        } else {
          start += chunk;
        }
      }
      if (!progress) {
        if (chunk == 1) break;
        chunk = (chunk + 1) / 2;
      }
    }
  };
  shrink_preempts();
  // ddmin: remove chunks of shrinking size while the signature holds.
  auto ddmin = [&] {
    size_t chunk = s.ops.size() / 2;
    while (chunk >= 1 && elapsed() < seconds) {
      bool progress = false;
      for (size_t start = 0; start < s.ops.size() && elapsed() < seconds;) {
        Scenario c = s;
        erase_ops(&c, start, std::min(start + chunk, c.ops.size()));
        if (judge(c) == sig) {
          s = std::move(c);
          progress = true;
        } else {
          start += chunk;
        }
      }
      if (!progress) chunk /= 2;
    }
  };
  // A removal changes what later operations do, so a preemption after it may now fall on a
  // different seam of its operation than the one that opened the window. Retry such a
  // candidate with one preemption at a time dropped, or moved to each seam 1..64 of its
  // operation.
  auto reseam_moves = [&](Scenario* c, size_t first_removed) {
    for (size_t k = 0; k < c->sched.preempts.size(); ++k) {
      if (static_cast<size_t>(c->sched.preempts[k].op) < first_removed) continue;  // before it
      Scenario without = *c;  // or that preemption is no longer needed at all
      without.sched.preempts.erase(without.sched.preempts.begin() + static_cast<long>(k));
      if (judge(without) == sig) {
        *c = std::move(without);
        return true;
      }
      scenario::Preempt& p = c->sched.preempts[k];
      const int orig = p.seam;
      for (int seam = 1; seam <= 64 && elapsed() < seconds; ++seam) {
        if (seam == orig) continue;
        p.seam = seam;
        if (judge(*c) == sig) return true;
      }
      p.seam = orig;
    }
    return false;
  };
  // A removal that takes a task's last operation leaves the preemptions that switched to
  // it pointing nowhere; the window they opened may open as well with another task running
  // there (with T3's only `run` gone, T1 -> T3 becomes T1 -> T2). Each such preemption is
  // retargeted at each task that still has operations, alone and then with the moves above.
  auto reseam = [&](Scenario* c, size_t first_removed) {
    if (reseam_moves(c, first_removed)) return true;
    const std::vector<int> live = scenario::fiber_tasks(*c);
    for (size_t k = 0; k < c->sched.preempts.size() && elapsed() < seconds; ++k) {
      const int to = c->sched.preempts[k].to;
      if (std::find(live.begin(), live.end(), to) != live.end()) continue;
      for (int t : live) {
        if (t == c->sched.preempts[k].task) continue;
        Scenario r = *c;
        r.sched.preempts[k].to = t;
        if (judge(r) == sig || reseam_moves(&r, first_removed)) {
          *c = std::move(r);
          return true;
        }
      }
    }
    return false;
  };
  // Cascades: an operation that makes a cgroup, a disk or a bio goes together with every
  // later operation naming it (mkdir /b ... rmdir /b), which ddmin's contiguous chunks
  // miss when other operations stand between them. Then ddmin again.
  auto cascades = [&] {
    bool any = false;
    for (size_t i = s.ops.size(); i-- > 0 && elapsed() < seconds;) {
      if (i >= s.ops.size()) continue;
      const std::string made = made_by(s.ops[i]);
      if (made.empty()) continue;
      std::vector<size_t> drop = {i};
      for (size_t j = i + 1; j < s.ops.size(); ++j)
        if (names(s.ops[j], made)) drop.push_back(j);
      if (drop.size() == 1) continue;  // alone: ddmin tried it
      Scenario c = s;
      for (size_t k = drop.size(); k-- > 0;) erase_ops(&c, drop[k], drop[k] + 1);
      if (judge(c) == sig || (!c.sched.preempts.empty() && reseam(&c, i))) {
        s = std::move(c);
        any = true;
      }
    }
    return any;
  };
  ddmin();
  while (elapsed() < seconds && cascades()) ddmin();
  // With a schedule: each single operation once more, its removal allowed to move a later
  // preemption (ddmin kept it because the window had moved, not because it is needed).
  auto singles = [&] {
    for (size_t i = s.ops.size(); i-- > 0 && elapsed() < seconds;) {
      if (i >= s.ops.size() || s.sched.preempts.empty()) continue;
      Scenario c = s;
      erase_ops(&c, i, i + 1);
      if (!c.sched.preempts.empty() && reseam(&c, i)) s = std::move(c);
    }
  };
  singles();
  // An operation of a task that the race does not need to run concurrently moves into the
  // prologue, where it runs alone first (a pol_activate that only has to happen before the
  // racing pair). Its own preemptions go with it; the window the others open may then sit
  // at another seam, which reseam searches. Removals are tried again afterwards: an
  // operation that only spaced the old interleaving out may now go.
  auto hoist = [&] {
    bool any = false;
    for (size_t i = 0; i < s.ops.size() && elapsed() < seconds; ++i) {
      const size_t prologue = scenario::prologue_end(s);
      if (i < prologue || s.sched.preempts.empty()) continue;
      Scenario c = hoisted(s, i, prologue);
      if (judge(c) == sig || (!c.sched.preempts.empty() && reseam(&c, prologue))) {
        s = std::move(c);
        any = true;
      }
    }
    return any;
  };
  while (elapsed() < seconds && hoist()) {
    ddmin();
    singles();
  }
  // A fault_nth moved next to the operation it hits, so that the rest can go (sequential
  // scenarios: with a schedule the allocation order is the interleaving's).
  if (s.sched.kind == scenario::Schedule::kNone) {
    Scenario c = s;
    if (elapsed() < seconds && reanchor_fault(&c) && judge(c) == sig) {
      s = std::move(c);
      for (size_t i = 0; i < s.ops.size() && elapsed() < seconds;) {
        Scenario d = s;
        erase_ops(&d, i, i + 1);
        if (judge(d) == sig) s = std::move(d);
        else ++i;
      }
    }
  }
  // Adjacent advances of the same task become one.
  for (size_t i = 0; i + 1 < s.ops.size() && elapsed() < seconds;) {
    const scenario::Op& a = s.ops[i];
    const scenario::Op& b = s.ops[i + 1];
    if (a.kind == scenario::OpKind::kAdvance && b.kind == scenario::OpKind::kAdvance &&
        a.task == b.task && a.expect.kind == scenario::Expect::kNone) {
      Scenario c = s;
      c.ops[i + 1].n += c.ops[i].n;
      erase_ops(&c, i, i + 1);
      if (judge(c) == sig) {
        s = std::move(c);
        continue;
      }
    }
    ++i;
  }
  // Then smaller numbers (sizes, jiffies, N of fault_nth, ...), and ddmin again when a
  // number change lets operations go (a later fault_nth index may now need fewer ops).
  for (bool changed = true; changed && elapsed() < seconds;) {
    changed = false;
    for (size_t i = 0; i < s.ops.size() && elapsed() < seconds; ++i) {
      // Device numbers stay as written (8:16 reads better than 0:0); bio sizes stay whole
      // sectors; other numbers may go to 0.
      const scenario::OpKind k = s.ops[i].kind;
      if (k == scenario::OpKind::kDiskAlloc) continue;
      const uint64_t floor = k == scenario::OpKind::kBio ? 512 : 0;
      for (uint64_t scenario::Op::*field : {&scenario::Op::n, &scenario::Op::m}) {
        const uint64_t v = s.ops[i].*field;
        for (uint64_t cand : {floor, floor + 1, v / 2, v - 1}) {
          if (v == 0 || cand >= v || cand < floor || elapsed() >= seconds) continue;
          if (k == scenario::OpKind::kBio && cand % 512 != 0) continue;
          Scenario c = s;
          c.ops[i].*field = cand;
          if (judge(c) == sig) {
            s = std::move(c);
            changed = true;
            break;
          }
        }
      }
    }
    for (size_t i = 0; changed && i < s.ops.size() && elapsed() < seconds;) {
      Scenario c = s;
      erase_ops(&c, i, i + 1);
      if (judge(c) == sig) s = std::move(c);
      else ++i;
    }
  }
  shrink_preempts();
  // Even when the time ran out before that pass: a preemption naming a task that has no
  // operation left does nothing (the scheduler finds no such task runnable), and only
  // misleads a reader. Dropped together, confirmed with one run.
  if (!s.sched.preempts.empty()) {
    const std::vector<int> tasks = scenario::fiber_tasks(s);
    auto has_ops = [&](int t) { return std::find(tasks.begin(), tasks.end(), t) != tasks.end(); };
    Scenario c = s;
    std::erase_if(c.sched.preempts,
                  [&](const scenario::Preempt& p) { return !has_ops(p.to) || !has_ops(p.task); });
    if (c.sched.preempts.size() != s.sched.preempts.size() && judge(c) == sig) s = std::move(c);
  }
  if (diff) {
    // The reference tree's results become the expectations of the operations whose
    // results differ here (a report that only this tree makes needs none).
    const std::vector<std::string> here = results_of(observe(s), s.ops.size());
    const std::vector<std::string> ref = results_of(observe_with(against_tool, s).value_or(""), s.ops.size());
    for (size_t i = 0; i < s.ops.size(); ++i) {
      if (here[i] == ref[i] || ref[i].empty()) continue;
      Scenario one;
      scenario::ParseError perr;
      scenario::Op op = s.ops[i];
      op.task = 0;
      if (scenario::parse_text(scenario::op_to_text(op) + " => " + ref[i] + "\n", "expect", &one, &perr) &&
          one.ops.size() == 1)
        s.ops[i].expect = one.ops[0].expect;
    }
  }
  const std::string t = scenario::to_text(s);
  // The text is the reproducer a person reads and replays: it must parse back to what was
  // minimized and crash the same way. A decoder that builds what the text form rejects
  // broke this once (a binary file path "/a//cgroup.procs"); then the text is still
  // written, marked, and the exit status says the minimization failed.
  Scenario back;
  scenario::ParseError perr;
  std::string broken;
  if (!scenario::parse_text(t, "minimized", &back, &perr)) broken = "it does not parse: " + perr.str();
  else if (!(back == s)) broken = "it parses to a different scenario";
  else if (judge(back) != sig) broken = "it does not crash with the same signature";
  if (broken.empty())
    std::fprintf(stderr, "minimized to %zu ops, %zu preemption(s) in %.1f s; signature: %s\n",
                 s.ops.size(), s.sched.preempts.size(), elapsed(), sig.c_str());
  else
    std::fprintf(stderr, "minimize: the minimized text does not reproduce (%s); keep the binary input\n",
                 broken.c_str());
  if (out.empty()) {
    std::fputs(t.c_str(), stdout);
  } else {
    std::ofstream o(out, std::ios::binary);
    o << "# minimized from " << file << "\n# signature: " << sig << "\n";
    if (diff) o << "# on this tree: " << signature_of(s) << "\n";
    if (!broken.empty()) o << "# WARNING: this text does not reproduce: " << broken << "\n";
    o << t;
  }
  return broken.empty() ? 0 : 3;
}

int usage() {
  std::fprintf(stderr,
               "usage: scenario_tool run [--busted=FLAG] [--twice] FILE... | decode FILE | encode FILE "
               "[OUT] | hash FILE | minimize [--busted=FLAG] [--time=S] [--against=TOOL] FILE [OUT] | "
               "observe FILE\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return usage();
  const std::string cmd = argv[1];
  std::vector<std::string> args;
  double seconds = 60;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--busted=", 0) == 0) {
      if (!set_busted(a.substr(9))) return 2;
    } else if (a == "--twice") {
      check_twice = true;
    } else if (a.rfind("--against=", 0) == 0) {
      against_tool = a.substr(10);
    } else if (a.rfind("--time=", 0) == 0) {
      seconds = std::atof(a.c_str() + 7);
    } else {
      args.push_back(a);
    }
  }
  if (args.empty()) return usage();
  if (cmd == "run") return cmd_run(args);
  if (cmd == "minimize") return cmd_minimize(args[0], args.size() > 1 ? args[1] : "", seconds);
  Scenario s;
  bool text;
  if (cmd == "observe") {
    if (!load(args[0], &s, &text)) return 2;
    if (s.sched.kind != scenario::Schedule::kNone) {
      std::fprintf(stderr, "%s: observe runs sequential scenarios only\n", args[0].c_str());
      return 2;
    }
    std::fputs(observe(s).c_str(), stdout);
    return 0;
  }
  if (cmd == "decode" || cmd == "encode") {
    if (!load(args[0], &s, &text)) return 2;
    if (cmd == "decode") {
      // A PCT / random-walk schedule is written out as the preemptions of its run.
      const Scenario e = with_explicit_schedule(s);
      if (!(e == s)) std::printf("# found with: %s", scenario::schedule_to_text(s.sched).c_str());
      std::fputs(scenario::to_text(e).c_str(), stdout);
      return 0;
    }
    const std::vector<uint8_t> bin = scenario::encode_binary(s);
    if (args.size() > 1) {
      std::ofstream o(args[1], std::ios::binary);
      o.write(reinterpret_cast<const char*>(bin.data()), static_cast<long>(bin.size()));
    } else {
      std::fwrite(bin.data(), 1, bin.size(), stdout);
    }
    return 0;
  }
  if (cmd == "hash") {
    std::string bytes;
    if (!read_file(args[0], &bytes)) return 2;
    std::printf("%016llx\n", static_cast<unsigned long long>(scenario::fnv1a(bytes)));
    return 0;
  }
  return usage();
}
