// SPDX-License-Identifier: MIT
#include "impl/scenario/binary.h"

#include <algorithm>
#include <string>

#include "impl/scenario/text.h"

namespace scenario {
namespace {

constexpr uint8_t kExpectCode = 31;  // opcode index: the expectation of the previous op
constexpr uint8_t kTaskCode = 30;    // opcode index: the task of the ops that follow
constexpr uint8_t kSchedCode = 29;   // opcode index: the schedule, or one preemption
constexpr uint8_t kLiteral = 0xFF;   // an index byte announcing a literal instead
constexpr size_t kMaxString = 4096;

// Static state while decoding or encoding: what the scenario has bound so far. Both sides
// keep it identically, so indices agree.
struct Names {
  std::vector<std::string> paths{"/"};
  struct Dev {
    uint64_t major, minor;
  };
  std::vector<int> disk_hs;   // bound disk handles, in order (references pick from it)
  std::vector<Dev> disk_devs; // disk_devs[i]: the numbers of disk_hs[i]
  std::vector<int> bios;

  void bind_path(const std::string& p) {
    if (std::find(paths.begin(), paths.end(), p) == paths.end()) paths.push_back(p);
  }
  void bind_disk(int h, uint64_t major, uint64_t minor) {
    for (size_t i = 0; i < disk_hs.size(); ++i)
      if (disk_hs[i] == h) {
        disk_devs[i] = {major, minor};
        return;
      }
    disk_hs.push_back(h);
    disk_devs.push_back({major, minor});
  }
  const std::vector<int>& disk_handles() const { return disk_hs; }
  void bind_bio(int h) {
    if (std::find(bios.begin(), bios.end(), h) == bios.end()) bios.push_back(h);
  }
  // Updates the tables after an op (creation ops bind their object).
  void after(const Op& op) {
    if (op.kind == OpKind::kMkdir) bind_path(op.path);
    if (op.kind == OpKind::kDiskAlloc) bind_disk(op.a, op.m, op.n);
    if (op.kind == OpKind::kBio || op.kind == OpKind::kClone || op.kind == OpKind::kSplit)
      bind_bio(op.a);
  }
};


void split_file(const std::string& p, std::string* dir, std::string* file) {
  const size_t slash = p.rfind('/');
  *dir = slash == 0 ? "/" : p.substr(0, slash);
  *file = p.substr(slash + 1);
}

std::string join_file(const std::string& dir, const std::string& file) {
  return dir == "/" ? "/" + file : dir + "/" + file;
}

// ---- decoding ----

struct Reader {
  const uint8_t* p;
  size_t n;
  size_t i = 0;
  bool truncated = false;

  bool byte(uint8_t* b) {
    if (i >= n) {
      truncated = true;
      return false;
    }
    *b = p[i++];
    return true;
  }
  bool varint(uint64_t* v) {
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      uint8_t b;
      if (!byte(&b)) return false;
      x |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) {
        *v = x;
        return true;
      }
    }
    *v = x;  // ten bytes with continuation: take what we have
    return true;
  }
  bool string(std::string* s) {
    uint64_t len;
    if (!varint(&len)) return false;
    if (len > kMaxString || len > n - i) {
      truncated = true;
      return false;
    }
    s->assign(reinterpret_cast<const char*>(p + i), len);
    i += len;
    return true;
  }
};

struct Decoder {
  Reader r;
  Names names;
  bool valid = true;  // the op being decoded is usable (else skipped)

