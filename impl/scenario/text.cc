// SPDX-License-Identifier: MIT
#include "impl/scenario/text.h"

#include <cerrno>
#include <cstring>

namespace scenario {
namespace {

const char* const kNames[] = {
    "mkdir",        "rmdir",    "attach",       "disk_alloc",    "disk_add",  "disk_del",
    "disk_release", "partition", "write",       "read",          "bio",       "assoc",
    "clone",        "split",    "submit",       "complete",      "wait",      "flush",
    "pol_register", "pol_unregister", "pol_activate", "pol_deactivate", "advance", "run",
    "fault_nth",    "fault_site", "fault_prob", "fault_off", "legacy_hierarchy", "hz",
    "timer_late",   "dd"};
static_assert(sizeof(kNames) / sizeof(kNames[0]) == static_cast<size_t>(OpKind::kCount));

const struct {
  int err;
  const char* name;
} kErrnos[] = {{EPERM, "EPERM"},   {ENOENT, "ENOENT"}, {EIO, "EIO"},       {EBADF, "EBADF"},
               {EAGAIN, "EAGAIN"}, {ENOMEM, "ENOMEM"}, {EBUSY, "EBUSY"},   {EEXIST, "EEXIST"},
               {ENODEV, "ENODEV"}, {EINVAL, "EINVAL"}, {ENOSPC, "ENOSPC"}, {ERANGE, "ERANGE"},
               {EOPNOTSUPP, "EOPNOTSUPP"}};

// A tokenizer over one line: words, quoted strings, and "=>".
struct Lexer {
  const std::string& s;
  size_t i = 0;
  std::string error;

