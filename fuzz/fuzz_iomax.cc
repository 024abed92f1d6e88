// SPDX-License-Identifier: MIT
// fuzz_iomax: io.max writes (the input is the written text) against a live disk 8:16 and
// a cgroup /a. The implementation's result must equal the grammar oracle's
// (impl/oracle/model.h: written apart from the kernel-style parser), a rejected write
// must leave the limits unchanged, an accepted one must read back as the oracle merges
// it, and the read-back line, written again, must be accepted and read back the same
// (print -> parse round trip). The world persists across inputs (it is expensive to build
// and no IO runs); every input starts by clearing the limits.
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>

#include "impl/block/cgroupfs.h"
#include "impl/block/genhd.h"
#include "impl/kern/report.h"
#include "impl/oracle/model.h"

namespace {

struct IomaxWorld {
  blk::cgroup_hierarchy h;
  blk::gendisk* disk;
  IomaxWorld() {
    disk = blk::alloc_disk(8, 16, 1);
    blk::add_disk(disk);
    blk::cgroup* a;
    h.mkdir(h.root(), "a", &a);
    blk::add_partition(disk, 1);
  }
};

void fail(const std::string& what, const std::string& detail) {
  kern::kreport(kern::ReportKind::kOracle, "fuzz_iomax:" + what, "fuzz_iomax: " + what + ": " + detail);
}

std::string read_max(blk::cgroup_hierarchy& h) {
  std::string out;
  blk::cgroup_file_read(h, "/a/io.max", &out);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static IomaxWorld* w = [] {
    kern::set_report_mode(kern::ReportMode::kAbort);
    return new IomaxWorld();
  }();
  if (size > 4096) return 0;
  const std::string input(reinterpret_cast<const char*>(data), size);
  blk::cgroup_file_write(w->h, "/a/io.max", "8:16 rbps=max wbps=max riops=max wiops=max");
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