  bool path(std::string* out) {
    uint8_t b;
    if (!r.byte(&b)) return false;
    if (b != kLiteral) {
      *out = names.paths[b % names.paths.size()];
      return true;
    }
    if (!r.string(out)) return false;
    if (!name_ok(*out) || (*out)[0] != '/') valid = false;
    return true;
  }
  bool file_path(std::string* out) {
    std::string dir, file;
    uint8_t b;
    if (!path(&dir) || !r.byte(&b)) return false;
    const auto& files = binary_file_table();
    if (b != kLiteral) {
      file = files[b % files.size()];
    } else {
      if (!r.string(&file)) return false;
      if (!name_ok(file) || file.find('/') != std::string::npos) valid = false;
    }
    join(dir, file, out);
    return true;
  }
  // dir + "/" + leaf, which must obey the text form's rule too: a literal directory ending
  // in '/' would make "/a//cgroup.procs" or "/a//c3", which the text parser rejects, and the
  // decoded text of the input would not replay (found by AFL++ and fuzz_scenario).
  void join(const std::string& dir, const std::string& leaf, std::string* out) {
    *out = join_file(dir, leaf);
    if (!name_ok(*out)) valid = false;
  }
  // A reference to a bound handle (index), or a literal handle number.
  bool ref(const std::vector<int>& bound, int* h) {
    uint8_t b;
    if (!r.byte(&b)) return false;
    if (b == kLiteral || bound.empty()) {
      uint64_t v;
      if (b != kLiteral) {  // nothing bound: the op cannot mean anything
        valid = false;
        return true;
      }
      if (!r.varint(&v)) return false;
      if (v > 1000000) valid = false;
      *h = static_cast<int>(std::min<uint64_t>(v, 1000000));
      return true;
    }
    *h = bound[b % bound.size()];
    return true;
  }
  bool disk_ref(int* h) { return ref(names.disk_handles(), h); }
  bool new_handle(int* h) {
    uint64_t v;
    if (!r.varint(&v)) return false;
    if (v > 1000000) valid = false;
    *h = static_cast<int>(std::min<uint64_t>(v, 1000000));
    return true;
  }
  std::string dev_of(int h) {
    for (size_t i = 0; i < names.disk_hs.size(); ++i)
      if (names.disk_hs[i] == h)
        return std::to_string(names.disk_devs[i].major) + ":" + std::to_string(names.disk_devs[i].minor);
    return "8:0";
  }
  // The data of a write: raw, or built from typed fields.
  bool write_data(std::string* out) {
    uint8_t mode;
    if (!r.byte(&mode)) return false;
    switch (mode % 4) {
      case 0: return r.string(out);
      case 1: {  // io.max: "MAJ:MIN" + up to 4 key=value tokens
        int d = 0;
        uint8_t ntok;
        const std::vector<int>& hs = names.disk_handles();
        uint8_t db;
        if (!r.byte(&db) || !r.byte(&ntok)) return false;
        if (!hs.empty()) d = hs[db % hs.size()];
        *out = dev_of(d);
        static const char* const keys[] = {"rbps", "wbps", "riops", "wiops", "xbps"};
        for (int t = 0; t < ntok % 5; ++t) {
          uint8_t kb, vb;
          if (!r.byte(&kb) || !r.byte(&vb)) return false;
          std::string val;
          switch (vb % 4) {
            case 0: val = "max"; break;
            case 1: {
              uint64_t v;
              if (!r.varint(&v)) return false;
              val = std::to_string(v);
              break;
            }
            case 2: val = "0"; break;
            default: val = "abc"; break;
          }
          *out += std::string(" ") + keys[kb % 5] + "=" + val;
        }
        *out += "\n";
        return true;
      }
      case 2: {  // v1 limit: "MAJ:MIN VALUE"
        uint8_t db;
        uint64_t v;
        if (!r.byte(&db) || !r.varint(&v)) return false;
        const std::vector<int>& hs = names.disk_handles();
        *out = dev_of(hs.empty() ? 0 : hs[db % hs.size()]) + " " + std::to_string(v) + "\n";
        return true;
      }
      default: {  // a number (cgroup.procs, blkio.reset_stats)
        uint64_t v;
        if (!r.varint(&v)) return false;
        *out = std::to_string(v) + "\n";
        return true;
      }
    }
  }