  void skip_space() {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r')) ++i;
  }
  bool at_end() {
    skip_space();
    return i >= s.size() || s[i] == '#';
  }
  bool peek_is(const char* w) {
    skip_space();
    return s.compare(i, std::strlen(w), w) == 0;
  }
  // A bare word (up to white space or '#').
  bool word(std::string* out) {
    skip_space();
    const size_t start = i;
    while (i < s.size() && s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '#') ++i;
    *out = s.substr(start, i - start);
    return !out->empty();
  }
  // A quoted string with escapes \\ \" \n \t \r \xHH.
  bool quoted(std::string* out) {
    skip_space();
    if (i >= s.size() || s[i] != '"') {
      error = "expected a quoted string";
      return false;
    }
    ++i;
    out->clear();
    while (i < s.size() && s[i] != '"') {
      char c = s[i++];
      if (c == '\\') {
        if (i >= s.size()) break;
        const char e = s[i++];
        switch (e) {
          case 'n': c = '\n'; break;
          case 't': c = '\t'; break;
          case 'r': c = '\r'; break;
          case '\\': c = '\\'; break;
          case '"': c = '"'; break;
          case 'x': {
            auto hex = [](char h) {
              return h >= '0' && h <= '9'   ? h - '0'
                     : h >= 'a' && h <= 'f' ? h - 'a' + 10
                     : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                            : -1;
            };
            if (i + 1 >= s.size() || hex(s[i]) < 0 || hex(s[i + 1]) < 0) {
              error = "bad \\x escape";
              return false;
            }
            c = static_cast<char>(hex(s[i]) * 16 + hex(s[i + 1]));
            i += 2;
            break;
          }
          default:
            error = std::string("unknown escape \\") + e;
            return false;
        }
      }
      out->push_back(c);
    }
    if (i >= s.size()) {
      error = "unterminated string";
      return false;
    }
    ++i;
    return true;
  }
};

bool parse_u64(const std::string& w, uint64_t* v) {
  if (w.empty() || w.size() > 20) return false;
  uint64_t x = 0;
  for (char c : w) {
    if (c < '0' || c > '9') return false;
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (x > (UINT64_MAX - d) / 10) return false;
    x = x * 10 + d;
  }
  *v = x;
  return true;
}

// "d3" / "b12" -> 3 / 12.
bool parse_handle(const std::string& w, char prefix, int* h) {
  uint64_t v;
  if (w.size() < 2 || w[0] != prefix || !parse_u64(w.substr(1), &v) || v > 1000000) return false;
  *h = static_cast<int>(v);
  return true;
}

bool parse_path(const std::string& w) { return !w.empty() && w[0] == '/' && name_ok(w); }

bool parse_task(const std::string& w, int* t) {
  uint64_t v;
  if (w.size() < 2 || w[0] != 'T' || !parse_u64(w.substr(1), &v) || v > kMaxTask) return false;
  *t = static_cast<int>(v);
  return true;
}

// "key=N" -> N (bounded by max).
bool parse_kv(const std::string& w, const char* key, uint64_t max, uint64_t* v) {
  const size_t n = std::strlen(key);
  return w.size() > n + 1 && w.compare(0, n, key) == 0 && w[n] == '=' &&
         parse_u64(w.substr(n + 1), v) && *v <= max;
}

// "schedule list|pct|walk [seed=N] [depth=N]"; "preempt TA op=N seam=N TB". Lines of the
// schedule may appear anywhere; a later "schedule" line replaces the kind, preempt lines
// accumulate (and imply "schedule list" when there is none).
bool parse_schedule_line(const std::string& first, Lexer& lx, Schedule* sc, std::string* why) {
  std::string w;
  if (first == "schedule") {
    if (!lx.word(&w)) return *why = "schedule needs list, pct or walk", false;
    if (w == "list") sc->kind = Schedule::kList;
    else if (w == "pct") sc->kind = Schedule::kPct;
    else if (w == "walk") sc->kind = Schedule::kWalk;
    else return *why = "unknown schedule '" + w + "' (list, pct, walk)", false;
    sc->seed = 0;
    sc->depth = 1;
    sc->steps = 0;
    while (lx.word(&w)) {
      uint64_t v;
      if (parse_kv(w, "seed", UINT64_MAX, &v)) sc->seed = v;
      else if (parse_kv(w, "depth", kMaxPctDepth, &v) && v >= 1) sc->depth = static_cast<int>(v);
      else if (parse_kv(w, "steps", kMaxPctSteps, &v) && v >= 1) sc->steps = static_cast<uint32_t>(v);
      else return *why = "bad schedule option '" + w + "' (seed=N, depth=1.." +
                         std::to_string(kMaxPctDepth) + ", steps=1.." +
                         std::to_string(kMaxPctSteps) + ")", false;
    }
    if ((sc->kind == Schedule::kList && (sc->seed != 0 || sc->depth != 1)) ||
        (sc->kind != Schedule::kPct && (sc->depth != 1 || sc->steps != 0)))
      return *why = "seed= goes with pct and walk, depth= and steps= with pct only", false;
    if (sc->kind != Schedule::kList && !sc->preempts.empty())
      return *why = "preempt lines need 'schedule list'", false;
    return true;
  }
  Preempt pe;
  uint64_t op = 0, seam = 0;
  std::string t1, o, sm, t2;
  if (!lx.word(&t1) || !parse_task(t1, &pe.task) || !lx.word(&o) ||
      !parse_kv(o, "op", 1000000, &op) || op == 0 || !lx.word(&sm) ||
      !parse_kv(sm, "seam", 1000000, &seam) || seam == 0 || !lx.word(&t2) ||
      !parse_task(t2, &pe.to) || lx.word(&w))
    return *why = "malformed preempt (preempt TA op=N seam=N TB; N from 1)", false;
  if (sc->kind == Schedule::kNone) sc->kind = Schedule::kList;
  if (sc->kind != Schedule::kList) return *why = "preempt lines need 'schedule list'", false;
  pe.op = static_cast<int>(op - 1);
  pe.seam = static_cast<int>(seam);
  sc->preempts.push_back(pe);
  return true;
}

struct LineParser {
  Lexer lx;
  Op op;
  std::string reason;

