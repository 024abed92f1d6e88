// SPDX-License-Identifier: MIT
// fuzz_iomax: io.max writes (the input is the written text) against a live disk 8:16 and
// a cgroup /a. The implementation's result must equal the grammar oracle's
// (impl/oracle/model.h: written apart from the kernel-style parser), a rejected write
// must leave the limits unchanged, an accepted one must read back as the oracle merges
// it, and the read-back line, written again, must be accepted and read back the same
// (print -> parse round trip). The world persists across inputs (it is expensive to build
// and no IO runs); every input starts with no limits set (cleared by a write when the
// input before left some, which most rejected inputs do not).
//
// An input starting with "v1" and one of r, w, R, W is written instead to cgroup v1's
// blkio.throttle.read_bps_device, write_bps_device, read_iops_device or write_iops_device
// (a legacy hierarchy: the world is rebuilt as v1), checked against the oracle's
// v1 grammar (oracle::v1_limit_parse: sscanf's %llu, 0 = no limit, iops keep 32 bits),
// read back, and written back.
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>

#include "impl/block/cgroupfs.h"
#include "impl/block/genhd.h"
#include "impl/kern/report.h"
#include "impl/kern/workqueue.h"
#include "impl/oracle/model.h"

namespace {

// One world at a time (the hierarchy's root is process-global): cgroup v2 for io.max,
// v1 (blkio) for the blkio.throttle files. Disk 8:16 with partition 8:17, cgroup /a. An
// input of the other kind tears the world down (every check of a normal teardown runs)
// and builds the other.
struct IomaxWorld {
  blk::cgroup_hierarchy h;
  blk::gendisk* disk;
  blk::cgroup* a = nullptr;
  bool limits_set = false;  // whether an input may have left limits behind (so: clear)
  explicit IomaxWorld(bool dfl) : h(dfl) {
    disk = blk::alloc_disk(8, 16, 1);
    blk::add_disk(disk);
    h.mkdir(h.root(), "a", &a);
    blk::add_partition(disk, 1);
  }
  ~IomaxWorld() {
    blk::del_gendisk(disk);
    kern::run_pending_work();
    blk::disk_release(disk);
    h.rmdir(a);
    h.flush_frees();
    kern::run_pending_work();
  }
  bool dfl() const { return h.on_dfl(); }
};

// Not destroyed at exit: the runtime's own statics may be gone by then.
IomaxWorld* world(bool dfl) {
  static IomaxWorld* w = nullptr;
  if (w == nullptr || w->dfl() != dfl) {
    delete w;
    w = new IomaxWorld(dfl);
  }
  return w;
}

void fail(const std::string& what, const std::string& detail) {
  kern::kreport(kern::ReportKind::kOracle, "fuzz_iomax:" + what, "fuzz_iomax: " + what + ": " + detail);
}

std::string read_max(blk::cgroup_hierarchy& h) {
  std::string out;
  blk::cgroup_file_read(h, "/a/io.max", &out);
  return out;
}

}  // namespace

int test_v1(const std::string& input, char which) {
  IomaxWorld* w = world(false);
  static const char* const files[4] = {"read_bps_device", "write_bps_device", "read_iops_device",
                                       "write_iops_device"};
  const int k = which == 'r' ? 0 : which == 'w' ? 1 : which == 'R' ? 2 : 3;
  const std::string path = std::string("/a/blkio.throttle.") + files[k];
  const bool iops = k >= 2;
  if (w->limits_set) {
    // "0" clears the limit of this file only: the v1 world starts clean per file.
    for (const char* f : files) blk::cgroup_file_write(w->h, std::string("/a/blkio.throttle.") + f, "8:16 0");
    w->limits_set = false;
  }
  const oracle::V1LimitParse p = oracle::v1_limit_parse(input);
  long want;
  if (!p.dev_ok)
    want = -EINVAL;
  else if (p.major != 8 || p.minor != 16)
    want = -ENODEV;
  else
    want = p.err ? -p.err : static_cast<long>(input.size());
  const long got = blk::cgroup_file_write(w->h, path, input);
  if (got != want) {
    fail("v1-result", path + ": wrote '" + input + "': got " + std::to_string(got) +
                          ", grammar says " + std::to_string(want));
    return 0;
  }
  uint64_t v = got > 0 ? (p.value == 0 ? UINT64_MAX : p.value) : UINT64_MAX;
  if (iops) v = static_cast<uint32_t>(v);
  const uint64_t none = iops ? UINT32_MAX : UINT64_MAX;
  const std::string expect = v == none ? "" : "8:16 " + std::to_string(v) + "\n";
  std::string text;
  blk::cgroup_file_read(w->h, path, &text);
  w->limits_set = !text.empty();
  if (text != expect) {
    fail("v1-readback", path + ": wrote '" + input + "': read '" + text + "', expected '" + expect + "'");
    return 0;
  }
  // The print -> write round trip, except for an iops limit whose low 32 bits are 0: the
  // kernel stores such a write (2^32, say) as an iops limit of 0 and prints "0", which
  // written back means "no limit" (a quirk of the v1 files, kept as the kernel has it).
  if (!text.empty() && v != 0) {
    std::string again;
    if (blk::cgroup_file_write(w->h, path, text) != static_cast<long>(text.size()) ||
        (blk::cgroup_file_read(w->h, path, &again), again != text))
      fail("v1-roundtrip", path + ": the read-back '" + text + "' does not write back to itself");
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool init = [] {
    kern::set_report_mode(kern::ReportMode::kAbort);
    return true;
  }();
  (void)init;
  if (size > 4096) return 0;
  const std::string input(reinterpret_cast<const char*>(data), size);
  if (size >= 3 && data[0] == 'v' && data[1] == '1' &&
      (data[2] == 'r' || data[2] == 'w' || data[2] == 'R' || data[2] == 'W'))
    return test_v1(input.substr(3), static_cast<char>(data[2]));
  IomaxWorld* w = world(true);
  if (w->limits_set) {
    blk::cgroup_file_write(w->h, "/a/io.max", "8:16 rbps=max wbps=max riops=max wiops=max");
    w->limits_set = false;
  }
  const oracle::IomaxParse p = oracle::iomax_parse(input);
  long want;
  if (!p.dev_ok)
    want = -EINVAL;
  else if (p.major != 8 || p.minor != 16)
    want = -ENODEV;  // 8:17 is a partition, anything else does not exist
  else
    want = p.err ? -p.err : static_cast<long>(size);
  const long got = blk::cgroup_file_write(w->h, "/a/io.max", input);
  if (got != want) {
    fail("result", "wrote '" + input + "': got " + std::to_string(got) + ", grammar says " +
                       std::to_string(want));
    return 0;
  }
  const std::string text = read_max(w->h);
  w->limits_set = !text.empty();
  uint64_t l[4] = {UINT64_MAX, UINT64_MAX, UINT32_MAX, UINT32_MAX};
  if (got > 0)
    for (int k = 0; k < 4; ++k)
      if (p.set[k]) l[k] = p.value[k];
  const std::string line = oracle::iomax_line("8:16", l);
  const std::string expect = line.empty() ? "" : line + "\n";
  if (text != expect) {
    fail("readback", "wrote '" + input + "': read '" + text + "', expected '" + expect + "'");
    return 0;
  }
  if (!text.empty()) {
    if (blk::cgroup_file_write(w->h, "/a/io.max", text) != static_cast<long>(text.size()) ||
        read_max(w->h) != text)
      fail("roundtrip", "the read-back '" + text + "' does not write back to itself");
  }
  return 0;
}