  // Decodes one op's arguments; false when the input ended inside it. variant: bits 5-7
  // of the opcode byte.
  bool args(Op& op, unsigned variant) {
    uint8_t b;
    switch (op.kind) {
      case OpKind::kMkdir: {  // parent + name index, or a literal path
        uint8_t nb;
        std::string parent;
        if (!path(&parent) || !r.byte(&nb)) return false;
        if (nb == kLiteral) {
          if (!r.string(&op.path)) return false;
          if (!name_ok(op.path) || op.path[0] != '/') valid = false;
          return true;
        }
        join(parent, "c" + std::to_string(nb % 8), &op.path);
        return true;
      }
      case OpKind::kRmdir:
      case OpKind::kFlush: return path(&op.path);
      case OpKind::kAttach: return r.varint(&op.n) && path(&op.path);
      case OpKind::kDiskAlloc:
        if (!new_handle(&op.a) || !r.varint(&op.m) || !r.varint(&op.n) || !r.varint(&op.max_io) ||
            !r.varint(&op.latency))
          return false;
        if ((variant & 1) && !r.varint(&op.slice)) return false;  // bit 5: a slice follows
        if ((variant & 2) && !r.varint(&op.nr_requests)) return false;  // bit 6: nr_requests
        if (op.m > 4095 || op.n > 1048575) valid = false;
        return true;
      case OpKind::kDiskAdd:
      case OpKind::kDiskDel:
      case OpKind::kDiskRelease:
      case OpKind::kPolActivate:
      case OpKind::kPolDeactivate: return disk_ref(&op.a);
      case OpKind::kPartition: return disk_ref(&op.a) && r.varint(&op.n);
      case OpKind::kWrite: return file_path(&op.path) && write_data(&op.data);
      case OpKind::kRead: return file_path(&op.path);
      case OpKind::kBio:
        if (!new_handle(&op.a) || !disk_ref(&op.b) || !r.byte(&b) || !r.varint(&op.n)) return false;
        op.bio_op = static_cast<BioOp>((b & 3) % 3);
        op.flags = (b >> 2) & 0x1F;
        return true;
      case OpKind::kAssoc:
        if (!ref(names.bios, &op.a) || !path(&op.path) || !r.byte(&b)) return false;
        op.nowait = b & 1;
        op.ctx = static_cast<Ctx>((b >> 1) % 3);
        return true;
      case OpKind::kClone:
        if (!new_handle(&op.a) || !ref(names.bios, &op.b) || !r.byte(&b)) return false;
        op.nowait = b & 1;
        return true;
      case OpKind::kSplit: return new_handle(&op.a) && ref(names.bios, &op.b) && r.varint(&op.n);
      case OpKind::kSubmit: return ref(names.bios, &op.a);
      case OpKind::kComplete: {
        if (!ref(names.bios, &op.a) || !r.byte(&b)) return false;
        static const int errs[] = {0, 5 /*EIO*/, 12 /*ENOMEM*/, 11 /*EAGAIN*/};
        op.n = static_cast<uint64_t>(errs[b % 4]);
        return true;
      }
      case OpKind::kWait: return ref(names.bios, &op.a) && r.varint(&op.n);
      case OpKind::kAdvance:
      case OpKind::kHz:
      case OpKind::kTimerLate:
      case OpKind::kFaultNth: return r.varint(&op.n);
      case OpKind::kDd:
        if (!path(&op.path) || !disk_ref(&op.a) || !r.byte(&b) || !r.varint(&op.n) ||
            !r.varint(&op.m))
          return false;
        op.bio_op = (b & 1) ? BioOp::kWrite : BioOp::kRead;
        if (op.m > 1000000) valid = false;
        return true;
      case OpKind::kFaultSite:
        if (!r.string(&op.data) || !r.varint(&op.m)) return false;
        if (!name_ok(op.data)) valid = false;
        return true;
      case OpKind::kFaultProb:
        if (!r.varint(&op.n) || !r.varint(&op.m)) return false;
        if (op.n > 1000) valid = false;
        return true;
      default: return true;
    }
  }

  bool expectation(Expect* e) {
    uint8_t k;
    if (!r.byte(&k)) return false;
    uint64_t v;
    switch (k % 6) {
      case 0: *e = {}; return true;
      case 1:
        if (!r.varint(&v)) return false;
        if (v == 0 || v >= 4096) valid = false;
        *e = {Expect::kErrno, -static_cast<int64_t>(v % 4096), ""};
        return true;
      case 2:
        if (!r.varint(&v)) return false;
        if (v > static_cast<uint64_t>(INT64_MAX)) valid = false;
        *e = {Expect::kValue, static_cast<int64_t>(v & INT64_MAX), ""};
        return true;
      case 3: e->kind = Expect::kText; e->value = 0; return r.string(&e->text);
      case 4: *e = {Expect::kDone, 0, ""}; return true;
      default: *e = {Expect::kPending, 0, ""}; return true;
    }
  }
};