  bool fail(std::string r) {
    if (reason.empty()) reason = std::move(r);
    return false;
  }
  bool word(std::string* w, const char* what) {
    return lx.word(w) || fail(std::string("missing ") + what);
  }
  bool path(const char* what) {
    std::string w;
    if (!word(&w, what)) return false;
    if (!parse_path(w))
      return fail(std::string(what) + " must start with '/' and use [A-Za-z0-9/._-]: " + w);
    op.path = w;
    return true;
  }
  bool file(const char* what) {
    return path(what) && (op.path.back() != '/' || fail("a file path must name a file"));
  }
  bool handle(char prefix, int* h, const char* what) {
    std::string w;
    if (!word(&w, what)) return false;
    return parse_handle(w, prefix, h) ||
           fail(std::string("bad ") + what + " handle '" + w + "' (want " + prefix + "N)");
  }
  bool number(uint64_t* v, const char* what) {
    std::string w;
    if (!word(&w, what)) return false;
    return parse_u64(w, v) || fail(std::string("bad ") + what + " '" + w + "'");
  }
  // key=value options and bare flags after the fixed arguments.
  bool options() {
    std::string w;
    while (!lx.at_end() && !lx.peek_is("=>")) {
      lx.word(&w);
      const size_t eq = w.find('=');
      const std::string key = w.substr(0, eq);
      const std::string val = eq == std::string::npos ? "" : w.substr(eq + 1);
      uint64_t v = 0;
      const bool num = parse_u64(val, &v);
      if (op.kind == OpKind::kDiskAlloc && key == "max_io" && num) op.max_io = v;
      else if (op.kind == OpKind::kDiskAlloc && key == "latency" && num) op.latency = v;
      else if (op.kind == OpKind::kDiskAlloc && key == "slice" && num && v > 0) op.slice = v;
      else if (op.kind == OpKind::kDiskAlloc && key == "nr_requests" && num) op.nr_requests = v;
      else if (op.kind == OpKind::kWait && key == "max" && num) op.n = v;
      else if (op.kind == OpKind::kBio && w == "meta") op.flags |= kFlagMeta;
      else if (op.kind == OpKind::kBio && w == "swap") op.flags |= kFlagSwap;
      else if (op.kind == OpKind::kBio && w == "sync") op.flags |= kFlagSync;
      else if (op.kind == OpKind::kBio && w == "punt") op.flags |= kFlagPunt;
      else if (op.kind == OpKind::kBio && w == "wb") op.flags |= kFlagWb;
      else if ((op.kind == OpKind::kAssoc || op.kind == OpKind::kClone) && w == "nowait") op.nowait = true;
      else if (is_pol_op(op.kind) && w == "cpd_only") op.cpd_only = true;
      else if (op.kind == OpKind::kAssoc && key == "ctx" && val == "process") op.ctx = Ctx::kProcess;
      else if (op.kind == OpKind::kAssoc && key == "ctx" && val == "atomic") op.ctx = Ctx::kAtomic;
      else if (op.kind == OpKind::kAssoc && key == "ctx" && val == "softirq") op.ctx = Ctx::kSoftirq;
      else return fail("unknown option '" + w + "' for " + op_name(op.kind));
    }
    return true;
  }
  bool expectation() {
    if (lx.at_end()) return true;
    if (!lx.peek_is("=>")) return fail("unexpected text after the arguments");
    lx.i += 2;
    Expect& e = op.expect;
    lx.skip_space();
    if (lx.i < lx.s.size() && lx.s[lx.i] == '"') {
      e.kind = Expect::kText;
      if (!lx.quoted(&e.text)) return fail(lx.error);
    } else {
      std::string w;
      if (!lx.word(&w)) return fail("missing result after '=>'");
      uint64_t v;
      if (w == "done") {
        e.kind = Expect::kDone;
      } else if (w == "pending") {
        e.kind = Expect::kPending;
      } else if (w[0] == '-' && errno_from_name(w.substr(1)) != 0) {
        e.kind = Expect::kErrno;
        e.value = -errno_from_name(w.substr(1));
      } else if (w[0] == '-' && parse_u64(w.substr(1), &v) && v > 0 && v < 4096) {
        e.kind = Expect::kErrno;
        e.value = -static_cast<int64_t>(v);
      } else if (parse_u64(w, &v) && v <= INT64_MAX) {
        e.kind = Expect::kValue;
        e.value = static_cast<int64_t>(v);
      } else {
        return fail("bad result '" + w + "' (want -ERRNO, a number, \"text\", done, pending)");
      }
    }
    return lx.at_end() || fail("unexpected text after the result");
  }