// ---- encoding ----

struct Writer {
  std::vector<uint8_t> out;
  Names names;
  int task = 0;
  void byte(uint8_t b) { out.push_back(b); }
  void varint(uint64_t v) {
    do {
      uint8_t b = v & 0x7f;
      v >>= 7;
      if (v) b |= 0x80;
      out.push_back(b);
    } while (v);
  }
  void string(const std::string& s) {
    varint(s.size());
    out.insert(out.end(), s.begin(), s.end());
  }
  void path(const std::string& p) {
    for (size_t i = 0; i < names.paths.size() && i < kLiteral; ++i)
      if (names.paths[i] == p) {
        byte(static_cast<uint8_t>(i));
        return;
      }
    byte(kLiteral);
    string(p);
  }
  void file_path(const std::string& p) {
    std::string dir, file;
    split_file(p, &dir, &file);
    path(dir);
    const auto& files = binary_file_table();
    for (size_t i = 0; i < files.size(); ++i)
      if (file == files[i]) {
        byte(static_cast<uint8_t>(i));
        return;
      }
    byte(kLiteral);
    string(file);
  }
  void ref(const std::vector<int>& bound, int h) {
    for (size_t i = 0; i < bound.size() && i < kLiteral; ++i)
      if (bound[i] == h) {
        byte(static_cast<uint8_t>(i));
        return;
      }
    byte(kLiteral);
    varint(static_cast<uint64_t>(h));
  }
  void disk_ref(int h) { ref(names.disk_handles(), h); }
};

// The opcode byte: the kind's index, or a variant of another kind's (bits 5-7).
uint8_t opcode_of(const Op& op) {
  switch (op.kind) {
    case OpKind::kDd: return static_cast<uint8_t>(OpKind::kBio) | 0x20;
    case OpKind::kHz: return static_cast<uint8_t>(OpKind::kLegacy) | 0x20;
    case OpKind::kTimerLate: return static_cast<uint8_t>(OpKind::kLegacy) | 0x40;
    case OpKind::kDiskAlloc:
      return static_cast<uint8_t>(static_cast<unsigned>(op.kind) | (op.slice ? 0x20u : 0u) |
                                  (op.nr_requests ? 0x40u : 0u));
    default:
      return static_cast<uint8_t>(static_cast<unsigned>(op.kind) |
                                  (is_pol_op(op.kind) && op.cpd_only ? 0x20u : 0u));
  }
}