  bool args() {
    uint64_t v;
    std::string w;
    switch (op.kind) {
      case OpKind::kMkdir:
      case OpKind::kRmdir:
      case OpKind::kFlush: return path("cgroup path");
      case OpKind::kAttach: return number(&op.n, "pid") && path("cgroup path");
      case OpKind::kDiskAlloc: {
        if (!handle('d', &op.a, "disk")) return false;
        if (!word(&w, "MAJ:MIN")) return false;
        const size_t c = w.find(':');
        uint64_t mi;
        if (c == std::string::npos || !parse_u64(w.substr(0, c), &v) ||
            !parse_u64(w.substr(c + 1), &mi) || v > 4095 || mi > 1048575)
          return fail("bad MAJ:MIN '" + w + "'");
        op.m = v;
        op.n = mi;
        return true;
      }
      case OpKind::kDiskAdd:
      case OpKind::kDiskDel:
      case OpKind::kDiskRelease:
      case OpKind::kPolActivate:
      case OpKind::kPolDeactivate: return handle('d', &op.a, "disk");
      case OpKind::kPartition: return handle('d', &op.a, "disk") && number(&op.n, "partition number");
      case OpKind::kWrite:
        return file("file path") && (lx.quoted(&op.data) || fail(lx.error));
      case OpKind::kRead: return file("file path");
      case OpKind::kBio: {
        if (!handle('b', &op.a, "bio") || !handle('d', &op.b, "disk") || !word(&w, "direction"))
          return false;
        if (w == "read") op.bio_op = BioOp::kRead;
        else if (w == "write") op.bio_op = BioOp::kWrite;
        else if (w == "discard") op.bio_op = BioOp::kDiscard;
        else return fail("bad direction '" + w + "' (read, write, discard)");
        return number(&op.n, "size");
      }
      case OpKind::kAssoc: return handle('b', &op.a, "bio") && path("cgroup path");
      case OpKind::kClone: return handle('b', &op.a, "bio") && handle('b', &op.b, "bio");
      case OpKind::kSplit:
        return handle('b', &op.a, "bio") && handle('b', &op.b, "bio") && number(&op.n, "bytes");
      case OpKind::kSubmit:
      case OpKind::kWait: return handle('b', &op.a, "bio");
      case OpKind::kComplete:
        if (!handle('b', &op.a, "bio")) return false;
        if (!lx.at_end() && !lx.peek_is("=>")) {
          if (!word(&w, "errno")) return false;
          const int e = w[0] == '-' ? errno_from_name(w.substr(1)) : 0;
          if (e != EIO && e != ENOMEM && e != EAGAIN)
            return fail("bad errno '" + w + "' (want -EIO, -ENOMEM or -EAGAIN)");
          op.n = static_cast<uint64_t>(e);
        }
        return true;
      case OpKind::kAdvance: return number(&op.n, "jiffies");
      case OpKind::kHz: return number(&op.n, "HZ");
      case OpKind::kTimerLate: return number(&op.n, "jiffies");
      case OpKind::kDd:
        if (!path("cgroup path") || !handle('d', &op.a, "disk") || !word(&w, "direction"))
          return false;
        if (w == "read") op.bio_op = BioOp::kRead;
        else if (w == "write") op.bio_op = BioOp::kWrite;
        else return fail("bad direction '" + w + "' (read, write)");
        return number(&op.n, "size") && number(&op.m, "count");
      case OpKind::kFaultNth: return number(&op.n, "N");
      case OpKind::kFaultSite:
        if (!word(&op.data, "site name")) return false;
        if (!name_ok(op.data)) return fail("bad site name '" + op.data + "'");
        if (!lx.at_end() && !lx.peek_is("=>")) return number(&op.m, "N");
        return true;
      case OpKind::kFaultProb:
        return number(&op.n, "permille") && number(&op.m, "seed") &&
               (op.n <= 1000 || fail("permille above 1000"));
      default: return true;  // no arguments
    }
  }
};

}  // namespace

uint64_t fnv1a(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

bool name_ok(const std::string& s) {
  if (s.empty() || s.find("//") != std::string::npos) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '/' || c == '.' || c == '_' || c == '-'))
      return false;
  return true;
}

const char* op_name(OpKind k) {
  const size_t i = static_cast<size_t>(k);
  return i < static_cast<size_t>(OpKind::kCount) ? kNames[i] : nullptr;
}

const char* errno_name(int err) {
  for (const auto& e : kErrnos)
    if (e.err == err) return e.name;
  return nullptr;
}

int errno_from_name(const std::string& name) {
  for (const auto& e : kErrnos)
    if (name == e.name) return e.err;
  return 0;
}

std::string quote(const std::string& s) {
  static const char* const hex = "0123456789abcdef";
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '\r') out += "\\r";
    else if (c < 0x20 || c >= 0x7f) {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

bool parse_text(const std::string& text, const std::string& file, Scenario* out, ParseError* err) {
  out->ops.clear();
  out->sched = {};
  size_t pos = 0;
  int lineno = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    ++lineno;
    LineParser p{Lexer{line}, Op{}, ""};
    if (p.lx.at_end()) {
      if (end == text.size()) break;
      continue;
    }
    std::string w;
    p.lx.word(&w);
    if (w == "schedule" || w == "preempt") {
      std::string why;
      if (!parse_schedule_line(w, p.lx, &out->sched, &why)) {
        *err = {file, lineno, why};
        return false;
      }
      if (end == text.size()) break;
      continue;
    }
    // "T2:" task tag
    if (w.size() >= 3 && w[0] == 'T' && w.back() == ':') {
      uint64_t t;
      if (!parse_u64(w.substr(1, w.size() - 2), &t) || t > kMaxTask) {
        *err = {file, lineno, "bad task tag '" + w + "' (T0: .. T7:)"};
        return false;
      }
      p.op.task = static_cast<int>(t);
      if (!p.lx.word(&w)) {
        *err = {file, lineno, "a task tag without an operation"};
        return false;
      }
    }
    int kind = -1;
    for (size_t k = 0; k < static_cast<size_t>(OpKind::kCount); ++k)
      if (w == kNames[k]) kind = static_cast<int>(k);
    if (kind < 0) {
      *err = {file, lineno, "unknown operation '" + w + "'"};
      return false;
    }
    p.op.kind = static_cast<OpKind>(kind);
    if (!p.args() || !p.options() || !p.expectation()) {
      *err = {file, lineno, p.reason.empty() ? "malformed line" : p.reason};
      return false;
    }
    out->ops.push_back(p.op);
    if (end == text.size()) break;
  }
  return true;
}