void encode_op(Writer& w, const Op& op) {
  if (op.task != w.task) {
    w.byte(kTaskCode);
    w.byte(static_cast<uint8_t>(op.task));
    w.task = op.task;
  }
  w.byte(opcode_of(op));
  switch (op.kind) {
    case OpKind::kMkdir:
      w.path("/");  // parent of a literal: unused
      w.byte(kLiteral);
      w.string(op.path);
      break;
    case OpKind::kRmdir:
    case OpKind::kFlush: w.path(op.path); break;
    case OpKind::kAttach:
      w.varint(op.n);
      w.path(op.path);
      break;
    case OpKind::kDiskAlloc:
      w.varint(static_cast<uint64_t>(op.a));
      w.varint(op.m);
      w.varint(op.n);
      w.varint(op.max_io);
      w.varint(op.latency);
      if (op.slice) w.varint(op.slice);
      if (op.nr_requests) w.varint(op.nr_requests);
      break;
    case OpKind::kDiskAdd:
    case OpKind::kDiskDel:
    case OpKind::kDiskRelease:
    case OpKind::kPolActivate:
    case OpKind::kPolDeactivate: w.disk_ref(op.a); break;
    case OpKind::kPartition:
      w.disk_ref(op.a);
      w.varint(op.n);
      break;
    case OpKind::kWrite:
      w.file_path(op.path);
      w.byte(0);  // raw data
      w.string(op.data);
      break;
    case OpKind::kRead: w.file_path(op.path); break;
    case OpKind::kBio:
      w.varint(static_cast<uint64_t>(op.a));
      w.disk_ref(op.b);
      w.byte(static_cast<uint8_t>(static_cast<unsigned>(op.bio_op) | (op.flags << 2)));
      w.varint(op.n);
      break;
    case OpKind::kAssoc:
      w.ref(w.names.bios, op.a);
      w.path(op.path);
      w.byte(static_cast<uint8_t>((op.nowait ? 1 : 0) | (static_cast<unsigned>(op.ctx) << 1)));
      break;
    case OpKind::kClone:
      w.varint(static_cast<uint64_t>(op.a));
      w.ref(w.names.bios, op.b);
      w.byte(op.nowait ? 1 : 0);
      break;
    case OpKind::kSplit:
      w.varint(static_cast<uint64_t>(op.a));
      w.ref(w.names.bios, op.b);
      w.varint(op.n);
      break;
    case OpKind::kSubmit: w.ref(w.names.bios, op.a); break;
    case OpKind::kComplete:
      w.ref(w.names.bios, op.a);
      w.byte(op.n == 5 ? 1 : op.n == 12 ? 2 : op.n == 11 ? 3 : 0);
      break;
    case OpKind::kWait:
      w.ref(w.names.bios, op.a);
      w.varint(op.n);
      break;
    case OpKind::kAdvance:
    case OpKind::kHz:
    case OpKind::kTimerLate:
    case OpKind::kFaultNth: w.varint(op.n); break;
    case OpKind::kDd:
      w.path(op.path);
      w.disk_ref(op.a);
      w.byte(op.bio_op == BioOp::kWrite ? 1 : 0);
      w.varint(op.n);
      w.varint(op.m);
      break;
    case OpKind::kFaultSite:
      w.string(op.data);
      w.varint(op.m);
      break;
    case OpKind::kFaultProb:
      w.varint(op.n);
      w.varint(op.m);
      break;
    default: break;
  }
  if (op.expect.kind != Expect::kNone) {
    w.byte(kExpectCode);
    const Expect& e = op.expect;
    switch (e.kind) {
      case Expect::kErrno:
        w.byte(1);
        w.varint(static_cast<uint64_t>(-e.value));
        break;
      case Expect::kValue:
        w.byte(2);
        w.varint(static_cast<uint64_t>(e.value));
        break;
      case Expect::kText:
        w.byte(3);
        w.string(e.text);
        break;
      case Expect::kDone: w.byte(4); break;
      default: w.byte(5); break;
    }
  }
  w.names.after(op);
}

}  // namespace

const std::vector<const char*>& binary_file_table() {
  static const std::vector<const char*> files = {
      "io.max",
      "io.stat",
      "cgroup.procs",
      "blkio.reset_stats",
      "blkio.throttle.read_bps_device",
      "blkio.throttle.write_bps_device",
      "blkio.throttle.read_iops_device",
      "blkio.throttle.write_iops_device",
      "blkio.throttle.io_service_bytes",
      "blkio.throttle.io_serviced",
      "blkio.throttle.io_service_bytes_recursive",
      "blkio.throttle.io_serviced_recursive",
  };
  return files;
}

Scenario decode_binary(const uint8_t* data, size_t size) {
  Scenario s;
  decode_binary(data, size, &s);
  return s;
}