std::string op_to_text(const Op& op) {
  std::string s;
  if (op.task != 0) s += "T" + std::to_string(op.task) + ": ";
  s += op_name(op.kind);
  auto d = [](int h) { return " d" + std::to_string(h); };
  auto b = [](int h) { return " b" + std::to_string(h); };
  switch (op.kind) {
    case OpKind::kMkdir:
    case OpKind::kRmdir:
    case OpKind::kFlush: s += " " + op.path; break;
    case OpKind::kAttach: s += " " + std::to_string(op.n) + " " + op.path; break;
    case OpKind::kDiskAlloc:
      s += d(op.a) + " " + std::to_string(op.m) + ":" + std::to_string(op.n);
      if (op.max_io) s += " max_io=" + std::to_string(op.max_io);
      if (op.latency) s += " latency=" + std::to_string(op.latency);
      if (op.slice) s += " slice=" + std::to_string(op.slice);
      if (op.nr_requests) s += " nr_requests=" + std::to_string(op.nr_requests);
      break;
    case OpKind::kDiskAdd:
    case OpKind::kDiskDel:
    case OpKind::kDiskRelease:
    case OpKind::kPolActivate:
    case OpKind::kPolDeactivate: s += d(op.a); break;
    case OpKind::kPartition: s += d(op.a) + " " + std::to_string(op.n); break;
    case OpKind::kWrite: s += " " + op.path + " " + quote(op.data); break;
    case OpKind::kRead: s += " " + op.path; break;
    case OpKind::kBio: {
      static const char* const dirs[] = {"read", "write", "discard"};
      s += b(op.a) + d(op.b) + " " + dirs[static_cast<int>(op.bio_op)] + " " + std::to_string(op.n);
      if (op.flags & kFlagMeta) s += " meta";
      if (op.flags & kFlagSwap) s += " swap";
      if (op.flags & kFlagSync) s += " sync";
      if (op.flags & kFlagPunt) s += " punt";
      if (op.flags & kFlagWb) s += " wb";
      break;
    }
    case OpKind::kAssoc:
      s += b(op.a) + " " + op.path;
      if (op.nowait) s += " nowait";
      if (op.ctx == Ctx::kAtomic) s += " ctx=atomic";
      if (op.ctx == Ctx::kSoftirq) s += " ctx=softirq";
      break;
    case OpKind::kClone:
      s += b(op.a) + b(op.b);
      if (op.nowait) s += " nowait";
      break;
    case OpKind::kSplit: s += b(op.a) + b(op.b) + " " + std::to_string(op.n); break;
    case OpKind::kSubmit: s += b(op.a); break;
    case OpKind::kComplete:
      s += b(op.a);
      if (op.n) s += std::string(" -") + errno_name(static_cast<int>(op.n));
      break;
    case OpKind::kWait:
      s += b(op.a);
      if (op.n) s += " max=" + std::to_string(op.n);
      break;
    case OpKind::kAdvance:
    case OpKind::kHz:
    case OpKind::kTimerLate:
    case OpKind::kFaultNth: s += " " + std::to_string(op.n); break;
    case OpKind::kDd:
      s += " " + op.path + d(op.a) + (op.bio_op == BioOp::kWrite ? " write " : " read ") +
           std::to_string(op.n) + " " + std::to_string(op.m);
      break;
    case OpKind::kFaultSite:
      s += " " + op.data;
      if (op.m) s += " " + std::to_string(op.m);
      break;
    case OpKind::kFaultProb: s += " " + std::to_string(op.n) + " " + std::to_string(op.m); break;
    default: break;
  }
  if (is_pol_op(op.kind) && op.cpd_only) s += " cpd_only";
  const Expect& e = op.expect;
  switch (e.kind) {
    case Expect::kNone: break;
    case Expect::kErrno: {
      const char* n = errno_name(static_cast<int>(-e.value));
      s += " => -" + (n ? std::string(n) : std::to_string(-e.value));
      break;
    }
    case Expect::kValue: s += " => " + std::to_string(e.value); break;
    case Expect::kText: s += " => " + quote(e.text); break;
    case Expect::kDone: s += " => done"; break;
    case Expect::kPending: s += " => pending"; break;
  }
  return s;
}

std::string schedule_to_text(const Schedule& sc) {
  static const char* const kinds[] = {"", "list", "pct", "walk"};
  if (sc.kind == Schedule::kNone) return "";
  std::string s = std::string("schedule ") + kinds[sc.kind];
  if (sc.kind != Schedule::kList) s += " seed=" + std::to_string(sc.seed);
  if (sc.kind == Schedule::kPct) s += " depth=" + std::to_string(sc.depth);
  if (sc.kind == Schedule::kPct && sc.steps != 0) s += " steps=" + std::to_string(sc.steps);
  return s + "\n";
}

std::string preempt_to_text(const Preempt& p) {
  return "preempt T" + std::to_string(p.task) + " op=" + std::to_string(p.op + 1) +
         " seam=" + std::to_string(p.seam) + " T" + std::to_string(p.to);
}

std::string to_text(const Scenario& sc) {
  std::string out = schedule_to_text(sc.sched);
  // With preemptions, each operation carries its number (preempt lines refer to it).
  const bool numbered = !sc.sched.preempts.empty();
  for (size_t i = 0; i < sc.ops.size(); ++i) {
    std::string line = op_to_text(sc.ops[i]);
    if (numbered) line += std::string(line.size() < 40 ? 40 - line.size() : 1, ' ') + "# op " + std::to_string(i + 1);
    out += line + "\n";
  }
  for (const Preempt& p : sc.sched.preempts) out += preempt_to_text(p) + "\n";
  return out;
}

}  // namespace scenario