void decode_binary(const uint8_t* data, size_t size, Scenario* out) {
  out->ops.clear();  // keeps the capacity: a fuzzer decodes into the same one every run
  out->sched = Schedule{};
  Scenario& s = *out;
  if (size == 0 || data[0] != kBinaryVersion) return;
  // An operation is one byte or more, about 7 on average in a fuzzing corpus: room
  // for a quarter of the bytes spares the vector's regrowth (each a copy of every Op so
  // far, and fresh pages) for nearly every input, at 192 bytes an Op.
  s.ops.reserve(std::min<size_t>(size / 4 + 1, 1024));
  Decoder d{Reader{data, size, 1}, Names{}};
  bool last_valid = false;
  int task = 0;
  while (d.r.i < d.r.n) {
    uint8_t code;
    if (!d.r.byte(&code)) break;
    const unsigned kind = code % 32;
    d.valid = true;
    if (kind == kTaskCode) {
      uint8_t t;
      if (!d.r.byte(&t)) break;
      task = t % (kMaxTask + 1);
      continue;
    }
    if (kind == kSchedCode) {
      // sub % 4: 0 list; 1 pct (varint seed, depth byte, then with bit 2 of sub a varint
      // steps - 1); 2 walk (varint seed); 3 preempt (task byte, varint op, varint seam - 1,
      // to byte).
      uint8_t sub;
      if (!d.r.byte(&sub)) break;
      Schedule& sc = s.sched;
      uint64_t v = 0, w = 0;
      uint8_t b = 0, b2 = 0;
      switch (sub % 4) {
        case 0:
          sc.kind = Schedule::kList;
          sc.seed = 0;
          sc.depth = 1;
          sc.steps = 0;
          break;
        case 1:
          if (!d.r.varint(&v) || !d.r.byte(&b)) return;
          sc = {Schedule::kPct, v, 1 + b % kMaxPctDepth, {}};
          if (sub & 4) {
            if (!d.r.varint(&w)) return;
            sc.steps = static_cast<uint32_t>(1 + w % kMaxPctSteps);
          }
          break;
        case 2:
          if (!d.r.varint(&v)) return;
          sc = {Schedule::kWalk, v, 1, {}};
          break;
        default:
          if (!d.r.byte(&b) || !d.r.varint(&v) || !d.r.varint(&w) || !d.r.byte(&b2)) return;
          if (sc.kind == Schedule::kNone) sc.kind = Schedule::kList;
          if (sc.kind == Schedule::kList && v <= 1000000 && w < 1000000)
            sc.preempts.push_back({b % (kMaxTask + 1), static_cast<int>(v), static_cast<int>(w) + 1,
                                   b2 % (kMaxTask + 1)});
      }
      last_valid = false;
      continue;
    }
    if (kind == kExpectCode) {
      Expect e;
      if (!d.expectation(&e)) break;
      // Attaches to the previous op, if it decoded and has none yet.
      if (d.valid && last_valid && !s.ops.empty() && s.ops.back().expect.kind == Expect::kNone)
        s.ops.back().expect = e;
      last_valid = false;
      continue;
    }
    if (kind >= static_cast<unsigned>(OpKind::kCount)) {
      last_valid = false;
      continue;  // a no-op byte
    }
    Op op;
    op.kind = static_cast<OpKind>(kind);
    op.task = task;
    const unsigned variant = code >> 5;  // bits 5-7: a variant for some opcodes (FORMAT.md)
    if (is_pol_op(op.kind)) op.cpd_only = variant & 1;  // the cpd-only policy
    if (op.kind == OpKind::kBio && (variant & 1)) op.kind = OpKind::kDd;
    if (op.kind == OpKind::kLegacy && (variant & 3) == 1) op.kind = OpKind::kHz;
    if (op.kind == OpKind::kLegacy && (variant & 3) == 2) op.kind = OpKind::kTimerLate;
    if (!d.args(op, variant)) break;  // truncated: the scenario ends here
    last_valid = d.valid;
    if (!d.valid) continue;
    d.names.after(op);
    s.ops.push_back(std::move(op));
  }
  return;
}

std::vector<uint8_t> encode_binary(const Scenario& s) {
  Writer w;
  w.byte(kBinaryVersion);
  const Schedule& sc = s.sched;
  if (sc.kind != Schedule::kNone) {
    w.byte(kSchedCode);
    const bool steps = sc.kind == Schedule::kPct && sc.steps != 0;
    w.byte(static_cast<uint8_t>((sc.kind - 1) | (steps ? 4 : 0)));  // list 0, pct 1, walk 2
    if (sc.kind != Schedule::kList) w.varint(sc.seed);
    if (sc.kind == Schedule::kPct) w.byte(static_cast<uint8_t>(sc.depth - 1));
    if (steps) w.varint(sc.steps - 1);
  }
  for (const Op& op : s.ops) encode_op(w, op);
  for (const Preempt& p : sc.preempts) {
    w.byte(kSchedCode);
    w.byte(3);
    w.byte(static_cast<uint8_t>(p.task));
    w.varint(static_cast<uint64_t>(p.op));
    w.varint(static_cast<uint64_t>(p.seam - 1));
    w.byte(static_cast<uint8_t>(p.to));
  }
  return w.out;
}

}  // namespace scenario
